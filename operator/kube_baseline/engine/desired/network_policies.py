"""Pure: the NetworkPolicies a namespace needs (each protecting baseline's, and its tier's), and
the create/replace/delete actions that get there. Policies without our managed-by and baseline
labels are never touched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kube_baseline.engine.desired.governance import (
    BASELINE_LABEL,
    Baseline,
    NamespaceInfo,
    protects,
    remediates,
)
from kube_baseline.engine.models import API_VERSION, FIELD_MANAGER, KIND, MANAGED_BY_LABEL
from kube_baseline.engine.tiers import egress_peers, ingress_peers, tier_of


def network_policy_name(baseline_name: str) -> str:
    name = f"kube-baseline-{baseline_name}"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(baseline_name.encode()).hexdigest()[:10]
    return f"{name[:242]}-{digest}"


def owner_reference(baseline: Baseline) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": baseline.name,
        "uid": baseline.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def tier_network_policy_name(baseline_name: str, tier_name: str) -> str:
    return network_policy_name(f"{baseline_name}-tier-{tier_name}")


def build_tier_network_policy(baseline: Baseline, namespace: str, tier_name: str) -> dict[str, Any]:
    """The NetworkPolicy of a tier for one of its namespaces: ingress only from the tier's own
    namespaces (and the tiers it allows), and with defaultDenyEgress, egress only to DNS and
    the tier's own namespaces (and the tiers that accept it)."""
    tiers = baseline.spec.tiers
    tier = next(t for t in tiers if t.name == tier_name)
    cfg = tier.network
    assert cfg is not None, "only tiers with a network rule have a NetworkPolicy"
    spec: dict[str, Any] = {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": ingress_peers(tier, tiers)}],
    }
    if cfg.default_deny_egress:
        spec["policyTypes"].append("Egress")
        dns = [{"to": [DNS_PEER], "ports": DNS_PORTS}] if cfg.allow_dns_egress else []
        spec["egress"] = [*dns, {"to": egress_peers(tier, tiers)}]
    body = build_network_policy(baseline, namespace)
    body["metadata"]["name"] = tier_network_policy_name(baseline.name, tier.name)
    body["spec"] = spec
    return body


def desired_network_policies(ns: NamespaceInfo, baselines: Sequence[Baseline]) -> list[dict[str, Any]]:
    """Every managed NetworkPolicy the namespace should have: each protecting baseline's, and the
    policy of the namespace's tier under each remediating baseline whose tier has a network rule."""
    desired = [build_network_policy(b, ns.name) for b in baselines if protects(b, ns)]
    for b in baselines:
        tier = tier_of(b.spec.tiers, ns.selector_labels) if b.spec.tiers else None
        if tier is not None and tier.network is not None and remediates(b, ns):
            desired.append(build_tier_network_policy(b, ns.name, tier.name))
    return desired


def build_network_policy(baseline: Baseline, namespace: str) -> dict[str, Any]:
    """The baseline's NetworkPolicy for a namespace (one object: deny, plus the allowed exceptions)."""
    cfg = baseline.spec.network_policies
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": []}
    if cfg.default_deny_ingress:
        spec["policyTypes"].append("Ingress")
        if cfg.allow_same_namespace:  # no rule = deny all (an empty list is dropped by the server)
            spec["ingress"] = [{"from": [{"podSelector": {}}]}]
    if cfg.default_deny_egress:
        spec["policyTypes"].append("Egress")
        egress: list[dict[str, Any]] = []
        if cfg.allow_dns_egress:
            egress.append({"to": [DNS_PEER], "ports": DNS_PORTS})
        if cfg.allow_same_namespace:
            egress.append({"to": [{"podSelector": {}}]})
        if egress:
            spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(baseline.name),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, BASELINE_LABEL: baseline.name},
            "ownerReferences": [owner_reference(baseline)],
        },
        "spec": spec,
    }


def is_managed_network_policy(policy: Mapping[str, Any]) -> bool:
    labels = (policy.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == FIELD_MANAGER and BASELINE_LABEL in labels


@dataclass(frozen=True, slots=True)
class NetworkPolicyActions:
    create: tuple[dict[str, Any], ...] = ()
    replace: tuple[dict[str, Any], ...] = ()  # desired bodies; the caller adds the resourceVersion
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.replace or self.delete)


def _differs(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    meta, want = existing.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return True
    owners = {(r.get("uid"), r.get("controller")) for r in meta.get("ownerReferences") or ()}
    if (want["ownerReferences"][0]["uid"], True) not in owners:
        return True
    return bool(existing.get("spec") != desired["spec"])


def plan_network_policies(
    desired: Sequence[Mapping[str, Any]], existing: Iterable[Mapping[str, Any]]
) -> NetworkPolicyActions:
    """Actions turning the managed NetworkPolicies of one namespace into `desired`.

    Policies without our managed-by and baseline labels are never touched.
    """
    managed = {p["metadata"]["name"]: p for p in existing if is_managed_network_policy(p)}
    wanted = {p["metadata"]["name"]: p for p in desired}
    create = tuple(dict(p) for name, p in sorted(wanted.items()) if name not in managed)
    replace = tuple(
        dict(p) for name, p in sorted(wanted.items()) if name in managed and _differs(managed[name], p)
    )
    delete = tuple(sorted(name for name in managed if name not in wanted))
    return NetworkPolicyActions(create=create, replace=replace, delete=delete)
