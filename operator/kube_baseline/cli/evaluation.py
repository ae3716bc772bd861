"""Evaluate: the objects and what surrounds them (namespaces, NetworkPolicies) -> results and plans.

Shared by the file commands (cli.commands) and the cluster preview (cli.preview).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from kube_baseline.cli import apitypes, output, plan_output
from kube_baseline.cli.manifests import Manifest
from kube_baseline.cli.scope import Scope, namespace_info
from kube_baseline.cli.settings import Settings
from kube_baseline.engine.checks import audit
from kube_baseline.engine.desired import NamespaceInfo, merge_patches
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.remediation import plan as plan_remediation
from kube_baseline.engine.tiers import placement_patch, tier_policies
from kube_baseline.engine.workloads import Workload, controller_owner, workload_of

_DUMPER: Any = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper


@dataclass(frozen=True)
class Input:
    path: str
    text: str
    objects: list[Manifest]


# --------------------------------------------------------------------------- evaluating


def _network_policies(objects: Sequence[Manifest], default_namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The input's NetworkPolicies by the namespace they would land in."""
    found: dict[str, list[dict[str, Any]]] = {}
    for m in objects:
        if m.obj.get("kind") == "NetworkPolicy" and m.api_version.startswith("networking.k8s.io/"):
            found.setdefault(m.namespace or default_namespace, []).append(m.obj)
    return found


def _namespaces(objects: Sequence[Manifest]) -> list[NamespaceInfo]:
    return [
        info
        for m in objects
        if m.obj.get("kind") == "Namespace" and m.api_version == "v1"
        for info in (namespace_info(m.obj),)
        if info is not None
    ]


@dataclass(frozen=True)
class World:
    """What evaluation reads: the objects, and the namespaces and NetworkPolicies around them."""

    objects: list[Manifest]
    namespaces: list[NamespaceInfo]
    network_policies: dict[str, list[dict[str, Any]]]

    @classmethod
    def of_files(cls, inputs: Sequence[Input], settings: Settings) -> World:
        objects = [m for i in inputs for m in i.objects]
        return cls(objects, _namespaces(objects), _network_policies(objects, settings.default_namespace))


def scope_of(world: World, settings: Settings) -> Scope:
    return Scope(
        settings.spec, settings.policy, settings.remediation, world.namespaces, settings.namespace_rules
    )


def type_problems(m: Manifest, workload: Workload | None) -> list[str]:
    """Fields the API server would refuse for their type (cli.apitypes), as "SOURCE: KIND NAME: ..."."""
    found: list[str] = []
    apitypes.problems(m.obj.get("metadata"), apitypes.METADATA, "metadata", found)
    if workload is not None:
        prefix = ".".join(workload.pod_path)
        apitypes.problems(workload.pod_spec, apitypes.POD_SPEC, prefix, found)
        if workload.kind != "Pod":
            where = ".".join((*workload.pod_path[:-1], "metadata"))
            apitypes.problems(workload.pod_metadata, apitypes.METADATA, where, found)
    return [f"{m.source}: {m.kind} {m.name}: {problem}" for problem in found]


def placed(workload: Workload, default_namespace: str) -> Workload:
    """The workload in the namespace it lands in (metadata.namespace, else the default)."""
    return workload if workload.namespace else replace(workload, namespace=default_namespace)


def evaluate(
    world: World, settings: Settings, progress: Callable[[str], None] | None = None
) -> tuple[list[output.ObjectResult], list[str]]:
    """Audit every object: results in input order, and objects that could not be checked."""
    scope = scope_of(world, settings)
    policies = world.network_policies
    policy, now = settings.policy, settings.now
    by_tier = tier_policies(settings.spec) if settings.namespace_rules else {}
    results: list[output.ObjectResult] = []
    errors: list[str] = []
    for n, m in enumerate(world.objects, 1):
        if progress is not None and n % 500 == 0:
            progress(f"evaluated {n} of {len(world.objects)} objects")
        found_workload = workload_of(m.obj)
        problems = type_problems(m, found_workload)
        if problems:
            errors.extend(problems)
            continue
        if found_workload is None:
            results.append(output.ObjectResult(m, skipped="not a workload"))
            continue
        workload = placed(found_workload, settings.default_namespace)
        why = scope.why_not_governed(workload.namespace)
        if why:
            results.append(output.ObjectResult(m, skipped=why))
            continue
        try:
            tier = scope.tier_for(workload.namespace)
            found = audit(
                workload,
                by_tier.get(tier.name, policy) if tier is not None else policy,
                now=now,
                network_policies=policies.get(workload.namespace, []),
                tier=tier,
            )
        except Exception as err:  # malformed object the engine could not read: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be checked ({type(err).__name__}: {err})")
            continue
        results.append(output.ObjectResult(m, found.findings, len(found.exempted)))
    return results, errors


def _dump(obj: dict[str, Any]) -> str:
    return str(yaml.dump(obj, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120))


def plan_all(
    world: World, results: Sequence[output.ObjectResult], settings: Settings, with_diff: bool
) -> tuple[list[plan_output.PlanResult], list[str]]:
    """A remediation plan for every object with findings."""
    scope = scope_of(world, settings)
    plans: list[plan_output.PlanResult] = []
    errors: list[str] = []
    for r in results:
        if not r.findings:
            continue
        m = r.manifest
        workload = workload_of(m.obj)
        if workload is None:  # pragma: no cover - results with findings are workloads
            continue
        note = ""
        owner = controller_owner(m.obj)
        if owner is not None:
            note = f"owned by {owner.get('kind')} {owner.get('name')}: fix that controller instead"
        elif not scope.remediated(workload.namespace or settings.default_namespace):
            note = f"namespace {workload.namespace} is not selected by spec.remediation.namespaceSelector"
        if note:
            plans.append(plan_output.PlanResult(m, {}, (), r.findings, note=note, label=r.label))
            continue
        try:
            planned = plan_remediation(workload, r.findings, settings.remediation, settings.labels)
            tier = scope.tier_for(placed(workload, settings.default_namespace).namespace)
            fill, filled = placement_patch(workload, tier, r.findings, settings.remediation)
            patch = merge_patches(planned.patch, fill)
            after = apply_patch(m.obj, patch) if patch else m.obj
        except Exception as err:  # malformed object: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be planned ({type(err).__name__}: {err})")
            continue
        # The fill covers every guarded tierPlacement finding (each is an absent field).
        unfixed = tuple(
            f
            for f in planned.unfixed
            if not (fill and f.check == "tierPlacement" and f.remediation == "guarded")
        )
        result = plan_output.PlanResult(m, patch, (*planned.changes, *filled), unfixed, label=r.label)
        if with_diff and patch:
            result.diff = "".join(
                difflib.unified_diff(
                    _dump(m.obj).splitlines(keepends=True),
                    _dump(after).splitlines(keepends=True),
                    fromfile=f"{m.source} (before)",
                    tofile=f"{m.source} (after)",
                )
            )
        plans.append(result)
    return plans, errors
