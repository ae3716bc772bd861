"""Remediation: fill only absent fields in the allowed classes; never overwrite; idempotent;
the remediated object re-checks clean for the applied classes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from engine_fixtures import EXTRA, load, workload

from kube_baseline.engine.checks import audit, policy_for_profile
from kube_baseline.engine.desired import merge_patches
from kube_baseline.engine.models import Labels, Remediation
from kube_baseline.engine.remediation import Change, apply_patch, merge, plan
from kube_baseline.engine.workloads import workload_of

SAFE = Remediation(risk_classes=["safe"])
BOTH = Remediation(risk_classes=["safe", "guarded"])
NO_LABELS = Labels()
ALL_EXTRAS = [c for c in EXTRA if c != "networkPolicyCoverage"]
POLICY = policy_for_profile("restricted", extra=ALL_EXTRAS)


def _plan(
    name: str, remediation: Remediation = BOTH, labels: Labels = NO_LABELS, policy: Any = POLICY
) -> Any:
    wl = workload(name)
    return plan(wl, audit(wl, policy).findings, remediation, labels)


def test_safe_fixes_of_an_unhardened_deployment() -> None:
    result = _plan("unhardened", SAFE)
    no_escalation = {"securityContext": {"allowPrivilegeEscalation": False}}
    assert result.patch == {
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [{"name": "init", **no_escalation}],
                    "containers": [{"name": "app", **no_escalation}, {"name": "sidecar", **no_escalation}],
                }
            }
        }
    }
    assert {c.risk for c in result.changes} == {"safe"}
    assert {f.remediation for f in result.unfixed} <= {"guarded", "manual"}


def test_guarded_fixes_add_net_bind_service_only_below_port_1024() -> None:
    result = _plan("unhardened")
    pod = result.patch["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    caps = {
        c["name"]: c["securityContext"]["capabilities"]
        for k in ("initContainers", "containers")
        for c in pod[k]
    }
    assert caps == {
        "init": {"drop": ["ALL"]},
        "app": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},  # containerPort 80
        "sidecar": {"drop": ["ALL"]},  # containerPort 9901
    }
    assert (
        Change(
            "spec.template.spec.containers[app].securityContext.readOnlyRootFilesystem",
            True,
            "readOnlyRootFilesystem",
            "guarded",
        )
        in result.changes
    )


@pytest.mark.parametrize("remediation", [SAFE, BOTH], ids=["safe", "safe+guarded"])
@pytest.mark.parametrize(
    "name",
    [
        "unhardened",
        "escalation-blocked",
        "capabilities-added",
        "seccomp-containers-only",
        "seccomp-container-override",
        "pod-level-nonroot",
        "container-level-nonroot",
        "windows-pod",
        "cronjob",
        "readonly-rootfs",
        "run-as-root-uid",
        "ephemeral-container",
    ],
)
def test_apply_then_recheck_is_clean_and_idempotent(name: str, remediation: Remediation) -> None:
    obj = load(name)
    before = copy.deepcopy(obj)
    first = _plan(name, remediation)
    fixed = apply_patch(obj, first.patch)
    assert obj == before, "apply_patch must not mutate its input"
    wl = workload_of(fixed)
    assert wl is not None
    findings = audit(wl, POLICY).findings
    allowed = set(remediation.risk_classes)
    assert [f for f in findings if f.remediation in allowed] == []
    second = plan(wl, findings, remediation, NO_LABELS)
    assert second.patch == {} and second.changes == ()
    assert apply_patch(fixed, first.patch) == fixed


def test_explicit_privileged_container_is_never_touched() -> None:
    result = _plan("escalation-blocked")
    containers = result.patch["spec"]["template"]["spec"]["containers"]
    touched = {c["name"]: c["securityContext"] for c in containers}
    assert touched["fixable"]["allowPrivilegeEscalation"] is False
    assert "allowPrivilegeEscalation" not in touched.get("privileged", {})
    assert "allowPrivilegeEscalation" not in touched.get("sysadmin", {})
    assert "allowPrivilegeEscalation" not in touched.get("explicit-true", {})
    unfixed = {(f.check, f.container) for f in result.unfixed}
    assert {("privileged", "privileged"), ("allowPrivilegeEscalation", "privileged")} <= unfixed
    assert ("allowPrivilegeEscalation", "explicit-true") in unfixed


def test_explicit_values_stay_and_are_reported() -> None:
    result = _plan("capabilities-added")
    patched = {c["name"] for c in result.patch["spec"]["template"]["spec"]["containers"]}
    changes = {c.field for c in result.changes if c.check == "capabilities_restricted"}
    # drops-some has an explicit drop list without ALL: manual, not rewritten.
    assert not any("[drops-some]" in field for field in changes)
    assert "spec.template.spec.containers[app].securityContext.capabilities" in changes
    assert "app" in patched
    fixed = apply_patch(load("capabilities-added"), result.patch)
    app = fixed["spec"]["template"]["spec"]["containers"][0]
    assert app["securityContext"]["capabilities"] == {"add": ["NET_RAW", "CHOWN"], "drop": ["ALL"]}


def test_pod_level_seccomp_uses_the_localhost_setting() -> None:
    remediation = Remediation(
        risk_classes=["safe"],
        security_context={"seccomp_profile": "Localhost", "localhost_profile": "p.json"},
    )
    result = _plan("seccomp-containers-only", remediation)
    assert result.patch["spec"]["template"]["spec"]["securityContext"] == {
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}
    }


def test_explicit_container_seccomp_is_not_overridden() -> None:
    result = _plan("seccomp-container-override")
    assert not [c for c in result.changes if c.check == "seccompProfile_restricted"]
    assert ("seccompProfile_restricted", "unconfined") in {(f.check, f.container) for f in result.unfixed}


def test_windows_pods_get_no_linux_only_fields() -> None:
    result = _plan("windows-pod")
    assert result.patch == {
        "spec": {"securityContext": {"runAsNonRoot": True}, "automountServiceAccountToken": False}
    }


def test_run_as_non_root_is_not_filled_over_uid_zero() -> None:
    result = _plan("run-as-root-uid")
    assert not [c for c in result.changes if c.check == "runAsNonRoot"]


def test_labels_go_on_the_workload_metadata_only() -> None:
    policy = policy_for_profile("baseline", required_labels=["team", "owner"], label_defaults=["team"])
    labels = Labels(required=["team", "owner"], workload_defaults={"team": "shop"})
    result = _plan("unhardened", SAFE, labels, policy)
    assert result.patch == {"metadata": {"labels": {"team": "shop"}}}
    assert [(f.check, f.field) for f in result.unfixed] == [("requiredLabels", "metadata.labels[owner]")]


def test_classes_not_allowed_stay_unfixed() -> None:
    wl = workload("unhardened")
    findings = audit(wl, POLICY).findings
    result = plan(wl, findings, Remediation(risk_classes=[]), NO_LABELS)
    assert result.patch == {} and result.changes == () and result.unfixed == findings


def test_plan_is_deterministic_whatever_the_finding_order() -> None:
    wl = workload("unhardened")
    findings = audit(wl, POLICY).findings
    forward = plan(wl, findings, BOTH, NO_LABELS)
    backward = plan(wl, findings[::-1], BOTH, NO_LABELS)
    assert forward.patch == backward.patch
    assert list(forward.patch) == list(backward.patch)
    assert forward.changes == backward.changes


def test_apply_patch_merges_by_name_and_deletes_with_none() -> None:
    obj = {
        "spec": {
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
            "nodeSelector": {"k": "v"},
        }
    }
    patched = apply_patch(
        obj,
        {
            "spec": {
                "containers": [{"name": "b", "securityContext": {"x": 1}}, {"name": "c"}],
                "nodeSelector": None,
            }
        },
    )
    assert patched == {
        "spec": {
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "y", "securityContext": {"x": 1}},
                {"name": "c"},
            ]
        }
    }
    assert obj["spec"]["containers"][1] == {"name": "b", "image": "y"}


def test_merge_is_a_strategic_merge_that_changes_neither_argument() -> None:
    current = {
        "spec": {
            "containers": [{"name": "a", "ports": [1]}, {"name": "b"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "hostNetwork": True,
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "b", "securityContext": {"privileged": False}}, {"name": "c"}],
            "volumes": [{"name": "w"}],  # not a container list: replaced, not merged by name
            "hostNetwork": None,  # deletes
        }
    }
    before = copy.deepcopy((current, patch))
    assert merge(current, patch) == {
        "spec": {
            "containers": [
                {"name": "a", "ports": [1]},
                {"name": "b", "securityContext": {"privileged": False}},
                {"name": "c"},
            ],
            "volumes": [{"name": "w"}],
        }
    }
    assert (current, patch) == before
    assert apply_patch(current, patch) == merge(current, patch)


def test_merging_two_patches_keeps_a_deletion() -> None:
    """Applying the merged patch equals applying one after the other, deletions included."""
    obj = {"spec": {"a": 1, "b": 2, "containers": [{"name": "x"}]}}
    first = {"spec": {"c": 3, "containers": [{"name": "x", "s": {"p": 1}}]}}
    second = {"spec": {"a": None, "containers": [{"name": "x", "s": {"q": 2}}, {"name": "y"}]}}
    merged = merge_patches(first, second)
    assert merged["spec"]["a"] is None
    assert apply_patch(obj, merged) == apply_patch(apply_patch(obj, first), second)
