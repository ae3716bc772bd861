"""The guard's admission logic over an in-memory state (no cluster): waves in order, no loop.
Following real rollouts is tested on the full control plane (tests/e2e/test_rollout_guard.py)."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from kube_baseline.controller import rollout_guard
from kube_baseline.controller.rollout_book import Flight, RolledBack
from kube_baseline.controller.store import Options, State
from kube_baseline.engine.desired import NamespaceInfo, decide_workload
from kube_baseline.engine.rollout import template_hash
from kube_baseline.engine.status import build_verdict
from kube_baseline.engine.workloads import workload_of

SPEC = {
    "mode": "remediate",
    "profile": "restricted",
    "remediation": {"rollout": {"maxInFlight": 2}},
}


def body(name: str, kind: str = "Deployment") -> dict[str, Any]:
    pod = {"containers": [{"name": "app", "image": "nginx"}]}
    spec: dict[str, Any] = {"replicas": 1, "template": {"spec": pod}}
    if kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}
    api = "batch/v1" if kind == "CronJob" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def state_with(*bodies: dict[str, Any], spec: dict[str, Any] = SPEC) -> State:
    state = State(cluster=None, options=Options())  # type: ignore[arg-type]
    state.rollouts.loaded.set()
    baseline = {"metadata": {"name": "dev", "uid": "u", "generation": 1}, "spec": spec}
    state.model.bind(
        {"kb_namespaces": {"shop": [NamespaceInfo("shop", {})]}, "kb_baselines": {"dev": [baseline]}}
    )
    for b in bodies:  # governed workloads (the percentage limit counts them)
        key = (b["kind"], "shop", b["metadata"]["name"])
        state.ledger.record_verdicts(key, {"dev": build_verdict("shop", *key[::2], [], [], remediated=False)})
    return state


def admit(state: State, obj: dict[str, Any]) -> bool:
    workload = workload_of(copy.deepcopy(obj))
    assert workload is not None
    decision = decide_workload(
        workload,
        state.model.baselines(),
        state.model.namespace("shop"),
        network_policies=[],
        now=None,
        allow_writes=True,
    )
    assert decision.patch
    key = (workload.kind, "shop", workload.name)
    admitted, _ = asyncio.run(rollout_guard.admit(state, key, workload, decision))
    return admitted


def test_waves_hold_the_rest_in_order_and_release_them_in_order() -> None:
    bodies = [body(f"w{i}") for i in range(5)]
    state = state_with(*bodies)
    assert [admit(state, b) for b in bodies] == [True, True, False, False, False]
    assert list(state.rollouts.waiting) == [("Deployment", "shop", f"w{i}") for i in (2, 3, 4)]
    assert state.rollouts.summary("dev").in_flight == 2 and state.rollouts.summary("dev").waiting == 3

    async def finish_one() -> None:
        await rollout_guard._finish(
            state, state.rollouts.in_flight[("Deployment", "shop", "w0")], "Succeeded"
        )

    asyncio.run(finish_one())
    assert state.work.pending() == [("Deployment", "shop", "w2")]  # the oldest waiting one, alone
    assert state.rollouts.summary("dev").succeeded == 1


def test_fixes_that_roll_nothing_are_not_held() -> None:
    bodies = [body(f"c{i}", "CronJob") for i in range(4)]
    state = state_with(*bodies)
    assert all(admit(state, b) for b in bodies)
    assert not state.rollouts.in_flight


def test_a_rolled_back_fix_is_not_reapplied_until_the_template_changes() -> None:
    obj = body("web")
    state = state_with(obj)
    key = ("Deployment", "shop", "web")
    state.rollouts.rolled_back[key] = RolledBack(key, ("dev",), template_hash(obj), "CrashLoopBackOff", ())
    assert not admit(state, obj) and not state.rollouts.waiting
    changed = copy.deepcopy(obj)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert admit(state, changed)
    assert key not in state.rollouts.rolled_back


def test_record_round_trip() -> None:
    from kube_baseline.controller.rollout_book import parse_record

    flight = Flight(("Deployment", "shop", "web"), ("dev",), {"a.b": True}, 12.5)
    assert parse_record(flight.record()) == flight
    rolled = RolledBack(("Deployment", "shop", "web"), ("dev",), "abc", "why", ("a.b",))
    assert parse_record(rolled.record()) == rolled
    assert parse_record("{not json") is None


class NoControllerCluster:
    """Reads return the workload as the API server would without a controller: no status."""

    def __init__(self, bodies: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.bodies = bodies
        self.reads = 0

    async def read_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return copy.deepcopy(self.bodies[(kind, namespace, name)])

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        raise AssertionError("pods are listed only once the controller observed the change")

    async def post_event(self, involved: dict[str, Any], **_: Any) -> None:
        pass


def test_a_never_observed_workload_frees_its_slot_and_the_kind_is_learnt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rollout_guard, "POLL_FIRST", 0.05)
    bodies = [body(f"w{i}") for i in range(3)]
    state = state_with(*bodies)
    cluster = NoControllerCluster({("Deployment", "shop", b["metadata"]["name"]): b for b in bodies})
    state.cluster = cluster  # type: ignore[assignment]
    assert [admit(state, b) for b in bodies] == [True, True, False]

    async def echoes() -> None:
        tasks = [
            asyncio.create_task(rollout_guard.follow(state, f))
            for f in list(state.rollouts.in_flight.values())
        ]
        for b in bodies:  # the watch delivers the patched workloads: no status, no controller
            state.rollouts.observe(("Deployment", "shop", b["metadata"]["name"]), b)
        await asyncio.sleep(0.01)  # each judged its echo at once
        assert not any(f.counted for f in state.rollouts.in_flight.values())
        assert state.work.pending() == [("Deployment", "shop", "w2")]  # released at once
        assert cluster.reads == 0  # judged from what the watch delivered
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(echoes())
    # After one Unverified "no controller" outcome, the next flight of the kind ends at its first
    # look; with nothing from the watch (a flight resumed after a restart) that is one read.
    state.rollouts.no_controller.add("Deployment")
    flight = Flight(("Deployment", "shop", "w2"), ("dev",), {"spec.template.spec.x": 1}, time.time())
    state.rollouts.take(flight)
    asyncio.run(asyncio.wait_for(rollout_guard.follow(state, flight), 5))
    assert cluster.reads == 1 and flight.key not in state.rollouts.in_flight
    assert state.rollouts.summary("dev").unverified == 1


class SlowRecordCluster:
    """Record writes take a while: the writes waiting meanwhile must share the next one."""

    def __init__(self) -> None:
        self.writes: list[dict[str, str | None]] = []

    async def patch_config_map_data(self, namespace: str, name: str, data: dict[str, str | None]) -> bool:
        self.writes.append(dict(data))
        await asyncio.sleep(0.02)
        return True


def test_record_writes_are_grouped_and_each_writer_waits_for_its_own() -> None:
    state = state_with()
    cluster = SlowRecordCluster()
    state.cluster = cluster  # type: ignore[assignment]
    state.rollouts.persisted = True

    async def burst() -> list[int]:
        async def one(i: int) -> int:
            await rollout_guard._persist(state, {f"k{i}": str(i)})
            # Returned only once a write that carried this entry finished.
            return next(n for n, data in enumerate(cluster.writes) if f"k{i}" in data)

        first = asyncio.create_task(one(0))
        await asyncio.sleep(0.005)  # its write is in flight now
        return [await first, *await asyncio.gather(*(one(i) for i in range(1, 50)))]

    carried_by = asyncio.run(burst())
    assert len(cluster.writes) == 2  # the first entry alone, then the 49 queued while it was written
    assert sorted(k for data in cluster.writes for k in data) == sorted(f"k{i}" for i in range(50))
    assert carried_by[0] == 0 and set(carried_by[1:]) == {1}


@pytest.mark.parametrize(
    ("rollout", "followed"),
    [
        ({"guard": False, "maxInFlight": "100%"}, 0),  # nothing to undo, nothing to pace
        ({"guard": False, "maxInFlight": 3}, 3),  # paced: followed, the rest wait
        ({"guard": True, "maxInFlight": "100%"}, 4),  # guarded: every fix followed
    ],
)
def test_a_fix_is_followed_only_to_undo_or_to_pace_it(rollout: dict[str, Any], followed: int) -> None:
    bodies = [body(f"w{i}") for i in range(4)]
    state = state_with(*bodies, spec={**SPEC, "remediation": {"rollout": rollout}})
    admitted = [admit(state, b) for b in bodies]
    assert len(state.rollouts.in_flight) == followed
    expected = [True, True, True, False] if followed == 3 else [True] * 4
    assert admitted == expected
