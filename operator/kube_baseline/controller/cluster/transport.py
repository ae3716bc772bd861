"""The HTTP transport to the API server, and the only module that imports aiohttp (and ssl).

Credentials and TLS, the client session, one write retried after HTTP 429 (honouring
Retry-After), connection errors and 5xx, reads (GET, one LIST, the pages of a LIST, discovery)
and one watch stream. Bodies are raw JSON: no client models. `Transport` is the base of
`Cluster` (client.py); the list-and-watch loop (watch.py) and the calls build on these methods.
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
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from kube_baseline.engine.models import FIELD_MANAGER
from kube_baseline.engine.workloads import KINDS

# One logger for the whole client, as when it was one module.
logger = logging.getLogger("kube_baseline.controller.cluster")

# A watch request asks the server to end the stream after this long; then it is renewed.
WATCH_SECONDS = 300
# Objects per LIST page: a page is decoded whole, so this bounds the memory a listing takes.
LIST_PAGE = 100
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"  # JSON is YAML
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


# What breaks a LIST or a watch stream besides 410 Gone: the list-and-watch lists again.
STREAM_ERRORS = (aiohttp.ClientError, TimeoutError, ApiError, ValueError)


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


class Transport:
    """The session, the request counters and the HTTP verbs the calls are made of."""

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

    # --- reads ---

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

    async def _list_items(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """One LIST (reads need only the list verb: a name is a field selector)."""
        page = await self._get_json(path, params)
        return list(page.get("items") or ())

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
