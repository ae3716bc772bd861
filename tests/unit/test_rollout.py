"""engine.rollout: the rollout verdict in kubectl's order plus pod signals, and the undo patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kube_baseline.engine.models import Rollout
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.rollout import (
    causes_rollout,
    format_field,
    new_pods,
    parse_field,
    rollout_state,
    signal_of,
    template_hash,
    undo_patch,
)

SETTINGS = Rollout(deadline_seconds=60, restart_threshold=3)
NON_ROOT = "spec.template.spec.securityContext.runAsNonRoot"
CHANGES = {NON_ROOT: True}


def deployment(generation: int = 2, spec_replicas: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "generation": generation},
        "spec": {"replicas": spec_replicas, "template": {"spec": {"containers": [{"name": "app"}]}}},
        "status": status,
    }


def pod(name: str, *, new: bool = True, waiting: str = "", restarts: int = 0) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    spec: dict[str, Any] = {"containers": [{"name": "app"}]}
    if new:
        spec["securityContext"] = {"runAsNonRoot": True}
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {"containerStatuses": [{"name": "app", "state": state, "restartCount": restarts}]},
    }


DONE = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
ROLLING = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}


@pytest.mark.parametrize(
    ("obj", "pods", "elapsed", "verdict", "reason"),
    [
        # generation first: a stale status concludes nothing, even with failing pods
        (deployment(observedGeneration=1), [pod("a", waiting="CrashLoopBackOff")], 5, "Progressing", ""),
        (deployment(), [], 5, "Progressing", "observe"),
        (deployment(), [], 30, "Unverified", "no controller has ever observed"),
        (deployment(observedGeneration=1), [], 59, "Progressing", ""),
        (deployment(observedGeneration=1), [], 60, "Unverified", "no controller observed"),
        (deployment(spec_replicas=0), [], 0, "Unverified", "replicas is 0"),
        ({**deployment(**ROLLING), "spec": {"paused": True, "replicas": 2}}, [], 0, "Unverified", "paused"),
        # pod signals before the counts
        (
            deployment(**ROLLING),
            [pod("a", waiting="CreateContainerConfigError")],
            1,
            "Failed",
            "CreateContainer",
        ),
        (deployment(**ROLLING), [pod("a", restarts=3)], 1, "Failed", "3 restarts"),
        (deployment(**ROLLING), [pod("a", restarts=2)], 1, "Progressing", "1 of 2 replicas updated"),
        # an old pod failing is not the fix's doing
        (deployment(**ROLLING), [pod("old", new=False, waiting="CrashLoopBackOff")], 1, "Progressing", ""),
        (
            deployment(**ROLLING, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]),
            [],
            1,
            "Failed",
            "ProgressDeadlineExceeded",
        ),
        (deployment(**{**DONE, "replicas": 3}), [], 1, "Progressing", "pending termination"),
        (deployment(**{**DONE, "availableReplicas": 1}), [], 1, "Progressing", "1 of 2 updated"),
        (deployment(**DONE), [pod("a"), pod("b")], 1, "Succeeded", ""),
        (deployment(**{**DONE, "availableReplicas": 1}), [pod("a")], 60, "Failed", "not available"),
        (deployment(**{**DONE, "updatedReplicas": 0}), [], 60, "Unverified", "no new pod"),
    ],
)
def test_rollout_state_in_kubectl_order(
    obj: dict[str, Any], pods: list[dict[str, Any]], elapsed: float, verdict: str, reason: str
) -> None:
    state = rollout_state(obj, pods, CHANGES, SETTINGS, elapsed=elapsed)
    assert state.verdict == verdict
    assert reason in state.reason


def test_statefulset_and_daemonset() -> None:
    sts: dict[str, Any] = {
        "kind": "StatefulSet",
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 3,
            "readyReplicas": 2,
            "currentRevision": "a",
            "updateRevision": "b",
        },
    }
    assert rollout_state(sts, [], CHANGES, SETTINGS, elapsed=1).verdict == "Progressing"
    sts["status"]["currentRevision"] = "b"
    assert rollout_state(sts, [], CHANGES, SETTINGS, elapsed=1).verdict == "Succeeded"
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_state(sts, [], CHANGES, SETTINGS, elapsed=1).verdict == "Unverified"
    ds: dict[str, Any] = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "spec": {},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1},
    }
    assert rollout_state(ds, [], CHANGES, SETTINGS, elapsed=1).verdict == "Progressing"
    ds["status"] |= {"updatedNumberScheduled": 2, "numberAvailable": 2}
    assert rollout_state(ds, [], CHANGES, SETTINGS, elapsed=1).verdict == "Succeeded"


def test_new_pods_and_what_causes_a_rollout() -> None:
    assert [p["metadata"]["name"] for p in new_pods([pod("a"), pod("b", new=False)], CHANGES)] == ["a"]
    assert causes_rollout("Deployment", CHANGES)
    assert not causes_rollout("Deployment", {"metadata.labels[team]": "x"})  # no template change
    assert not causes_rollout("CronJob", {"spec.jobTemplate.spec.template.spec.x": 1})


@pytest.mark.parametrize(
    "text",
    [
        "spec.template.spec.containers[app].securityContext.allowPrivilegeEscalation",
        "metadata.labels[app.kubernetes.io/team]",
        "spec.template.spec.securityContext.seccompProfile",
    ],
)
def test_field_paths_round_trip(text: str) -> None:
    assert format_field(parse_field(text)) == text


# --- undo --------------------------------------------------------------------------------------

BEFORE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"securityContext": {}, "containers": [{"name": "app", "image": "nginx"}]},
        }
    },
}
FIX = {
    "spec": {
        "template": {
            "spec": {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": False}}],
            }
        }
    }
}
# What the API server records for our Update (fields that changed; "." for maps it created).
OURS = {
    "manager": "kube-baseline",
    "operation": "Update",
    "fieldsV1": {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {"f:securityContext": {".": {}, "f:allowPrivilegeEscalation": {}}}
                    },
                    "f:securityContext": {
                        "f:runAsNonRoot": {},
                        "f:seccompProfile": {".": {}, "f:type": {}},
                    },
                }
            }
        }
    },
}
EXPECTED = {
    "spec.template.spec.securityContext.runAsNonRoot": True,
    "spec.template.spec.securityContext.seccompProfile": {"type": "RuntimeDefault"},
    "spec.template.spec.containers[app].securityContext.allowPrivilegeEscalation": False,
}


def fixed(*managed: dict[str, Any]) -> dict[str, Any]:
    obj = apply_patch(copy.deepcopy(BEFORE), FIX)
    obj["metadata"]["managedFields"] = [OURS, *managed]
    return obj


@pytest.mark.parametrize("expected", [EXPECTED, None])
def test_undo_restores_the_template_exactly(expected: dict[str, Any] | None) -> None:
    undo = undo_patch(fixed(), "kube-baseline", expected)
    assert not undo.kept
    restored = apply_patch(fixed(), undo.patch)
    assert restored["spec"] == BEFORE["spec"]  # the container's securityContext went whole
    assert template_hash(restored) == template_hash(BEFORE)
    assert len(undo.removed) == 3


def test_undo_leaves_a_field_changed_since() -> None:
    obj = fixed({"manager": "kubectl-patch", "operation": "Update", "fieldsV1": {}})
    obj["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    undo = undo_patch(obj, "kube-baseline", EXPECTED)
    assert "changed since" in undo.kept["spec.template.spec.securityContext.runAsNonRoot"]
    assert "runAsNonRoot" not in undo.patch["spec"]["template"]["spec"]["securityContext"]
    assert undo.patch["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] is None


def test_revert_refuses_a_field_someone_set_inside_ours() -> None:
    other = {
        "manager": "kubectl-patch",
        "operation": "Update",
        "fieldsV1": {
            "f:spec": {
                "f:template": {
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"app"}': {"f:securityContext": {"f:readOnlyRootFilesystem": {}}}
                        }
                    }
                }
            }
        },
    }
    obj = fixed(other)
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = True
    undo = undo_patch(obj, "kube-baseline")
    assert (
        "kubectl-patch"
        in undo.kept["spec.template.spec.containers[app].securityContext.readOnlyRootFilesystem"]
    )
    restored = apply_patch(obj, undo.patch)
    # ours is removed, theirs stays, and the map they now share is not deleted
    assert restored["spec"]["template"]["spec"]["containers"][0]["securityContext"] == {
        "readOnlyRootFilesystem": True
    }


def test_nothing_owned_nothing_to_undo() -> None:
    assert undo_patch(BEFORE, "kube-baseline").patch == {}


@pytest.mark.parametrize(
    ("reason", "signal"),
    [
        ("CreateContainerConfigError in pod web-1 container app", "CreateContainerConfigError"),
        ("4 restarts in pod web-1 container app", "Restarts"),
        ("ProgressDeadlineExceeded", "ProgressDeadlineExceeded"),
        ("new pods not available after 300 s", "Other"),
    ],
)
def test_a_failure_reason_has_a_bounded_signal_name(reason: str, signal: str) -> None:
    assert signal_of(reason) == signal
