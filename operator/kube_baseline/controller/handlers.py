"""The only module that imports Kopf: login, start-up and clean-up, the indexes of the few
objects Kopf watches (SecurityBaselines, Namespaces, NetworkPolicies) and their handlers.

Workloads are many and are not watched through Kopf (see reconcile.watch_workloads). Baselines use
on.resume/create/update(spec)/delete(optional) and a plain event handler for deletion without a
finalizer; no finalizer or bookkeeping annotation is ever written onto anything but baselines.
The handlers only bind Kopf's index views into the store and call the reconcilers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from kube_baseline.controller import report_writer, rollout_guard, writelog
from kube_baseline.controller.admission import AdmissionSync, owner_of
from kube_baseline.controller.cluster import Cluster, Credentials
from kube_baseline.controller.metrics import MetricsServer
from kube_baseline.controller.placement import watch_nodes
from kube_baseline.controller.reconcile import (
    forget_baseline,
    placement_changed,
    post_events_forever,
    reconcile_everything,
    reconcile_namespace,
    reconcile_pending_forever,
    watch_workloads,
)
from kube_baseline.controller.status_writer import flush_statuses_forever
from kube_baseline.controller.store import (
    IDX_BASELINES,
    IDX_NAMESPACES,
    IDX_NETPOLS,
    Options,
    State,
    options_from_env,
    slim_object,
    watch_name,
)
from kube_baseline.engine.desired import NamespaceInfo, build_namespace_info
from kube_baseline.engine.models import FIELD_MANAGER, GROUP, KIND, MANAGED_BY_LABEL, PLURAL, VERSION
from kube_baseline.engine.reports import POLICY_REPORT, REPORT_APIS
from kube_baseline.engine.workloads import KINDS

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


# --- Kopf wiring -------------------------------------------------------------------------------


def credentials_from(info: kopf.ConnectionInfo) -> Credentials:
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


def service_host(environ: Mapping[str, str]) -> str | None:
    """The API server's address as the kubelet gives it to every pod (as client-go reads it), or
    None outside a pod. Works with hostNetwork and without cluster DNS, unlike the Service name."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    info = kopf.login_with_service_account(settings=settings)
    if info is not None and (server := service_host(os.environ)):
        info = dataclasses.replace(info, server=server)  # Kopf assumes kubernetes.default.svc
    info = info or kopf.login_with_kubeconfig(settings=settings)
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
        state.admission = AdmissionSync(cluster, state.ledger.mark_due)
    memo["state"] = state
    writelog.configure()
    await report_writer.detect(state)
    await report_writer.load_stored_digests(state)
    memo["report_api"] = asyncio.create_task(report_writer.watch_report_api_forever(state))
    memo["report_writers"] = [
        asyncio.create_task(report_writer.write_reports_forever(state)) for _ in range(report_writer.WRITERS)
    ]
    if options.metrics_port:
        memo["metrics"] = MetricsServer(
            state, options.metrics_port, stale_seconds=options.watch_stale_seconds
        )
        await memo["metrics"].start()
    memo["flusher"] = asyncio.create_task(flush_statuses_forever(state), name="kube-baseline-status")
    memo["rollouts"] = asyncio.create_task(rollout_guard.load(state), name="kube-baseline-rollouts")
    memo["reconciler"] = asyncio.create_task(reconcile_pending_forever(state), name="kube-baseline-workloads")
    watches = [(kind, namespace) for kind in KINDS for namespace in options.namespaces or (None,)]
    state.work.expect_watches(watch_name(*watch) for watch in watches)
    memo["watchers"] = [
        asyncio.create_task(watch_workloads(state, kind, namespace), name=f"kube-baseline-watch-{kind}")
        for kind, namespace in watches
    ]
    memo["watchers"].append(
        asyncio.create_task(
            watch_nodes(cluster, state.placement, lambda: placement_changed(state)),
            name="kube-baseline-nodes",
        )
    )
    memo["posters"] = [
        asyncio.create_task(post_events_forever(state), name=f"kube-baseline-events-{i}")
        for i in range(EVENT_POSTERS)
    ]
    logger.info("Started kube-baseline (dry run: %s)", options.dry_run)


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task_name in ("flusher", "reconciler", "rollouts", "report_api"):
        if (task := memo.get(task_name)) is not None:
            task.cancel()
    for watcher in [*(memo.get("watchers") or ()), *(memo.get("report_writers") or ())]:
        watcher.cancel()
    state = memo.get("state")
    if state is not None:
        rollout_guard.stop(state)  # their records stay: a restart resumes them
        if state.admission:
            state.admission.stop()
    if state is not None and state.events.qsize():
        state.work.drained.set()  # the reconciler is stopped: nothing to wait for
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.events.join(), EVENT_DRAIN_SECONDS)
    for poster in memo.get("posters") or ():
        poster.cancel()
    if (server := memo.get("metrics")) is not None:
        await server.stop()
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
    state.model.bind(kwargs)
    await reconcile_namespace(state, name)


@kopf.on.event(*NETWORK_POLICIES, id="reconcile_network_policies")
async def on_network_policy_event(namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.model.bind(kwargs)
    coverage = any("networkPolicyCoverage" in b.policy.enabled for b in state.model.baselines())
    await reconcile_namespace(state, namespace or "", evaluate_workloads=coverage)


@kopf.on.resume(*BASELINES, id="resume_baseline")
async def on_baseline_resume(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """At startup the workload and namespace events evaluate everything; only status is due."""
    state: State = memo["state"]
    state.model.bind(kwargs)
    state.ledger.mark_due(name)


@kopf.on.create(*BASELINES, id="apply_baseline")
@kopf.on.update(*BASELINES, id="change_baseline", field="spec")
async def on_baseline_change(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.model.bind(kwargs)
    await reconcile_everything(state)
    state.ledger.mark_due(name)


@kopf.on.delete(*BASELINES, id="remove_baseline", optional=True)
async def on_baseline_delete(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    state: State = memo["state"]
    state.model.bind(kwargs)
    await forget_baseline(state, name)


@kopf.on.event(*BASELINES, id="watch_baselines")
async def on_baseline_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """Deletion without a finalizer: once the baseline left the index, undo what it created."""
    state: State = memo["state"]
    state.model.bind(kwargs)
    if state.model.baseline_body(name) is None and (
        state.ledger.has_verdicts(name) or state.model.was_parsed(name)
    ):
        await forget_baseline(state, name)
    elif state.admission and (body := state.model.baseline_body(name)) is not None:
        await state.admission.sync(body)  # a no-op unless the rendered policies changed


@kopf.on.event(*ADMISSION_POLICIES, labels={MANAGED_BY_LABEL: FIELD_MANAGER}, id="watch_admission_policies")
@kopf.on.event(*ADMISSION_BINDINGS, labels={MANAGED_BY_LABEL: FIELD_MANAGER}, id="watch_admission_bindings")
async def on_admission_policy_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Put generated policies back when edited or deleted; pick up type-checking warnings."""
    state: State = memo["state"]
    state.model.bind(kwargs)
    if state.admission:
        await state.admission.observe(body, state.model.baseline_body(owner_of(body)))


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
    metrics_port: int = 0,
    report_format: str = POLICY_REPORT.format,
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
        metrics_port=metrics_port,
        report_api=REPORT_APIS[report_format],
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


__all__ = ["run_operator"]
