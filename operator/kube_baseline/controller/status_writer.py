"""The single background writer of SecurityBaseline status.

The status is computed by the engine (`engine.status.desired_status`) from the ledger's verdicts
and the read model, and written only when it differs from what is stored, at most once per
`status_interval` per baseline, and never from a partial picture (see `store.WorkQueue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from kube_baseline.controller.report_writer import condition_for
from kube_baseline.controller.store import Note, State, now_utc
from kube_baseline.engine.desired import Baseline
from kube_baseline.engine.models import Condition
from kube_baseline.engine.status import desired_status, status_differs

logger = logging.getLogger("kube_baseline.controller.status_writer")

# The longest the first status write waits for the initial listing of every workload kind.
SETTLE_SECONDS = 60.0


def status_of(state: State, body: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Gather what a baseline's status depends on and let the engine compute it."""
    parsed = state.model.parse(body)
    generation, now = int((body.get("metadata") or {}).get("generation") or 0), now_utc()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The conditions other modules build, in this order: AdmissionReady, ReportsWritten.
    extra: list[Condition | None] = []
    if isinstance(parsed, Baseline):
        if state.admission:
            conditions = (previous or {}).get("conditions")
            extra.append(state.admission.condition(parsed.name, conditions, generation=generation, now=stamp))
        extra.append(condition_for(state, parsed, previous, stamp))
    return desired_status(
        parsed,
        previous,
        generation=generation,
        namespaces=state.model.namespaces(),
        baselines=state.model.baselines(),
        verdicts=state.ledger.verdicts(parsed.name) if isinstance(parsed, Baseline) else (),
        dry_run=state.options.dry_run,
        now=now,
        nodes=state.placement.nodes(),
        rollouts=state.rollouts.summary(parsed.name) if isinstance(parsed, Baseline) else None,
        extra_conditions=[c for c in extra if c is not None],
    )


async def flush_status(state: State, name: str) -> None:
    body = state.model.baseline_body(name)
    if body is None:
        return
    stored = body.get("status") or {}
    previous = state.ledger.last_status(name) or stored
    status = status_of(state, body, previous)
    if status == state.ledger.last_status(name) or not status_differs(stored, status):
        state.ledger.status_written(name, status)
        return
    if await state.cluster.patch_baseline_status(name, status):
        state.ledger.status_written(name, status)
        report_shared_nodes(state, name, previous, status)


def report_shared_nodes(
    state: State, name: str, previous: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """An Event on each node that became shared by tiers (tierCoTenancy), once per change."""
    before = {n.get("name") for n in ((previous.get("tiers") or {}).get("shared") or ())}
    for node in (status.get("tiers") or {}).get("shared") or ():
        if node["name"] in before:
            continue
        involved = ("v1", "Node", "", node["name"], state.placement.node_uid(node["name"]), "")
        message = f"Runs pods of tiers {', '.join(node['tiers'])} of SecurityBaseline {name} (tierCoTenancy)"
        state.events.put_nowait(Note(involved, "TierCoTenancy", message))


async def flush_statuses_forever(state: State, tick: float = 0.1) -> None:
    """A due baseline is flushed at once if its last flush is at least `status_interval` old,
    else when that much time has passed: a change shows promptly, and a baseline's status is
    computed and written at most once per interval however fast its workloads change."""
    await state.model.bound.wait()
    loop = asyncio.get_running_loop()
    last_flush: dict[str, float] = {}
    settle_by = loop.time() + SETTLE_SECONDS
    while True:
        with contextlib.suppress(TimeoutError):  # a tick, or at once when a full pass ended
            await asyncio.wait_for(state.work.passed.wait(), tick)
        state.work.passed.clear()
        now, interval = loop.time(), state.options.status_interval
        if state.work.in_full_pass or not (state.work.settled or now >= settle_by):
            continue  # a partial picture: see store.WorkQueue
        waiting = {n for n, at in last_flush.items() if now - at < interval}
        for name in state.ledger.take_due(excluding=waiting):
            last_flush[name] = now
            try:
                await flush_status(state, name)
            except Exception:  # keep the writer alive; the next change retries
                logger.exception("Writing the status of SecurityBaseline %s failed", name)
                state.ledger.mark_due(name)
