"""The SecurityBaseline API on the real API server: the generated CRD is accepted, defaults are
applied by the server, invalid specs are rejected with a message naming the field, kubectl names
and printer columns work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from operator_helpers import baseline, get, install_crd, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def crd(kube: Any) -> None:
    install_crd(kube)


# name -> (spec, text the error must contain: the field path, and what is wrong)
INVALID: dict[str, tuple[dict[str, Any], list[str]]] = {
    "mode-enum": ({"mode": "enforce"}, ["spec.mode", "Unsupported value"]),
    "profile-enum": ({"profile": "strict"}, ["spec.profile", "Unsupported value"]),
    "excluded-namespace-name": ({"namespaces": {"exclude": ["Bad_NS"]}}, ["spec.namespaces.exclude[0]"]),
    "duplicate-excluded-namespace": (
        {"namespaces": {"exclude": ["a", "a"]}},
        ["spec.namespaces.exclude[1]", "Duplicate"],
    ),
    "unknown-extra-check": (
        {"checks": {"extra": ["noSuchCheck"]}},
        ["spec.checks.extra[0]", "Unsupported value"],
    ),
    "manual-risk-class": ({"remediation": {"riskClasses": ["manual"]}}, ["spec.remediation.riskClasses[0]"]),
    "root-uid": (
        {"remediation": {"securityContext": {"runAsUser": 0}}},
        ["spec.remediation.securityContext.runAsUser"],
    ),
    "localhost-without-profile": (
        {"remediation": {"securityContext": {"seccompProfile": "Localhost"}}},
        ["spec.remediation.securityContext.localhostProfile", "localhostProfile is required"],
    ),
    "network-policies-deny-nothing": (
        {"networkPolicies": {"enabled": True, "defaultDenyIngress": False}},
        ["spec.networkPolicies", "need defaultDenyIngress or defaultDenyEgress"],
    ),
    "dns-without-egress-deny": (
        {"networkPolicies": {"allowDnsEgress": True}},
        ["spec.networkPolicies.allowDnsEgress", "defaultDenyEgress"],
    ),
    "bad-label-key": (
        {"labels": {"workloadDefaults": {"bad key!": "x"}}},
        ["spec.labels.workloadDefaults", "label key"],
    ),
    "bad-label-value": (
        {"labels": {"namespaceDefaults": {"tier": "-dev-"}}},
        ["spec.labels.namespaceDefaults", "label value"],
    ),
    "bad-psa-level": (
        {"labels": {"podSecurity": {"enforce": "strict"}}},
        ["spec.labels.podSecurity.enforce"],
    ),
    "selector-in-without-values": (
        {"namespaces": {"selector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}},
        ["spec.namespaces.selector.matchExpressions[0]", "values must be non-empty"],
    ),
    "exemption-without-reason": (
        {"exemptions": [{"namespace": "legacy"}]},
        ["spec.exemptions[0].reason", "Required"],
    ),
    "exemption-of-everything": (
        {"exemptions": [{"reason": "because"}]},
        ["spec.exemptions[0]", "must name a namespace, a workload or checks"],
    ),
    "exemption-bad-expiry": (
        {"exemptions": [{"namespace": "a", "reason": "r", "expires": "next week"}]},
        ["spec.exemptions[0].expires"],
    ),
    "unknown-field": ({"remediate": True}, ['unknown field "spec.remediate"']),
    "tier-unknown-profile": (
        {"tiers": [{"name": "a", "profile": "strict", "network": {}}]},
        ["spec.tiers[0].profile", "Unsupported value"],
    ),
    "tier-without-placement-or-network": (
        {"tiers": [{"name": "a", "profile": "baseline"}]},
        ["spec.tiers[0]", "a tier needs a placement or a network rule"],
    ),
    "tier-empty-placement": (
        {"tiers": [{"name": "a", "placement": {}}]},
        ["spec.tiers[0].placement", "placement needs a nodeSelector, tolerations or a runtimeClassName"],
    ),
    "tiers-same-label-value": (
        {
            "tiers": [
                {"name": "a", "network": {}},
                {
                    "name": "b",
                    "network": {},
                    "namespaceSelector": {"matchLabels": {"kube-baseline.io/tier": "a"}},
                },
            ]
        },
        ["spec.tiers", "two tiers select the same namespaces by label value"],
    ),
    "tiers-duplicate-name": (
        {"tiers": [{"name": "a", "network": {}}, {"name": "a", "placement": {"runtimeClassName": "gvisor"}}]},
        ["spec.tiers[1]", "Duplicate value"],
    ),
    "tier-allow-from-unknown": (
        {"tiers": [{"name": "a", "network": {"allowFrom": ["nope"]}}]},
        ["spec.tiers", "allowFrom must name tiers of this baseline"],
    ),
    "tier-toleration-exists-with-value": (
        {
            "tiers": [
                {
                    "name": "a",
                    "placement": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
                }
            ]
        },
        ["spec.tiers[0].placement.tolerations[0].value", "value must be empty"],
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_spec_is_rejected_naming_the_field(kube: Any, case: str) -> None:
    spec, expected = INVALID[case]
    res = kube.kubectl(
        "create", "-f", "-", input=json.dumps(baseline(unique("invalid"), **spec)), check=False
    )
    assert res.returncode != 0, f"{case} was accepted"
    for text in expected:
        assert text in res.stderr, res.stderr


def test_server_applies_defaults(kube: Any) -> None:
    name = unique("defaults")
    kube.kubectl(
        "create", "-f", "-", input=json.dumps(baseline(name, exemptions=[{"namespace": "a", "reason": "r"}]))
    )
    try:
        spec = get(kube, "securitybaseline", name)["spec"]
        assert spec["mode"] == "audit" and spec["profile"] == "baseline"
        assert spec["remediation"]["riskClasses"] == ["safe"]
        assert spec["remediation"]["securityContext"] == {
            "runAsUser": 65532,
            "seccompProfile": "RuntimeDefault",
            "localhostProfile": "",
        }
        assert (
            spec["networkPolicies"]["enabled"] is False
            and spec["networkPolicies"]["defaultDenyIngress"] is True
        )
        assert spec["namespaces"] == {"selector": {"matchLabels": {}, "matchExpressions": []}, "exclude": []}
        assert spec["exemptions"] == [{"namespace": "a", "workload": "*", "checks": [], "reason": "r"}]
    finally:
        kube.kubectl("delete", "securitybaseline", name)


def test_an_empty_baseline_is_valid_and_short_names_work(kube: Any) -> None:
    name = unique("empty")
    manifest = {
        "apiVersion": "kube-baseline.io/v1alpha1",
        "kind": "SecurityBaseline",
        "metadata": {"name": name},
    }
    kube.kubectl("create", "-f", "-", input=json.dumps(manifest))
    try:
        for short in ("sb", "baseline", "baselines", "securitybaselines"):
            assert name in kube.kubectl("get", short, "-o", "name").stdout
        header = kube.kubectl("get", "sb", name).stdout.splitlines()[0].split()
        assert header == [
            "NAME",
            "MODE",
            "PROFILE",
            "NAMESPACES",
            "WORKLOADS",
            "DRIFTED",
            "REMEDIATED",
            "ROLLEDBACK",
            "COMPLIANT",
            "AGE",
        ]
    finally:
        kube.kubectl("delete", "sb", name)


@pytest.mark.parametrize("sample", ["audit-all", "dev-remediate", "tiers"])
def test_samples_are_accepted(kube: Any, sample: str) -> None:
    from operator_helpers import ROOT

    path = str(ROOT / "manifests" / "samples" / f"{sample}.yaml")
    kube.kubectl("create", "--dry-run=server", "-f", path)
