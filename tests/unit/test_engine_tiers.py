"""Sensitivity tiers, pure: membership, the tierPlacement check, the placement fill (only absent
fields), the tier NetworkPolicy, the PSA label, co-tenancy and the spec's validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from kube_baseline.engine.checks import audit, policy_from_spec
from kube_baseline.engine.desired import (
    Baseline,
    NamespaceInfo,
    build_baseline,
    build_namespace_patch,
    decide_workload,
    desired_network_policies,
    is_managed_network_policy,
    plan_network_policies,
)
from kube_baseline.engine.models import TIER_LABEL, parse_spec
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.tiers import NodeUse, co_tenancy, tier_of
from kube_baseline.engine.workloads import Workload, workload_of

RESTRICTED_PLACEMENT = {
    "nodeSelector": {"pool": "restricted"},
    "tolerations": [{"key": "pool", "operator": "Equal", "value": "restricted", "effect": "NoSchedule"}],
    "runtimeClassName": "gvisor",
}
TIERS: list[dict[str, Any]] = [
    {"name": "public", "profile": "baseline", "network": {"defaultDenyEgress": False}},
    {"name": "internal", "network": {"allowFrom": ["public"]}},
    {"name": "restricted", "profile": "restricted", "network": {}, "placement": RESTRICTED_PLACEMENT},
]
POD_TOLERATION = {"key": "pool", "operator": "Equal", "value": "restricted", "effect": "NoSchedule"}


def baseline(name: str = "tiers", **spec: Any) -> Baseline:
    spec = {
        "mode": "remediate",
        "profile": "restricted",
        "remediation": {"riskClasses": ["safe", "guarded"]},
        "tiers": TIERS,
        **spec,
    }
    return build_baseline({"metadata": {"name": name, "uid": f"uid-{name}", "generation": 1}, "spec": spec})


def ns(name: str, tier: str | None = None, **labels: str) -> NamespaceInfo:
    if tier is not None:
        labels[TIER_LABEL] = tier
    return NamespaceInfo(name, {"kubernetes.io/metadata.name": name, **labels})


def deployment(namespace: str = "vault", **pod_spec: Any) -> Workload:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}], **pod_spec},
            },
        },
    }
    found = workload_of(obj)
    assert found is not None
    return found


def placement_findings(workload: Workload, b: Baseline, namespace: NamespaceInfo) -> list[tuple[str, str]]:
    tier = tier_of(b.spec.tiers, namespace.selector_labels)
    found = audit(workload, b.policy, tier=tier).findings
    return [(f.field.rsplit(".", 1)[-1], f.remediation) for f in found if f.check == "tierPlacement"]


# --- membership ---


def test_tier_by_label_or_selector_first_match_wins() -> None:
    spec = parse_spec(
        {
            "tiers": [
                {"name": "pci", "network": {}, "namespaceSelector": {"matchLabels": {"compliance": "pci"}}},
                {"name": "restricted", "network": {}},
            ]
        }
    )
    assert tier_of(spec.tiers, {TIER_LABEL: "restricted"}).name == "restricted"  # type: ignore[union-attr]
    assert tier_of(spec.tiers, {"compliance": "pci", TIER_LABEL: "restricted"}).name == "pci"  # type: ignore[union-attr]
    assert tier_of(spec.tiers, {TIER_LABEL: "other"}) is None
    assert tier_of(spec.tiers, {}) is None


def test_labels_the_operator_added_do_not_make_a_namespace_join_a_tier() -> None:
    b = baseline()
    added = NamespaceInfo("x", {TIER_LABEL: "restricted"}, added={"other": {TIER_LABEL: "restricted"}})
    assert tier_of(b.spec.tiers, added.selector_labels) is None


# --- the tierPlacement check ---


def test_workload_outside_tiers_or_tier_without_placement_has_no_placement_finding() -> None:
    b = baseline()
    assert placement_findings(deployment("web"), b, ns("web")) == []
    assert placement_findings(deployment("web"), b, ns("web", "public")) == []


def test_absent_placement_is_guarded_and_explicit_other_values_are_manual() -> None:
    b = baseline()
    vault = ns("vault", "restricted")
    assert placement_findings(deployment(), b, vault) == [
        ("nodeSelector[pool]", "guarded"),
        ("tolerations", "guarded"),
        ("runtimeClassName", "guarded"),
    ]
    other = deployment(nodeSelector={"pool": "shared"}, runtimeClassName="runc", tolerations=[POD_TOLERATION])
    assert placement_findings(other, b, vault) == [
        ("nodeSelector[pool]", "manual"),
        ("runtimeClassName", "manual"),
    ]
    carried = deployment(
        nodeSelector={"pool": "restricted", "zone": "a"},
        runtimeClassName="gvisor",
        tolerations=[POD_TOLERATION],
    )
    assert placement_findings(carried, b, vault) == []


@pytest.mark.parametrize(
    "toleration",
    [
        {"operator": "Exists"},  # tolerates every taint
        {"key": "pool", "operator": "Exists"},
        {"key": "pool", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "pool", "value": "restricted"},  # operator Equal by default, any effect
    ],
)
def test_a_broader_toleration_counts(toleration: dict[str, Any]) -> None:
    w = deployment(nodeSelector={"pool": "restricted"}, runtimeClassName="gvisor", tolerations=[toleration])
    assert placement_findings(w, baseline(), ns("vault", "restricted")) == []


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "pool", "operator": "Equal", "value": "internal", "effect": "NoSchedule"},
        {"key": "pool", "operator": "Exists", "effect": "NoExecute"},
        {"key": "other", "operator": "Exists"},
    ],
)
def test_a_different_toleration_does_not_count(toleration: dict[str, Any]) -> None:
    w = deployment(nodeSelector={"pool": "restricted"}, runtimeClassName="gvisor", tolerations=[toleration])
    assert placement_findings(w, baseline(), ns("vault", "restricted")) == [("tolerations", "guarded")]


def test_tier_checks_can_be_disabled_and_are_only_on_with_tiers() -> None:
    assert "tierPlacement" in baseline().policy.enabled
    assert "tierPlacement" not in policy_from_spec(parse_spec({})).enabled
    off = baseline(checks={"disabled": ["tierPlacement"]})
    assert placement_findings(deployment(), off, ns("vault", "restricted")) == []


# --- the placement fill, through the one decision per workload ---


def decide(workload: Workload, namespace: NamespaceInfo, *baselines: Baseline) -> Any:
    return decide_workload(
        workload, list(baselines) or [baseline()], namespace, network_policies=[], now=None, allow_writes=True
    )


def pod_spec_of(patch: dict[str, Any]) -> dict[str, Any]:
    return patch["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_fill_adds_the_absent_placement_in_the_one_patch() -> None:
    d = decide(deployment(), ns("vault", "restricted"))
    spec = pod_spec_of(d.patch)
    assert spec["nodeSelector"] == {"pool": "restricted"}
    assert spec["tolerations"] == [POD_TOLERATION]
    assert spec["runtimeClassName"] == "gvisor"
    assert "securityContext" in spec  # the restricted profile's fixes are in the same patch
    assert {c.check for c in d.changes} >= {"tierPlacement"}
    assert not [f for f in d.audits_after["tiers"].findings if f.check == "tierPlacement"]


def test_fill_never_overwrites_what_the_user_set() -> None:
    own = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    w = deployment(nodeSelector={"pool": "shared", "disk": "ssd"}, tolerations=[own], runtimeClassName="kata")
    d = decide(w, ns("vault", "restricted"))
    spec = pod_spec_of(d.patch)
    assert "nodeSelector" not in spec and "runtimeClassName" not in spec  # explicit: manual findings
    assert spec["tolerations"] == [own, POD_TOLERATION]  # the user's toleration kept, first
    after = apply_patch(w.obj, d.patch)["spec"]["template"]["spec"]
    assert after["nodeSelector"] == {"pool": "shared", "disk": "ssd"} and after["runtimeClassName"] == "kata"
    manual = {
        f.field.rsplit(".", 1)[-1] for f in d.audits_after["tiers"].findings if f.check == "tierPlacement"
    }
    assert manual == {"nodeSelector[pool]", "runtimeClassName"}


def test_fill_keeps_other_node_selector_keys() -> None:
    w = deployment(nodeSelector={"disk": "ssd"})
    d = decide(w, ns("vault", "restricted"))
    assert pod_spec_of(d.patch)["nodeSelector"] == {"pool": "restricted"}  # a merge: disk stays
    after = apply_patch(w.obj, d.patch)["spec"]["template"]["spec"]
    assert after["nodeSelector"] == {"disk": "ssd", "pool": "restricted"}


def test_fill_needs_the_guarded_risk_class_and_remediate_mode() -> None:
    safe_only = baseline(remediation={"riskClasses": ["safe"]})
    d = decide(deployment(), ns("vault", "restricted"), safe_only)
    assert "nodeSelector" not in pod_spec_of(d.patch)
    audit_only = baseline(mode="audit")
    assert decide(deployment(), ns("vault", "restricted"), audit_only).patch == {}


def test_fill_respects_exemptions() -> None:
    exempt = baseline(exemptions=[{"namespace": "vault", "checks": ["tierPlacement"], "reason": "pinned"}])
    d = decide(deployment(), ns("vault", "restricted"), exempt)
    assert "nodeSelector" not in pod_spec_of(d.patch)


def test_pods_are_reported_not_patched() -> None:
    pod = workload_of(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "vault"},
            "spec": {"containers": [{"name": "a", "image": "a:1"}]},
        }
    )
    assert pod is not None
    d = decide(pod, ns("vault", "restricted"))
    assert d.patch == {} and any(f.check == "tierPlacement" for f in d.audits["tiers"].findings)


# --- NetworkPolicies ---


def test_tier_network_policy_allows_its_tier_and_dns_only() -> None:
    b = baseline()
    [policy] = desired_network_policies(ns("vault", "restricted"), [b])
    assert policy["metadata"]["name"] == "kube-baseline-tiers-tier-restricted"
    assert is_managed_network_policy(policy)
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-tiers"
    spec = policy["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    own_tier = {"namespaceSelector": {"matchLabels": {TIER_LABEL: "restricted"}}}
    assert spec["ingress"] == [{"from": [{"podSelector": {}}, own_tier]}]
    dns, same = spec["egress"]
    assert dns["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }
    assert {p["port"] for p in dns["ports"]} == {53}
    assert same == {"to": [{"podSelector": {}}, own_tier]}


def test_allow_from_opens_ingress_and_the_allowed_tiers_egress() -> None:
    b = baseline()
    [internal] = desired_network_policies(ns("api", "internal"), [b])
    public_peer = {"namespaceSelector": {"matchLabels": {TIER_LABEL: "public"}}}
    assert public_peer in internal["spec"]["ingress"][0]["from"]
    [public] = desired_network_policies(ns("www", "public"), [b])
    assert public["spec"]["policyTypes"] == ["Ingress"] and "egress" not in public["spec"]
    assert public_peer not in [p for r in public["spec"]["ingress"] for p in r["from"]][2:]


def test_tier_policies_only_where_remediating_and_user_policies_untouched() -> None:
    b = baseline()
    assert desired_network_policies(ns("web"), [b]) == []  # no tier
    assert desired_network_policies(ns("vault", "restricted"), [baseline(mode="audit")]) == []
    desired = desired_network_policies(ns("vault", "restricted"), [b])
    user = {
        "metadata": {"name": "allow-web", "namespace": "vault", "labels": {}},
        "spec": {"podSelector": {}},
    }
    actions = plan_network_policies(desired, [user])
    assert actions.create == tuple(desired) and not actions.delete and not actions.replace
    stored = copy.deepcopy(desired[0])
    assert not plan_network_policies(desired, [user, stored])
    # The namespace leaves the tier: its policy is deleted, the user's stays.
    assert plan_network_policies(desired_network_policies(ns("vault"), [b]), [user, stored]).delete == (
        stored["metadata"]["name"],
    )


def test_selector_tier_policy_uses_its_selector() -> None:
    tiers = [
        {
            "name": "pci",
            "network": {},
            "namespaceSelector": {"matchExpressions": [{"key": "pci", "operator": "Exists"}]},
        }
    ]
    [policy] = desired_network_policies(ns("cards", pci="yes"), [baseline(tiers=tiers)])
    assert policy["spec"]["ingress"][0]["from"][1] == {
        "namespaceSelector": {"matchExpressions": [{"key": "pci", "operator": "Exists"}]}
    }


# --- PSA label ---


def test_tier_profile_is_added_as_the_enforce_label_where_absent() -> None:
    b = baseline(labels={"podSecurity": {"enforce": "baseline", "warn": "restricted"}})
    patch = build_namespace_patch(ns("vault", "restricted"), [b])
    assert patch is not None
    assert patch["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert patch["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    own = ns("vault", "restricted", **{"pod-security.kubernetes.io/enforce": "privileged"})
    kept = build_namespace_patch(own, [b])
    assert kept is None or "pod-security.kubernetes.io/enforce" not in kept["metadata"].get("labels", {})


# --- co-tenancy ---


def test_co_tenancy_reports_nodes_shared_by_tiers() -> None:
    b = baseline()
    ns_tiers = {"www": "public", "api": "internal", "vault": "restricted"}
    nodes = [
        NodeUse("shared-1", {"pool": "shared"}, frozenset({"www", "vault"})),
        NodeUse("shared-2", {"pool": "shared"}, frozenset({"www", "unrelated"})),
        NodeUse("restricted-1", {"pool": "restricted"}, frozenset({"vault"})),
        NodeUse("restricted-2", {"pool": "restricted"}, frozenset({"api"})),  # on another tier's pool
        NodeUse("idle", {"pool": "shared"}, frozenset({"unrelated"})),
    ]
    status = co_tenancy(b.spec.tiers, ns_tiers, nodes)
    assert status.nodes == 4 and status.shared_nodes == 2
    assert [(s.name, s.tiers) for s in status.shared] == [
        ("restricted-2", ["internal", "restricted"]),
        ("shared-1", ["public", "restricted"]),
    ]
    apart = [NodeUse("shared-1", {"pool": "shared"}, frozenset({"www"})), nodes[2]]
    assert co_tenancy(b.spec.tiers, ns_tiers, apart).shared_nodes == 0


# --- validation (the same rules as the CRD's CEL) ---


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([{"name": "a"}], "a tier needs a placement or a network rule"),
        ([{"name": "a", "placement": {}}], "placement needs a nodeSelector"),
        ([{"name": "a", "profile": "strict", "network": {}}], "Input should be"),
        (
            [
                {"name": "a", "network": {}},
                {"name": "b", "network": {}, "namespaceSelector": {"matchLabels": {TIER_LABEL: "a"}}},
            ],
            "select the same namespaces by label value",
        ),
        ([{"name": "a", "network": {}}, {"name": "a", "network": {}}], "tier names must be unique"),
        ([{"name": "a", "network": {"allowFrom": ["b"]}}], "allowFrom names unknown tiers"),
    ],
)
def test_invalid_tiers_are_rejected(tiers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_spec({"tiers": tiers})


def test_selectors_with_expressions_may_share_labels() -> None:
    expr = {"matchLabels": {"env": "prod"}, "matchExpressions": [{"key": "pci", "operator": "Exists"}]}
    tiers = [
        {"name": "a", "network": {}, "namespaceSelector": expr},
        {"name": "b", "network": {}, "namespaceSelector": {"matchLabels": {"env": "prod"}}},
    ]
    assert len(parse_spec({"tiers": tiers}).tiers) == 2


def test_status_counts_shared_nodes_of_governed_tier_namespaces() -> None:
    from datetime import UTC, datetime

    from kube_baseline.engine.status import desired_status

    b = baseline()
    namespaces = [ns("www", "public"), ns("vault", "restricted"), ns("kube-system", "restricted")]
    nodes = [
        NodeUse("n1", {}, frozenset({"www", "vault"})),
        NodeUse("n2", {}, frozenset({"www", "kube-system"})),  # a system namespace is never governed
    ]
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def status(nodes_: list[NodeUse]) -> dict[str, Any]:
        return desired_status(
            b,
            None,
            generation=1,
            namespaces=namespaces,
            baselines=[b],
            verdicts=[],
            dry_run=False,
            now=now,
            nodes=nodes_,
        )

    shared = status(nodes)
    assert shared["tiers"] == {
        "nodes": 2,
        "sharedNodes": 1,
        "shared": [{"name": "n1", "tiers": ["public", "restricted"]}],
    }
    compliant = next(c for c in shared["conditions"] if c["type"] == "Compliant")
    assert "tierCoTenancy: 1 nodes run pods of more than one tier" in compliant["message"]
    apart = status([NodeUse("n1", {}, frozenset({"www"})), NodeUse("n2", {}, frozenset({"vault"}))])
    assert apart["tiers"]["sharedNodes"] == 0
    without = build_baseline({"metadata": {"name": "plain"}, "spec": {}})
    plain = desired_status(
        without,
        None,
        generation=1,
        namespaces=namespaces,
        baselines=[without],
        verdicts=[],
        dry_run=False,
        now=now,
        nodes=nodes,
    )
    assert plain["tiers"] is None  # no tiers: null, which the status merge patch leaves unset


def test_a_tier_is_audited_and_remediated_at_its_profile() -> None:
    b = baseline(profile="baseline")  # the restricted tier enforces restricted
    d = decide(deployment(), ns("vault", "restricted"))
    plain = decide(deployment("www"), ns("www", "public"), b)
    vault = decide(deployment(), ns("vault", "restricted"), b)
    assert {f.check for f in vault.audits["tiers"].findings} >= {"allowPrivilegeEscalation", "runAsNonRoot"}
    assert not {f.check for f in plain.audits["tiers"].findings} & {
        "allowPrivilegeEscalation",
        "runAsNonRoot",
    }
    assert "securityContext" in pod_spec_of(vault.patch) and plain.patch == {}
    assert vault.patch == d.patch  # the same as a restricted baseline
    assert b.policy_for(None) is b.policy and b.policy_for(b.spec.tiers[0]) is b.policy  # public: baseline
