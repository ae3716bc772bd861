"""Where pods run: the operator's small view for the tierCoTenancy check.

Kept from the operator's own Pod watch (`reconcile.watch_workloads` hands every Pod event here,
including the Pods of controllers, which the workload store leaves out) and a Node watch: per
running pod only its node name, per node only its labels. Names are interned, so a node's or a
namespace's name is stored once however many pods refer to it; bench/placement_memory.py
measures the whole view at 10,000 pods.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kube_baseline.controller.cluster import Cluster
from kube_baseline.engine.tiers import NodeUse

logger = logging.getLogger("kube_baseline.controller.placement")

PodKey = tuple[str, str]  # namespace, name
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


def running_node(obj: Mapping[str, Any]) -> str:
    """The node a pod is bound to while it may run there ("" when unscheduled or finished)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    phase = status.get("phase") if isinstance(status, dict) else None
    if not isinstance(node, str) or not node or phase in _DONE_PHASES:
        return ""
    return node


class PlacementView:
    """Running pods' node names and nodes' labels; changed only through its methods."""

    def __init__(self) -> None:
        self._node_of: dict[PodKey, str] = {}
        # node -> namespace -> running pods there
        self._by_node: dict[str, dict[str, int]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._uids: dict[str, str] = {}  # node -> uid (Events about the node refer to it)
        # watch scope (namespace, or "" for the cluster) -> pods seen by its current listing
        self._listing: dict[str, set[PodKey]] = {}
        self._nodes_listing: set[str] | None = None

    def __len__(self) -> int:
        return len(self._node_of)

    # --- pods ---

    def pod_event(self, scope: str | None, what: str, obj: Mapping[str, Any]) -> bool:
        """One event of a Pod watch (scope: its namespace, None for the whole cluster), as
        `Cluster.watch_kind` yields them. True if where pods run changed."""
        scope = scope or ""
        if what == "LISTING":
            self._listing[scope] = set()
            return False
        if what == "SYNCED":
            seen = self._listing.pop(scope, set())
            stale = [k for k in self._node_of if (not scope or k[0] == scope) and k not in seen]
            for key in stale:
                self._move(key, "")
            return bool(stale)
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not isinstance(namespace, str) or not isinstance(name, str):
            return False
        key = (sys.intern(namespace), name)
        if scope in self._listing:
            self._listing[scope].add(key)
        return self._move(key, "" if what == "DELETED" else running_node(obj))

    def _move(self, key: PodKey, node: str) -> bool:
        old = self._node_of.get(key, "")
        if old == node:
            return False
        namespace = key[0]
        if old:
            counts = self._by_node[old]
            counts[namespace] -= 1
            if not counts[namespace]:
                del counts[namespace]
                if not counts:
                    del self._by_node[old]
        if node:
            node = sys.intern(node)
            self._node_of[key] = node
            counts = self._by_node.setdefault(node, {})
            counts[namespace] = counts.get(namespace, 0) + 1
        else:
            del self._node_of[key]
        return True

    # --- nodes ---

    def node_event(self, what: str, obj: Mapping[str, Any]) -> bool:
        """One event of the Node watch. True if a node's labels changed (or it came or went)."""
        if what == "LISTING":
            self._nodes_listing = set()
            return False
        if what == "SYNCED":
            seen, self._nodes_listing = self._nodes_listing or set(), None
            stale = [n for n in self._labels if n not in seen]
            for gone in stale:
                del self._labels[gone]
                self._uids.pop(gone, None)
            return bool(stale)
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str):
            return False
        name = sys.intern(name)
        if self._nodes_listing is not None:
            self._nodes_listing.add(name)
        if what == "DELETED":
            self._uids.pop(name, None)
            return self._labels.pop(name, None) is not None
        self._uids[name] = str(meta.get("uid") or "")
        raw = meta.get("labels")
        labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if self._labels.get(name) == labels:
            return False
        self._labels[name] = labels
        return True

    # --- reading ---

    def node_uid(self, name: str) -> str:
        return self._uids.get(name, "")

    def nodes(self) -> list[NodeUse]:
        """Every node running pods, with its labels and the namespaces of those pods."""
        return [
            NodeUse(name=node, labels=self._labels.get(node, {}), namespaces=frozenset(counts))
            for node, counts in sorted(self._by_node.items())
        ]


async def watch_nodes(cluster: Cluster, view: PlacementView, changed: Callable[[], None]) -> None:
    """Keep the view's node labels in step with the API server; call `changed` when they change."""
    async for what, obj in cluster.watch_nodes():
        try:
            if view.node_event(what, obj):
                changed()
        except Exception:  # one malformed Node must not stop the watch
            logger.exception("Storing a Node failed")
