"""`kube-baseline revert`: remove what kube-baseline set from workloads in the cluster.

The fields are those the field manager `kube-baseline` owns (managedFields); nothing else is
touched, and a workload where another manager has since changed a field inside what
kube-baseline set is refused, with the reason. Dry run by default (the fields that would go are
shown); `--yes` writes one strategic-merge patch per workload, guarded by its resourceVersion,
under the same field manager (on a conflict the workload is read and checked again). Talks to
the cluster through kubectl (the CLI's own client, cli.kubeclient, is read-only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from kube_baseline.engine.desired import build_baseline as parse_baseline
from kube_baseline.engine.desired import build_namespace_info, governs
from kube_baseline.engine.models import FIELD_MANAGER, PLURAL
from kube_baseline.engine.rollout import parse_field, undo_patch, value_at
from kube_baseline.engine.workloads import KINDS

HELP = (
    "Remove the fields kube-baseline set from one workload (KIND/NAME -n NS), a namespace (-n NS) "
    "or every workload a baseline governs (--baseline NAME); dry run unless --yes."
)
PATCHABLE = [k for k in KINDS.values() if k.patchable]


class UsageError(Exception):
    pass


def add_parser(sub: Any) -> None:
    p = sub.add_parser("revert", help=HELP, description=HELP)
    p.add_argument("workload", nargs="?", metavar="KIND/NAME", help="one workload, e.g. deployment/web")
    p.add_argument("-n", "--namespace", help="the workload's namespace, or every workload in it")
    p.add_argument(
        "--baseline", metavar="NAME", help="every workload in the namespaces this baseline governs"
    )
    p.add_argument("--yes", action="store_true", help="write the patches (default: show them only)")
    p.add_argument("--kubectl", default="kubectl", help="the kubectl to run (default: %(default)s)")
    p.add_argument("--kubeconfig", help="passed to kubectl")


def _kubectl(args: argparse.Namespace, *cmd: str) -> str:
    base = [args.kubectl, *([f"--kubeconfig={args.kubeconfig}"] if args.kubeconfig else [])]
    done = subprocess.run([*base, *cmd], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UsageError(f"kubectl {' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def _kind(text: str) -> Any:
    lowered = text.lower()
    for kind in PATCHABLE:
        if lowered in (kind.name.lower(), kind.plural, kind.plural.rstrip("s")):
            return kind
    raise UsageError(f"{text}: not a kind kube-baseline patches ({', '.join(k.name for k in PATCHABLE)})")


def _items(args: argparse.Namespace, kind: Any, namespace: str) -> list[dict[str, Any]]:
    out = _kubectl(args, "get", kind.plural, "-n", namespace, "--show-managed-fields", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out).get("items") or []
    for item in items:
        item.setdefault("kind", kind.name)
    return items


def _targets(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if args.workload:
        if not args.namespace or args.baseline:
            raise UsageError("KIND/NAME needs -n NAMESPACE (and no --baseline)")
        kind_text, _, name = args.workload.partition("/")
        if not name:
            raise UsageError(f"{args.workload}: expected KIND/NAME, e.g. deployment/web")
        kind = _kind(kind_text)
        found = [i for i in _items(args, kind, args.namespace) if i["metadata"]["name"] == name]
        if not found:
            raise UsageError(f"{kind.name} {args.namespace}/{name} not found")
        yield from found
        return
    if bool(args.namespace) == bool(args.baseline):
        raise UsageError("give one of: KIND/NAME -n NAMESPACE, -n NAMESPACE, --baseline NAME")
    if args.namespace:
        namespaces = [args.namespace]
    else:
        body = json.loads(_kubectl(args, "get", PLURAL, args.baseline, "-o", "json"))
        baseline = parse_baseline(body)
        listed = json.loads(_kubectl(args, "get", "namespaces", "-o", "json")).get("items") or []
        namespaces = [ns["metadata"]["name"] for ns in listed if governs(baseline, build_namespace_info(ns))]
    for namespace in namespaces:
        for kind in PATCHABLE:
            yield from _items(args, kind, namespace)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


CONFLICT = "(Conflict)"  # kubectl's words for a resourceVersion that moved on
ATTEMPTS = 5


def _read(args: argparse.Namespace, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    kind = KINDS[obj["kind"]]
    got = _kubectl(
        args, "get", kind.plural, meta["name"], "-n", meta["namespace"], "--show-managed-fields", "-o", "json"
    )
    fresh: dict[str, Any] = json.loads(got)
    fresh.setdefault("kind", kind.name)
    return fresh


def _revert_one(args: argparse.Namespace, obj: dict[str, Any], out: Any) -> str | None:
    """'changed', 'refused', or None (nothing of ours on it). The patch is guarded by the
    resourceVersion it was computed from; when a controller's status write moved it on meanwhile,
    the workload is read again and the undo computed again (and refused if someone changed a
    field of ours since), up to ATTEMPTS times."""
    shown: list[str] | None = None
    for attempt in range(1, ATTEMPTS + 1):
        meta = obj["metadata"]
        undo = undo_patch(obj, FIELD_MANAGER)
        if not undo.patch and not undo.kept:
            return None
        where = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
        if undo.kept:
            out.write(f"refused {where}: changed by someone else since kube-baseline set it:\n")
            for field, why in sorted(undo.kept.items()):
                out.write(f"  ! {field}: {why}\n")
            return "refused"
        if shown != list(undo.removed):  # first, or what is ours changed when read again
            shown = list(undo.removed)
            out.write(f"{'reverting' if args.yes else 'would revert'} {where}:\n")
            for field in undo.removed:
                out.write(f"  - {field}: {_show(value_at(obj, parse_field(field)))}\n")
        if not args.yes:
            return "changed"
        patch = {**undo.patch, "metadata": {"resourceVersion": meta["resourceVersion"]}}
        try:
            _kubectl(
                args,
                "patch",
                KINDS[obj["kind"]].plural,
                meta["name"],
                "-n",
                meta["namespace"],
                "--type=strategic",
                f"--field-manager={FIELD_MANAGER}",
                "-p",
                json.dumps(patch),
            )
            return "changed"
        except UsageError as exc:
            if CONFLICT not in str(exc) or attempt == ATTEMPTS:
                out.write(f"  failed: {exc}\n")
                return "refused"
        try:
            obj = _read(args, obj)
        except UsageError as exc:
            out.write(f"  failed: {exc}\n")
            return "refused"
        out.write(f"  {where} changed while reverting; read it again (attempt {attempt + 1})\n")
    return "refused"  # not reached: the last attempt returns


def run(args: argparse.Namespace, out: Any = None) -> int:
    """0: done (or nothing to do); 1: some workload refused; 2: bad input (nothing changed)."""
    out = out or sys.stdout
    try:
        targets = list(_targets(args))
    except (UsageError, ValueError) as exc:
        sys.stderr.write(f"kube-baseline revert: error: {exc}\n")
        return 2
    outcomes = [_revert_one(args, obj, out) for obj in targets]
    changed, refused = outcomes.count("changed"), outcomes.count("refused")
    verb = "reverted" if args.yes else "would revert (dry run; --yes writes)"
    out.write(f"{changed} workload{'' if changed == 1 else 's'} {verb}; {refused} refused\n")
    return 1 if refused else 0
