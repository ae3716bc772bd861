"""The writer of per-workload reports (opt-in per baseline: `spec.reports.enabled`), as
PolicyReports or OpenReports' Reports (`Options.report_api`, from `run --report-format`).

The workload reconciler only queues the key (`note`); a few writers take it once no fix waits
(`work.drained`), so reports never delay remediation, audit the stored workload under the
reporting baselines, render the report with the engine (`engine.reports`) and write it through
`cluster` with server-side apply, only when its content digest differs from the one the operator
last wrote for that workload (kept in the ledger: a digest, not the report). Writing behind the
fixes also means a patched workload's report is rendered from its echo: one write, not two. A
report no baseline asks for any more is deleted; a deleted workload's report goes with it
(ownerReference, garbage collector).

Whether that API is served is checked at start-up and then every CRD_RECHECK_SECONDS (Kyverno
may install the CRD; so may the user, from manifests/optional/); when it
appears, every workload is reconciled again so its report is written. Digests of the reports
already stored are read back at start-up, so a restart rewrites nothing that is current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kube_baseline.controller import metrics, writelog
from kube_baseline.controller.cluster import ApiError
from kube_baseline.controller.store import State, WorkloadKey, now_utc
from kube_baseline.engine.checks import audit
from kube_baseline.engine.desired import Baseline, governs
from kube_baseline.engine.models import FIELD_MANAGER, MANAGED_BY_LABEL, Condition
from kube_baseline.engine.reports import (
    BaselineAudit,
    build_report,
    report_name,
    reports_condition,
    stored_hash,
)

logger = logging.getLogger("kube_baseline.controller.report_writer")
CRD_RECHECK_SECONDS = 30.0
LIST_ATTEMPTS = 3
WRITERS = 4


def reporting(baselines: Sequence[Baseline]) -> list[Baseline]:
    return [b for b in baselines if b.spec.reports.enabled]


def note(state: State, key: WorkloadKey, governing: Sequence[Baseline]) -> None:
    """After a reconcile: queue the workload's report if a baseline asks for one or one exists."""
    if state.options.dry_run:
        return
    if state.ledger.report_hash(key) is not None or any(b.spec.reports.enabled for b in governing):
        state.reports.put((key,))


async def write_reports_forever(state: State) -> None:
    """One report writer: the next queued workload, once no fix is waiting."""
    while True:
        async with state.reports.take() as key:
            await state.work.drained.wait()
            try:
                async with state.locks.hold(key):
                    await write_report(state, key)
            except Exception:  # one report's failure must not stop the writer
                logger.exception("Writing the %s of %s %s/%s failed", state.options.report_api.kind, *key)


async def write_report(state: State, key: WorkloadKey) -> None:
    """Bring the workload's report in line with its stored state (the caller holds its lock)."""
    workload = state.model.workload(key)
    if workload is None or state.ledger.is_stale_echo(key, workload.obj):
        return  # deleted (its report goes with it), or our patch's echo will queue it again
    ns = state.model.namespace(workload.namespace)
    asking = reporting([b for b in state.model.baselines() if governs(b, ns)])
    if not asking:
        if state.ledger.report_hash(key) is not None:
            await _delete(state, key)
        return
    if not state.model.reports_served:
        return  # reported in status (reports_condition); written once the API appears
    now = now_utc()
    nps = state.model.network_policies(workload.namespace)
    audits = [BaselineAudit(b, audit(workload, b.policy, now=now, network_policies=nps)) for b in asking]
    api = state.options.report_api
    report = build_report(workload, audits, now=now, api=api)
    digest = stored_hash(report)
    if state.ledger.report_hash(key) == digest:
        return
    try:
        await state.cluster.apply_report(api, report)
    except ApiError as exc:
        logger.warning("Writing the %s of %s %s/%s failed: %s", api.kind, *key, exc)
        state.ledger.report_failed(key, str(exc))
        metrics.report_write("apply", ok=False)
        return
    state.ledger.report_written(key, digest)
    metrics.report_write("apply", ok=True)
    writelog.record(
        "apply",
        api.kind,
        key[1],
        report["metadata"]["name"],
        baselines=[b.name for b in asking],
        fields=["results", "summary"],
    )


async def _delete(state: State, key: WorkloadKey) -> None:
    name = report_name(key[0], key[2])
    api = state.options.report_api
    try:
        await state.cluster.delete_report(api, key[1], name)
    except ApiError as exc:
        logger.warning("Deleting the %s of %s %s/%s failed: %s", api.kind, *key, exc)
        metrics.report_write("delete", ok=False)
        return
    state.ledger.report_written(key, None)
    metrics.report_write("delete", ok=True)
    writelog.record("delete", api.kind, key[1], name)


def condition_for(
    state: State, baseline: Baseline, previous: Mapping[str, Any] | None, now: str
) -> Condition | None:
    """The ReportsWritten condition of a baseline, or None when it asks for none (or dry run)."""
    if not baseline.spec.reports.enabled or state.options.dry_run:
        return None
    return reports_condition(
        (previous or {}).get("conditions") or [],
        served=state.model.reports_served,
        failures=state.ledger.report_errors(baseline.name),
        generation=baseline.generation,
        now=now,
        api=state.options.report_api,
    )


async def detect(state: State) -> bool:
    """Check (discovery) whether the report API is served; record it; True if it changed."""
    api = state.options.report_api
    try:
        served = await state.cluster.served_resources(api.api_version)
    except (ApiError, OSError, TimeoutError) as exc:
        logger.warning("Checking for the %s API failed: %s", api.resource, exc)
        return False
    changed = state.model.note_reports_served(served is not None and api.plural in served)
    if changed and not state.model.reports_served:
        state.ledger.forget_report_hashes()  # the reports went with their CRD
    if changed:
        served_now = "served" if state.model.reports_served else "not served"
        logger.info("The %s API is %s", api.resource, served_now)
        state.ledger.mark_due(*(b.name for b in reporting(state.model.baselines())))
    return changed


async def load_stored_digests(state: State) -> None:
    """Remember the digests of the reports already written (by an earlier run of the operator)."""
    if not state.model.reports_served:
        return
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER}"
    for attempt in range(LIST_ATTEMPTS):
        found: dict[WorkloadKey, str] = {}
        try:
            async for report in state.cluster.list_reports(state.options.report_api, selector):
                scope = report.get("scope") or {}
                digest = stored_hash(report)
                if digest and scope.get("kind") and scope.get("name"):
                    found[str(scope["kind"]), str(scope.get("namespace") or ""), str(scope["name"])] = digest
        except ApiError as exc:  # e.g. 429 while a just-installed CRD's storage initializes
            logger.warning("Listing %ss failed: %s", state.options.report_api.kind, exc)
            if exc.status != 429 and exc.status < 500:
                return
            await asyncio.sleep(1.0 + attempt)
            continue
        for key, digest in found.items():
            state.ledger.report_written(key, digest)
        logger.info("Found %d %ss written earlier", len(found), state.options.report_api.kind)
        return


async def watch_report_api_forever(state: State) -> None:
    """Re-check the report API now and then; when it appears, reconcile every workload
    whose baselines ask for reports."""
    while True:
        await asyncio.sleep(CRD_RECHECK_SECONDS)
        if await detect(state) and state.model.reports_served and reporting(state.model.baselines()):
            state.work.put(state.model.workload_keys())
