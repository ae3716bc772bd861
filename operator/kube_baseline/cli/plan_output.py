"""Render what `plan` and `fix` would do or did: text for people, JSON for tools (a contract).

`plan -o json`: {"objects": [{identity..., "patch", "changes", "unfixed", "note"
(, "serverDryRun")}], "summary": {"changed", "changes", "unfixed"}}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from kube_baseline.cli.manifests import STDIN, Manifest
from kube_baseline.cli.output import Palette, clean, finding_dict, identity
from kube_baseline.engine.models import Finding
from kube_baseline.engine.remediation import Change

# --------------------------------------------------------------------------- plan and fix


@dataclass(slots=True)
class PlanResult:
    """What remediation would do to one object."""

    manifest: Manifest
    patch: dict[str, Any]
    changes: tuple[Change, ...]
    unfixed: tuple[Finding, ...]
    diff: str = ""
    note: str = ""  # why nothing is planned (e.g. owned by a controller)
    label: str = field(default="")
    # --server-dry-run: "accepted", or "refused: <the API server's message>"; "" when not asked.
    server: str = ""

    @property
    def refused(self) -> bool:
        return self.server.startswith("refused")


def plan_json(plans: Sequence[PlanResult]) -> dict[str, Any]:
    objects = []
    for p in plans:
        m = p.manifest
        objects.append(
            {
                **identity(m),
                "patch": p.patch,
                "changes": [
                    {"field": c.field, "value": c.value, "check": c.check, "risk": c.risk} for c in p.changes
                ],
                "unfixed": [finding_dict(f) for f in p.unfixed],
                "note": p.note,
                **({"serverDryRun": p.server} if p.server else {}),
            }
        )
    return {"objects": objects, "summary": plan_summary(plans)}


def plan_summary(plans: Iterable[PlanResult]) -> dict[str, int]:
    changed = changes = unfixed = 0
    for p in plans:
        if p.patch:
            changed += 1
            changes += len(p.changes)
        unfixed += len(p.unfixed)
    return {"changed": changed, "changes": changes, "unfixed": unfixed}


def write_plan_text(plans: Sequence[PlanResult], out: TextIO, colour: bool) -> None:
    c = Palette(colour)
    for p in plans:
        out.write(f"{c(clean(p.manifest.source), '1')}  {c(clean(p.label), '1')}\n")
        if p.note:
            out.write(f"  {c(clean(p.note), '2')}\n")
        if p.patch:
            out.write("  patch (strategic merge):\n")
            for line in json.dumps(p.patch, indent=2, default=str).splitlines():
                out.write(f"    {line}\n")
            out.write("  diff:\n")
            for raw in p.diff.splitlines():
                line = clean(raw)
                if line.startswith("+") and not line.startswith("+++"):
                    line = c(line, "32")
                elif line.startswith("-") and not line.startswith("---"):
                    line = c(line, "31")
                elif line.startswith("@@"):
                    line = c(line, "36")
                out.write(f"    {line}\n")
        if p.server:
            colour_code = "1;31" if p.refused else "32"
            out.write(f"  {c(clean('server dry run: ' + p.server), colour_code)}\n")
        if p.unfixed:
            out.write(f"  not fixed ({len(p.unfixed)}):\n")
            for f in p.unfixed:
                out.write(f"    {f.check:<28} [{f.remediation}] {clean(f.message)}\n")
        out.write("\n")
    s = plan_summary(plans)
    if s["changed"]:
        head = c(
            f"{s['changed']} object{'s' if s['changed'] != 1 else ''} to change, {s['changes']} changes", "1"
        )
    else:
        head = c("nothing to change", "1;32")
    tail = f"{s['unfixed']} finding{'s' if s['unfixed'] != 1 else ''} not fixed by this plan"
    refused = sum(1 for p in plans if p.refused)
    if refused:
        tail += ", " + c(f"{refused} refused by the API server (dry run)", "1;31")
    out.write(f"{head}, {tail}\n")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def write_fix_text(
    fixed: Sequence[tuple[str, Sequence[PlanResult]]],
    plans: Sequence[PlanResult],
    out: TextIO,
    colour: bool,
) -> None:
    """What `fix` wrote: per file its objects and changes, then what is left."""
    c = Palette(colour)
    fixed_objects = total_changes = 0
    for path, planned in fixed:
        n = sum(len(p.changes) for p in planned)
        fixed_objects += len(planned)
        total_changes += n
        target = "standard output" if path == STDIN else clean(path)
        out.write(f"{c('fixed', '1;32')} {target}: {_count(len(planned), 'object')}, {_count(n, 'change')}\n")
        for p in planned:
            out.write(f"  {clean(p.manifest.source)}  {clean(p.label)}\n")
            for change in p.changes:
                value = json.dumps(change.value, default=str)
                out.write(f"    {change.field} = {value}  ({change.check}, {change.risk})\n")
    remaining = sum(len(p.unfixed) for p in plans)
    out.write(
        f"{_count(fixed_objects, 'object')} fixed with {_count(total_changes, 'change')}; "
        f"{_count(remaining, 'finding')} left (manual, or a risk class not applied)\n"
    )
