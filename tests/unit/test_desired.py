"""Desired state under the baselines: scope, the one workload patch, overlaps, NetworkPolicies, labels."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from engine_fixtures import load

from kube_baseline.engine.checks import audit
from kube_baseline.engine.desired import (
    ADDED_LABELS_ANNOTATION,
    BASELINE_LABEL,
    Baseline,
    NamespaceInfo,
    build_baseline,
    build_namespace_info,
    build_namespace_patch,
    build_network_policy,
    decide_workload,
    governs,
    is_attributed_to_controller,
    is_patchable,
    is_remediated,
    merge_patches,
    network_policy_name,
    plan_network_policies,
    protects,
    remediates,
)
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.workloads import Workload, workload_of


def baseline(name: str = "b", uid: str = "uid-b", **spec: Any) -> Baseline:
    return build_baseline({"metadata": {"name": name, "uid": uid, "generation": 1}, "spec": spec})


def ns(name: str = "shop", **labels: str) -> NamespaceInfo:
    return NamespaceInfo(name, labels)


def wl(obj: dict[str, Any]) -> Workload:
    found = workload_of(obj)
    assert found is not None
    return found


DEV = {"matchLabels": {"env": "dev"}}
REMEDIATE_DEV = {"mode": "remediate", "remediation": {"namespaceSelector": DEV}}

SCOPE_CASES: dict[str, tuple[dict[str, Any], NamespaceInfo, tuple[bool, bool, bool]]] = {
    "audit-everywhere": ({}, ns(), (True, False, False)),
    "system-namespace-never": ({"mode": "remediate"}, ns("kube-system"), (False, False, False)),
    "operator-namespace-never": ({"mode": "remediate"}, ns("kube-baseline"), (False, False, False)),
    "excluded-by-name": (
        {"namespaces": {"exclude": ["shop"]}, "mode": "remediate"},
        ns(),
        (False, False, False),
    ),
    "selector-miss": (
        {"namespaces": {"selector": {"matchLabels": {"team": "a"}}}},
        ns(),
        (False, False, False),
    ),
    "remediate-dev-in-dev": (REMEDIATE_DEV, ns(env="dev"), (True, True, False)),
    "remediate-dev-in-prod": (REMEDIATE_DEV, ns(env="prod"), (True, False, False)),
    "netpol-dev": (
        {**REMEDIATE_DEV, "networkPolicies": {"enabled": True, "namespaceSelector": DEV}},
        ns(env="dev"),
        (True, True, True),
    ),
    "netpol-in-audit-mode-not-created": ({"networkPolicies": {"enabled": True}}, ns(), (True, False, False)),
    # A label the operator added does not count for selectors (no add/remove loop).
    "added-label-ignored": (
        REMEDIATE_DEV,
        NamespaceInfo("shop", {"env": "dev"}, {"other": {"env": "dev"}}),
        (True, False, False),
    ),
}


@pytest.mark.parametrize("case", SCOPE_CASES)
def test_scope(case: str) -> None:
    spec, namespace, expected = SCOPE_CASES[case]
    b = baseline(**spec)
    assert (governs(b, namespace), remediates(b, namespace), protects(b, namespace)) == expected


def owned(kind: str, owner_kind: str) -> dict[str, Any]:
    obj = copy.deepcopy(load("unhardened"))
    obj["kind"] = kind
    obj["metadata"]["ownerReferences"] = [{"kind": owner_kind, "name": "x", "uid": "u", "controller": True}]
    return obj


def test_attribution_and_patchability() -> None:
    deployment = load("unhardened")
    assert not is_attributed_to_controller(deployment) and is_patchable(wl(deployment))
    assert is_attributed_to_controller(owned("ReplicaSet", "Deployment"))
    # An unknown controller (e.g. a CRD's) keeps it top-level, but it is never patched.
    assert not is_attributed_to_controller(owned("ReplicaSet", "Rollout"))
    assert not is_patchable(wl(owned("ReplicaSet", "Rollout")))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": []},
    }
    assert not is_patchable(wl(pod))
    assert not is_patchable(
        wl(load("cronjob") | {"kind": "Job", "spec": load("cronjob")["spec"]["jobTemplate"]["spec"]})
    )


def test_remediated_is_read_from_managed_fields() -> None:
    obj = {"metadata": {"managedFields": [{"manager": "kubectl"}, {"manager": "kube-baseline"}]}}
    assert is_remediated(obj, "kube-baseline")
    assert not is_remediated({"metadata": {"managedFields": [{"manager": "kubectl"}]}}, "kube-baseline")


def test_one_patch_and_remediating_twice_changes_nothing() -> None:
    b = baseline(mode="remediate", profile="restricted")
    obj = load("unhardened")
    first = decide_workload(wl(obj), [b], ns(), network_policies=[], now=None, allow_writes=True)
    assert first.patch and first.remediated_by == ("b",)
    assert "spec.template.spec.securityContext.seccompProfile" in {c.field for c in first.changes}
    after = apply_patch(obj, first.patch)
    second = decide_workload(wl(after), [b], ns(), network_policies=[], now=None, allow_writes=True)
    assert second.patch == {} and second.changes == ()


@pytest.mark.parametrize(
    "why",
    ["audit-mode", "dry-run", "not-remediating-namespace"],
)
def test_no_patch_without_permission(why: str) -> None:
    spec = {"profile": "restricted", **({} if why == "audit-mode" else REMEDIATE_DEV)}
    namespace = ns(env="prod") if why == "not-remediating-namespace" else ns(env="dev")
    decision = decide_workload(
        wl(load("unhardened")),
        [baseline(**spec)],
        namespace,
        network_policies=[],
        now=None,
        allow_writes=why != "dry-run",
    )
    assert decision.patch == {}
    assert decision.audits["b"].findings  # still reported


def test_explicit_privileged_is_reported_never_patched() -> None:
    obj = load("privileged-container")
    decision = decide_workload(
        wl(obj), [baseline(mode="remediate")], ns(), network_policies=[], now=None, allow_writes=True
    )
    assert "privileged" in {f.check for f in decision.audits["b"].findings}
    after = apply_patch(obj, decision.patch) if decision.patch else obj
    containers = (
        after["spec"]["template"]["spec"]["containers"]
        if "template" in after["spec"]
        else after["spec"]["containers"]
    )
    assert any(c.get("securityContext", {}).get("privileged") is True for c in containers)


def test_overlapping_baselines_each_report_and_remediate_in_one_patch() -> None:
    """The union of the fixes of every remediating baseline goes out as one patch."""
    a = baseline("a-safe", mode="remediate", profile="restricted")
    b = baseline(
        "b-guarded", mode="remediate", profile="restricted", remediation={"riskClasses": ["guarded"]}
    )
    obj = load("unhardened")
    decision = decide_workload(wl(obj), [b, a], ns(), network_policies=[], now=None, allow_writes=True)
    assert set(decision.audits) == {"a-safe", "b-guarded"}  # each reports on its own
    assert decision.remediated_by == ("a-safe", "b-guarded")
    assert {c.risk for c in decision.changes} == {"safe", "guarded"}
    after = apply_patch(obj, decision.patch)
    left = audit(wl(after), b.policy).findings
    assert [f for f in left if f.remediation != "manual"] == []
    for alone in ([a], [b]):  # each alone is a subset of the union
        single = decide_workload(wl(obj), alone, ns(), network_policies=[], now=None, allow_writes=True)
        assert single.patch and merge_patches(decision.patch, single.patch) == decision.patch


def test_overlap_first_baseline_by_name_wins_on_values() -> None:
    guarded = {"riskClasses": ["safe", "guarded"]}
    a = baseline(
        "a",
        mode="remediate",
        profile="restricted",
        remediation={**guarded, "securityContext": {"runAsUser": 1000}},
    )
    b = baseline(
        "b",
        mode="remediate",
        profile="restricted",
        remediation={**guarded, "securityContext": {"runAsUser": 2000}},
    )
    decision = decide_workload(
        wl(load("unhardened")), [b, a], ns(), network_policies=[], now=None, allow_writes=True
    )
    assert {c.value for c in decision.changes if c.field.endswith("runAsUser")} == {1000}
    assert decision.remediated_by == ("a",)  # b found nothing left to fill


def test_merge_patches_merges_named_lists_by_name() -> None:
    a = {"spec": {"containers": [{"name": "x", "securityContext": {"a": 1}}], "k": 1}}
    b = {"spec": {"containers": [{"name": "x", "securityContext": {"b": 2}}, {"name": "y", "s": 3}]}}
    assert merge_patches(a, b) == {
        "spec": {
            "containers": [{"name": "x", "securityContext": {"a": 1, "b": 2}}, {"name": "y", "s": 3}],
            "k": 1,
        }
    }


# --- NetworkPolicies ---

NP_CASES: dict[str, tuple[dict[str, Any], list[str], list[dict[str, Any]], list[dict[str, Any]]]] = {
    "ingress-only": ({}, ["Ingress"], None, []),  # type: ignore[dict-item]
    "ingress-same-namespace": (
        {"allowSameNamespace": True},
        ["Ingress"],
        [{"from": [{"podSelector": {}}]}],
        [],
    ),
    "deny-both-dns": (
        {"defaultDenyEgress": True, "allowDnsEgress": True},
        ["Ingress", "Egress"],
        None,  # type: ignore[list-item]
        [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ],
    ),
    "egress-only-same-namespace": (
        {"defaultDenyIngress": False, "defaultDenyEgress": True, "allowSameNamespace": True},
        ["Egress"],
        None,  # type: ignore[dict-item]
        [{"to": [{"podSelector": {}}]}],
    ),
}


@pytest.mark.parametrize("case", NP_CASES)
def test_network_policy_shape(case: str) -> None:
    cfg, types, ingress, egress = NP_CASES[case]
    b = baseline("dev", "uid-dev", mode="remediate", networkPolicies={"enabled": True, **cfg})
    policy = build_network_policy(b, "shop")
    assert policy["metadata"]["name"] == "kube-baseline-dev"
    assert policy["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kube-baseline",
        BASELINE_LABEL: "dev",
    }
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-dev"
    assert policy["spec"]["policyTypes"] == types
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"].get("ingress") == ingress
    assert policy["spec"].get("egress", []) == egress


def test_network_policy_name_is_bounded() -> None:
    assert len(network_policy_name("x" * 253)) == 253
    assert network_policy_name("x" * 253) != network_policy_name("x" * 252 + "y")


def test_network_policy_actions() -> None:
    dev = baseline("dev", "u1", mode="remediate", networkPolicies={"enabled": True})
    gone = build_network_policy(
        baseline("gone", "u2", mode="remediate", networkPolicies={"enabled": True}), "shop"
    )
    user = {"metadata": {"name": "user-policy", "labels": {}}, "spec": {"podSelector": {}}}
    stale = copy.deepcopy(build_network_policy(dev, "shop"))
    stale["spec"]["policyTypes"] = ["Egress"]
    desired = [build_network_policy(dev, "shop")]
    assert plan_network_policies(desired, [user]).create == tuple(desired)
    assert not plan_network_policies(desired, [user, desired[0]])  # in place: nothing to do
    actions = plan_network_policies(desired, [user, stale, gone])
    assert (
        actions.replace == tuple(desired) and actions.delete == ("kube-baseline-gone",) and not actions.create
    )
    assert plan_network_policies([], [user]).delete == ()  # user policies are never touched


# --- namespace labels ---


def labelling(name: str = "a", **labels: str) -> Baseline:
    return baseline(
        name, mode="remediate", labels={"namespaceDefaults": labels, "podSecurity": {"warn": "restricted"}}
    )


def annotated(labels: dict[str, str], added: dict[str, dict[str, str]]) -> NamespaceInfo:
    return build_namespace_info(
        {
            "metadata": {
                "name": "shop",
                "labels": labels,
                "annotations": {ADDED_LABELS_ANNOTATION: json.dumps(added)},
            }
        }
    )


def test_labels_added_only_where_absent_and_recorded() -> None:
    patch = build_namespace_patch(ns(team="x"), [labelling(team="y", tier="dev")])
    assert patch == {
        "metadata": {
            "labels": {"tier": "dev", "pod-security.kubernetes.io/warn": "restricted"},
            "annotations": {
                ADDED_LABELS_ANNOTATION: json.dumps(
                    {"a": {"pod-security.kubernetes.io/warn": "restricted", "tier": "dev"}},
                    sort_keys=True,
                    separators=(",", ":"),
                )
            },
        }
    }


def test_labels_in_place_are_a_no_op() -> None:
    added = {"a": {"pod-security.kubernetes.io/warn": "restricted", "tier": "dev"}}
    info = annotated({"team": "x", **added["a"]}, added)
    assert build_namespace_patch(info, [labelling(tier="dev")]) is None


def test_deleted_baseline_removes_exactly_its_unchanged_labels() -> None:
    added = {"a": {"tier": "dev", "owner": "ops"}}
    info = annotated({"team": "x", "tier": "dev", "owner": "changed-by-user"}, added)
    patch = build_namespace_patch(info, [])
    assert patch == {"metadata": {"labels": {"tier": None}, "annotations": {ADDED_LABELS_ANNOTATION: None}}}


def test_label_handed_over_to_the_next_baseline_in_one_patch() -> None:
    added = {"a": {"tier": "dev"}}
    info = annotated({"tier": "dev"}, added)
    patch = build_namespace_patch(
        info, [baseline("b", mode="remediate", labels={"namespaceDefaults": {"tier": "test"}})]
    )
    assert patch is not None
    assert patch["metadata"]["labels"] == {"tier": "test"}
    assert json.loads(patch["metadata"]["annotations"][ADDED_LABELS_ANNOTATION]) == {"b": {"tier": "test"}}
