"""The pure renderer of ValidatingAdmissionPolicies (engine/admission): objects, scope,
ownership, exemptions and ratcheting shape. Whether the CEL agrees with the engine is checked
against the real API server in tests/integration/test_admission_differential.py."""

from __future__ import annotations

import fnmatch
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kube_baseline.engine.admission.cel import UNENFORCEABLE
from kube_baseline.engine.admission.validating import glob_regex, object_name, render_validation
from kube_baseline.engine.checks import policy_from_spec
from kube_baseline.engine.models import SYSTEM_NAMESPACES, parse_spec

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def render(spec: dict[str, Any], uid: str = "u-1", now: datetime | None = NOW) -> Any:
    return render_validation("web", uid, parse_spec(spec), now=now)


def by_kind(objects: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_off_renders_nothing() -> None:
    assert render({}).objects == ()


def test_deny_renders_a_policy_and_binding_per_pod_spec_place() -> None:
    result = render({"profile": "restricted", "admission": {"validation": "Deny"}})
    policies = by_kind(result.objects, "ValidatingAdmissionPolicy")
    bindings = by_kind(result.objects, "ValidatingAdmissionPolicyBinding")
    assert [p["metadata"]["name"] for p in policies] == [
        "kube-baseline-web-pods",
        "kube-baseline-web-templates",
        "kube-baseline-web-cronjobs",
    ]
    assert [b["spec"]["policyName"] for b in bindings] == [p["metadata"]["name"] for p in policies]
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)
    resources = {
        r
        for p in policies
        for rule in p["spec"]["matchConstraints"]["resourceRules"]
        for r in rule["resources"]
    }
    assert resources == {
        "pods", "pods/ephemeralcontainers", "deployments", "statefulsets", "daemonsets", "replicasets",
        "replicationcontrollers", "jobs", "cronjobs",
    }  # fmt: skip
    for obj in result.objects:
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "kube-baseline"
        assert meta["ownerReferences"] == [
            {"apiVersion": "kube-baseline.io/v1alpha1", "kind": "SecurityBaseline", "name": "web",
             "uid": "u-1", "controller": True}
        ]  # fmt: skip
    for policy in policies:
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert "UPDATE" in policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"]


def test_one_ratcheting_validation_per_enforceable_check() -> None:
    spec = {"profile": "restricted", "checks": {"extra": ["imagePinned", "networkPolicyCoverage"]},
            "admission": {"validation": "Warn"}}  # fmt: skip
    result = render(spec)
    enabled = {c.id for c in policy_from_spec(parse_spec(spec)).checks}
    assert result.unenforced == ("networkPolicyCoverage",)
    assert "networkPolicyCoverage" in UNENFORCEABLE
    for policy in by_kind(result.objects, "ValidatingAdmissionPolicy"):
        validations = policy["spec"]["validations"]
        named = {v["message"].split(": ")[1].split(" ")[0] for v in validations}
        assert named == enabled - {"networkPolicyCoverage"}
        for v in validations:
            check = v["message"].split(": ")[1].split(" ")[0]
            assert f"!variables.bad_{check}" in v["expression"]
            assert f"oldObject != null && variables.old_{check}" in v["expression"]
            assert check in v["messageExpression"] and "join(', ')" in v["messageExpression"]
    assert all(b["spec"]["validationActions"] == ["Warn"]
               for b in by_kind(result.objects, "ValidatingAdmissionPolicyBinding"))  # fmt: skip


def test_binding_scope_is_the_governed_namespaces_narrowed() -> None:
    spec = {
        "namespaces": {"selector": {"matchLabels": {"env": "prod"}}, "exclude": ["legacy"]},
        "admission": {"validation": "Deny",
                      "namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
    }  # fmt: skip
    binding = by_kind(render(spec).objects, "ValidatingAdmissionPolicyBinding")[0]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod"]},
            {"key": "tier", "operator": "Exists"},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
             "values": sorted({*SYSTEM_NAMESPACES, "legacy"})},
        ]
    }  # fmt: skip


def test_exemptions_apply_to_their_checks_and_expired_ones_are_left_out() -> None:
    later = NOW + timedelta(days=2)
    spec = {
        "profile": "restricted",
        "admission": {"validation": "Deny"},
        "exemptions": [
            {"namespace": "legacy", "workload": "Deployment/web-*", "checks": ["privileged"], "reason": "a"},
            {"workload": "old", "reason": "expired", "expires": (NOW - timedelta(days=1)).isoformat()},
            {"namespace": "batch", "reason": "until later", "expires": later.isoformat()},
        ],
    }
    result = render(spec)
    assert result.next_expiry == later
    policy = by_kind(result.objects, "ValidatingAdmissionPolicy")[1]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert variables["exempt0"] == (
        'request.namespace == "legacy" && '
        "(object.kind + '/' + object.metadata.name).matches(\"^Deployment/web\\\\-.*$\")"
    )
    assert variables["exempt1"] == 'request.namespace == "batch"'
    assert "exempt2" not in variables  # the expired one
    by_check = {
        v["message"].split(": ")[1].split(" ")[0]: v["expression"] for v in policy["spec"]["validations"]
    }
    assert by_check["privileged"].startswith("variables.exempt0 || variables.exempt1 || ")
    assert by_check["runAsNonRoot"].startswith("variables.exempt1 || !variables.bad_runAsNonRoot")
    # Without a clock every exemption is rendered (the CLI: nothing expires on paper).
    assert render(spec, now=None).next_expiry is None


def test_no_owner_reference_without_a_uid() -> None:
    result = render({"admission": {"validation": "Audit"}}, uid="")
    assert all("ownerReferences" not in o["metadata"] for o in result.objects)


@pytest.mark.parametrize(
    "pattern", ["web-*", "a?c", "[ab]*", "[!x]y", "x.y+z", "*", "[", "a[]b]c", "dep/[0-9]*"]
)
def test_glob_regex_matches_what_fnmatch_matches(pattern: str) -> None:
    rng = random.Random(pattern)
    alphabet = "abcxyz-./0129[]!+"
    names = ["web-1", "abc", "a]c", "xy", "x.y+z", "dep/7", "[", "a]b]c", *(
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(300))]  # fmt: skip
    regex = re.compile(glob_regex(pattern))
    for name in names:
        assert bool(regex.search(name)) == fnmatch.fnmatchcase(name, pattern), (pattern, name)


def test_long_baseline_names_give_valid_object_names() -> None:
    name = object_name("b" * 253, "templates")
    assert len(name) <= 253 and name.endswith("-templates")


def test_every_check_has_cel_or_a_reason_it_cannot_have_one() -> None:
    """A check added to the catalogue must be rendered or named unenforceable with its reason;
    otherwise rendering a baseline that enables it fails."""
    from kube_baseline.engine.admission import cel
    from kube_baseline.engine.checks import CHECKS

    missing = {c for c in CHECKS if c != "requiredLabels"} - set(cel._RENDERERS) - set(UNENFORCEABLE)
    assert not missing
