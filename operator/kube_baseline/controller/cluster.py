"""The only module that speaks HTTP to the API server: aiohttp, raw JSON dicts, no client models.

`Cluster` takes plain `Credentials` (handlers builds them from Kopf's login result). Every write
carries `fieldManager=kube-baseline`, is bounded by one asyncio.Semaphore created with the
client, and is retried after HTTP 429 honouring Retry-After. Functions are named by their I/O:
`patch_*`, `create_*`, `replace_*`, `delete_*`, `post_event`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from kube_baseline.engine.models import FIELD_MANAGER, GROUP, PLURAL, VERSION
from kube_baseline.engine.reports import REPORT_API_VERSION, REPORT_PLURAL
from kube_baseline.engine.workloads import KINDS

logger = logging.getLogger("kube_baseline.controller.cluster")

# A watch request asks the server to end the stream after this long; then it is renewed.
WATCH_SECONDS = 300
# Objects per LIST page: a page is decoded whole, so this bounds the memory a listing takes.
LIST_PAGE = 100
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"  # JSON is YAML
APPLY = "application/apply-patch+yaml"
MAX_RETRIES = 5
# The API server encodes metadata.resourceVersion right after kind, apiVersion, name, namespace
# and uid, before labels, annotations or anything user-keyed: its first occurrence is the object's.
_FIRST_RESOURCE_VERSION = re.compile(rb'"resourceVersion":"([0-9]+)"')


def resource_version_of(raw: bytes) -> str:
    """metadata.resourceVersion of an object as the API server encodes it, without decoding the
    rest (a workload with its managedFields is tens of kilobytes once decoded)."""
    if found := _FIRST_RESOURCE_VERSION.search(raw):
        return found.group(1).decode()
    return str((json.loads(raw).get("metadata") or {}).get("resourceVersion", ""))


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to reach and authenticate to the API server (no Kopf or client types)."""

    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None  # PEM
    certificate_path: str | None = None
    certificate_data: bytes | None = None  # PEM
    private_key_path: str | None = None
    private_key_data: bytes | None = None  # PEM
    token: str | None = None
    insecure: bool = False


class GoneError(Exception):
    """The resourceVersion a watch started from is too old (HTTP 410): list again."""


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path} failed with HTTP {status}: {body[:500]}")
        self.status = status


def _pem(data: bytes) -> bytes:
    """Kopf may hand certificate data base64-encoded (as in kubeconfig) or as PEM."""
    if data.lstrip().startswith(b"-----"):
        return data
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return data


def build_ssl_context(creds: Credentials, tmpdir: str) -> ssl.SSLContext | bool:
    if not creds.server.startswith("https"):
        return False
    ctx = ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_path:
        ctx.load_verify_locations(cafile=creds.ca_path)
    elif creds.ca_data:
        ctx.load_verify_locations(cadata=_pem(creds.ca_data).decode())
    cert, key = creds.certificate_path, creds.private_key_path
    if cert is None and creds.certificate_data:
        cert = os.path.join(tmpdir, "client.crt")
        with open(cert, "wb") as fh:
            fh.write(_pem(creds.certificate_data))
    if key is None and creds.private_key_data:
        key = os.path.join(tmpdir, "client.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as fh:
            fh.write(_pem(creds.private_key_data))
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Cluster:
    """An async API client for the few calls the operator makes."""

    def __init__(self, creds: Credentials, *, concurrency: int = 32, field_manager: str = FIELD_MANAGER):
        self.creds = creds
        self.field_manager = field_manager
        self._concurrency = concurrency
        self._writes = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        # Requests sent, by "VERB kind" (what the operator cost the API server).
        self.requests: Counter[str] = Counter()
        # Responses by (verb, HTTP status), watch restarts by plural, and when each watch (by
        # plural) last showed life: a list, a stream opening, an event or a bookmark (monotonic).
        self.responses: Counter[tuple[str, int]] = Counter()
        self.watch_restarts: Counter[str] = Counter()
        self.watch_seen: dict[str, float] = {}

    async def open(self) -> None:
        creds = self.creds
        if (creds.certificate_data and not creds.certificate_path) or (
            creds.private_key_data and not creds.private_key_path
        ):  # ssl loads a client certificate from files only; a token login writes nothing
            self._tmp = tempfile.TemporaryDirectory(prefix="kube-baseline-")
        ctx = build_ssl_context(creds, self._tmp.name if self._tmp else "")
        headers = {"User-Agent": "kube-baseline", "Accept": "application/json"}
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        self._session = aiohttp.ClientSession(
            base_url=None,
            headers=headers,
            # Room for every concurrent write plus one long-lived watch per workload kind, and Nodes.
            connector=aiohttp.TCPConnector(ssl=ctx, limit=self._concurrency + len(KINDS) + 1),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _write(
        self,
        method: str,
        path: str,
        label: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        ok_missing: bool = False,
        ok_conflict: bool = False,
    ) -> bytes | None:
        """One write, retried on 429 (Retry-After) and connection errors: the response body
        undecoded (no caller needs more than it can find without decoding), or None for 404 /
        409 when allowed."""
        assert self._session is not None, "Cluster.open() was not called"
        query = {"fieldManager": self.field_manager} if method in ("POST", "PUT", "PATCH") else {}
        query.update(params or {})
        url = self.creds.server.rstrip("/") + path
        delay = 0.5
        for attempt in range(MAX_RETRIES + 1):
            async with self._writes:
                self.requests[f"{method} {label}"] += 1
                try:
                    async with self._session.request(
                        method,
                        url,
                        params=query,
                        json=body,
                        headers={"Content-Type": content_type},
                    ) as resp:
                        raw = await resp.read()
                        self.responses[method, resp.status] += 1
                        if resp.status < 300:
                            return raw
                        text = raw.decode(errors="replace")
                        if (resp.status == 404 and ok_missing) or (resp.status == 409 and ok_conflict):
                            return None
                        if resp.status == 429 or (resp.status >= 500 and attempt < MAX_RETRIES):
                            logger.warning("Retrying %s %s after HTTP %s", method, path, resp.status)
                            retry_after = resp.headers.get("Retry-After", "")
                            delay = float(retry_after) if retry_after.isdigit() else delay
                        else:
                            raise ApiError(resp.status, method, path, text)
                except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                    if attempt >= MAX_RETRIES:
                        raise
                    logger.warning("Retrying %s %s after %s", method, path, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise ApiError(429, method, path, "too many retries")

    # --- reading workloads ---

    async def watch_kind(
        self, kind: str, namespace: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Keep up with every object of a workload kind, forever.

        Yields ("LISTING", {}) when a (re)list starts, ("LISTED", obj) for each object it finds,
        ("SYNCED", {}) when it is complete, then ("ADDED" | "MODIFIED" | "DELETED", obj) for each
        change seen by a watch from the list's resourceVersion. Lists again when that version
        expires (410 Gone) or a stream breaks. Objects always carry kind and apiVersion.
        """
        prefix, plural = KINDS[kind].api_prefix, KINDS[kind].plural
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        async for event in self.watch_path(path, kind, prefix.split("/", 2)[-1]):
            yield event

    async def watch_path(
        self, path: str, kind: str, api_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """`watch_kind` for any collection path (e.g. /api/v1/nodes): the same events and retries."""
        plural = path.rsplit("/", 1)[-1]
        delay = 0.5
        while True:
            try:
                yield "LISTING", {}
                rv = ""
                # Through a helper generator, so no local here keeps the last page (every
                # object on it) alive for as long as the watch runs.
                async for what, obj in self._listed(path, kind, api_version):
                    if what == "SYNCED":
                        self.watch_seen[plural] = time.monotonic()
                        rv = obj["metadata"]["resourceVersion"]
                        obj = {}
                    yield what, obj
                delay = 0.5
                while True:
                    async for event_type, obj in self._watch(path, rv):
                        self.watch_seen[plural] = time.monotonic()
                        if event_type == "BOOKMARK":
                            rv = obj["metadata"]["resourceVersion"]
                            continue
                        obj.setdefault("kind", kind)
                        obj.setdefault("apiVersion", api_version)
                        rv = obj["metadata"]["resourceVersion"]
                        yield event_type, obj
            except GoneError:
                self.watch_restarts[plural] += 1
                logger.info("Listing %s again: resourceVersion %s expired", plural, rv)
            except (aiohttp.ClientError, TimeoutError, ApiError, ValueError) as exc:
                self.watch_restarts[plural] += 1
                logger.warning("Watching %s failed (%s); listing again in %.1f s", plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _get_json(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        assert self._session is not None, "Cluster.open() was not called"
        self.requests["LIST " + path.rsplit("/", 1)[-1]] += 1
        async with self._session.get(self.creds.server.rstrip("/") + path, params=params) as resp:
            raw = await resp.read()
            self.responses["LIST", resp.status] += 1
            if resp.status == 410:
                raise GoneError()
            if resp.status >= 300:
                raise ApiError(resp.status, "GET", path, raw.decode(errors="replace"))
            result: dict[str, Any] = json.loads(raw)
            return result

    async def _listed(
        self, path: str, kind: str, api_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("LISTED", object) for each object of a paginated LIST, then ("SYNCED", {"metadata":
        {"resourceVersion": the list's}})."""
        rv = ""
        async for page in self._list_pages(path):
            rv = (page.get("metadata") or {}).get("resourceVersion", "")
            for item in page.get("items") or ():
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                yield "LISTED", item
        yield "SYNCED", {"metadata": {"resourceVersion": rv}}

    async def _list_pages(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The pages of a paginated LIST, LIST_PAGE objects each (one page at a time in memory)."""
        cont = ""
        while True:
            params = {"limit": str(LIST_PAGE), **(query or {})} | ({"continue": cont} if cont else {})
            page = await self._get_json(path, params)
            yield page
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                return

    async def _watch(self, path: str, rv: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """One watch stream from `rv` until the server ends it: (event type, object)."""
        assert self._session is not None, "Cluster.open() was not called"
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": rv,
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WATCH_SECONDS + 60)
        url = self.creds.server.rstrip("/") + path
        async with self._session.get(url, params=params, timeout=timeout) as resp:
            self.responses["WATCH", resp.status] += 1
            if resp.status == 410:
                raise GoneError()
            if resp.status >= 300:
                raise ApiError(resp.status, "WATCH", path, (await resp.read()).decode(errors="replace"))
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise GoneError()
                        raise ApiError(int(obj.get("code") or 500), "WATCH", path, str(obj.get("message")))
                    yield str(event.get("type")), obj

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

    # --- nodes ---

    async def watch_nodes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every Node, as `watch_kind` yields workloads (where pods may run: their labels)."""
        async for event in self.watch_path("/api/v1/nodes", "Node", "v1"):
            yield event

    # --- following a remediation rollout (controller.rollout_guard) ---

    async def _list_items(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """One LIST (reads need only the list verb: a name is a field selector)."""
        page = await self._get_json(path, params)
        return list(page.get("items") or ())

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

    # --- generated admission policies: server-side apply, delete, read, discovery ---

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

    async def read(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """GET one object or list; None on 404 (also an API group the server does not serve)."""
        assert self._session is not None, "Cluster.open() was not called"
        self.requests["GET " + path.rsplit("/", 1)[-1]] += 1
        async with self._session.get(self.creds.server.rstrip("/") + path, params=params or {}) as resp:
            raw = await resp.read()
            if resp.status == 404:
                return None
            if resp.status >= 300:
                raise ApiError(resp.status, "GET", path, raw.decode(errors="replace"))
            result: dict[str, Any] = json.loads(raw)
            return result

    async def serves(self, group_version: str, plural: str) -> bool:
        """Discovery: whether the API server serves `plural` in `group_version` (e.g.
        "admissionregistration.k8s.io/v1beta1", "mutatingadmissionpolicies")."""
        found = await self.read(f"/apis/{group_version}")
        return any(r.get("name") == plural for r in (found or {}).get("resources") or ())

    async def replace(self, path: str, body: dict[str, Any], label: str) -> None:
        """PUT the whole object (body carries metadata.resourceVersion); nothing on 404/409, the
        next event settles it."""
        await self._write("PUT", path, label, body=body, ok_missing=True, ok_conflict=True)

    # --- PolicyReports (report_writer) ---

    async def served_resources(self, group_version: str) -> set[str] | None:
        """The resources an API group/version serves (discovery), or None when it is not served."""
        assert self._session is not None, "Cluster.open() was not called"
        self.requests["GET discovery"] += 1
        url = f"{self.creds.server.rstrip('/')}/apis/{group_version}"
        async with self._session.get(url) as resp:
            raw = await resp.read()
            self.responses["GET", resp.status] += 1
            if resp.status == 404:
                return None
            if resp.status >= 300:
                raise ApiError(resp.status, "GET", url, raw.decode(errors="replace"))
            return {str(r.get("name")) for r in json.loads(raw).get("resources") or ()}

    def _report_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/{REPORT_API_VERSION}/namespaces/{namespace}/{REPORT_PLURAL}"
        return f"{path}/{name}" if name else path

    async def apply_policy_report(self, body: dict[str, Any]) -> None:
        """Server-side apply of one PolicyReport (we own it: forced); nothing when its namespace is
        gone."""
        meta = body["metadata"]
        await self._write(
            "PATCH",
            self._report_path(meta["namespace"], meta["name"]),
            "PolicyReport",
            body=body,
            content_type=APPLY,
            params={"force": "true"},
            ok_missing=True,
        )

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        await self._write("DELETE", self._report_path(namespace, name), "PolicyReport", ok_missing=True)

    async def list_policy_reports(self, label_selector: str) -> AsyncIterator[dict[str, Any]]:
        """Every PolicyReport (all namespaces) matching the selector, a page at a time."""
        path = f"/apis/{REPORT_API_VERSION}/{REPORT_PLURAL}"
        async for page in self._list_pages(path, {"labelSelector": label_selector}):
            for item in page.get("items") or ():
                yield item
