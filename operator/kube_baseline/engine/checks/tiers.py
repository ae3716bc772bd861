"""Sensitivity tiers: does a workload of a tier carry its tier's placement?

The tier of the workload's namespace is set on the PodView by `audit` (`PodView.tier`); a
workload outside every tier, or of a tier without placement, has nothing to carry. Absent fields
are guarded findings (remediation fills them: `engine.tiers.placement_patch`); a nodeSelector key
or runtimeClassName the pod sets to another value is a manual finding (never overwritten).

tierCoTenancy is about nodes, not workloads: it is evaluated over where pods run
(`engine.tiers.co_tenancy`), so its per-workload function finds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kube_baseline.engine.checks.pod import PodView, Violation, mapping, sequence
from kube_baseline.engine.models import RiskClass, TierPlacement


def tolerated(tolerations: Sequence[Any], wanted: Mapping[str, Any]) -> bool:
    """Whether one of `tolerations` tolerates at least what `wanted` does (Kubernetes semantics:
    an empty key with Exists tolerates every taint, an empty effect every effect)."""
    for t in tolerations:
        if not isinstance(t, dict):
            continue
        effect = t.get("effect") or ""
        if effect and effect != (wanted.get("effect") or ""):
            continue
        key = t.get("key") or ""
        operator = t.get("operator") or "Equal"
        if operator == "Exists" and (not key or key == wanted.get("key", "")):
            return True
        if (
            operator == "Equal"
            and wanted.get("operator", "Equal") == "Equal"
            and key == wanted.get("key", "")
            and (t.get("value") or "") == (wanted.get("value") or "")
        ):
            return True
    return False


def missing_placement(
    spec: Mapping[str, Any], placement: TierPlacement
) -> tuple[dict[str, str], list[dict[str, Any]], str]:
    """What of `placement` the pod spec lacks: absent nodeSelector keys (with their values), the
    tolerations not tolerated, and the runtimeClassName if the pod sets none."""
    selector = mapping(spec, "nodeSelector")
    keys = {k: v for k, v in placement.node_selector.items() if k not in selector}
    existing = sequence(spec, "tolerations")
    tolerations = [
        wanted
        for wanted in (t.as_pod_toleration() for t in placement.tolerations)
        if not tolerated(existing, wanted)
    ]
    runtime = placement.runtime_class_name if not spec.get("runtimeClassName") else ""
    return keys, tolerations, runtime


def placement_missing(pod: PodView) -> Sequence[Violation]:
    tier = pod.tier
    if tier is None or tier.placement is None:
        return ()
    placement = tier.placement
    spec = pod.spec
    prefix = pod.prefix
    out: list[Violation] = []
    raw_selector = spec.get("nodeSelector")
    selector = mapping(spec, "nodeSelector")
    for key, value in placement.node_selector.items():
        have = selector.get(key)
        if have is None:
            fixable: RiskClass = "guarded" if raw_selector is None or raw_selector is selector else "manual"
            out.append(
                (
                    f'the pods of tier "{tier.name}" must select its nodes: nodeSelector {key}={value} '
                    "is absent",
                    f"{prefix}.nodeSelector[{key}]",
                    fixable,
                    "",
                )
            )
        elif have != value:
            out.append(
                (
                    f'the pods of tier "{tier.name}" must select its nodes ({key}={value}), not {key}={have}',
                    f"{prefix}.nodeSelector[{key}]",
                    "manual",
                    "",
                )
            )
    tolerations = spec.get("tolerations")
    existing = tolerations if isinstance(tolerations, list) else ()
    for t in placement.tolerations:
        wanted = t.as_pod_toleration()
        if not tolerated(existing, wanted):
            out.append(
                (
                    f'the pods of tier "{tier.name}" must tolerate its nodes\' taint '
                    f"{t.key or '*'}{'=' + t.value if t.value else ''}:{t.effect or '*'}",
                    f"{prefix}.tolerations",
                    "guarded" if tolerations is None or isinstance(tolerations, list) else "manual",
                    "",
                )
            )
    wanted_runtime = placement.runtime_class_name
    if wanted_runtime:
        have_runtime = spec.get("runtimeClassName")
        if not have_runtime:
            out.append(
                (
                    f'the pods of tier "{tier.name}" must run in RuntimeClass {wanted_runtime}',
                    f"{prefix}.runtimeClassName",
                    "guarded",
                    "",
                )
            )
        elif have_runtime != wanted_runtime:
            out.append(
                (
                    f'the pods of tier "{tier.name}" must run in RuntimeClass {wanted_runtime}, '
                    f"not {have_runtime}",
                    f"{prefix}.runtimeClassName",
                    "manual",
                    "",
                )
            )
    return out


def per_node_only(pod: PodView) -> Sequence[Violation]:
    """tierCoTenancy is evaluated per node (engine.tiers.co_tenancy), never per workload."""
    return ()
