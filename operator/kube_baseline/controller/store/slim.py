"""What the operator keeps of an object in memory: a workload's audit view, an index's slim
copy (identity, labels, owners, managers, spec), never status or managedFields' contents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kube_baseline.engine.workloads import Workload, audit_view, workload_of


def _managers(meta: Mapping[str, Any]) -> list[dict[str, str]]:
    names = sorted({m.get("manager") for m in meta.get("managedFields") or () if m.get("manager")})
    return [{"manager": m} for m in names]


def slim_workload(body: Mapping[str, Any], workload: Workload | None = None) -> dict[str, Any]:
    """What the store keeps of a workload: its audit view (identity, labels, owners and the
    security-relevant fields only) plus the names of the managers that wrote to it. Pass the
    body's Workload when it is already at hand."""
    workload = workload or workload_of(dict(body))
    if workload is None:
        return slim_object(body)
    view = audit_view(workload)
    if managers := _managers(body.get("metadata") or {}):
        view["metadata"]["managedFields"] = managers
    return view


def slim_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the index keeps of an object: identity, labels, owners, managers and spec (no status)."""
    meta = body.get("metadata") or {}
    slim = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "generation") if k in meta}
    for key in ("labels", "ownerReferences"):
        if meta.get(key):
            slim[key] = meta[key]
    if managers := _managers(meta):
        slim["managedFields"] = managers
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": slim,
        "spec": body.get("spec") or {},
    }
