"""The operator's memory, in three parts, each changed only through its own methods:

- `ReadModel` (read_model.py): what the operator knows of the cluster: live views of Kopf's
  indexes (baselines, namespaces, NetworkPolicies), the workload store its own watches fill (one
  packed audit view per workload), and the parsed baselines.
- `WorkQueue` (work_queue.py): which workloads wait to be reconciled, and whether the picture is
  complete (every watch listed, the reconciler caught up, no full pass running).
- `WriteLedger` (ledger.py): what the operator concluded and wrote: verdicts per baseline, which
  statuses are due, the last status written, the resourceVersions its own writes produced.

`State` (here) holds the three with the API client, the options, the per-key locks and the Event
queue; slim.py is what is kept of an object. No Kopf and no HTTP here: the Kopf wiring binds the
index views, the reconcilers act. Import from here: `from kube_baseline.controller.store import X`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kube_baseline.controller.admission import AdmissionSync
from kube_baseline.controller.cluster import Cluster
from kube_baseline.controller.placement import PlacementView
from kube_baseline.controller.rollout_book import RolloutBook
from kube_baseline.controller.store.ledger import WriteLedger, resource_version
from kube_baseline.controller.store.read_model import (
    IDX_BASELINES,
    IDX_NAMESPACES,
    IDX_NETPOLS,
    INDEXES,
    ReadModel,
    WorkloadKey,
)
from kube_baseline.controller.store.slim import slim_object, slim_workload
from kube_baseline.controller.store.work_queue import WorkQueue, watch_name
from kube_baseline.engine.models import OPERATOR_NAMESPACE
from kube_baseline.engine.reports import POLICY_REPORT, REPORT_APIS, ReportApi

__all__ = [
    "IDX_BASELINES",
    "IDX_NAMESPACES",
    "IDX_NETPOLS",
    "INDEXES",
    "KeyedLocks",
    "Note",
    "Options",
    "ReadModel",
    "State",
    "WorkQueue",
    "WorkloadKey",
    "WriteLedger",
    "now_utc",
    "options_from_env",
    "resource_version",
    "slim_object",
    "slim_workload",
    "watch_name",
]


class Note(NamedTuple):
    """An Event to post about the object (apiVersion, kind, namespace, name, uid, resourceVersion);
    empty parts are left out. Tuples, not bodies: a burst queues thousands."""

    involved: tuple[str, str, str, str, str, str]
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    namespaces: tuple[str, ...] = ()  # watch only these (exact names); empty: the whole cluster
    # Writes in flight (and workers reconciling): each costs an HTTPS connection (asyncio keeps a
    # 256 KiB TLS read buffer per connection), and 32 keep a local API server busy.
    write_concurrency: int = 32
    status_interval: float = 0.5
    # Where the rollout guard keeps its record (controller.rollout_guard): the operator's namespace.
    record_namespace: str = field(
        default_factory=lambda: os.environ.get("KUBE_BASELINE_NAMESPACE") or OPERATOR_NAMESPACE
    )
    metrics_port: int = 0  # /metrics and /healthz (controller.metrics); 0: not served
    report_api: ReportApi = POLICY_REPORT  # what per-workload reports are written as (report_writer)
    watch_stale_seconds: float = 600.0  # /healthz fails when a workload watch is this quiet


def options_from_env() -> Options:
    """For `kopf run -m kube_baseline.controller.handlers` (tests, development): KUBE_BASELINE_*."""
    return Options(
        dry_run=os.environ.get("KUBE_BASELINE_DRY_RUN", "") in ("1", "true", "yes"),
        write_concurrency=int(os.environ.get("KUBE_BASELINE_WRITE_CONCURRENCY", "32")),
        status_interval=float(os.environ.get("KUBE_BASELINE_STATUS_INTERVAL", "0.5")),
        metrics_port=int(os.environ.get("KUBE_BASELINE_METRICS_PORT", "0")),
        watch_stale_seconds=float(os.environ.get("KUBE_BASELINE_WATCH_STALE_SECONDS", "600")),
        report_api=REPORT_APIS[os.environ.get("KUBE_BASELINE_REPORT_FORMAT") or POLICY_REPORT.format],
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyedLocks:
    """One asyncio.Lock per key while anyone holds or awaits it, none otherwise: a lock per
    workload kept for good would cost memory for every workload the operator ever saw."""

    def __init__(self) -> None:
        self._held: dict[Any, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, key: Any) -> AsyncIterator[None]:
        lock, users = self._held.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[key]


@dataclass
class State:
    """Everything the reconcilers, the status writer and the Kopf wiring share."""

    cluster: Cluster
    options: Options
    model: ReadModel = field(default_factory=ReadModel)
    work: WorkQueue = field(default_factory=WorkQueue)
    ledger: WriteLedger = field(default_factory=WriteLedger)
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    # Where pods run and nodes' labels (the tierCoTenancy check).
    placement: PlacementView = field(default_factory=PlacementView)
    # Workloads whose report may need writing (report_writer; behind the fixes).
    reports: WorkQueue = field(default_factory=WorkQueue)
    # Every Event the operator posts, posted behind the fixes by a few workers.
    events: asyncio.Queue[Note] = field(default_factory=asyncio.Queue)
    admission: AdmissionSync | None = None  # the generated admission policies (None in a dry run)
    rollouts: RolloutBook = field(default_factory=RolloutBook)  # the rollout guard's memory
