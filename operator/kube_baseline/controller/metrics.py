"""Prometheus metrics and the liveness check, served on their own port (the one door to
prometheus_client).

Labels are bounded: baseline, check, risk class, result, verb, code, resource (a workload kind),
never a workload or namespace name. Counters and histograms are process-wide and pre-bound where
they are hit per workload event; everything derived from the operator's memory (workloads by
state, failing checks, queue depth, API responses, watch ages) is computed at scrape time by a
collector, so it costs nothing per event.

The server is a few lines of asyncio streams on the operator's own loop (no thread, so the
collector reads the store without locks; no aiohttp, which only the API client uses):
`GET /metrics` and `GET /healthz`. /healthz fails (503) when a workload watch has shown no life
(list, stream opened, event or bookmark) for longer than `watch_stale_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kube_baseline import __version__
from kube_baseline.controller.store import State
from kube_baseline.engine.workloads import KINDS

logger = logging.getLogger("kube_baseline.controller.metrics")
PREFIX = "kubebaseline"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry()

BUILD_INFO = Gauge(
    f"{PREFIX}_build_info", "The running kube-baseline version.", ["version"], registry=REGISTRY
)
BUILD_INFO.labels(__version__).set(1)
REMEDIATIONS = Counter(
    f"{PREFIX}_remediations",
    "Workload patches, by remediating baseline and result (applied, failed).",
    ["baseline", "result"],
    registry=REGISTRY,
)
FIELDS_FILLED = Counter(
    f"{PREFIX}_remediated_fields",
    "Fields filled by remediation, by check and risk class.",
    ["check", "risk_class"],
    registry=REGISTRY,
)
UNDOS = Counter(
    f"{PREFIX}_undos",
    "Remediations undone, by baseline and reason.",
    ["baseline", "reason"],
    registry=REGISTRY,
)
REPORT_WRITES = Counter(
    f"{PREFIX}_report_writes",
    "Per-workload report writes (PolicyReports or OpenReports), by action and result.",
    ["action", "result"],
    registry=REGISTRY,
)
LAST_FULL_EVALUATION = Gauge(
    f"{PREFIX}_last_full_evaluation_timestamp_seconds",
    "When every workload was last evaluated (start-up, or a baseline change), Unix time.",
    registry=REGISTRY,
)

# The per-workload-event path: plain integers and a bucket list, no lock and no label lookup
# (prometheus_client's Counter.inc plus Histogram.observe cost about 5 us; this about 1 us),
# turned into metric families at scrape time by the collector below. The event loop is the only
# writer and the scrape runs on it, so no lock is needed.
RECONCILE_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_reconciles = [0, 0]  # errors, successes
_reconcile_buckets = [0] * (len(RECONCILE_BOUNDS) + 1)  # per bucket (not cumulative); last: +Inf
_reconcile_seconds = [0.0]


class timed_reconcile:  # noqa: N801 - used as `with metrics.timed_reconcile():`
    """Count one workload reconcile and its duration (an error when the block raises)."""

    __slots__ = ("started",)

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        elapsed = time.perf_counter() - self.started
        _reconciles[exc_type is None] += 1
        _reconcile_buckets[bisect_left(RECONCILE_BOUNDS, elapsed)] += 1
        _reconcile_seconds[0] += elapsed


class _ReconcileCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        total = CounterMetricFamily(
            f"{PREFIX}_reconcile", "Reconciles, by controller and result.", labels=["controller", "result"]
        )
        total.add_metric(["workload", "success"], _reconciles[1])
        total.add_metric(["workload", "error"], _reconciles[0])
        seconds = HistogramMetricFamily(
            f"{PREFIX}_reconcile_duration_seconds",
            "How long one reconcile took, by controller.",
            labels=["controller"],
        )
        cumulative = list(accumulate(_reconcile_buckets))
        bounds = [*(f"{b:g}" for b in RECONCILE_BOUNDS), "+Inf"]
        seconds.add_metric(["workload"], list(zip(bounds, cumulative, strict=True)), _reconcile_seconds[0])
        yield from (total, seconds)


REGISTRY.register(_ReconcileCollector())


def remediated(baselines: Iterable[str], changes: Iterable[tuple[str, str]], *, ok: bool) -> None:
    """One workload patch: the baselines whose fixes it carried, (check, risk class) per field."""
    for name in baselines:
        REMEDIATIONS.labels(name, "applied" if ok else "failed").inc()
    if ok:
        for check, risk in changes:
            FIELDS_FILLED.labels(check, risk).inc()


def undone(baseline: str, reason: str) -> None:
    """A remediation was undone (for the rollout guard)."""
    UNDOS.labels(baseline, reason).inc()


def report_write(action: str, *, ok: bool) -> None:
    REPORT_WRITES.labels(action, "success" if ok else "error").inc()


def full_evaluation_done() -> None:
    LAST_FULL_EVALUATION.set(time.time())


# --- derived from the operator's memory, at scrape time ----------------------------------------


def stale_watches(seen: Mapping[str, float], *, started: float, now: float, limit: float) -> list[str]:
    """The workload watches (by plural) that showed no life for longer than `limit` seconds; a
    watch that never did counts from `started`."""
    return sorted(p for p in (k.plural for k in KINDS.values()) if now - seen.get(p, started) > limit)


class StateCollector(Collector):
    """Metrics computed from the State when scraped."""

    def __init__(self, state: State, started: float) -> None:
        self.state = state
        self.started = started

    def collect(self) -> Iterable[Metric]:
        state = self.state
        workloads = GaugeMetricFamily(
            f"{PREFIX}_workloads", "Governed workloads by baseline and state.", labels=["baseline", "state"]
        )
        remediated_now = GaugeMetricFamily(
            f"{PREFIX}_workloads_remediated",
            "Governed workloads the operator has written to, by baseline.",
            labels=["baseline"],
        )
        exempt = GaugeMetricFamily(
            f"{PREFIX}_workloads_exempt",
            "Governed workloads with at least one exempted finding, by baseline.",
            labels=["baseline"],
        )
        failing = GaugeMetricFamily(
            f"{PREFIX}_check_failing_workloads",
            "Workloads with at least one (unexempted) finding of a check, by baseline and check.",
            labels=["baseline", "check"],
        )
        for baseline in state.model.baselines():
            counts: Tally[str] = Tally()
            checks: Tally[str] = Tally()
            for verdict in state.ledger.verdicts(baseline.name):
                counts["compliant" if verdict.compliant else "drifted"] += 1
                counts["remediated"] += verdict.remediated
                counts["exempt"] += verdict.exempted > 0
                checks.update(verdict.checks)
            for state_name in ("compliant", "drifted"):
                workloads.add_metric([baseline.name, state_name], counts[state_name])
            remediated_now.add_metric([baseline.name], counts["remediated"])
            exempt.add_metric([baseline.name], counts["exempt"])
            for check in sorted(baseline.policy.enabled):
                failing.add_metric([baseline.name, check], checks[check])
        yield from (workloads, remediated_now, exempt, failing)
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Workloads waiting to be reconciled.", value=len(state.work.pending())
        )
        requests = CounterMetricFamily(
            f"{PREFIX}_api_requests",
            "Requests to the API server, by verb and HTTP code.",
            labels=["verb", "code"],
        )
        for (verb, code), count in sorted(state.cluster.responses.items()):
            requests.add_metric([verb, str(code)], count)
        yield requests
        restarts = CounterMetricFamily(
            f"{PREFIX}_watch_restarts", "Workload watches listed again after a failure.", labels=["resource"]
        )
        ages = GaugeMetricFamily(
            f"{PREFIX}_watch_idle_seconds",
            "Seconds since a workload watch last showed life (event, bookmark, list).",
            labels=["resource"],
        )
        now = time.monotonic()
        for kind in KINDS.values():
            restarts.add_metric([kind.plural], state.cluster.watch_restarts.get(kind.plural, 0))
            ages.add_metric([kind.plural], now - state.cluster.watch_seen.get(kind.plural, self.started))
        yield from (restarts, ages)


# --- the HTTP endpoint ---------------------------------------------------------------------------


class MetricsServer:
    """GET /metrics and GET /healthz on `port`, on the running loop."""

    def __init__(
        self, state: State, port: int, *, host: str = "0.0.0.0", stale_seconds: float = 600.0
    ) -> None:
        self.state, self.port, self.host, self.stale_seconds = state, port, host, stale_seconds
        self.started = time.monotonic()
        self._collector = StateCollector(state, self.started)
        self._server: asyncio.Server | None = None
        self._settling: asyncio.Task[None] | None = None

    async def _note_settled(self) -> None:
        """The first full evaluation ends when every watch listed and the queue drained once."""
        while not self.state.work.settled:
            await asyncio.sleep(0.5)
        full_evaluation_done()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:  # the operator runs on without metrics; the probe will say so
            logger.error("Serving /metrics and /healthz on port %d failed: %s", self.port, exc)
            return
        self._settling = asyncio.create_task(self._note_settled())
        REGISTRY.register(self._collector)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Serving /metrics and /healthz on port %d", self.port)

    async def stop(self) -> None:
        if self._settling is not None:
            self._settling.cancel()
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self._collector)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def health(self) -> tuple[int, str]:
        stale = stale_watches(
            self.state.cluster.watch_seen,
            started=self.started,
            now=time.monotonic(),
            limit=self.stale_seconds,
        )
        if stale:
            return (
                503,
                f"stale watches (no event or bookmark for {self.stale_seconds:.0f} s): {', '.join(stale)}\n",
            )
        return 200, "ok\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = request.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = 405, b"method not allowed\n", "text/plain"
            elif path == b"/metrics":
                status, body, ctype = 200, generate_latest(REGISTRY), CONTENT_TYPE
            elif path == b"/healthz":
                code, text = self.health()
                status, body, ctype = code, text.encode(), "text/plain"
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
            head = (
                f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == b"HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
