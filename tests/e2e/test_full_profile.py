"""The full profile runs workloads: Deployment -> ReplicaSet (kube-controller-manager) ->
Pods -> scheduled (kube-scheduler) -> Running on a kwok node; deletion cascades (GC)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.e2e


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_deployment_pods_run_on_kwok_nodes(kube_full: Any, namespace: Callable[..., str]) -> None:
    ns = namespace()
    labels = {"app": "web"}
    with kube_full.api() as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
                    },
                },
            },
        )

        def running_pods() -> list[client.V1Pod]:
            pods = core.list_namespaced_pod(ns, label_selector="app=web").items
            running = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
            return running if len(running) == 2 else []

        pods = wait_for(running_pods, what="2 Running pods")
        if kube_full.profile == "full":
            kwok_nodes = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items}
            assert {p.spec.node_name for p in pods} <= kwok_nodes

        replica_sets = apps.list_namespaced_replica_set(ns).items
        assert [rs.metadata.owner_references[0].name for rs in replica_sets] == ["web"]
        wait_for(
            lambda: apps.read_namespaced_deployment("web", ns).status.ready_replicas == 2,
            what="the Deployment to report 2 ready replicas",
        )

        # The garbage collector removes the ReplicaSet and its Pods after the Deployment.
        apps.delete_namespaced_deployment("web", ns, propagation_policy="Background")
        wait_for(
            lambda: not apps.list_namespaced_replica_set(ns).items and not core.list_namespaced_pod(ns).items,
            what="the ReplicaSet and Pods to be garbage-collected",
        )
