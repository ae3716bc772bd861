"""The reconcilers: gather from the store, decide with the engine (pure), act through the client.

- Workloads: a plain list-and-watch per kind keeps each one's audit view in the store and queues
  its key; a pool of workers reconciles the latest stored state of each queued workload. A
  compliant workload costs zero writes; a non-compliant one in a remediating namespace costs one
  strategic-merge patch (field manager kube-baseline) and one Event, posted behind the fixes.
- Namespaces: labels, and the managed NetworkPolicies.
- Level-based: every reconcile recomputes from the current stored state, never from the event
  type (a DELETED event only tells that the workload is gone from the store).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from kube_baseline.controller import metrics, report_writer, rollout_guard, writelog
from kube_baseline.controller.cluster import ApiError
from kube_baseline.controller.store import Note, State, WorkloadKey, now_utc, slim_workload, watch_name
from kube_baseline.engine.desired import (
    BASELINE_LABEL,
    Baseline,
    NamespaceInfo,
    build_namespace_patch,
    decide_workload,
    describe_changes,
    desired_network_policies,
    governs,
    is_attributed_to_controller,
    is_remediated,
    plan_network_policies,
    remediates,
)
from kube_baseline.engine.models import FIELD_MANAGER
from kube_baseline.engine.status import build_verdict
from kube_baseline.engine.workloads import Workload, workload_of

logger = logging.getLogger("kube_baseline.controller.reconcile")


async def watch_workloads(state: State, kind: str, namespace: str | None) -> None:
    """Keep the store of one workload kind in step with the API server: list, then watch.

    Not Kopf: a Kopf handler per workload event costs more CPU than the audit, and Kopf keeps
    several objects per watched workload for handler bookkeeping this operator does not use
    (it writes nothing onto workloads); measured in bench/RESULTS.md. A controller's Pod or
    ReplicaSet is not stored: the controller is what is evaluated.
    """
    listed: set[WorkloadKey] | None = None
    async for what, obj in state.cluster.watch_kind(kind, namespace):
        if kind == "Pod" and state.placement.pod_event(namespace, what, obj):
            placement_changed(state)
        if what == "LISTING":
            listed = set()
        elif what == "SYNCED":
            if listed is not None:
                stale = [k for k in state.model.stored_keys(kind) if k not in listed]
                for gone in stale:  # deleted while we were not watching
                    state.model.store_workload(gone, None)
                state.work.put(stale)
            listed = None
            state.work.watch_synced(watch_name(kind, namespace))
        elif (workload := workload_of(obj)) is not None:
            key: WorkloadKey = (workload.kind, workload.namespace, workload.name)
            state.rollouts.observe(key, None if what == "DELETED" else obj)
            if listed is not None:
                listed.add(key)
            keep = what != "DELETED" and not is_attributed_to_controller(obj)
            try:
                state.model.store_workload(key, slim_workload(obj, workload) if keep else None)
                state.work.put((key,))
            except Exception:  # one malformed object must not stop the watch
                logger.exception("Storing %s %s/%s failed", *key)
        # Reading a buffered stream does not suspend: without this, a backlog of events (the
        # echoes of a burst of patches) would hold the loop while patch responses wait.
        await asyncio.sleep(0)


def placement_changed(state: State) -> None:
    """Where pods run changed: the status of every baseline with tiers is due (tierCoTenancy)."""
    state.ledger.mark_due(*(b.name for b in state.model.baselines() if b.spec.tiers))


async def reconcile_pending_forever(state: State) -> None:
    """The workload reconciler: workers (as many as writes may be in flight) each take the next
    queued key and reconcile the latest stored state of that workload."""
    await state.model.bound.wait()

    async def worker() -> None:
        while True:
            async with state.work.take() as key:
                await reconcile_key(state, key)

    await asyncio.gather(*(worker() for _ in range(max(1, state.options.write_concurrency))))


async def reconcile_key(state: State, key: WorkloadKey) -> None:
    try:
        async with state.locks.hold(key):
            workload = state.model.workload(key)
            if workload is None:
                state.ledger.forget_workload(key)
                return
            with metrics.timed_reconcile():
                await reconcile_workload(state, key, workload)
    except Exception:  # one workload's failure must not stop the reconciler
        logger.exception("Reconciling %s %s/%s failed", *key)


async def reconcile_workload(state: State, key: WorkloadKey, workload: Workload) -> None:
    """Audit one stored top-level workload under every governing baseline; patch it once if
    remediating. The caller holds the workload's lock."""
    if state.ledger.is_stale_echo(key, workload.obj):
        return  # our own patch is newer: its echo will come
    ns = state.model.namespace(workload.namespace)
    governing = [b for b in state.model.baselines() if governs(b, ns)]
    decision = decide_workload(
        workload,
        governing,
        ns,
        network_policies=state.model.network_policies(workload.namespace),
        now=now_utc(),
        allow_writes=not state.options.dry_run,
    )
    audits = decision.audits
    remediated = is_remediated(workload.obj, FIELD_MANAGER)
    admitted, flight = (
        await rollout_guard.admit(state, key, workload, decision) if decision.patch else (False, None)
    )
    if admitted:
        try:
            written = await state.cluster.patch_workload(*key, decision.patch)
        except ApiError as exc:
            logger.warning("Patching %s %s/%s failed: %s", *key, exc)
            await rollout_guard.patched(state, flight, ok=False)
            metrics.remediated(decision.remediated_by, (), ok=False)
        else:
            await rollout_guard.patched(state, flight, ok=True)
            state.ledger.wrote_workload(key, int(written or 0))
            remediated = True
            # The patched state's verdict (the server applies the same strategic merge; the
            # watch's echo confirms it).
            audits = decision.audits_after
            fields = describe_changes(decision.changes)
            by = ", ".join(decision.remediated_by)
            changed = sorted({c.field for c in decision.changes})
            writelog.record(
                "patch", *key, baselines=decision.remediated_by, fields=changed, resource_version=written
            )
            metrics.remediated(decision.remediated_by, ((c.check, c.risk) for c in decision.changes), ok=True)
            logger.info("Patched %s %s/%s for SecurityBaseline %s: %s", *key, by, fields)
            uid = str(workload.metadata.get("uid", ""))
            involved = (str(workload.obj.get("apiVersion")), *key, uid, str(written or ""))
            # Interned: a burst queues thousands of Events, most with the same message.
            message = sys.intern(f"SecurityBaseline {by} set {fields}")
            state.events.put_nowait(Note(involved, "Remediated", message))
    verdicts = {
        b.name: build_verdict(
            workload.namespace,
            workload.kind,
            workload.name,
            audits[b.name].findings,
            audits[b.name].exempted,
            remediated=remediated,
        )
        for b in governing
    }
    state.ledger.record_verdicts(key, verdicts)
    report_writer.note(state, key, governing)


async def reconcile_namespace(state: State, name: str, *, evaluate_workloads: bool = False) -> None:
    """Namespace labels and managed NetworkPolicies; re-audit its workloads when its labels changed."""
    ns = state.model.namespace(name)
    baselines = state.model.baselines()
    async with state.locks.hold(("Namespace", name)):
        if not state.options.dry_run and state.model.has_namespace(name):
            patch = build_namespace_patch(ns, [b for b in baselines if remediates(b, ns)])
            if patch is not None and not state.ledger.already_acted(
                ("Namespace", name, ""), ns.resource_version
            ):
                await state.cluster.patch_namespace(name, patch)
                by = [b.name for b in baselines if remediates(b, ns)]
                writelog.record("patch", "Namespace", "", name, baselines=by, fields=_label_fields(patch))
                logger.info("Patched Namespace %s labels: %s", name, patch["metadata"].get("labels", {}))
            await reconcile_network_policies(state, ns, baselines)
    if state.model.selector_labels_changed(ns) or evaluate_workloads:
        state.work.put(state.model.workload_keys(name))
    state.ledger.mark_due(*(b.name for b in baselines))


async def reconcile_network_policies(state: State, ns: NamespaceInfo, baselines: list[Baseline]) -> None:
    desired = desired_network_policies(ns, baselines)
    existing = state.model.network_policies(ns.name)
    actions = plan_network_policies(desired, existing)
    by_name = {p["metadata"]["name"]: p for p in existing}

    def seen(name: str) -> str:
        return str(by_name[name]["metadata"].get("resourceVersion", "")) if name in by_name else ""

    for body in actions.create:
        if not state.ledger.already_acted(("NetworkPolicy", ns.name, body["metadata"]["name"]), ""):
            await state.cluster.create_network_policy(body)
            writelog.record(
                "create",
                "NetworkPolicy",
                ns.name,
                body["metadata"]["name"],
                fields=["spec"],
                baselines=[body["metadata"]["labels"][BASELINE_LABEL]],
            )
            logger.info("Created NetworkPolicy %s/%s", ns.name, body["metadata"]["name"])
    for body in actions.replace:
        rv = seen(body["metadata"]["name"])
        if not state.ledger.already_acted(("NetworkPolicy", ns.name, body["metadata"]["name"]), rv):
            await state.cluster.replace_network_policy(body, rv)
            writelog.record(
                "replace",
                "NetworkPolicy",
                ns.name,
                body["metadata"]["name"],
                fields=["spec"],
                baselines=[body["metadata"]["labels"][BASELINE_LABEL]],
            )
            logger.info("Replaced NetworkPolicy %s/%s", ns.name, body["metadata"]["name"])
    for policy_name in actions.delete:
        if not state.ledger.already_acted(("NetworkPolicy", ns.name, policy_name), seen(policy_name)):
            await state.cluster.delete_network_policy(ns.name, policy_name)
            writelog.record("delete", "NetworkPolicy", ns.name, policy_name)
            logger.info("Deleted NetworkPolicy %s/%s", ns.name, policy_name)


async def reconcile_everything(state: State) -> None:
    """After a baseline was created, changed or deleted: every namespace, then every workload."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with state.work.full_pass():
        namespaces = state.model.namespace_names()
        for name in namespaces:
            await reconcile_namespace(state, name)
        keys = state.model.workload_keys()
        logger.info("Evaluating %d workloads in %d namespaces", len(keys), len(namespaces))
        state.work.put(keys)
        await state.work.drained.wait()
        logger.info("Evaluated %d workloads in %.1f s", len(keys), loop.time() - started)
        metrics.full_evaluation_done()
        known = [str((b.get("metadata") or {}).get("name") or "") for b in state.model.baseline_bodies()]
        state.ledger.keep_baselines(name for name in known if name)


async def forget_baseline(state: State, name: str) -> None:
    """A baseline was deleted: forget it and, once it left the index, undo what it created."""
    if state.admission:
        await state.admission.remove(name)
    state.model.forget_parsed(name)
    state.ledger.forget_baseline(name)
    if state.model.baseline_body(name) is None:
        await reconcile_everything(state)
        logger.info("Removed what SecurityBaseline %s created", name)


def _label_fields(patch: dict[str, Any]) -> list[str]:
    meta = patch.get("metadata") or {}
    return [f"metadata.{part}.{k}" for part in ("labels", "annotations") for k in meta.get(part) or {}]


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
        note = await state.events.get()
        await state.work.drained.wait()
        try:
            await state.cluster.post_event(
                involved_object(*note.involved), reason=note.reason, message=note.message, type_=note.type
            )
        except Exception:  # an Event lost must not stop the poster
            logger.exception("Posting a %s Event failed", note.reason)
        finally:
            state.events.task_done()
