"""The metrics endpoint and the liveness rule (controller.metrics), without a cluster: the State is
real, its client never connects (nothing here talks to an API server)."""

from __future__ import annotations

import asyncio
import re
import time

from kube_baseline.controller import metrics
from kube_baseline.controller.cluster import Cluster, Credentials
from kube_baseline.controller.store import Options, State
from kube_baseline.engine.workloads import KINDS

PLURALS = sorted(k.plural for k in KINDS.values())


def test_stale_watches_counts_from_start_until_a_watch_shows_life() -> None:
    fresh = dict.fromkeys(PLURALS, 100.0)
    assert metrics.stale_watches(fresh, started=0.0, now=150.0, limit=60) == []
    assert metrics.stale_watches(fresh, started=0.0, now=161.0, limit=60) == PLURALS
    partial = {p: 100.0 for p in PLURALS if p != "pods"}
    assert metrics.stale_watches(partial, started=90.0, now=140.0, limit=60) == []
    assert metrics.stale_watches(partial, started=50.0, now=140.0, limit=60) == ["pods"]


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


def test_server_serves_metrics_and_fails_health_when_watches_go_stale() -> None:
    async def scenario() -> None:
        state = State(cluster=Cluster(Credentials(server="https://127.0.0.1:1")), options=Options())
        server = metrics.MetricsServer(state, 0, host="127.0.0.1", stale_seconds=30)
        await server.start()
        try:
            now = time.monotonic()
            state.cluster.watch_seen.update(dict.fromkeys(PLURALS, now))
            state.cluster.responses["PATCH", 200] += 3
            state.cluster.watch_restarts["deployments"] += 2
            assert await _get(server.port, "/healthz") == (200, "ok\n")
            code, text = await _get(server.port, "/metrics")
            assert code == 200
            assert 'kubebaseline_api_requests_total{code="200",verb="PATCH"} 3.0' in text
            assert 'kubebaseline_watch_restarts_total{resource="deployments"} 2.0' in text
            assert "kubebaseline_queue_depth 0.0" in text
            assert 'kubebaseline_build_info{version="' in text
            state.cluster.watch_seen["deployments"] = now - 31
            code, body = await _get(server.port, "/healthz")
            assert code == 503 and "deployments" in body and "pods" not in body
            assert (await _get(server.port, "/nope"))[0] == 404
            assert (await _get(server.port, "/metrics", "POST"))[0] == 405
        finally:
            await server.stop()
        # Stopped: the State's collector is gone from the registry.
        assert "kubebaseline_queue_depth" not in metrics.generate_latest(metrics.REGISTRY).decode()

    asyncio.run(scenario())


def test_reconciles_are_counted_with_errors_and_durations() -> None:
    def sample(text: str, line: str) -> float:
        return float(next(x for x in text.splitlines() if x.startswith(line + " ")).rsplit(" ", 1)[1])

    ok = 'kubebaseline_reconcile_total{controller="workload",result="success"}'
    error = 'kubebaseline_reconcile_total{controller="workload",result="error"}'
    count = 'kubebaseline_reconcile_duration_seconds_count{controller="workload"}'
    fast = 'kubebaseline_reconcile_duration_seconds_bucket{controller="workload",le="0.01"}'
    before = metrics.generate_latest(metrics.REGISTRY).decode()
    with metrics.timed_reconcile():
        pass
    try:
        with metrics.timed_reconcile():
            time.sleep(0.02)
            raise ValueError("boom")
    except ValueError:
        pass
    after = metrics.generate_latest(metrics.REGISTRY).decode()
    assert sample(after, ok) == sample(before, ok) + 1
    assert sample(after, error) == sample(before, error) + 1
    assert sample(after, count) == sample(before, count) + 2
    assert sample(after, fast) == sample(before, fast) + 1  # the 20 ms one is above 10 ms


def exported_names() -> set[str]:
    """Every sample name /metrics can serve (with a State collector registered)."""
    state = State(cluster=Cluster(Credentials(server="https://127.0.0.1:1")), options=Options())
    collector = metrics.StateCollector(state, time.monotonic())
    metrics.REGISTRY.register(collector)
    try:
        # Families without samples yet (labelled counters) still name their samples by type.
        names = set()
        for family in metrics.REGISTRY.collect():
            names.add(family.name)
            names.update(s.name for s in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        return names
    finally:
        metrics.REGISTRY.unregister(collector)


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "manifests" / "optional" / "grafana-dashboard.yaml"
    dashboard = json.loads(yaml.safe_load(path.read_text())["data"]["kube-baseline.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bkubebaseline_[a-z_]+", expr)}
    exported = exported_names()
    assert used and used <= exported, used - exported
    # Nothing in the dashboard (or the exported label sets) is per workload or namespace.
    assert not any(re.search(r"\b(namespace|name|workload|pod)\b\s*=", e) for e in exprs)


def test_service_targets_the_deployment_metrics_port() -> None:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "manifests"
    service = yaml.safe_load((root / "service.yaml").read_text())
    deployment = yaml.safe_load((root / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
