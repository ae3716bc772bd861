"""A second kwok for the rollout-guard tests: it manages one tainted node of its own with the
cluster's usual stages plus stages that make pods fail the way a root-only image fails under
`runAsNonRoot` (CreateContainerConfigError), selected by a test label AND the securityContext
field the fix sets, so the failure appears only once kube-baseline's fix is in the template.

Started from the test side (the control plane's own kwok is left as it is): its pods are pinned
to the node by a nodeSelector and a toleration (see `pin`)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FAIL_LABEL = "kube-baseline.io/kwok-fail"
NODE = "kwok-guard-0"
TAINT_KEY = "kube-baseline.io/guard-test"
ANNOTATION = ("kwok.x-k8s.io/node", "guard")

_FAIL_STATUS = """
phase: Pending
conditions:
- type: Initialized
  status: "True"
- type: Ready
  status: "False"
  reason: ContainersNotReady
- type: ContainersReady
  status: "False"
  reason: ContainersNotReady
- type: PodScheduled
  status: "True"
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: CreateContainerConfigError
      message: "container has runAsNonRoot and image will run as root"
{{ end }}
"""


def _stage(name: str, label_value: str, delay_ms: int) -> dict[str, Any]:
    stage: dict[str, Any] = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            # Chosen over pod-ready (weight 0) whenever both match.
            "weight": 1000,
            "selector": {
                "matchLabels": {FAIL_LABEL: label_value},
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".spec.securityContext.runAsNonRoot", "operator": "In", "values": ["true"]},
                ],
            },
            "next": {"statusTemplate": _FAIL_STATUS},
        },
    }
    if delay_ms:
        stage["spec"]["delay"] = {"durationMilliseconds": delay_ms}
    return stage


STAGES = [
    _stage("pod-run-as-non-root-fails", "run-as-non-root", 0),
    # The same after 8 s: a window to restart the operator in while the rollout is in flight.
    _stage("pod-run-as-non-root-fails-slowly", "run-as-non-root-slow", 8000),
]


def pin(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """Run the pods on the guard kwok's node (and only there)."""
    return {
        **pod_spec,
        "nodeSelector": {"kubernetes.io/hostname": NODE},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


@contextlib.contextmanager
def guard_kwok(kube: Any, workdir: Path) -> Iterator[str]:
    """Start the second kwok and its node; yields the node name; stops and removes both."""
    assert kube.bin_dir is not None
    usual = (kube.bin_dir / "kwok-stages.yaml").read_text()
    config = workdir / "guard-kwok-stages.yaml"
    config.write_text(usual + "".join("\n---\n" + json.dumps(s) for s in STAGES))
    log = (workdir / "guard-kwok.log").open("wb")
    key, value = ANNOTATION
    proc = subprocess.Popen(
        [
            str(kube.bin_dir / "kwok"),
            f"--kubeconfig={kube.kubeconfig}",
            f"--config={config}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            "--cidr=10.0.2.0/24",
            "--node-ip=10.0.0.3",
            "--node-lease-duration-seconds=40",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"},
        },
        "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
    }
    try:
        kube.kubectl("create", "-f", "-", input=json.dumps(node))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = kube.kubectl(
                "get", "node", NODE, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
            ).stdout
            if ready == "True":
                break
            assert proc.poll() is None, (workdir / "guard-kwok.log").read_text()
            time.sleep(0.3)
        else:
            raise AssertionError("the guard kwok node did not become Ready")
        yield NODE
    finally:
        kube.kubectl("delete", "node", NODE, "--ignore-not-found", "--wait=false", check=False)
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        log.close()
