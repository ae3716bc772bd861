"""The only module that imports Kopf: watch, gather, evaluate (pure), act (kube_baseline.controller.cluster).

- Workloads are many: a plain list-and-watch per kind (kube_baseline.controller.cluster) keeps each one's
  audit view in memory and queues it for a pool of reconciling workers. Baselines, Namespaces and
  NetworkPolicies are few: Kopf indexes and event handlers keep them. Nothing is written onto
  workloads, namespaces or NetworkPolicies for bookkeeping (no annotations, no finalizers). A
  compliant workload costs zero writes; a non-compliant one in a remediating namespace costs one
  strategic-merge patch under field manager kube-baseline, plus one Event.
- Baselines use on.resume/create/update(spec)/delete(optional); their status is recomputed from
  per-workload verdicts and written by one background task, only when it changed, at most once
  per `status_interval` per baseline. No finalizer is ever added.
- Level-based: every reconcile recomputes from the current stored state, never from the event
  type (a DELETED event only tells that the workload is gone from the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from kube_baseline.controller.admission import AdmissionSync, owner_of
from kube_baseline.controller.cluster import WORKLOAD_RESOURCES, ApiError, Cluster, Credentials
from kube_baseline.engine.desired import (
    OVERLAP_RULE,
    Baseline,
    NamespaceInfo,
    build_baseline,
    build_namespace_info,
    build_namespace_patch,
    build_network_policy,
    decide_workload,
    describe_changes,
    governs,
    is_attributed_to_controller,
    is_remediated,
    plan_network_policies,
    protects,
    remediates,
)
from kube_baseline.engine.models import FIELD_MANAGER, GROUP, KIND, MANAGED_BY_LABEL, PLURAL, VERSION
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.status import Verdict, build_status, build_verdict
from kube_baseline.engine.workloads import Workload, audit_view, pack_view, unpack_view, workload_of

logger = logging.getLogger("kube_baseline")

STORAGE_PREFIX = GROUP
BASELINES = (f"{GROUP}/{VERSION}", PLURAL)
NAMESPACES = ("v1", "namespaces")
NETWORK_POLICIES = ("networking.k8s.io/v1", "networkpolicies")
ADMISSION_POLICIES = ("admissionregistration.k8s.io/v1", "validatingadmissionpolicies")
ADMISSION_BINDINGS = ("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings")
# Events are posted by this many workers, behind the fixes; at shutdown the queue gets this long.
EVENT_POSTERS = 2
EVENT_DRAIN_SECONDS = 10.0
# The longest the first status write waits for the initial listing of every workload kind.
SETTLE_SECONDS = 60.0
IDX_BASELINES = "kb_baselines"
IDX_NAMESPACES = "kb_namespaces"
IDX_NETPOLS = "kb_networkpolicies"
WorkloadKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    namespaces: tuple[str, ...] = ()  # watch only these (exact names); empty: the whole cluster
    # Writes in flight (and workers reconciling): each costs an HTTPS connection (asyncio keeps a
    # 256 KiB TLS read buffer per connection), and 32 keep a local API server busy.
    write_concurrency: int = 32
    status_interval: float = 0.5


def options_from_env() -> Options:
    """For `kopf run -m kube_baseline.controller.handlers` (tests, development): KUBE_BASELINE_* variables."""
    return Options(
        dry_run=os.environ.get("KUBE_BASELINE_DRY_RUN", "") in ("1", "true", "yes"),
        write_concurrency=int(os.environ.get("KUBE_BASELINE_WRITE_CONCURRENCY", "32")),
        status_interval=float(os.environ.get("KUBE_BASELINE_STATUS_INTERVAL", "0.5")),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _slim_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    slim = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "generation") if k in meta}
    for key in ("labels", "ownerReferences"):
        if meta.get(key):
            slim[key] = meta[key]
    managers = sorted({m.get("manager") for m in meta.get("managedFields") or () if m.get("manager")})
    if managers:
        slim["managedFields"] = [{"manager": m} for m in managers]
    return slim


def slim_workload(body: Mapping[str, Any], workload: Workload | None = None) -> dict[str, Any]:
    """What the store keeps of a workload: its audit view (identity, labels, owners and the
    security-relevant fields only) plus the names of the managers that wrote to it. Pass the
    body's Workload when it is already at hand."""
    workload = workload or workload_of(dict(body))
    if workload is None:
        return slim_object(body)
    view = audit_view(workload)
    meta = body.get("metadata") or {}
    managers = sorted({m.get("manager") for m in meta.get("managedFields") or () if m.get("manager")})
    if managers:
        view["metadata"]["managedFields"] = [{"manager": m} for m in managers]
    return view


def slim_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the index keeps of an object: identity, labels, owners, managers and spec (no status)."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _slim_metadata(body.get("metadata") or {}),
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


@dataclass
class State:
    """The operator's memory: live views of Kopf's indexes (baselines, namespaces, NetworkPolicies),
    the workload store its own watches fill, and what it derived from them."""

    cluster: Cluster
    options: Options
    indexes: dict[str, Any] = field(default_factory=dict)
    # baseline name -> workload key -> verdict
    verdicts: dict[str, dict[WorkloadKey, Verdict]] = field(default_factory=lambda: defaultdict(dict))
    dirty: set[str] = field(default_factory=set)
    last_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    # workload key -> resourceVersion our last patch produced (older bodies are stale echoes)
    written_rv: dict[WorkloadKey, int] = field(default_factory=dict)
    locks: KeyedLocks = field(default_factory=lambda: KeyedLocks())
    ns_fingerprints: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    parsed: dict[str, tuple[tuple[str, int], Baseline | str]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # The workloads: namespace -> key -> audit view (what the engine reads, nothing more), packed
    # (workloads.pack_view): a fortieth of the memory of the dicts, unpacked in microseconds.
    workloads: dict[str, dict[WorkloadKey, bytes]] = field(default_factory=lambda: defaultdict(dict))
    # Workloads whose stored state changed and wait to be reconciled (an ordered set: a burst of
    # events for one workload costs one reconcile of its latest state).
    pending: dict[WorkloadKey, None] = field(default_factory=dict)
    # The same keys in order, for the workers: each put wakes one worker, not all of them.
    queue: asyncio.Queue[WorkloadKey] = field(default_factory=asyncio.Queue)
    # Reconciles in progress, and set whenever nothing is queued or in progress.
    busy: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    # Events to post: ((apiVersion, kind, namespace, name, uid, resourceVersion), reason, message);
    # posted behind the fixes by a few workers.
    events: asyncio.Queue[tuple[tuple[str, ...], str, str]] = field(default_factory=asyncio.Queue)
    # (what, namespace, name) -> resourceVersion the index showed when we wrote ("" = absent): while
    # the index still shows it, our write's echo has not arrived and the same write is not repeated.
    acted: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Status is held back while the picture is partial, since a part of the workloads could look
    # compliant when the whole is not: until every workload watch has listed and the reconciler
    # caught up once (`settled`; at most SETTLE_SECONDS), and while a full pass re-evaluates
    # every workload after a baseline changed (`full_passes`).
    watches: int = 0
    synced: set[str] = field(default_factory=set)
    settled: bool = False
    full_passes: int = 0
    passed: asyncio.Event = field(default_factory=asyncio.Event)  # a full pass just ended
    admission: AdmissionSync | None = None  # the generated admission policies (set at startup)

    def bind(self, kwargs: Mapping[str, Any]) -> None:
        """Keep the index views Kopf passes to handlers (they are live; all are populated by now)."""
        if not self.ready.is_set():
            for key, value in kwargs.items():
                if key.startswith("kb_"):
                    self.indexes[key] = value
            self.ready.set()

    # --- gathering from the indexes ---

    def _values(self, index_name: str, key: Any) -> Iterable[Any]:
        index = self.indexes.get(index_name)
        if index is None or key not in index:
            return ()
        return list(index[key])

    def baseline_bodies(self) -> list[Mapping[str, Any]]:
        index = self.indexes.get(IDX_BASELINES) or {}
        return [body for name in list(index) for body in index[name]]

    def baseline_body(self, name: str) -> Mapping[str, Any] | None:
        for body in self._values(IDX_BASELINES, name):
            return body  # type: ignore[no-any-return]
        return None

    def parse(self, body: Mapping[str, Any]) -> Baseline | str:
        """The parsed baseline, or the validation error as text; cached by uid and generation."""
        meta = body.get("metadata") or {}
        name, tag = str(meta.get("name")), (str(meta.get("uid")), int(meta.get("generation") or 0))
        cached = self.parsed.get(name)
        if cached is not None and cached[0] == tag:
            return cached[1]
        result: Baseline | str
        try:
            result = build_baseline(body)
        except ValidationError as exc:
            result = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        self.parsed[name] = (tag, result)
        return result

    def baselines(self, *, excluding: str | None = None) -> list[Baseline]:
        found = [self.parse(b) for b in self.baseline_bodies()]
        return sorted(
            (b for b in found if isinstance(b, Baseline) and b.name != excluding), key=lambda b: b.name
        )

    def namespace(self, name: str) -> NamespaceInfo:
        for info in self._values(IDX_NAMESPACES, name):
            return info  # type: ignore[no-any-return]
        return NamespaceInfo(name=name, labels={})

    def namespace_names(self) -> list[str]:
        return sorted(self.indexes.get(IDX_NAMESPACES) or ())

    def network_policies(self, namespace: str) -> list[dict[str, Any]]:
        return list(self._values(IDX_NETPOLS, namespace))

    def store_workload(self, key: WorkloadKey, view: dict[str, Any] | None) -> None:
        """Keep (or, with None, drop) a workload's audit view, and queue it for the reconciler."""
        if view is None:
            self.workloads.get(key[1], {}).pop(key, None)
        else:
            self.workloads[key[1]][key] = pack_view(view)
        self.enqueue((key,))

    def enqueue(self, keys: Iterable[WorkloadKey]) -> None:
        """Queue workloads for the reconciler (each once, however often it is queued)."""
        for key in keys:
            if key not in self.pending:
                self.pending[key] = None
                self.queue.put_nowait(key)
        if self.pending:
            self.drained.clear()

    def note_idle(self) -> None:
        """Nothing queued: record that the reconciler caught up (see `drained` and `settled`)."""
        if self.pending or self.busy:
            return
        self.settled = self.settled or len(self.synced) >= self.watches
        self.drained.set()

    def workload_keys(self, namespace: str | None = None) -> list[WorkloadKey]:
        if namespace is not None:
            return list(self.workloads.get(namespace, {}))
        return [key for by_key in list(self.workloads.values()) for key in list(by_key)]

    def workload_body(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        packed = self.workloads.get(namespace, {}).get((kind, namespace, name))
        return None if packed is None else unpack_view(packed)

    def workload_present(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.workloads.get(namespace, {})

    def already_acted(self, key: tuple[str, str, str], seen_rv: str) -> bool:
        """True if we wrote `key` while the index showed `seen_rv` and it still does; else record it."""
        if self.acted.get(key) == seen_rv:
            return True
        self.acted[key] = seen_rv
        return False

    def forget_workload(self, key: WorkloadKey) -> None:
        for name, by_key in self.verdicts.items():
            if by_key.pop(key, None) is not None:
                self.dirty.add(name)
        self.written_rv.pop(key, None)


# --- reconciling ---------------------------------------------------------------------------------


async def reconcile_workload(state: State, body: Mapping[str, Any]) -> None:
    """Audit one top-level workload under every governing baseline; patch it once if remediating."""
    if is_attributed_to_controller(body):
        return
    workload = workload_of(dict(body))
    if workload is None:
        return
    key: WorkloadKey = (workload.kind, workload.namespace, workload.name)
    async with state.locks.hold(key):
        if not state.workload_present(*key):
            state.forget_workload(key)
            return
        if _rv(body) < state.written_rv.get(key, 0):
            return  # our own patch is newer: its echo will come
        ns = state.namespace(workload.namespace)
        governing = [b for b in state.baselines() if governs(b, ns)]
        decision = decide_workload(
            workload,
            governing,
            ns,
            network_policies=state.network_policies(workload.namespace),
            now=now_utc(),
            allow_writes=not state.options.dry_run,
        )
        audits = decision.audits
        remediated = is_remediated(body, FIELD_MANAGER)
        if decision.patch:
            try:
                written = await state.cluster.patch_workload(
                    workload.kind, workload.namespace, workload.name, decision.patch
                )
            except ApiError as exc:
                logger.warning("Patching %s %s/%s failed: %s", *key, exc)
            else:
                state.written_rv[key] = int(written or 0)
                remediated = True
                # The verdict is the patched state's: the patch applied here to the stored view
                # (the server applies the same strategic merge; the watch's echo confirms it).
                patched = workload_of(apply_patch(dict(body), decision.patch))
                if patched is not None:
                    ns_nps = state.network_policies(workload.namespace)
                    audits = decide_workload(
                        patched, governing, ns, network_policies=ns_nps, now=now_utc(), allow_writes=False
                    ).audits
                fields = describe_changes(decision.changes)
                by = ", ".join(decision.remediated_by)
                logger.info("Patched %s %s/%s for SecurityBaseline %s: %s", *key, by, fields)
                involved = (str(body.get("apiVersion")), *key, str(workload.metadata.get("uid", "")), written)
                # Interned: a burst queues thousands of Events, most with the same message.
                message = sys.intern(f"SecurityBaseline {by} set {fields}")
                state.events.put_nowait((involved, "Remediated", message))
        names = {b.name for b in governing}
        for baseline in governing:
            found = audits[baseline.name]
            verdict = build_verdict(
                workload.namespace,
                workload.kind,
                workload.name,
                found.findings,
                found.exempted,
                remediated=remediated,
            )
            if state.verdicts[baseline.name].get(key) != verdict:
                state.verdicts[baseline.name][key] = verdict
                state.dirty.add(baseline.name)
        for name, by_key in state.verdicts.items():
            if name not in names and by_key.pop(key, None) is not None:
                state.dirty.add(name)


async def reconcile_pending_forever(state: State) -> None:
    """The workload reconciler: watches store a workload's audit view and queue its key; workers
    (as many as writes may be in flight) each take the next queued key and reconcile the latest
    stored state of that workload. A burst of events for one workload costs one reconcile."""
    await state.ready.wait()

    async def worker() -> None:
        while True:
            state.note_idle()
            key = await state.queue.get()
            del state.pending[key]
            state.busy += 1
            try:
                await reconcile_key(state, key)
            finally:
                state.busy -= 1

    await asyncio.gather(*(worker() for _ in range(max(1, state.options.write_concurrency))))


async def watch_workloads(state: State, kind: str, namespace: str | None) -> None:
    """Keep the store of one workload kind in step with the API server: list, then watch.

    Not Kopf: a Kopf handler per workload event costs more CPU than the audit, and Kopf keeps
    several objects per watched workload for handler bookkeeping this operator does not use
    (it writes nothing onto workloads). A controller's Pod or ReplicaSet is not stored: the
    controller is what is evaluated.
    """
    listed: set[WorkloadKey] | None = None
    async for what, obj in state.cluster.watch_kind(kind, namespace):
        if what == "LISTING":
            listed = set()
        elif what == "SYNCED":
            for by_key in list(state.workloads.values()):
                for stale in [k for k in by_key if k[0] == kind and listed is not None and k not in listed]:
                    state.store_workload(stale, None)  # deleted while we were not watching
            listed = None
            state.synced.add(f"{kind}/{namespace or ''}")
            state.note_idle()  # else the reconciler notes it once it caught up
        elif (workload := workload_of(obj)) is not None:
            key: WorkloadKey = (workload.kind, workload.namespace, workload.name)
            if listed is not None:
                listed.add(key)
            keep = what != "DELETED" and not is_attributed_to_controller(obj)
            try:
                state.store_workload(key, slim_workload(obj, workload) if keep else None)
            except Exception:  # one malformed object must not stop the watch
                logger.exception("Storing %s %s/%s failed", *key)
        # Reading a buffered stream does not suspend: without this, a backlog of events (the
        # echoes of a burst of patches) would hold the loop while patch responses wait.
        await asyncio.sleep(0)


async def reconcile_key(state: State, key: WorkloadKey) -> None:
    body = state.workload_body(*key)
    if body is None:
        state.forget_workload(key)
        return
    try:
        await reconcile_workload(state, body)
    except Exception:  # one workload's failure must not stop the reconciler
        logger.exception("Reconciling %s %s/%s failed", *key)


async def reconcile_namespace(state: State, name: str, *, evaluate_workloads: bool = False) -> None:
    """Namespace labels and managed NetworkPolicies; re-audit its workloads when its labels changed."""
    ns = state.namespace(name)
    baselines = state.baselines()
    async with state.locks.hold(("Namespace", name)):
        if not state.options.dry_run and name in (state.indexes.get(IDX_NAMESPACES) or {}):
            patch = build_namespace_patch(ns, [b for b in baselines if remediates(b, ns)])
            if patch is not None and not state.already_acted(("Namespace", name, ""), ns.resource_version):
                await state.cluster.patch_namespace(name, patch)
                logger.info("Patched Namespace %s labels: %s", name, patch["metadata"].get("labels", {}))
            await reconcile_network_policies(state, ns, baselines)
    fingerprint = tuple(sorted(ns.selector_labels.items()))
    previous = state.ns_fingerprints.get(name)
    state.ns_fingerprints[name] = fingerprint
    if evaluate_workloads or (previous is not None and previous != fingerprint):
        state.enqueue(state.workload_keys(name))
    for baseline in baselines:
        state.dirty.add(baseline.name)


async def reconcile_network_policies(state: State, ns: NamespaceInfo, baselines: list[Baseline]) -> None:
    desired = [build_network_policy(b, ns.name) for b in baselines if protects(b, ns)]
    existing = state.network_policies(ns.name)
    actions = plan_network_policies(desired, existing)
    by_name = {p["metadata"]["name"]: p for p in existing}

    def seen(name: str) -> str:
        return str(by_name[name]["metadata"].get("resourceVersion", "")) if name in by_name else ""

    for body in actions.create:
        if not state.already_acted(("NetworkPolicy", ns.name, body["metadata"]["name"]), ""):
            await state.cluster.create_network_policy(body)
            logger.info("Created NetworkPolicy %s/%s", ns.name, body["metadata"]["name"])
    for body in actions.replace:
        rv = seen(body["metadata"]["name"])
        if not state.already_acted(("NetworkPolicy", ns.name, body["metadata"]["name"]), rv):
            await state.cluster.replace_network_policy(body, rv)
            logger.info("Replaced NetworkPolicy %s/%s", ns.name, body["metadata"]["name"])
    for policy_name in actions.delete:
        if not state.already_acted(("NetworkPolicy", ns.name, policy_name), seen(policy_name)):
            await state.cluster.delete_network_policy(ns.name, policy_name)
            logger.info("Deleted NetworkPolicy %s/%s", ns.name, policy_name)


async def reconcile_everything(state: State) -> None:
    """After a baseline was created, changed or deleted: every namespace, then every workload."""
    state.full_passes += 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        namespaces = state.namespace_names()
        for name in namespaces:
            await reconcile_namespace(state, name)
        keys = state.workload_keys()
        logger.info("Evaluating %d workloads in %d namespaces", len(keys), len(namespaces))
        state.enqueue(keys)
        await state.drained.wait()
        logger.info("Evaluated %d workloads in %.1f s", len(keys), loop.time() - started)
    finally:
        state.full_passes -= 1
    known = {(b.get("metadata") or {}).get("name") for b in state.baseline_bodies()}
    for name in list(state.verdicts):
        if name not in known:
            del state.verdicts[name]
            state.last_status.pop(name, None)
    state.dirty.update(n for n in known if n)
    state.passed.set()


def involved_object(
    api_version: str, kind: str, namespace: str, name: str, uid: str, rv: str
) -> dict[str, Any]:
    """The identity an Event refers to (the queue holds tuples, not bodies)."""
    meta = {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": rv}
    return {"apiVersion": api_version, "kind": kind, "metadata": {k: v for k, v in meta.items() if v}}


async def post_events_forever(state: State) -> None:
    """One Event poster. Events are informational, so they queue behind the fixes and a few
    posters send them once no workload waits to be reconciled: a burst of remediations is not
    slowed down by its own Events competing for the API server."""
    while True:
        involved, reason, message = await state.events.get()
        await state.drained.wait()
        try:
            await state.cluster.post_event(involved_object(*involved), reason=reason, message=message)
        except Exception:  # an Event lost must not stop the poster
            logger.exception("Posting a %s Event failed", reason)
        finally:
            state.events.task_done()


# --- status ----------------------------------------------------------------------------------------


def overlap_notes(state: State, baseline: Baseline, governed: list[str]) -> list[str]:
    others = [b for b in state.baselines() if b.name != baseline.name]
    overlapping = sorted({o.name for o in others for ns in governed if governs(o, state.namespace(ns))})
    if not overlapping:
        return []
    return [f"overlaps with {', '.join(overlapping)}: {OVERLAP_RULE}"]


def desired_status(
    state: State, body: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    stamp = now_utc().strftime("%Y-%m-%dT%H:%M:%SZ")
    parsed = state.parse(body)
    if isinstance(parsed, str):
        return build_status(
            previous,
            generation=generation,
            ready=(False, "InvalidSpec", parsed[:1000]),
            verdicts=None,
            namespaces=0,
            now=stamp,
        )
    governed = [n for n in state.namespace_names() if governs(parsed, state.namespace(n))]
    remediating = sum(1 for n in governed if remediates(parsed, state.namespace(n)))
    if state.options.dry_run:
        ready = (True, "DryRun", f"Auditing {len(governed)} namespaces; dry run: nothing is written")
    elif parsed.spec.mode == "remediate":
        ready = (True, "Remediating", f"Auditing {len(governed)} namespaces, remediating {remediating}")
    else:
        ready = (True, "Auditing", f"Auditing {len(governed)} namespaces")
    admission = state.admission and state.admission.condition(
        parsed.name, (previous or {}).get("conditions"), generation=generation, now=stamp
    )
    return build_status(
        previous,
        generation=generation,
        ready=ready,
        verdicts=state.verdicts.get(parsed.name, {}).values(),
        namespaces=len(governed),
        notes=overlap_notes(state, parsed, governed),
        now=stamp,
        extra_conditions=[admission] if admission else [],
    )


async def flush_status(state: State, name: str) -> None:
    body = state.baseline_body(name)
    if body is None:
        return
    stored = body.get("status") or {}
    previous = state.last_status.get(name) or stored
    status = desired_status(state, body, previous)
    if status == state.last_status.get(name) or all(stored.get(k) == v for k, v in status.items()):
        state.last_status[name] = status
        return
    if await state.cluster.patch_baseline_status(name, status):
        state.last_status[name] = status


async def flush_statuses_forever(state: State, tick: float = 0.1) -> None:
    """The single background writer of baseline status. A dirty baseline is flushed at once if
    its last flush is at least `status_interval` old, else when that much time has passed: a
    change shows promptly, and a baseline's status is computed and written at most once per
    interval however fast its workloads change."""
    await state.ready.wait()
    loop = asyncio.get_running_loop()
    last_flush: dict[str, float] = {}
    settle_by = loop.time() + SETTLE_SECONDS
    while True:
        with contextlib.suppress(TimeoutError):  # a tick, or at once when a full pass ended
            await asyncio.wait_for(state.passed.wait(), tick)
        state.passed.clear()
        now, interval = loop.time(), state.options.status_interval
        if state.full_passes or not (state.settled or now >= settle_by):
            continue  # a partial picture: see State.settled
        due = sorted(n for n in state.dirty if now - last_flush.get(n, -math.inf) >= interval)
        for name in due:
            state.dirty.discard(name)
            last_flush[name] = now
            try:
                await flush_status(state, name)
            except Exception:  # keep the writer alive; the next change retries
                logger.exception("Writing the status of SecurityBaseline %s failed", name)
                state.dirty.add(name)


# --- Kopf wiring -------------------------------------------------------------------------------


def credentials_from(info: kopf.ConnectionInfo, token_path: str | None = None) -> Credentials:
    def as_bytes(value: str | bytes | None) -> bytes | None:
        return value.encode() if isinstance(value, str) else value

    def as_path(value: Any) -> str | None:
        return os.fsdecode(value) if value else None

    return Credentials(
        server=str(info.server),
        ca_path=as_path(info.ca_path),
        ca_data=as_bytes(info.ca_data),
        certificate_path=as_path(info.certificate_path),
        certificate_data=as_bytes(info.certificate_data),
        private_key_path=as_path(info.private_key_path),
        private_key_data=as_bytes(info.private_key_data),
        token=info.token,
        insecure=bool(info.insecure),
    )


def login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("No service account and no kubeconfig found")
    return info


class BaselinesOnlyDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf builds a diff base (a deep copy of the body) on every event of every watched kind,
    though only SecurityBaselines have change-detecting handlers: other kinds get an empty one.
    On the workload path this was an eighth of the operator's CPU."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        if body.get("kind") != KIND:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)


@kopf.on.login()
def on_login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return login(settings)


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    options = memo.get("options") or options_from_env()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = BaselinesOnlyDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/finalizer"
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.watching.chunk_size = 500
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.queueing.worker_limit = None
    cluster = Cluster(credentials_from(login(settings)), concurrency=options.write_concurrency)
    await cluster.open()
    state = State(cluster=cluster, options=options)
    if not options.dry_run:  # a dry run writes nothing, admission policies included
        state.admission = AdmissionSync(cluster, state.dirty.add)
    memo["state"] = state
    memo["flusher"] = asyncio.create_task(flush_statuses_forever(state), name="kube-baseline-status")
    memo["reconciler"] = asyncio.create_task(reconcile_pending_forever(state), name="kube-baseline-workloads")
    memo["watchers"] = [
        asyncio.create_task(watch_workloads(state, kind, namespace), name=f"kube-baseline-watch-{kind}")
        for kind in WORKLOAD_RESOURCES
        for namespace in options.namespaces or (None,)
    ]
    state.watches = len(memo["watchers"])
    memo["posters"] = [
        asyncio.create_task(post_events_forever(state), name=f"kube-baseline-events-{i}")
        for i in range(EVENT_POSTERS)
    ]
    logger.info("Started kube-baseline (dry run: %s)", options.dry_run)


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task_name in ("flusher", "reconciler"):
        if (task := memo.get(task_name)) is not None:
            task.cancel()
    for watcher in memo.get("watchers") or ():
        watcher.cancel()
    state = memo.get("state")
    if state is not None and state.events.qsize():
        state.drained.set()  # the reconciler is stopped: nothing to wait for
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.events.join(), EVENT_DRAIN_SECONDS)
    for poster in memo.get("posters") or ():
        poster.cancel()
    if state is not None:
        logger.info("Stopped kube-baseline; requests sent: %s", dict(sorted(state.cluster.requests.items())))
        await state.cluster.close()


# Indexes: the gathered state. Returning None keeps an object out of the index.


@kopf.index(*BASELINES, id=IDX_BASELINES)
async def index_baselines(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        name: {
            "metadata": {k: meta.get(k) for k in ("name", "uid", "generation", "resourceVersion")},
            "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {}),
        }
    }


@kopf.index(*NAMESPACES, id=IDX_NAMESPACES)
async def index_namespaces(body: kopf.Body, name: str, **_: Any) -> dict[str, NamespaceInfo]:
    return {name: build_namespace_info(body)}


@kopf.index(*NETWORK_POLICIES, id=IDX_NETPOLS)
async def index_network_policies(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Any]:
    return {namespace or "": slim_object(body)}


@kopf.on.event(*NAMESPACES, id="reconcile_namespace")
async def on_namespace_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.bind(kwargs)
    await reconcile_namespace(state, name)


@kopf.on.event(*NETWORK_POLICIES, id="reconcile_network_policies")
async def on_network_policy_event(namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.bind(kwargs)
    coverage = any("networkPolicyCoverage" in b.policy.enabled for b in state.baselines())
    await reconcile_namespace(state, namespace or "", evaluate_workloads=coverage)


@kopf.on.resume(*BASELINES, id="resume_baseline")
async def on_baseline_resume(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """At startup the workload and namespace events evaluate everything; only status is due."""
    state: State = memo["state"]
    state.bind(kwargs)
    state.dirty.add(name)


@kopf.on.create(*BASELINES, id="apply_baseline")
@kopf.on.update(*BASELINES, id="change_baseline", field="spec")
async def on_baseline_change(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.bind(kwargs)
    await reconcile_everything(state)
    state.dirty.add(name)


@kopf.on.delete(*BASELINES, id="remove_baseline", optional=True)
async def on_baseline_delete(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.bind(kwargs)
    await forget_baseline(state, name)


@kopf.on.event(*BASELINES, id="watch_baselines")
async def on_baseline_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """Deletion without a finalizer: once the baseline left the index, undo what it created."""
    state: State = memo["state"]
    state.bind(kwargs)
    if state.baseline_body(name) is None and (name in state.verdicts or name in state.parsed):
        await forget_baseline(state, name)
    elif state.admission and (body := state.baseline_body(name)) is not None:
        await state.admission.sync(body)  # a no-op unless the rendered policies changed


@kopf.on.event(*ADMISSION_POLICIES, labels={MANAGED_BY_LABEL: FIELD_MANAGER}, id="watch_admission_policies")
@kopf.on.event(*ADMISSION_BINDINGS, labels={MANAGED_BY_LABEL: FIELD_MANAGER}, id="watch_admission_bindings")
async def on_admission_policy_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Put generated policies back when edited or deleted; pick up type-checking warnings."""
    state: State = memo["state"]
    state.bind(kwargs)
    if state.admission:
        await state.admission.observe(body, state.baseline_body(owner_of(body)))


async def forget_baseline(state: State, name: str) -> None:
    if state.admission:
        await state.admission.remove(name)
    state.parsed.pop(name, None)
    state.verdicts.pop(name, None)
    state.last_status.pop(name, None)
    if state.baseline_body(name) is None:
        await reconcile_everything(state)
        logger.info("Removed what SecurityBaseline %s created", name)


# --- running -----------------------------------------------------------------------------------


def run_operator(
    *,
    dry_run: bool,
    log_format: str,
    verbose: bool,
    namespaces: list[str],
    standalone: bool,
    peering: str | None,
    stop_flag: Any = None,
    ready_flag: Any = None,
    status_interval: float = 0.5,
    write_concurrency: int = Options.write_concurrency,
    liveness: str | None = None,
) -> int:
    """Run the operator until stopped (cluster-wide unless namespaces are given). Returns an exit code."""
    formats = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}
    kopf.configure(verbose=verbose, log_format=formats.get(log_format, kopf.LogFormat.FULL))
    if not verbose:  # one "Handler ... succeeded" line per watch event is CPU spent per workload
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if patterns := [n for n in namespaces if any(c in n for c in "*?[]!")]:
        logger.error("Namespace patterns are not supported, only names: %s", ", ".join(patterns))
        return 2
    options = Options(
        dry_run=dry_run,
        namespaces=tuple(namespaces),
        status_interval=status_interval,
        write_concurrency=write_concurrency,
    )
    memo = kopf.Memo(options=options)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=standalone,
        peering_name=peering,
        memo=memo,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness,
    )
    return 0


__all__ = ["Options", "State", "run_operator"]
