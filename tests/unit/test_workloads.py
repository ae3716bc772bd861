"""workloads: the pod spec and its path in every workload kind, *List kinds, owners."""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import iter_objects, load

from kube_baseline.engine.workloads import WORKLOAD_KINDS, controller_owner, workload_of

POD_SPEC = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}

KINDS: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("v1", "Pod", {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}, ("spec",)),
    ("apps/v1", "Deployment", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
    ("apps/v1", "ReplicaSet", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
    ("apps/v1", "StatefulSet", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
    ("apps/v1", "DaemonSet", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
    ("batch/v1", "Job", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
    (
        "batch/v1",
        "CronJob",
        {"spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}},
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
    ("v1", "ReplicationController", {"spec": {"template": TEMPLATE}}, ("spec", "template", "spec")),
]


def test_kinds_table_covers_every_workload_kind() -> None:
    assert {kind for _, kind, _, _ in KINDS} == WORKLOAD_KINDS


@pytest.mark.parametrize(("api_version", "kind", "body", "path"), KINDS, ids=[k[1] for k in KINDS])
def test_workload_of_finds_the_pod_spec(
    api_version: str, kind: str, body: dict[str, Any], path: tuple[str, ...]
) -> None:
    meta = {"name": "n", "namespace": "ns", **body.get("metadata", {})}
    obj = {"apiVersion": api_version, "kind": kind, **body, "metadata": meta}
    wl = workload_of(obj)
    assert wl is not None
    assert (wl.kind, wl.namespace, wl.name, wl.pod_path) == (kind, "ns", "n", path)
    assert wl.pod_spec is POD_SPEC
    assert wl.pod_labels == {"app": "x"}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": "oops"}}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Deployment", "spec": {"template": TEMPLATE}},
        {"kind": "CronJob", "spec": {"template": TEMPLATE}},
        None,
        "text",
        [1, 2],
    ],
)
def test_workload_of_rejects_non_workloads(obj: Any) -> None:
    assert workload_of(obj) is None


def test_missing_namespace_is_empty() -> None:
    wl = workload_of({"kind": "Pod", "metadata": {"name": "p"}, "spec": POD_SPEC})
    assert wl is not None and wl.namespace == "" and wl.pod_labels == {}


def test_iter_objects_flattens_nested_lists_in_order() -> None:
    objects = list(iter_objects(load("deployment-list")))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "first"),
        ("ConfigMap", "not-a-workload"),
        ("Job", "second"),
    ]
    assert [w.name for o in objects if (w := workload_of(o))] == ["first", "second"]


@pytest.mark.parametrize("doc", [None, "scalar", [1], 3])
def test_iter_objects_ignores_non_mappings(doc: Any) -> None:
    assert list(iter_objects(doc)) == []


def test_iter_objects_yields_a_plain_object_and_a_list_without_items() -> None:
    plain = {"kind": "Pod"}
    odd = {"kind": "PodList", "items": None}
    assert list(iter_objects(plain)) == [plain]
    assert list(iter_objects(odd)) == [odd]


def test_controller_owner() -> None:
    owner = {"kind": "ReplicaSet", "name": "rs", "controller": True}
    obj = {"metadata": {"ownerReferences": [{"kind": "Foo", "name": "f"}, owner]}}
    assert controller_owner(obj) is owner
    assert controller_owner({"metadata": {"ownerReferences": [{"kind": "Foo", "controller": False}]}}) is None
    assert controller_owner({}) is None
