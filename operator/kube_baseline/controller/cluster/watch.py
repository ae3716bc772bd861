"""List-and-watch forever over one collection (a workload kind, Nodes): the events the
reconcilers consume, relisting after 410 Gone or a broken stream, with the watches' health
counters (`watch_restarts`, `watch_seen`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from kube_baseline.controller.cluster.transport import STREAM_ERRORS, GoneError, Transport
from kube_baseline.engine.workloads import KINDS

logger = logging.getLogger("kube_baseline.controller.cluster")


class ListWatch(Transport):
    """The list-and-watch loop over the transport's paged LIST and watch stream."""

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
            except STREAM_ERRORS as exc:
                self.watch_restarts[plural] += 1
                logger.warning("Watching %s failed (%s); listing again in %.1f s", plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

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

    async def watch_nodes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every Node, as `watch_kind` yields workloads (where pods may run: their labels)."""
        async for event in self.watch_path("/api/v1/nodes", "Node", "v1"):
            yield event
