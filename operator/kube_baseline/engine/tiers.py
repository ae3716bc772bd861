"""Pure: sensitivity tiers as desired state and findings.

A tier groups namespaces (by the label kube-baseline.io/tier=<name>, or its own selector) and
says how its pods are kept apart from other tiers' pods: on its dedicated nodes and/or in a
sandboxed runtime (placement), behind its NetworkPolicy (network) and under a Pod Security level
(profile). This module answers, as plain data:

- which tier a namespace belongs to (the first tier, in list order, whose selector matches the
  namespace's labels as selectors see them: without the labels a baseline added);
- the placement fill of a workload (absent nodeSelector keys, missing tolerations, an absent
  runtimeClassName; never a value the user set) and the Changes it makes;
- the peers of a tier's NetworkPolicy and the PSA label of its namespaces;
- co-tenancy: the nodes running pods of two tiers or more (or a tier's pods on the dedicated
  nodes of another tier), from the operator's small view of where pods run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kube_baseline.engine.checks import Policy, policy_from_spec
from kube_baseline.engine.checks.pod import sequence
from kube_baseline.engine.checks.tiers import missing_placement
from kube_baseline.engine.models import (
    Finding,
    LabelSelector,
    Remediation,
    SecurityBaselineSpec,
    SharedNode,
    Tier,
    TierStatus,
)
from kube_baseline.engine.remediation import Change
from kube_baseline.engine.workloads import Workload

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
SHARED_NODES_LISTED = 20

__all__ = [
    "NodeUse",
    "co_tenancy",
    "egress_peers",
    "ingress_peers",
    "placement_patch",
    "selector_wire",
    "tier_namespace_labels",
    "tier_of",
    "tier_policies",
]


def tier_of(tiers: Sequence[Tier], selector_labels: Mapping[str, str]) -> Tier | None:
    """The tier of a namespace with these labels (as selectors see them), or None."""
    for tier in tiers:
        if tier.membership().matches(dict(selector_labels)):
            return tier
    return None


def tier_policies(spec: SecurityBaselineSpec) -> dict[str, Policy]:
    """The Policy of each tier whose profile differs from the baseline's: a tier's namespaces are
    audited and remediated at the level their PSA label enforces (a privileged tier keeps the
    baseline's profile: there is no lower level to audit at)."""
    return {
        t.name: policy_from_spec(spec.model_copy(update={"profile": t.profile}))
        for t in spec.tiers
        if t.profile in ("baseline", "restricted") and t.profile != spec.profile
    }


# --- placement ---------------------------------------------------------------------------------


def placement_patch(
    workload: Workload, tier: Tier | None, findings: Sequence[Finding], remediation: Remediation
) -> tuple[dict[str, Any], tuple[Change, ...]]:
    """The strategic-merge patch filling the tier's placement into the workload's pod template,
    and the Changes it makes; ({}, ()) when there is nothing to fill or the fix is not allowed.

    Only absent fields are filled: nodeSelector keys the pod lacks (the map is merged by key),
    tolerations the pod lacks (appended after the pod's own: a pod spec's tolerations list is
    replaced whole by a patch, so the patch carries the existing ones unchanged), and
    runtimeClassName when the pod sets none. Guarded (pods are rescheduled), and only while a
    reported (not exempted) tierPlacement finding asks for it.
    """
    if (
        tier is None
        or tier.placement is None
        or "guarded" not in remediation.risk_classes
        or not any(f.check == "tierPlacement" and f.remediation == "guarded" for f in findings)
    ):
        return {}, ()
    spec = workload.pod_spec
    selector = spec.get("nodeSelector")
    tolerations = spec.get("tolerations")
    keys, missing, runtime = missing_placement(spec, tier.placement)
    if selector is not None and not isinstance(selector, dict):
        keys = {}  # malformed: reported, never rewritten
    if tolerations is not None and not isinstance(tolerations, list):
        missing = []
    prefix = ".".join(workload.pod_path)
    pod: dict[str, Any] = {}
    changes: list[Change] = []
    if keys:
        pod["nodeSelector"] = dict(sorted(keys.items()))
        changes.extend(
            Change(f"{prefix}.nodeSelector[{k}]", v, "tierPlacement", "guarded")
            for k, v in sorted(keys.items())
        )
    if missing:
        pod["tolerations"] = [*sequence(spec, "tolerations"), *missing]
        changes.extend(Change(f"{prefix}.tolerations", t, "tierPlacement", "guarded") for t in missing)
    if runtime:
        pod["runtimeClassName"] = runtime
        changes.append(Change(f"{prefix}.runtimeClassName", runtime, "tierPlacement", "guarded"))
    if not pod:
        return {}, ()
    patch: dict[str, Any] = {}
    node = patch
    for key in workload.pod_path:
        node = node.setdefault(key, {})
    node.update(pod)
    return patch, tuple(changes)


# --- network and namespace labels ----------------------------------------------------------------


def selector_wire(selector: LabelSelector) -> dict[str, Any]:
    """A label selector as the API server stores it (empty parts left out, so a stored policy
    compares equal to the one rendered)."""
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(sorted(selector.match_labels.items()))
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return out


def _namespace_peer(tier: Tier) -> dict[str, Any]:
    return {"namespaceSelector": selector_wire(tier.membership())}


def ingress_peers(tier: Tier, tiers: Sequence[Tier]) -> list[dict[str, Any]]:
    """Who may connect to the tier's pods: its own namespace, its tier's namespaces, and the
    namespaces of the tiers it lists in network.allowFrom."""
    allowed = set(tier.network.allow_from) if tier.network is not None else set()
    others = [_namespace_peer(t) for t in tiers if t.name in allowed and t.name != tier.name]
    return [{"podSelector": {}}, _namespace_peer(tier), *others]


def egress_peers(tier: Tier, tiers: Sequence[Tier]) -> list[dict[str, Any]]:
    """Where the tier's pods may connect (besides DNS): its own namespace, its tier's namespaces,
    and the namespaces of the tiers that accept it (list it in their network.allowFrom)."""
    accepting = [
        _namespace_peer(t)
        for t in tiers
        if t.name != tier.name and t.network is not None and tier.name in t.network.allow_from
    ]
    return [{"podSelector": {}}, _namespace_peer(tier), *accepting]


def tier_namespace_labels(tier: Tier | None) -> dict[str, str]:
    """The Pod Security label the tier's namespaces get (added only where the key is absent)."""
    if tier is None or tier.profile is None:
        return {}
    return {PSA_ENFORCE: tier.profile}


# --- co-tenancy ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeUse:
    """One node as the operator's placement view sees it: its labels and the namespaces of the
    pods running on it."""

    name: str
    labels: Mapping[str, str]
    namespaces: frozenset[str]


def dedicated_to(tiers: Sequence[Tier], labels: Mapping[str, str]) -> list[str]:
    """The tiers whose dedicated nodes these are (the node carries every label of the tier's
    placement nodeSelector)."""
    return [
        t.name
        for t in tiers
        if t.placement is not None
        and t.placement.node_selector
        and all(labels.get(k) == v for k, v in t.placement.node_selector.items())
    ]


def co_tenancy(
    tiers: Sequence[Tier], namespace_tiers: Mapping[str, str], nodes: Iterable[NodeUse]
) -> TierStatus:
    """Check tierCoTenancy over every node: a node is shared when it runs pods of two tiers or
    more, or pods of one tier on the dedicated nodes of another. `namespace_tiers` maps each
    governed namespace of a tier to the tier's name."""
    used = shared = 0
    listed: list[SharedNode] = []
    for node in sorted(nodes, key=lambda n: n.name):
        running = {namespace_tiers[ns] for ns in node.namespaces if ns in namespace_tiers}
        if not running:
            continue
        used += 1
        present = running | set(dedicated_to(tiers, node.labels))
        if len(present) > 1:
            shared += 1
            if len(listed) < SHARED_NODES_LISTED:
                listed.append(SharedNode(name=node.name, tiers=sorted(present)))
    return TierStatus(nodes=used, shared_nodes=shared, shared=listed)
