"""The operator's view of where pods run (controller.placement): pods counted per node and
namespace while they run, relists forget what is gone, node labels kept."""

from __future__ import annotations

from typing import Any

from kube_baseline.controller.placement import PlacementView, running_node


def pod(namespace: str, name: str, node: str = "", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def used(view: PlacementView) -> dict[str, set[str]]:
    return {n.name: set(n.namespaces) for n in view.nodes()}


def test_running_node() -> None:
    assert running_node(pod("a", "p", "n1")) == "n1"
    assert running_node(pod("a", "p", "n1", "Pending")) == "n1"  # bound, starting
    assert running_node(pod("a", "p")) == ""  # not scheduled
    assert running_node(pod("a", "p", "n1", "Succeeded")) == ""
    assert running_node(pod("a", "p", "n1", "Failed")) == ""


def test_pods_move_and_go() -> None:
    view = PlacementView()
    assert not view.pod_event(None, "ADDED", pod("a", "p1"))  # unscheduled: nothing changes
    assert view.pod_event(None, "MODIFIED", pod("a", "p1", "n1"))
    assert view.pod_event(None, "ADDED", pod("b", "p2", "n1"))
    assert not view.pod_event(None, "MODIFIED", pod("b", "p2", "n1"))  # same node: no change
    assert used(view) == {"n1": {"a", "b"}}
    assert view.pod_event(None, "MODIFIED", pod("b", "p2", "n1", "Succeeded"))
    assert used(view) == {"n1": {"a"}}
    assert view.pod_event(None, "DELETED", pod("a", "p1", "n1"))
    assert used(view) == {} and len(view) == 0


def test_relist_forgets_pods_deleted_unseen_in_its_scope_only() -> None:
    view = PlacementView()
    view.pod_event("a", "ADDED", pod("a", "p1", "n1"))
    view.pod_event("a", "ADDED", pod("a", "p2", "n1"))
    view.pod_event("b", "ADDED", pod("b", "p3", "n2"))
    view.pod_event("a", "LISTING", {})
    view.pod_event("a", "LISTED", pod("a", "p1", "n1"))
    assert view.pod_event("a", "SYNCED", {})  # p2 was deleted while not watched
    assert used(view) == {"n1": {"a"}, "n2": {"b"}}


def test_node_labels() -> None:
    view = PlacementView()
    view.pod_event(None, "ADDED", pod("a", "p1", "n1"))
    assert view.nodes()[0].labels == {}  # a node not (yet) seen: no labels
    assert view.node_event("ADDED", node("n1", pool="restricted"))
    assert not view.node_event("MODIFIED", node("n1", pool="restricted"))
    assert view.nodes()[0].labels == {"pool": "restricted"}
    view.node_event("LISTING", {})
    assert view.node_event("SYNCED", {})  # n1 is gone
    assert view.nodes()[0].labels == {}
