"""The operator's memory, in three parts, each changed only through its own methods:

- `ReadModel`: what the operator knows of the cluster: live views of Kopf's indexes
  (baselines, namespaces, NetworkPolicies), the workload store its own watches fill (one packed
  audit view per workload), and the parsed baselines.
- `WorkQueue`: which workloads wait to be reconciled, and whether the picture is complete
  (every watch listed, the reconciler caught up, no full pass running).
- `WriteLedger`: what the operator concluded and wrote: verdicts per baseline, which statuses
  are due, the last status written, the resourceVersions its own writes produced.

`State` holds the three with the API client, the options, the per-key locks and the Event queue.
No Kopf and no HTTP here: the Kopf wiring binds the index views, the reconcilers act.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kube_baseline.controller.admission import AdmissionSync
from kube_baseline.controller.cluster import Cluster
from kube_baseline.controller.placement import PlacementView
from kube_baseline.controller.rollout_book import RolloutBook
from kube_baseline.engine.desired import Baseline, NamespaceInfo, build_baseline
from kube_baseline.engine.models import OPERATOR_NAMESPACE
from kube_baseline.engine.status import Verdict
from kube_baseline.engine.workloads import (
    Workload,
    audit_view,
    pack_view,
    unpack_view,
    workload_at,
    workload_of,
)

# The Kopf index ids: the wiring registers the indexes under these names and Kopf passes their
# live views to handlers as keyword arguments of the same names.
IDX_BASELINES = "kb_baselines"
IDX_NAMESPACES = "kb_namespaces"
IDX_NETPOLS = "kb_networkpolicies"
INDEXES = (IDX_BASELINES, IDX_NAMESPACES, IDX_NETPOLS)
WorkloadKey = tuple[str, str, str]  # kind, namespace, name


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
    watch_stale_seconds: float = 600.0  # /healthz fails when a workload watch is this quiet


def options_from_env() -> Options:
    """For `kopf run -m kube_baseline.controller.handlers` (tests, development): KUBE_BASELINE_*."""
    return Options(
        dry_run=os.environ.get("KUBE_BASELINE_DRY_RUN", "") in ("1", "true", "yes"),
        write_concurrency=int(os.environ.get("KUBE_BASELINE_WRITE_CONCURRENCY", "32")),
        status_interval=float(os.environ.get("KUBE_BASELINE_STATUS_INTERVAL", "0.5")),
        metrics_port=int(os.environ.get("KUBE_BASELINE_METRICS_PORT", "0")),
        watch_stale_seconds=float(os.environ.get("KUBE_BASELINE_WATCH_STALE_SECONDS", "600")),
    )


def watch_name(kind: str, namespace: str | None) -> str:
    """How the work queue tells one workload watch from another."""
    return f"{kind}/{namespace or ''}"


def now_utc() -> datetime:
    return datetime.now(UTC)


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


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


class ReadModel:
    """The gathered state: Kopf's index views, the workload store and the parsed baselines."""

    def __init__(self) -> None:
        self._indexes: dict[str, Any] = {}
        self.bound = asyncio.Event()  # the index views are known (Kopf populates them first)
        # namespace -> key -> packed audit view (engine.workloads.pack_view: a fortieth of the
        # memory of the dicts, unpacked in microseconds)
        self._workloads: dict[str, dict[WorkloadKey, bytes]] = defaultdict(dict)
        self._parsed: dict[str, tuple[tuple[str, int], Baseline | str]] = {}
        self._selector_labels: dict[str, tuple[tuple[str, str], ...]] = {}
        # Whether the PolicyReport API is served (None: not checked yet); see report_writer.
        self.reports_served: bool | None = None

    def note_reports_served(self, served: bool) -> bool:
        """Record whether the PolicyReport API is served; True if that changed."""
        changed = self.reports_served != served
        self.reports_served = served
        return changed

    def bind(self, views: Mapping[str, Any]) -> None:
        """Keep the index views Kopf passes to handlers (they are live; all are populated by now)."""
        if not self.bound.is_set():
            self._indexes.update({name: views[name] for name in INDEXES if name in views})
            self.bound.set()

    def _values(self, index_name: str, key: Any) -> list[Any]:
        index = self._indexes.get(index_name)
        if index is None or key not in index:
            return []
        return list(index[key])

    # --- baselines ---

    def baseline_bodies(self) -> list[Mapping[str, Any]]:
        index = self._indexes.get(IDX_BASELINES) or {}
        return [body for name in list(index) for body in index[name]]

    def baseline_body(self, name: str) -> Mapping[str, Any] | None:
        for body in self._values(IDX_BASELINES, name):
            return body  # type: ignore[no-any-return]
        return None

    def parse(self, body: Mapping[str, Any]) -> Baseline | str:
        """The parsed baseline, or the validation error as text; cached by uid and generation."""
        meta = body.get("metadata") or {}
        name, tag = str(meta.get("name")), (str(meta.get("uid")), int(meta.get("generation") or 0))
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == tag:
            return cached[1]
        result: Baseline | str
        try:
            result = build_baseline(body)
        except ValidationError as exc:
            result = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        self._parsed[name] = (tag, result)
        return result

    def baselines(self) -> list[Baseline]:
        """Every valid baseline, in name order."""
        found = [self.parse(b) for b in self.baseline_bodies()]
        return sorted((b for b in found if isinstance(b, Baseline)), key=lambda b: b.name)

    def was_parsed(self, name: str) -> bool:
        return name in self._parsed

    def forget_parsed(self, name: str) -> None:
        self._parsed.pop(name, None)

    # --- namespaces and NetworkPolicies ---

    def namespace(self, name: str) -> NamespaceInfo:
        for info in self._values(IDX_NAMESPACES, name):
            return info  # type: ignore[no-any-return]
        return NamespaceInfo(name=name, labels={})

    def has_namespace(self, name: str) -> bool:
        return name in (self._indexes.get(IDX_NAMESPACES) or {})

    def namespace_names(self) -> list[str]:
        return sorted(self._indexes.get(IDX_NAMESPACES) or ())

    def namespaces(self) -> list[NamespaceInfo]:
        return [self.namespace(name) for name in self.namespace_names()]

    def selector_labels_changed(self, ns: NamespaceInfo) -> bool:
        """Record the labels selectors see on `ns`; True if they differ from the last ones recorded."""
        labels = tuple(sorted(ns.selector_labels.items()))
        previous = self._selector_labels.get(ns.name)
        self._selector_labels[ns.name] = labels
        return previous is not None and previous != labels

    def network_policies(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(IDX_NETPOLS, namespace)

    # --- workloads ---

    def store_workload(self, key: WorkloadKey, view: dict[str, Any] | None) -> None:
        """Keep (or, with None, drop) a workload's audit view."""
        if view is None:
            self._workloads.get(key[1], {}).pop(key, None)
        else:
            self._workloads[key[1]][key] = pack_view(view)

    def stored_keys(self, kind: str) -> Iterator[WorkloadKey]:
        for by_key in list(self._workloads.values()):
            yield from [k for k in by_key if k[0] == kind]

    def workload_keys(self, namespace: str | None = None) -> list[WorkloadKey]:
        if namespace is not None:
            return list(self._workloads.get(namespace, {}))
        return [key for by_key in list(self._workloads.values()) for key in list(by_key)]

    def workload(self, key: WorkloadKey) -> Workload | None:
        """The stored workload (its audit view), or None if it is not stored."""
        packed = self._workloads.get(key[1], {}).get(key)
        return None if packed is None else workload_at(unpack_view(packed), key[0])

    def workload_present(self, key: WorkloadKey) -> bool:
        return key in self._workloads.get(key[1], {})


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


class WriteLedger:
    """What the operator concluded and wrote."""

    def __init__(self) -> None:
        # baseline name -> workload key -> verdict
        self._verdicts: dict[str, dict[WorkloadKey, Verdict]] = defaultdict(dict)
        self._due: set[str] = set()  # baselines whose status may have changed
        self._last_status: dict[str, dict[str, Any]] = {}
        # workload key -> resourceVersion our last patch produced (older bodies are stale echoes)
        self._written_rv: dict[WorkloadKey, int] = {}
        # (what, namespace, name) -> resourceVersion the index showed when we wrote ("" = absent):
        # while the index still shows it, our write's echo has not arrived and it is not repeated.
        self._acted: dict[tuple[str, str, str], str] = {}
        # workload key -> digest of the PolicyReport content last written (report_writer), and
        # the error of its last failed report write.
        self._report_hashes: dict[WorkloadKey, str] = {}
        self._report_errors: dict[WorkloadKey, str] = {}

    # --- verdicts and due statuses ---

    def record_verdicts(self, key: WorkloadKey, verdicts: Mapping[str, Verdict]) -> None:
        """The workload's verdict under each baseline governing it; the others forget it."""
        for name, verdict in verdicts.items():
            if self._verdicts[name].get(key) != verdict:
                self._verdicts[name][key] = verdict
                self._due.add(name)
        for name, by_key in self._verdicts.items():
            if name not in verdicts and by_key.pop(key, None) is not None:
                self._due.add(name)

    def verdicts(self, baseline: str) -> list[Verdict]:
        return list(self._verdicts.get(baseline, {}).values())

    def verdict(self, baseline: str, key: WorkloadKey) -> Verdict | None:
        return self._verdicts.get(baseline, {}).get(key)

    def has_verdicts(self, baseline: str) -> bool:
        return baseline in self._verdicts

    def forget_workload(self, key: WorkloadKey) -> None:
        self.record_verdicts(key, {})
        self._written_rv.pop(key, None)
        self._report_hashes.pop(key, None)  # the report goes with the workload (ownerReference)
        self._report_errors.pop(key, None)

    def forget_baseline(self, name: str) -> None:
        self._verdicts.pop(name, None)
        self._last_status.pop(name, None)

    def keep_baselines(self, names: Iterable[str]) -> None:
        """Forget every baseline not named; mark the named ones due."""
        known = set(names)
        for name in [n for n in self._verdicts if n not in known]:
            self.forget_baseline(name)
        self._due.update(known)

    def mark_due(self, *names: str) -> None:
        self._due.update(names)

    def take_due(self, *, excluding: Iterable[str] = ()) -> list[str]:
        """Remove and return the due baselines, in name order, except those named in `excluding`."""
        names = sorted(self._due.difference(excluding))
        self._due.difference_update(names)
        return names

    # --- statuses ---

    def last_status(self, name: str) -> dict[str, Any] | None:
        return self._last_status.get(name)

    def status_written(self, name: str, status: dict[str, Any]) -> None:
        self._last_status[name] = status

    # --- our own writes ---

    def wrote_workload(self, key: WorkloadKey, resource_version: int) -> None:
        self._written_rv[key] = resource_version

    def is_stale_echo(self, key: WorkloadKey, body: Mapping[str, Any]) -> bool:
        """`body` is older than what our own last patch of it produced (its echo will come)."""
        return resource_version(body) < self._written_rv.get(key, 0)

    def already_acted(self, key: tuple[str, str, str], seen_rv: str) -> bool:
        """True if we wrote `key` while the index showed `seen_rv` and it still does; else record it."""
        if self._acted.get(key) == seen_rv:
            return True
        self._acted[key] = seen_rv
        return False

    # --- PolicyReports ---

    def report_hash(self, key: WorkloadKey) -> str | None:
        return self._report_hashes.get(key)

    def report_written(self, key: WorkloadKey, digest: str | None) -> None:
        """A report with content `digest` is stored for `key` (None: none is)."""
        if digest is None:
            self._report_hashes.pop(key, None)
        else:
            self._report_hashes[key] = digest
        if self._report_errors.pop(key, None) is not None:
            self.mark_due(*self._baselines_of(key))

    def forget_report_hashes(self) -> None:
        self._report_hashes.clear()

    def report_failed(self, key: WorkloadKey, error: str) -> None:
        if self._report_errors.get(key) != error:
            self._report_errors[key] = error
            self.mark_due(*self._baselines_of(key))

    def report_errors(self, baseline: str) -> list[str]:
        """The errors of the failed report writes of workloads this baseline governs."""
        governed = self._verdicts.get(baseline, {})
        return [error for key, error in self._report_errors.items() if key in governed]

    def _baselines_of(self, key: WorkloadKey) -> list[str]:
        return [name for name, by_key in self._verdicts.items() if key in by_key]


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
    # Workloads whose PolicyReport may need writing (report_writer; behind the fixes).
    reports: WorkQueue = field(default_factory=WorkQueue)
    # Events to post: ((apiVersion, kind, namespace, name, uid, resourceVersion), reason, message);
    # posted behind the fixes by a few workers.
    events: asyncio.Queue[tuple[tuple[str, ...], str, str]] = field(default_factory=asyncio.Queue)
    admission: AdmissionSync | None = None  # the generated admission policies (None in a dry run)
    rollouts: RolloutBook = field(default_factory=RolloutBook)  # the rollout guard's memory
