"""`Cluster`: the calls the operator makes, one method per object and verb, named by their I/O
(`patch_*`, `create_*`, `replace_*`, `delete_*`, `read_*`, `list_*`, `post_event`), each a path
and a body over the transport."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kube_baseline.controller.cluster.transport import (
    APPLY,
    MERGE,
    STRATEGIC_MERGE,
    ApiError,
    resource_version_of,
)
from kube_baseline.controller.cluster.watch import ListWatch
from kube_baseline.engine.models import GROUP, PLURAL, VERSION
from kube_baseline.engine.reports import ReportApi
from kube_baseline.engine.workloads import KINDS

logger = logging.getLogger("kube_baseline.controller.cluster")


class Cluster(ListWatch):
    """An async API client for the few calls the operator makes."""

    # --- workloads ---

    async def patch_workload(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> str:
        """One strategic-merge patch of a workload (its pod template and labels); returns the
        resourceVersion it produced. The patched object is not decoded: the watch brings it."""
        prefix, plural = KINDS[kind].api_prefix, KINDS[kind].plural
        path = f"{prefix}/namespaces/{namespace}/{plural}/{name}"
        raw = await self._write("PATCH", path, kind, body=patch, content_type=STRATEGIC_MERGE)
        assert raw is not None
        return resource_version_of(raw)

    # --- namespaces ---

    async def patch_namespace(self, name: str, patch: dict[str, Any]) -> None:
        await self._write(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            "Namespace",
            body=patch,
            content_type=MERGE,
            ok_missing=True,
        )

    # --- NetworkPolicies ---

    async def create_network_policy(self, body: dict[str, Any]) -> None:
        """Create; nothing when it exists already or the namespace is gone (the next event settles it)."""
        ns = body["metadata"]["namespace"]
        path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
        await self._write("POST", path, "NetworkPolicy", body=body, ok_missing=True, ok_conflict=True)

    async def replace_network_policy(self, body: dict[str, Any], resource_version: str) -> None:
        meta = body["metadata"]
        path = f"/apis/networking.k8s.io/v1/namespaces/{meta['namespace']}/networkpolicies/{meta['name']}"
        body = {**body, "metadata": {**meta, "resourceVersion": resource_version}}
        await self._write("PUT", path, "NetworkPolicy", body=body, ok_missing=True, ok_conflict=True)

    async def delete_network_policy(self, namespace: str, name: str) -> None:
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"
        await self._write("DELETE", path, "NetworkPolicy", ok_missing=True)

    # --- baselines ---

    async def patch_baseline_status(self, name: str, status: dict[str, Any]) -> bool:
        """False when the baseline is gone."""
        path = f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}/status"
        written = await self._write(
            "PATCH",
            path,
            "SecurityBaseline/status",
            body={"status": status},
            content_type=MERGE,
            ok_missing=True,
        )
        return written is not None

    # --- events ---

    async def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        now: datetime | None = None,
    ) -> None:
        """A core/v1 Event about `involved` (an object body). Cluster-scoped objects: namespace default."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "reportingInstance": self.field_manager,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._write("POST", f"/api/v1/namespaces/{namespace}/events", "Event", body=event)
        except ApiError as exc:  # an Event is never worth failing the work it reports
            logger.warning("Posting Event failed: %s", exc)

    # --- following a remediation rollout (controller.rollout_guard) ---

    async def read_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The whole workload, status and managedFields included; None when it is gone."""
        prefix, plural = KINDS[kind].api_prefix, KINDS[kind].plural
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        items = await self._list_items(path, {"fieldSelector": f"metadata.name={name}"})
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", prefix.split("/", 2)[-1])
            return item
        return None

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return await self._list_items(
            f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": label_selector}
        )

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """None when it does not exist; ApiError(404) when the namespace does not."""
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        items = await self._list_items(path, {"fieldSelector": f"metadata.name={name}"})
        return items[0] if items else None

    async def create_config_map(self, body: dict[str, Any]) -> None:
        """Create; nothing when it exists already."""
        path = f"/api/v1/namespaces/{body['metadata']['namespace']}/configmaps"
        await self._write("POST", path, "ConfigMap", body=body, ok_conflict=True)

    async def patch_config_map_data(self, namespace: str, name: str, data: Mapping[str, str | None]) -> bool:
        """Set (or, with None, remove) keys of a ConfigMap's data; False when it is gone."""
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        written = await self._write(
            "PATCH", path, "ConfigMap", body={"data": dict(data)}, content_type=MERGE, ok_missing=True
        )
        return written is not None

    # --- generated admission policies: server-side apply, delete, discovery (reads: transport) ---

    async def apply(self, path: str, body: dict[str, Any], label: str) -> dict[str, Any]:
        """Server-side apply of the whole object under our field manager, forced (we own it):
        the stored object as the API server returns it."""
        raw = await self._write("PATCH", path, label, body=body, content_type=APPLY, params={"force": "true"})
        assert raw is not None
        result: dict[str, Any] = json.loads(raw)
        return result

    async def delete(self, path: str, label: str) -> None:
        """Delete; nothing when it is gone already."""
        await self._write("DELETE", path, label, ok_missing=True)

    async def serves(self, group_version: str, plural: str) -> bool:
        """Discovery: whether the API server serves `plural` in `group_version` (e.g.
        "admissionregistration.k8s.io/v1beta1", "mutatingadmissionpolicies")."""
        found = await self.read(f"/apis/{group_version}")
        return any(r.get("name") == plural for r in (found or {}).get("resources") or ())

    async def replace(self, path: str, body: dict[str, Any], label: str) -> None:
        """PUT the whole object (body carries metadata.resourceVersion); nothing on 404/409, the
        next event settles it."""
        await self._write("PUT", path, label, body=body, ok_missing=True, ok_conflict=True)

    # --- Per-workload reports (report_writer): PolicyReports or OpenReports ---

    @staticmethod
    def _report_path(api: ReportApi, namespace: str, name: str) -> str:
        return f"/apis/{api.api_version}/namespaces/{namespace}/{api.plural}/{name}"

    async def apply_report(self, api: ReportApi, body: dict[str, Any]) -> None:
        """Server-side apply of one report (we own it: forced); nothing when its namespace is gone."""
        meta = body["metadata"]
        await self._write(
            "PATCH",
            self._report_path(api, meta["namespace"], meta["name"]),
            api.kind,
            body=body,
            content_type=APPLY,
            params={"force": "true"},
            ok_missing=True,
        )

    async def delete_report(self, api: ReportApi, namespace: str, name: str) -> None:
        await self._write("DELETE", self._report_path(api, namespace, name), api.kind, ok_missing=True)

    async def list_reports(self, api: ReportApi, label_selector: str) -> AsyncIterator[dict[str, Any]]:
        """Every report of that API (all namespaces) matching the selector, a page at a time."""
        path = f"/apis/{api.api_version}/{api.plural}"
        async for page in self._list_pages(path, {"labelSelector": label_selector}):
            for item in page.get("items") or ():
                yield item
