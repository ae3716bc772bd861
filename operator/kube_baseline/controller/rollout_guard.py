"""The rollout guard: follows the rollouts the operator's fixes cause, undoes a fix whose new pods
fail, keeps a fix that was undone from being applied again, and lets at most maxInFlight fixes
roll at once (the rest wait in order).

- Only rollouts in flight are followed, each by its own task. The workload watch hands the guard
  each new state of a workload in flight (a small view: spec without template, status), which
  wakes its follower; once the controller observed the change, the follower lists the new pods
  (a LIST by the selector), with backoff. A workload is read only when the watch brought nothing
  newer than the patch (a flight resumed after a restart). The workers never wait for a rollout.
- The verdict and the undo are pure (engine.rollout). The undo is one strategic-merge patch with
  the resourceVersion read as a precondition.
- The record of flights and rollbacks is kept in the operator's own ConfigMap
  (`kube-baseline-rollouts` in the operator's namespace), never on workloads: it survives a
  restart (flights are resumed; a rolled-back fix stays off until the template changes or its
  entry is deleted). Without that namespace the record lives in memory only. Writes are grouped
  (one in flight at a time, carrying every entry queued meanwhile); a flight whose guard is off
  is not recorded (nothing would be undone after a restart), and with the guard off and no
  maxInFlight limit in effect a fix is not followed at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from kube_baseline.controller import metrics
from kube_baseline.controller.cluster import ApiError
from kube_baseline.controller.rollout_book import Flight, RolledBack, record_key
from kube_baseline.controller.store import Note, State, WorkloadKey
from kube_baseline.engine.desired import Baseline, Decision, merge_patches
from kube_baseline.engine.models import FIELD_MANAGER, Rollout
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.rollout import (
    causes_rollout,
    rollout_state,
    rollout_view,
    signal_of,
    template_hash,
    undo_patch,
)
from kube_baseline.engine.workloads import Workload

logger = logging.getLogger("kube_baseline.controller.rollout_guard")

RECORD_NAME = "kube-baseline-rollouts"
POLL_FIRST = 1.0  # seconds between polls of a rollout, growing by half up to POLL_MAX
POLL_MAX = 10.0
UNDO_ATTEMPTS = 3


# --- the record --------------------------------------------------------------------------------


async def load(state: State) -> None:
    """Read (or create) the record; resume following the flights it lists. Fixes wait for this."""
    book, ns = state.rollouts, state.options.record_namespace
    try:
        found = await state.cluster.read_config_map(ns, RECORD_NAME)
        if found is None:
            meta = {
                "name": RECORD_NAME,
                "namespace": ns,
                "labels": {"app.kubernetes.io/name": "kube-baseline"},
            }
            await state.cluster.create_config_map({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
        book.persisted = True
        flights = book.load((found or {}).get("data") or {})
        for flight in flights:
            follow_in_background(state, flight)
        if flights or book.rolled_back:
            logger.info(
                "Resumed %d remediation rollouts; %d fixes rolled back", len(flights), len(book.rolled_back)
            )
    except ApiError as exc:
        logger.warning(
            "Keeping the rollout record in memory only (ConfigMap %s/%s: %s)", ns, RECORD_NAME, exc
        )
    finally:
        book.loaded.set()


async def _persist(state: State, data: Mapping[str, str | None]) -> None:
    """Write entries of the record; returns once they are written (or the write failed).

    Group commit: one write is in flight at a time and carries every entry queued meanwhile, so
    a burst of fixes costs a handful of ConfigMap writes, not one each (concurrent patches of one
    object queue up in the API server: measured 46x the bare loop at N=300 with one write per fix).
    """
    book = state.rollouts
    if not book.persisted:
        return
    book.pending.update(data)
    if book.batch is None:
        book.batch = asyncio.get_running_loop().create_future()
        if book.writer is None or book.writer.done():
            book.writer = asyncio.create_task(_write_batches(state), name="kube-baseline-rollout-record")
    await asyncio.shield(book.batch)


async def _write_batches(state: State) -> None:
    book = state.rollouts
    while book.batch is not None:
        data, book.pending = book.pending, {}
        done, book.batch = book.batch, None
        try:
            await state.cluster.patch_config_map_data(state.options.record_namespace, RECORD_NAME, data)
        except ApiError as exc:
            logger.warning("Writing the rollout record failed (%d entries): %s", len(data), exc)
        except Exception:  # the waiting fixes must not hang on an unexpected failure
            logger.exception("Writing the rollout record failed (%d entries)", len(data))
        finally:
            done.set_result(None)


async def _still_recorded(state: State, key: WorkloadKey) -> bool:
    """The rolled-back entry is still in the ConfigMap (deleting it there clears it)."""
    if not state.rollouts.persisted:
        return True
    try:
        found = await state.cluster.read_config_map(state.options.record_namespace, RECORD_NAME)
    except ApiError:
        return True
    return record_key(key) in ((found or {}).get("data") or {})


# --- admitting a fix -----------------------------------------------------------------------------


def _limit(state: State, baseline: Baseline) -> int:
    return baseline.spec.remediation.rollout.in_flight_limit(state.ledger.governed(baseline.name))


def _unguarded(state: State, baseline: Baseline) -> bool:
    """The guard is off and maxInFlight does not limit (at least every governed workload):
    following the baseline's rollouts would only cost a task each (10,000 at once in a burst)."""
    return not baseline.spec.remediation.rollout.guard and _limit(state, baseline) >= state.ledger.governed(
        baseline.name
    )


async def admit(
    state: State, key: WorkloadKey, workload: Workload, decision: Decision
) -> tuple[bool, Flight | None]:
    """Whether the decided patch may be written now, and the flight to follow once it is.
    Not now: the fix was rolled back on this very template, or it would roll pods while
    maxInFlight rollouts of one of its baselines are in flight (it waits, in order)."""
    book = state.rollouts
    await book.loaded.wait()
    rolled = book.rolled_back.get(key)
    if rolled is not None:
        if rolled.template == template_hash(workload.obj) and await _still_recorded(state, key):
            return False, None
        del book.rolled_back[key]  # the template changed for another reason, or it was cleared
        state.ledger.mark_due(*rolled.baselines)
        await _persist(state, {record_key(key): None})
    changes = {c.field: c.value for c in decision.changes}
    if not causes_rollout(key[0], changes):
        return True, None  # no pods restart: nothing to follow or throttle
    names = decision.remediated_by
    baselines = [b for b in state.model.baselines() if b.name in names]
    if baselines and all(_unguarded(state, b) for b in baselines):
        return True, None  # nothing would be undone and nothing paced: not followed
    if key in book.in_flight or any(book.in_flight_for(b.name) >= _limit(state, b) for b in baselines):
        book.wait(key, names)
        state.ledger.mark_due(*names)
        return False, None
    settings = baselines[0].spec.remediation.rollout if baselines else Rollout()
    flight = Flight(key, names, changes, time.time(), settings)
    book.take(flight)  # the slot is taken before anything is awaited
    book.waiting.pop(key, None)
    state.ledger.mark_due(*names)
    if settings.guard:  # recorded before the patch, so a restarted operator can still undo it
        await _persist(state, {record_key(key): flight.record()})
    return True, flight


async def patched(state: State, flight: Flight | None, ok: bool) -> None:
    """After the patch: follow the rollout, or give the slot back if the patch failed."""
    if flight is None:
        return
    if ok:
        follow_in_background(state, flight)
    else:
        await _finish(state, flight, None)


# --- following a rollout -------------------------------------------------------------------------


def follow_in_background(state: State, flight: Flight) -> None:
    task = asyncio.create_task(follow(state, flight), name=f"kube-baseline-rollout-{record_key(flight.key)}")
    state.rollouts.tasks.add(task)
    task.add_done_callback(state.rollouts.tasks.discard)


def label_selector(obj: Mapping[str, Any]) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


async def _current(state: State, flight: Flight) -> dict[str, Any] | None:
    """The workload as the watch last delivered it (newer than our patch), else as read now;
    None when it is gone."""
    book = state.rollouts
    if flight.key in book.seen:
        seen = book.seen[flight.key]
        if seen is None or not state.ledger.is_stale_echo(flight.key, seen):
            return seen
    found = await state.cluster.read_workload(*flight.key)
    return None if found is None else rollout_view(found)


async def follow(state: State, flight: Flight) -> None:
    """Judge the rollout each time the watch delivers the workload (its echo, then the
    controller's status updates) and at growing intervals; the new pods are listed only once
    the controller observed the change."""
    kind, ns, name = flight.key
    book = state.rollouts
    wake = book.wakeups.setdefault(flight.key, asyncio.Event())
    delay = POLL_FIRST
    outcome: str | None = None
    try:
        while outcome is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            woken = wake.is_set()
            wake.clear()
            if not woken:
                delay = min(delay * 1.5, POLL_MAX)
            try:
                obj = await _current(state, flight)
                if obj is None:
                    outcome = "Gone"
                    break
                status = obj.get("status") or {}
                generation = int((obj.get("metadata") or {}).get("generation") or 0)
                observed = int(status.get("observedGeneration") or -1) >= generation
                if "observedGeneration" in status:
                    book.no_controller.discard(kind)
                elif flight.counted:
                    book.uncount(flight)  # nothing rolls yet: its slot goes to the next fix
                    _release(state)
                pods = await state.cluster.list_pods(ns, label_selector(obj)) if observed else []
                elapsed = time.time() - flight.started
                if "observedGeneration" not in status and kind in book.no_controller:
                    elapsed = float(flight.settings.deadline_seconds)  # as before: concluded at once
                verdict = rollout_state(obj, pods, flight.changes, flight.settings, elapsed=elapsed)
                if verdict.verdict == "Unverified" and "observedGeneration" not in status:
                    book.no_controller.add(kind)
                if verdict.verdict == "Failed" and flight.settings.guard:
                    outcome = await _roll_back(state, flight, verdict.reason)
                    break
            except ApiError as exc:  # read or undo failed: try again at the next poll
                logger.warning("Following the rollout of %s %s/%s: %s", kind, ns, name, exc)
            else:
                if verdict.verdict != "Progressing":
                    outcome = verdict.verdict
                    await _report(state, obj, flight, outcome, verdict.reason)
                    break
            if woken:  # status updates come in bursts: judge at most twice a second
                await asyncio.sleep(POLL_FIRST / 2)
    finally:
        if not asyncio.current_task() or not asyncio.current_task().cancelling():  # type: ignore[union-attr]
            await _finish(state, flight, outcome)


async def _report(state: State, obj: Mapping[str, Any], flight: Flight, outcome: str, reason: str) -> None:
    kind, ns, name = flight.key
    by = ", ".join(flight.baselines)
    fields = ", ".join(sorted(flight.changes))
    if outcome == "Succeeded":
        event, type_, message = (
            "RemediationSucceeded",
            "Normal",
            f"The rollout of {fields} (SecurityBaseline {by}) succeeded",
        )
    elif outcome == "Unverified":
        event, type_ = "RemediationUnverified", "Normal"
        message = f"The rollout of {fields} (SecurityBaseline {by}) was not verified: {reason}"
    else:  # Failed with the guard off: reported, not undone
        event, type_ = "RemediationFailed", "Warning"
        message = f"The rollout of {fields} (SecurityBaseline {by}) failed: {reason}; the guard is off"
    logger.info("Rollout of %s %s/%s: %s %s", kind, ns, name, outcome, reason)
    _event(state, obj, event, message, type_)


def _event(state: State, obj: Mapping[str, Any], reason: str, message: str, type_: str) -> None:
    meta = obj.get("metadata") or {}
    parts = (obj.get("apiVersion"), obj.get("kind"), *(meta.get(k) for k in ("namespace", "name", "uid")))
    api_version, kind, namespace, name, uid = (str(p or "") for p in parts)
    state.events.put_nowait(Note((api_version, kind, namespace, name, uid, ""), reason, message, type_))


async def _roll_back(state: State, flight: Flight, reason: str) -> str:
    """Remove exactly the fields the fix set (where unchanged since); record it; tell."""
    kind, ns, name = flight.key
    book = state.rollouts
    obj: dict[str, Any] | None = None
    async with state.locks.hold(flight.key):
        for _ in range(UNDO_ATTEMPTS):
            obj = await state.cluster.read_workload(kind, ns, name)
            if obj is None:
                return "Gone"
            undo = undo_patch(obj, FIELD_MANAGER, flight.changes)
            restored = apply_patch(obj, undo.patch)
            record = RolledBack(flight.key, flight.baselines, template_hash(restored), reason, undo.removed)
            book.rolled_back[flight.key] = record  # before the write: its echo must find it
            if not undo.patch:
                break
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            patch = merge_patches(undo.patch, {"metadata": {"resourceVersion": rv}})
            try:
                written = await state.cluster.patch_workload(kind, ns, name, patch)
            except ApiError as exc:
                if exc.status == 409:
                    continue  # changed meanwhile: read again and recompute
                raise
            state.ledger.wrote_workload(flight.key, int(written or 0))
            break
    if obj is None:
        return "Gone"
    await _persist(state, {record_key(flight.key): record.record()})
    for baseline in flight.baselines:
        metrics.undone(baseline, signal_of(reason))
    fields = ", ".join(undo.removed) or "nothing"
    kept = (
        "; left alone: " + ", ".join(f"{f} ({why})" for f, why in sorted(undo.kept.items()))
        if undo.kept
        else ""
    )
    message = f"Removed {fields} set by SecurityBaseline {', '.join(flight.baselines)}: {reason}{kept}"
    logger.warning("Rolled back %s %s/%s: %s", kind, ns, name, message)
    _event(state, obj, "RemediationRolledBack", message, "Warning")
    return "RolledBack"


async def _finish(state: State, flight: Flight, outcome: str | None) -> None:
    """Free the slot; let the next waiting fixes go, in order."""
    book = state.rollouts
    book.landed(flight.key)
    if outcome in ("Succeeded", "Unverified"):
        book.count(flight.baselines, outcome)
    if outcome != "RolledBack" and flight.settings.guard:
        await _persist(state, {record_key(flight.key): None})
    state.ledger.mark_due(*flight.baselines)
    _release(state)


def _release(state: State) -> None:
    """Queue the waiting fixes that now fit under their baselines' limits, oldest first."""
    book = state.rollouts
    if not book.waiting:
        return
    free = {b.name: _limit(state, b) - book.in_flight_for(b.name) for b in state.model.baselines()}
    released = []
    for key, names in list(book.waiting.items()):
        if free and all(v <= 0 for v in free.values()):
            break  # every baseline is at its limit: nothing further down fits either
        if all(free.get(n, 1) > 0 for n in names):
            for n in names:
                free[n] = free.get(n, 1) - 1
            released.append(key)
            del book.waiting[key]
    state.work.put(released)


def stop(state: State) -> None:
    for task in list(state.rollouts.tasks):
        task.cancel()
    if state.rollouts.writer is not None:
        # Entries not written yet are lost: new flights among them were not patched yet (each
        # fix waits for its entry); ended flights stay recorded and are concluded after a restart.
        state.rollouts.writer.cancel()
