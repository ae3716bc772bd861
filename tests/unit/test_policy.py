"""Policies: profiles, extras, disabled checks, PSA overrides, exemptions, labels, NetworkPolicies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from engine_fixtures import workload

from kube_baseline.engine.checks import (
    CHECKS,
    OVERRIDES,
    Exemption,
    audit,
    policy_for_profile,
    policy_from_spec,
)
from kube_baseline.engine.checks.network_policies import selector_matches
from kube_baseline.engine.models import (
    PSS_BASELINE_CHECKS,
    PSS_RESTRICTED_CHECKS,
    LabelSelector,
    parse_spec,
)


def test_baseline_profile_enables_exactly_the_baseline_checks() -> None:
    assert policy_for_profile("baseline").enabled == frozenset(PSS_BASELINE_CHECKS)


def test_restricted_profile_replaces_overridden_baseline_checks() -> None:
    enabled = policy_for_profile("restricted").enabled
    assert enabled == (frozenset(PSS_BASELINE_CHECKS) | frozenset(PSS_RESTRICTED_CHECKS)) - set(
        OVERRIDES.values()
    )
    # Disabling the restricted control brings the baseline control back.
    assert "hostPathVolumes" in policy_for_profile("restricted", disabled=["restrictedVolumes"]).enabled


def test_hostpath_is_reported_once_at_restricted() -> None:
    result = audit(workload("hostpath-volume"), policy_for_profile("restricted"))
    assert [f.check for f in result.findings if "hostPath" in f.field] == ["restrictedVolumes"]


def test_extras_disabled_and_required_labels() -> None:
    policy = policy_for_profile(
        "baseline", extra=["imagePinned"], disabled=["privileged"], required_labels=["team"]
    )
    assert "imagePinned" in policy.enabled and "requiredLabels" in policy.enabled
    assert "privileged" not in policy.enabled
    assert [c.id for c in policy.checks] == [c for c in CHECKS if c in policy.enabled]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "privileged"}, "unknown profile"),
        ({"profile": "baseline", "extra": ["nope"]}, "unknown check ids"),
        ({"profile": "baseline", "extra": ["privileged"]}, "not extra checks"),
        ({"profile": "baseline", "disabled": ["nope"]}, "unknown check ids"),
    ],
)
def test_bad_policy_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy_for_profile(**kwargs)  # type: ignore[arg-type]


def test_policy_from_spec() -> None:
    spec = parse_spec(
        {
            "profile": "restricted",
            "checks": {"extra": ["readOnlyRootFilesystem"], "disabled": ["runAsUser"]},
            "labels": {"required": ["team"], "workloadDefaults": {"team": "platform"}},
            "exemptions": [{"namespace": "shop", "workload": "Deployment/plain", "reason": "legacy"}],
        }
    )
    policy = policy_from_spec(spec)
    assert policy.profile == "restricted"
    assert {"readOnlyRootFilesystem", "requiredLabels"} <= policy.enabled
    assert "runAsUser" not in policy.enabled
    assert policy.required_labels == ("team",) and policy.label_defaults == {"team"}
    assert policy.exemptions == (Exemption(namespace="shop", workload="Deployment/plain", reason="legacy"),)
    result = audit(workload("unhardened"), policy)
    assert result.findings == () and result.exempted


NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("exemption", "exempted"),
    [
        (Exemption(namespace="shop"), True),
        (Exemption(namespace="other"), False),
        (Exemption(workload="plain"), True),
        (Exemption(workload="pl*"), True),
        (Exemption(workload="Deployment/plain"), True),
        (Exemption(workload="*/pla?n"), True),
        (Exemption(workload="StatefulSet/plain"), False),
        (Exemption(workload="other"), False),
        (Exemption(expires=datetime(2026, 7, 1, tzinfo=UTC)), True),
        (Exemption(expires=datetime(2026, 5, 1, tzinfo=UTC)), False),
        (Exemption(expires=datetime(2026, 5, 1)), False),  # naive = UTC
    ],
)
def test_exemption_matching(exemption: Exemption, exempted: bool) -> None:
    policy = policy_for_profile("restricted", exemptions=[exemption])
    result = audit(workload("unhardened"), policy, now=NOW)
    assert bool(result.exempted) is exempted
    assert bool(result.findings) is not exempted


def test_exemption_of_some_checks_and_without_a_clock() -> None:
    exemption = Exemption(checks=frozenset({"runAsNonRoot"}), expires=datetime(2000, 1, 1, tzinfo=UTC))
    policy = policy_for_profile("restricted", exemptions=[exemption])
    result = audit(workload("unhardened"), policy)  # no clock: expiring exemptions apply
    assert {f.check for f in result.exempted} == {"runAsNonRoot"}
    assert "runAsNonRoot" not in {f.check for f in result.findings} and result.findings


def test_required_labels_missing_with_and_without_a_default() -> None:
    wl = workload("unhardened")
    without = audit(wl, policy_for_profile("baseline", required_labels=["team", "app"]))
    assert [(f.check, f.field, f.remediation) for f in without.findings] == [
        ("requiredLabels", "metadata.labels[team]", "manual"),
        ("requiredLabels", "metadata.labels[app]", "manual"),
    ]
    with_default = audit(
        wl, policy_for_profile("baseline", required_labels=["team"], label_defaults=["team"])
    )
    assert [f.remediation for f in with_default.findings] == ["safe"]
    present = audit(
        workload("compliant-restricted"), policy_for_profile("baseline", required_labels=["team"])
    )
    assert present.findings == ()


DENY_ALL = {
    "kind": "NetworkPolicy",
    "metadata": {"name": "deny", "namespace": "shop"},
    "spec": {"podSelector": {}},
}
FOR_WEB = {
    "kind": "NetworkPolicy",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
}
EGRESS_ONLY = {
    "kind": "NetworkPolicy",
    "metadata": {"name": "egress", "namespace": "shop"},
    "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
}
OTHER_NS = {**DENY_ALL, "metadata": {"name": "deny", "namespace": "elsewhere"}}


@pytest.mark.parametrize(
    ("name", "policies", "covered"),
    [
        ("compliant-restricted", [DENY_ALL], True),
        ("compliant-restricted", [FOR_WEB], True),
        ("unhardened", [FOR_WEB], False),
        ("unhardened", [EGRESS_ONLY], False),
        ("unhardened", [OTHER_NS], False),
        ("unhardened", [], False),
    ],
)
def test_network_policy_coverage(name: str, policies: list[dict[str, object]], covered: bool) -> None:
    policy = policy_for_profile("baseline", extra=["networkPolicyCoverage"])
    result = audit(workload(name), policy, network_policies=policies)
    assert (result.findings == ()) is covered
    # Without NetworkPolicies in the input the check is not evaluated.
    assert audit(workload(name), policy).findings == ()


SELECTOR_CASES: list[tuple[object, dict[str, str], bool]] = [
    (None, {}, True),
    ({}, {"a": "1"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": "1"}, False),
    ("garbage", {}, False),
]


@pytest.mark.parametrize(("selector", "labels", "matches"), SELECTOR_CASES)
def test_selector_matches(selector: object, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        case
        for case in SELECTOR_CASES
        if not isinstance(case[0], str) and "Bogus" not in str(case[0])  # the model rejects these
    ],
)
def test_label_selector_model_matches_as_its_wire_form(
    selector: dict[str, object] | None, labels: dict[str, str], matches: bool
) -> None:
    """A baseline's namespace selector (the API model) means what the same selector means in a
    NetworkPolicy (raw dicts): LabelSelector.matches hands its fields to selector_matches."""
    model = LabelSelector.model_validate(selector or {})
    assert model.matches(labels) is matches
