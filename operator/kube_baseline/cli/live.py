"""Read the live objects of a cluster for `check --cluster` and `plan --cluster` (list only).

What is read: the workloads of every kind the engine knows, the Namespaces (their labels decide
governance, as in the operator) and the NetworkPolicies. Objects a workload controller owns
(a Deployment's ReplicaSets, a Job's Pods) are left out, as the operator leaves them: their
controller's template is what gets checked and fixed. RBAC needed: get and list on those.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from kube_baseline.cli.kubeclient import Client
from kube_baseline.cli.manifests import Manifest
from kube_baseline.cli.scope import namespace_info
from kube_baseline.engine.desired import NamespaceInfo, is_attributed_to_controller
from kube_baseline.engine.workloads import KINDS

NETWORK_POLICIES = ("/apis/networking.k8s.io/v1", "networkpolicies")


def collection(prefix: str, plural: str, namespace: str | None) -> str:
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of a live object of a workload kind (engine.workloads.KINDS) or a NetworkPolicy."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    prefix, plural = (
        NETWORK_POLICIES if kind == "NetworkPolicy" else (KINDS[kind].api_prefix, KINDS[kind].plural)
    )
    return f"{collection(prefix, plural, str(meta.get('namespace') or ''))}/{meta.get('name')}"


class Progress:
    """Counts on standard error, one rewritten line (only when enabled)."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.shown = False

    def __call__(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[2K{text}")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


@dataclass
class Live:
    context: str
    workloads: list[Manifest]
    namespaces: list[NamespaceInfo]
    namespace_objects: dict[str, dict[str, Any]]
    network_policies: dict[str, list[dict[str, Any]]]


def _items(client: Client, prefix: str, plural: str, namespace: str | None) -> Iterator[dict[str, Any]]:
    yield from client.list(collection(prefix, plural, namespace))


def read(client: Client, namespace: str | None, progress: Callable[[str], None]) -> Live:
    """List what the evaluation needs; raises kubeclient.ClusterError (RBAC, connection)."""
    context = client.conn.context
    if namespace:
        ns_objects = [client.request("GET", f"/api/v1/namespaces/{namespace}")]
        ns_objects[0].setdefault("kind", "Namespace")
    else:
        ns_objects = list(client.list("/api/v1/namespaces"))
    namespaces = [info for obj in ns_objects if (info := namespace_info(obj)) is not None]
    policies: dict[str, list[dict[str, Any]]] = {}
    for policy in _items(client, *NETWORK_POLICIES, namespace):
        policies.setdefault(str((policy.get("metadata") or {}).get("namespace") or ""), []).append(policy)
    workloads: list[Manifest] = []
    listed = 0
    for kind, table in KINDS.items():
        plural = table.plural
        for obj in _items(client, table.api_prefix, plural, namespace):
            listed += 1
            if listed % 500 == 0:
                progress(f"listed {listed} workload objects ({plural})")
            if is_attributed_to_controller(obj):
                continue
            meta = obj.get("metadata") or {}
            origin = f"{kind}/{meta.get('namespace', '')}/{meta.get('name', '')}"
            workloads.append(Manifest(f"cluster:{context}", len(workloads), (), 0, obj, origin=origin))
    progress(f"listed {listed} workload objects, {len(workloads)} to evaluate")
    by_name = {str((o.get("metadata") or {}).get("name")): o for o in ns_objects}
    return Live(context, workloads, namespaces, by_name, policies)
