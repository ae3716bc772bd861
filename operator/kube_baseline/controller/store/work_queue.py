"""`WorkQueue`: which workloads wait to be reconciled, and whether the picture is complete
(every watch listed, the reconciler caught up, no full pass running)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from kube_baseline.controller.store.read_model import WorkloadKey


def watch_name(kind: str, namespace: str | None) -> str:
    """How the work queue tells one workload watch from another."""
    return f"{kind}/{namespace or ''}"


class WorkQueue:
    """Workloads waiting to be reconciled, and whether the picture is complete enough for status.

    Status is held back while the picture is partial, since a part of the workloads could look
    compliant when the whole is not: until every workload watch has listed and the reconciler
    caught up once (`settled`), and while a full pass re-evaluates every workload after a baseline
    changed."""

    def __init__(self) -> None:
        # An ordered set: a burst of events for one workload costs one reconcile of its latest state.
        self._pending: dict[WorkloadKey, None] = {}
        # The same keys in order, for the workers: each put wakes one worker, not all of them.
        self._queue: asyncio.Queue[WorkloadKey] = asyncio.Queue()
        self._busy = 0  # reconciles in progress
        self.drained = asyncio.Event()  # set whenever nothing is queued or in progress
        self._watches: set[str] = set()
        self._synced: set[str] = set()
        self.settled = False
        self._full_passes = 0
        self.passed = asyncio.Event()  # a full pass just ended

    def pending(self) -> list[WorkloadKey]:
        """The queued keys, in order."""
        return list(self._pending)

    def expect_watches(self, names: Iterable[str]) -> None:
        self._watches.update(names)

    def watch_synced(self, name: str) -> None:
        self._synced.add(name)
        self.note_idle()

    def put(self, keys: Iterable[WorkloadKey]) -> None:
        """Queue workloads for the reconciler (each once, however often it is queued)."""
        for key in keys:
            if key not in self._pending:
                self._pending[key] = None
                self._queue.put_nowait(key)
        if self._pending:
            self.drained.clear()

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[WorkloadKey]:
        """The next queued key, counted as in progress until the block ends."""
        self.note_idle()
        key = await self._queue.get()
        del self._pending[key]
        self._busy += 1
        try:
            yield key
        finally:
            self._busy -= 1

    def note_idle(self) -> None:
        """Nothing queued: record that the reconciler caught up (see `drained` and `settled`)."""
        if self._pending or self._busy:
            return
        self.settled = self.settled or self._synced >= self._watches
        self.drained.set()

    @contextlib.asynccontextmanager
    async def full_pass(self) -> AsyncIterator[None]:
        """While a full pass runs, the picture is partial; `passed` is set when it ends."""
        self._full_passes += 1
        try:
            yield
        finally:
            self._full_passes -= 1
        self.passed.set()

    @property
    def in_full_pass(self) -> bool:
        return self._full_passes > 0
