"""`check --cluster` and `plan --cluster [--server-dry-run]`: the same engine over live objects.

Gather (cli.live: list only), evaluate (cli.commands.evaluate, the offline path), then for `plan`
the changes the operator would write: each workload patch, the baseline's NetworkPolicy per
protected namespace, and the namespace labels, each as a diff. With --server-dry-run every change
is sent with dryRun=All, so the API server's validation and admission (PSA, quotas, webhooks,
ValidatingAdmissionPolicies) say whether it would be accepted; nothing is persisted. A refused
change is reported on its own entry and makes the exit code 2; the other entries are still shown.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any

import yaml

from kube_baseline.cli import output, plan_output
from kube_baseline.cli.commands import (
    EXIT_BAD_INPUT,
    EXIT_FINDINGS,
    EXIT_OK,
    Settings,
    Streams,
    UsageError,
    World,
    bad_settings,
    evaluate,
    plan_all,
    report_check,
    settings_of,
)
from kube_baseline.cli.kubeclient import Client, ClusterError, connect
from kube_baseline.cli.live import Live, Progress, object_path, read
from kube_baseline.cli.manifests import InputError, Manifest
from kube_baseline.engine import desired
from kube_baseline.engine.checks import policy_from_spec

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
_DUMPER: Any = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper


def _dump(obj: Any) -> str:
    return str(yaml.dump(obj, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120))


def _diff(before: Any, after: Any, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            _dump(before).splitlines(keepends=True) if before is not None else [],
            _dump(after).splitlines(keepends=True) if after is not None else [],
            fromfile=f"{name} (live)",
            tofile=f"{name} (after)",
        )
    )


def run(args: argparse.Namespace, streams: Streams | None = None) -> int:
    io = streams or Streams(None, sys.stdout, sys.stderr)
    command: str = args.command
    try:
        if args.paths:
            raise UsageError("--cluster reads the cluster: give no PATH")
        if command == "plan" and not args.baseline:
            raise UsageError("plan --cluster needs -f BASELINE.yaml (the baseline to preview)")
        settings = settings_of(args, io.stdin)
    except (UsageError, InputError) as err:
        return bad_settings(command, err, io.stderr)
    isatty = getattr(io.stderr, "isatty", None)
    progress = Progress(
        args.progress == "always" or (args.progress == "auto" and bool(isatty and isatty())), io.stderr
    )
    try:
        client = Client(connect(args.kubeconfig, args.context))
        live = read(client, args.namespace, progress)
    except ClusterError as err:
        progress.done()
        hint = ""
        if err.status in (401, 403):
            hint = " (needs get and list on the workload kinds, namespaces and networkpolicies)"
        io.stderr.write(f"kube-baseline {command}: cluster: {err}{hint}\n")
        return EXIT_BAD_INPUT
    world = World(live.workloads, live.namespaces, live.network_policies)
    results, errors = evaluate(world, settings, progress)
    progress.done()
    if errors:
        for line in errors:
            io.stderr.write(f"kube-baseline {command}: {line}\n")
        return EXIT_BAD_INPUT
    colour = output.use_colour(args.color, io.stdout)
    if command == "check":
        return report_check(args, results, io.stdout, colour)
    plans, errors = plan_all(world, results, settings, with_diff=True)
    for line in errors:
        io.stderr.write(f"kube-baseline {command}: {line}\n")
    plans = [p for p in plans if p.patch or p.unfixed or p.note]
    plans.extend(namespace_changes(live, settings))
    if args.server_dry_run:
        for p in plans:
            if p.patch:
                p.server = _dry_run(client, p)
    if args.output == "json":
        json.dump(plan_output.plan_json(plans), io.stdout, indent=2, default=str)
        io.stdout.write("\n")
    else:
        plan_output.write_plan_text(plans, io.stdout, colour)
    if errors or any(p.refused for p in plans):
        return EXIT_BAD_INPUT
    return EXIT_FINDINGS if any(p.patch for p in plans) else EXIT_OK


def _dry_run(client: Client, p: plan_output.PlanResult) -> str:
    obj = p.manifest.obj
    try:
        if obj.get("kind") == "Namespace":
            client.dry_run_patch(f"/api/v1/namespaces/{obj['metadata']['name']}", p.patch, MERGE)
        elif p.note.startswith("create"):
            ns = obj["metadata"]["namespace"]
            client.dry_run_create(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", p.patch)
        else:
            client.dry_run_patch(object_path(obj), p.patch, STRATEGIC)
    except ClusterError as err:
        return f"refused: {err}"
    return "accepted"


def namespace_changes(live: Live, settings: Settings) -> list[plan_output.PlanResult]:
    """The baseline's NetworkPolicy and namespace labels per namespace, as the operator would write them."""
    spec = settings.spec.model_copy(update={"mode": "remediate", "remediation": settings.remediation})
    baseline = desired.Baseline(settings.baseline_name, "", 0, spec, policy_from_spec(spec))
    out: list[plan_output.PlanResult] = []
    where = f"cluster:{live.context}"
    for ns in sorted(live.namespaces, key=lambda n: n.name):
        if not desired.governs(baseline, ns):
            continue
        ns_obj = live.namespace_objects.get(ns.name, {"metadata": {"name": ns.name}})
        origin = f"Namespace//{ns.name}"
        if desired.protects(baseline, ns):
            policy = desired.build_network_policy(baseline, ns.name)
            # The owner (the SecurityBaseline) gets its uid when it is installed: not previewed.
            policy["metadata"].pop("ownerReferences", None)
            name = policy["metadata"]["name"]
            existing = [
                p
                for p in live.network_policies.get(ns.name, [])
                if (p.get("metadata") or {}).get("name") == name
            ]
            if not existing:
                m = Manifest(where, 0, (), 0, policy, origin=f"NetworkPolicy/{ns.name}/{name}")
                label = f"NetworkPolicy {ns.name}/{name}"
                diff = _diff(None, policy, m.source)
                out.append(plan_output.PlanResult(m, policy, (), (), diff=diff, note="create", label=label))
        if desired.remediates(baseline, ns):
            patch = desired.build_namespace_patch(ns, [baseline])
            if patch:
                m = Manifest(where, 0, (), 0, ns_obj, origin=origin)
                labels = dict(ns.labels)
                for key, value in (patch["metadata"].get("labels") or {}).items():
                    if value is None:
                        labels.pop(key, None)
                    else:
                        labels[key] = value
                diff = _diff({"labels": dict(ns.labels)}, {"labels": labels}, m.source)
                note = "namespace labels (and the annotation recording them)"
                out.append(
                    plan_output.PlanResult(
                        m, patch, (), (), diff=diff, note=note, label=f"Namespace {ns.name}"
                    )
                )
    return out
