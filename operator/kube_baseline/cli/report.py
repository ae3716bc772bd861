"""`kube-baseline report [--cluster | PATH...] [-f BASELINE.yaml] -o html|md|json`: an audit report.

The same evaluation as `check` (and the same remediation plan as `plan`), gathered into one
plain-data document: the evidence header (time, source, tool version, the baseline spec and its
SHA-256), compliance by namespace and by check, the drifted workloads with their findings, what
the operator has remediated (objects whose managedFields name it, as exported from a cluster with
`kubectl get -o yaml --show-managed-fields`) and what remediation would fill now, the exemptions
with owner and expiry, and each check's PSS / CIS / NSA references. `-o json` prints that document;
`md` and `html` render it (html: one self-contained file, charts as inline SVG, see report_html).

With `--cluster`, the workloads, Namespaces and NetworkPolicies are read from the cluster of the
current kubeconfig as `check --cluster` reads them (cli.live over the read-only cli.kubeclient);
Pods and ReplicaSets owned by a controller are attributed to it, as the operator does, and
managedFields show what the operator remediated.

Exit codes: 0 written, 2 bad input or usage (as `check`). The report is evidence, not a gate: it
exits 0 whether or not workloads drifted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from kube_baseline import __version__
from kube_baseline.cli import commands, manifests, output, report_html
from kube_baseline.cli.evaluation import World
from kube_baseline.cli.kubeclient import Client, ClusterError, connect
from kube_baseline.cli.live import Progress, read
from kube_baseline.cli.manifests import InputError
from kube_baseline.cli.plan_output import PlanResult
from kube_baseline.engine.models import FIELD_MANAGER

FORMATS = ("html", "md", "json")
HELP = "Write an audit report (HTML, Markdown or JSON) of manifests against a baseline; exit 0, 2 bad input."


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of `report` beyond those it shares with `check` (cli.args registers it)."""
    parser.add_argument(
        "-o", "--output", choices=FORMATS, default="html", help="report format (default html)"
    )
    parser.add_argument("--title", default="Workload security audit", help="the report's title")


def read_cluster(args: argparse.Namespace) -> tuple[World, str]:
    """The live workloads (those a controller owns are attributed to it), Namespaces and
    NetworkPolicies, read as `check --cluster` reads them, and the cluster's description."""
    client = Client(connect(args.kubeconfig, args.context))
    live = read(client, args.namespace, Progress(False))
    return World(live.workloads, live.namespaces, live.network_policies), (
        f"{live.context} ({client.conn.server})"
    )


def _baseline_identity(path: str | None) -> tuple[str, str, str]:
    """(name, SHA-256 of the file, path) of the baseline file; ("", "", "") without one."""
    if not path or path == manifests.STDIN:
        return ("", "", path or "")
    raw = manifests.read_text(path, None)
    doc: Any = next((d for d in yaml.safe_load_all(raw) if d), {})
    name = str(((doc or {}).get("metadata") or {}).get("name") or "") if isinstance(doc, dict) else ""
    return name, hashlib.sha256(raw.encode()).hexdigest(), path


def _is_remediated(obj: dict[str, Any]) -> bool:
    managed = (obj.get("metadata") or {}).get("managedFields") or ()
    return any(isinstance(m, dict) and m.get("manager") == FIELD_MANAGER for m in managed)


def gather(
    args: argparse.Namespace,
    settings: commands.Settings,
    results: Sequence[output.ObjectResult],
    plans: Sequence[PlanResult],
) -> dict[str, Any]:
    """The report as plain data (the JSON output; the other formats render it)."""
    spec_json = settings.spec.model_dump(by_alias=True, mode="json")
    name, file_hash, path = _baseline_identity(args.baseline)
    cluster = getattr(args, "cluster_name", "")
    canonical = json.dumps(spec_json, sort_keys=True, separators=(",", ":"))
    header = {
        "title": args.title,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "evaluatedAt": settings.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": "cluster" if cluster else "manifests",
        "inputs": [cluster] if cluster else list(args.paths),
        "tool": f"kube-baseline {__version__}",
        "baseline": {
            "name": name or "(from command-line options)",
            "file": path,
            "fileSha256": file_hash,
            "specSha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "spec": spec_json,
        },
    }
    checked = [r for r in results if not r.skipped]
    by_ns: dict[str, Counter[str]] = defaultdict(Counter)
    failing: Counter[str] = Counter()
    drifted, remediated = [], []
    for r in checked:
        m = r.manifest
        by_ns[m.namespace or "(none)"]["drifted" if r.findings else "compliant"] += 1
        failing.update({f.check for f in r.findings})
        identity = {"namespace": m.namespace, "kind": m.kind, "name": m.name, "source": m.source}
        if r.findings:
            findings = [
                {
                    "check": f.check,
                    "severity": f.severity,
                    "message": f.message,
                    "field": f.field,
                    "remediation": f.remediation,
                }
                for f in sorted(r.findings, key=lambda f: (f.check, f.field))
            ]
            drifted.append({**identity, "findings": findings, "exempted": r.exempted})
        if _is_remediated(m.obj):
            remediated.append(identity)
    catalogue = [
        {
            "id": c.id,
            "title": c.title,
            "severity": c.severity,
            "level": c.level,
            "pss": c.references.pss,
            "cis": list(c.references.cis),
            "nsa": c.references.nsa,
            "remediation": c.fix,
            "failingWorkloads": failing[c.id],
        }
        for c in settings.policy.checks
    ]
    remediable = [
        {"source": p.manifest.source, "label": p.label, "fields": sorted({c.field for c in p.changes})}
        for p in plans
        if p.changes
    ]
    exemptions = [
        {
            "namespace": e.namespace,
            "workload": e.workload,
            "checks": list(e.checks) or ["(all)"],
            "reason": e.reason,
            "owner": e.owner or "(none)",
            "expires": e.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if e.expires else "",
            "expired": bool(e.expires and e.expires.astimezone(UTC) < settings.now),
        }
        for e in settings.spec.exemptions
    ]
    namespaces = [
        {"namespace": ns, "compliant": c["compliant"], "drifted": c["drifted"]}
        for ns, c in sorted(by_ns.items())
    ]
    summary = {
        "workloads": len(checked),
        "compliant": len(checked) - len(drifted),
        "drifted": len(drifted),
        "skipped": len(results) - len(checked),
        "remediated": len(remediated),
        "exempted": sum(r.exempted for r in checked),
    }
    return {
        "header": header,
        "summary": summary,
        "namespaces": namespaces,
        "checks": catalogue,
        "drifted": sorted(drifted, key=lambda d: (-len(d["findings"]), d["namespace"], d["kind"], d["name"])),
        "remediated": remediated,
        "remediable": remediable,
        # Undoing a remediation is recorded by the operator's write log, not in manifests.
        "undone": [],
        "exemptions": exemptions,
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    h, s = data["header"], data["summary"]
    out = [f"# {h['title']}", "", "## Evidence", ""]
    evidence = [
        ("Generated", h["generated"]),
        ("Evaluated at", h["evaluatedAt"]),
        ("Source", f"{h['source']}: {', '.join(h['inputs'])}"),
        ("Tool", h["tool"]),
        ("Baseline", h["baseline"]["name"]),
        ("Baseline file SHA-256", h["baseline"]["fileSha256"] or "(none)"),
        ("Spec SHA-256", h["baseline"]["specSha256"]),
    ]
    out += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in evidence), ""]
    out += [
        "## Summary",
        "",
        "| " + " | ".join(s) + " |",
        "|" + "---|" * len(s),
        "| " + " | ".join(map(str, s.values())) + " |",
        "",
    ]
    out += ["## Compliance by namespace", "", "| Namespace | Compliant | Drifted |", "|---|---|---|"]
    out += [f"| {n['namespace']} | {n['compliant']} | {n['drifted']} |" for n in data["namespaces"]]
    out += [
        "",
        "## Checks",
        "",
        "| Check | Severity | Failing | PSS | CIS | NSA |",
        "|---|---|---|---|---|---|",
    ]
    out += [
        f"| {c['id']} | {c['severity']} | {c['failingWorkloads']} | {_cell(c['pss'])} | "
        f"{', '.join(c['cis'])} | {_cell(c['nsa'])} |"
        for c in data["checks"]
    ]
    out += ["", "## Drifted workloads", ""]
    for d in data["drifted"]:
        out += [f"### {d['kind']} {d['namespace']}/{d['name']}", "", f"Source: `{d['source']}`", ""]
        out += ["| Check | Severity | Field | Fix | Message |", "|---|---|---|---|---|"]
        out += [
            f"| {f['check']} | {f['severity']} | `{f['field']}` | {f['remediation']} | "
            f"{_cell(f['message'])} |"
            for f in d["findings"]
        ]
        out.append("")
    if not data["drifted"]:
        out += ["None.", ""]
    out += ["## Remediation", "", "Remediated by the operator:", ""]
    out += [f"- {r['kind']} {r['namespace']}/{r['name']}" for r in data["remediated"]] or ["- none"]
    out += ["", "Remediation would fill now:", ""]
    out += [f"- {r['label']}: {', '.join(r['fields'])}" for r in data["remediable"]] or ["- nothing"]
    out += ["", "Undone: none recorded in the input.", "", "## Exemptions", ""]
    out += ["| Namespace | Workload | Checks | Owner | Expires | Reason |", "|---|---|---|---|---|---|"]
    out += [
        f"| {e['namespace']} | {e['workload']} | {', '.join(e['checks'])} | {_cell(e['owner'])} | "
        f"{e['expires'] or 'never'}{' (expired)' if e['expired'] else ''} | {_cell(e['reason'])} |"
        for e in data["exemptions"]
    ]
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        if args.cluster and args.paths:
            raise commands.UsageError("--cluster reads the cluster: give no PATH with it")
        if not args.paths and not args.cluster:
            raise commands.UsageError("no PATH given (use - to read standard input, or --cluster)")
        settings = commands.settings_of(args, None)
        errors: list[str] = []
        if args.cluster:
            world, args.cluster_name = read_cluster(args)
        else:
            inputs, errors = commands.read_inputs(args.paths, None)
            world = World.of_files(inputs, settings)
        results: list[output.ObjectResult] = []
        if not errors:
            results, errors = commands.evaluate(world, settings)
        plans: list[PlanResult] = []
        if not errors:
            plans, errors = commands.plan_all(world, results, settings, with_diff=False)
        if errors:
            for line in errors:
                err.write(f"kube-baseline report: {line}\n")
            return commands.EXIT_BAD_INPUT
        data = gather(args, settings, results, plans)
    except (commands.UsageError, InputError) as exc:
        return commands.bad_settings("report", exc, err)
    except ClusterError as exc:
        err.write(f"kube-baseline report: cluster: {exc}\n")
        return commands.EXIT_BAD_INPUT
    if args.output == "json":
        out.write(json.dumps(data, indent=2) + "\n")
    elif args.output == "md":
        out.write(render_markdown(data))
    else:
        out.write(report_html.render(data))
    return commands.EXIT_OK
