"""Controller logic over an in-memory state and a recording fake of the cluster (no Kopf, no server).

The real behaviour is tested against the API server in tests/integration/test_operator.py; this
pins the write accounting: zero writes when compliant, one patch and one Event when not, none for
stale echoes, dry runs, bare Pods or controller-owned objects.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from engine_fixtures import load

from kube_baseline.controller.cluster import Credentials
from kube_baseline.controller.handlers import credentials_from, service_host
from kube_baseline.controller.reconcile import (
    post_events_forever,
    reconcile_key,
    reconcile_pending_forever,
    watch_workloads,
)
from kube_baseline.controller.status_writer import flush_statuses_forever, status_of
from kube_baseline.controller.store import KeyedLocks, Note, Options, State, slim_workload
from kube_baseline.engine.desired import NamespaceInfo
from kube_baseline.engine.remediation import apply_patch


class FakeCluster:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, str]] = []
        self.bodies: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.statuses: list[tuple[str, dict[str, Any]]] = []
        self.script: list[tuple[str, dict[str, Any]]] = []

    async def watch_kind(self, kind: str, namespace: str | None = None) -> Any:
        """What a list-and-watch yields: the steps scripted by the test."""
        for step in self.script:
            yield step

    async def patch_workload(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> str:
        self.patches.append((kind, namespace, name, patch))
        body = apply_patch(self.bodies[(kind, namespace, name)], patch)
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        body["metadata"]["managedFields"] = [{"manager": "kube-baseline"}]
        self.bodies[(kind, namespace, name)] = body
        return str(body["metadata"]["resourceVersion"])

    async def read_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The rollout guard's read: no controller here, so no status (its rollout stays unverified)."""
        return copy.deepcopy(self.bodies.get((kind, namespace, name)))

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return []

    async def post_event(self, involved: dict[str, Any], *, reason: str, message: str, **_: Any) -> None:
        self.events.append((reason, message))

    async def patch_baseline_status(self, name: str, status: dict[str, Any]) -> bool:
        self.statuses.append((name, status))
        return True


def baseline_body(name: str = "dev", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "generation": 1}, "spec": spec}


def make_state(
    bodies: list[dict[str, Any]], baselines: list[dict[str, Any]], *, dry_run: bool = False, **ns_labels: str
):
    cluster = FakeCluster()
    state = State(cluster=cluster, options=Options(dry_run=dry_run))  # type: ignore[arg-type]
    state.rollouts.loaded.set()  # no record ConfigMap: the guard keeps its record in memory
    for body in bodies:
        body = copy.deepcopy(body)
        body["metadata"].setdefault("resourceVersion", "10")
        key = (body["kind"], "shop", body["metadata"]["name"])
        cluster.bodies[key] = body
    state.model.bind(
        {
            "kb_namespaces": {"shop": [NamespaceInfo("shop", ns_labels)]},
            "kb_baselines": {b["metadata"]["name"]: [b] for b in baselines},
        }
    )
    return state, cluster


def deployment(fixture: str = "unhardened") -> dict[str, Any]:
    body = copy.deepcopy(load(fixture))
    body["metadata"]["namespace"] = "shop"
    return body


REMEDIATE = {
    "mode": "remediate",
    "profile": "restricted",
    "remediation": {"namespaceSelector": {"matchLabels": {"env": "dev"}}},
}


def run(state: State, body: dict[str, Any], what: str = "MODIFIED") -> None:
    """The watch delivers one body (stored, or not if a controller owns it); its key is
    reconciled; then the real Event poster sends what was queued."""

    async def reconcile_and_post() -> None:
        state.cluster.script = [(what, body)]  # type: ignore[attr-defined]
        await watch_workloads(state, body["kind"], None)
        state.work.drained.set()  # no reconciler runs here: nothing for the poster to wait for
        poster = asyncio.create_task(post_events_forever(state))
        await reconcile_key(state, (body["kind"], "shop", body["metadata"]["name"]))
        await state.events.join()
        poster.cancel()

    asyncio.run(reconcile_and_post())


def test_non_compliant_in_remediating_namespace_costs_one_patch_and_one_event() -> None:
    state, cluster = make_state([deployment()], [baseline_body(**REMEDIATE)], env="dev")
    run(state, deployment())
    assert len(cluster.patches) == 1 and len(cluster.events) == 1
    reason, message = cluster.events[0]
    assert (
        reason == "Remediated" and "SecurityBaseline dev" in message and "allowPrivilegeEscalation" in message
    )
    # The echo of our own patch is a no-op, and so is the stale body the watch may still deliver.
    echo = cluster.bodies[("Deployment", "shop", "plain")]
    run(state, echo)
    run(state, deployment())
    assert len(cluster.patches) == 1
    verdict = state.ledger.verdict("dev", ("Deployment", "shop", "plain"))
    assert verdict is not None
    assert verdict.remediated and verdict.findings > 0  # guarded findings remain, reported


@pytest.mark.parametrize(
    "why", ["compliant", "audit-mode", "dry-run", "other-namespace", "bare-pod", "owned-replicaset"]
)
def test_zero_writes(why: str) -> None:
    body = deployment("compliant-restricted" if why == "compliant" else "unhardened")
    spec = {"profile": "restricted"} if why == "audit-mode" else REMEDIATE
    if why == "bare-pod":
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": body["spec"]["template"]["spec"],
        }
    if why == "owned-replicaset":
        body["kind"] = "ReplicaSet"
        body["metadata"]["ownerReferences"] = [
            {"kind": "Deployment", "name": "x", "uid": "u", "controller": True}
        ]
    labels = {"env": "prod"} if why == "other-namespace" else {"env": "dev"}
    state, cluster = make_state([body], [baseline_body(**spec)], dry_run=why == "dry-run", **labels)
    run(state, body)
    assert cluster.patches == [] and cluster.events == []
    if why == "owned-replicaset":
        assert state.ledger.verdicts("dev") == []  # attributed to its Deployment
    else:
        verdict = state.ledger.verdict("dev", (body["kind"], "shop", body["metadata"]["name"]))
        assert verdict is not None and verdict.compliant == (why == "compliant")


def test_deleted_workload_is_forgotten() -> None:
    state, _ = make_state([deployment()], [baseline_body(profile="restricted")])
    run(state, deployment())
    assert state.ledger.verdicts("dev")
    state.ledger.take_due()
    run(state, deployment(), what="DELETED")
    assert state.ledger.verdicts("dev") == [] and state.ledger.take_due() == ["dev"]


def test_status_counts_and_invalid_spec() -> None:
    state, _ = make_state([deployment()], [baseline_body(**REMEDIATE)], env="dev")
    run(state, deployment())
    status = status_of(state, baseline_body(**REMEDIATE), None)
    assert status["summary"] | {} == {
        "namespaces": 1,
        "workloads": 1,
        "compliant": 0,
        "drifted": 1,
        "remediated": 1,
        "exempt": 0,
    }
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Remediating")
    invalid = status_of(state, baseline_body("bad", mode="sometimes"), None)
    ready = {c["type"]: c for c in invalid["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec") and "mode" in ready["message"]


def test_slim_object_keeps_managers_not_managed_fields() -> None:
    body = deployment()
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 3
    body["status"] = {"replicas": 1}
    slim = slim_workload(body)
    assert slim["metadata"]["managedFields"] == [{"manager": "kubectl"}]
    assert "status" not in slim and slim["spec"] == body["spec"]


def test_credentials_from_kopf_connection_info() -> None:
    import kopf

    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", ca_data="Q0E=", token="t", insecure=None)
    assert credentials_from(info) == Credentials(server="https://127.0.0.1:6443", ca_data=b"Q0E=", token="t")


@pytest.mark.parametrize(
    ("environ", "server"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "https://10.96.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}, "https://[fd00::1]:6443"),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, None),
        ({}, None),
    ],
)
def test_in_cluster_login_uses_the_service_host_the_kubelet_gives(
    environ: dict[str, str], server: str | None
) -> None:
    assert service_host(environ) == server


class ScriptedWatch:
    """Stands in for Cluster.watch_kind: a fixed sequence of what a list-and-watch yields."""

    def __init__(self, script: list[tuple[str, dict[str, Any]]]) -> None:
        self.script = script

    async def watch_kind(self, kind: str, namespace: str | None = None) -> Any:
        for step in self.script:
            yield step


def named(name: str, kind: str = "Deployment", **metadata: Any) -> dict[str, Any]:
    body = deployment()
    body["kind"] = kind
    body["metadata"] = {"name": name, "namespace": "shop", "resourceVersion": "1", **metadata}
    return body


def test_watch_keeps_the_store_in_step_with_lists_and_events() -> None:
    a, b, c = named("a"), named("b"), named("c")
    script = [
        ("LISTING", {}),
        ("LISTED", a),
        ("LISTED", b),
        ("SYNCED", {}),
        ("DELETED", a),
        ("ADDED", c),
        # A re-list (the watch's resourceVersion expired): b was deleted meanwhile.
        ("LISTING", {}),
        ("LISTED", c),
        ("SYNCED", {}),
    ]
    state = State(cluster=ScriptedWatch(script), options=Options())  # type: ignore[arg-type]
    asyncio.run(watch_workloads(state, "Deployment", None))
    assert set(state.model.workload_keys("shop")) == {("Deployment", "shop", "c")}
    assert state.work.pending() == [("Deployment", "shop", n) for n in ("a", "b", "c")]
    stored = state.model.workload(("Deployment", "shop", "c"))
    assert stored is not None and stored.obj == slim_workload(c)


def test_watch_does_not_store_what_a_controller_owns() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": True}
    rs = named("web-1", kind="ReplicaSet", ownerReferences=[owner])
    state = State(cluster=ScriptedWatch([("ADDED", rs)]), options=Options())  # type: ignore[arg-type]
    asyncio.run(watch_workloads(state, "ReplicaSet", None))
    assert state.model.workload_keys("shop") == []


def test_status_waits_for_every_listing_and_for_full_passes() -> None:
    """A partial picture is never written: a few workloads could look compliant when the whole
    fleet is not. Held until every watch listed and the reconciler caught up, and during a pass."""
    state, cluster = make_state([deployment()], [baseline_body(**REMEDIATE)], env="dev")
    state.work.expect_watches(["Deployment/", "CronJob/"])
    state.options = Options(status_interval=0.0)

    async def scenario() -> list[int]:
        tasks = [
            asyncio.create_task(flush_statuses_forever(state, tick=0.01)),
            asyncio.create_task(reconcile_pending_forever(state)),
        ]
        seen = []
        state.ledger.mark_due("dev")
        state.work.watch_synced("Deployment/")
        await asyncio.sleep(0.1)
        seen.append(len(cluster.statuses))  # one watch of two has listed: held
        state.work.watch_synced("CronJob/")
        await asyncio.sleep(0.1)
        seen.append(len(cluster.statuses))  # settled: written
        async with state.work.full_pass():
            state.options = Options(status_interval=0.0, dry_run=True)  # the status will differ
            state.ledger.mark_due("dev")
            cluster.statuses.clear()
            await asyncio.sleep(0.1)
            seen.append(len(cluster.statuses))  # a full pass runs: held
        await asyncio.sleep(0.1)
        seen.append(len(cluster.statuses))  # written once it ended
        for task in tasks:
            task.cancel()
        return seen

    assert asyncio.run(scenario()) == [0, 1, 0, 1]
    assert state.work.settled and cluster.statuses[0][0] == "dev"


def test_events_wait_until_no_workload_waits_to_be_reconciled() -> None:
    state, cluster = make_state([], [])
    state.events.put_nowait(Note(("apps/v1", "Deployment", "shop", "web", "u1", "11"), "Remediated", "set x"))

    async def scenario() -> list[int]:
        poster = asyncio.create_task(post_events_forever(state))
        state.work.put([("Deployment", "shop", "api")])  # a fix still to come
        await asyncio.sleep(0.05)
        posted = [len(cluster.events)]
        async with state.work.take():  # reconciled
            pass
        state.work.note_idle()
        await asyncio.sleep(0.05)
        posted.append(len(cluster.events))
        poster.cancel()
        return posted

    assert asyncio.run(scenario()) == [0, 1]


def test_keyed_locks_serialize_one_key_and_keep_nothing_once_released() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(f"{tag}+")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-")

    async def scenario() -> int:
        await asyncio.gather(hold("a", "1"), hold("a", "2"), hold("b", "3"))
        return len(locks)

    assert asyncio.run(scenario()) == 0
    assert order.index("1-") < order.index("2+")  # the same key: one holder at a time
    assert order.index("3+") < order.index("1-")  # another key: no waiting
