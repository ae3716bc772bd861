"""Sensitivity tiers on the full profile: two kwok node pools (a shared one, and a dedicated one
labelled and tainted for the restricted tier), the real scheduler, the operator in-process.

A restricted workload running on the shared pool next to a public one is reported (tierPlacement
on the workload, tierCoTenancy on the node) while the baseline audits; once it remediates, the
placement is filled, the scheduler moves the pods onto the restricted pool and the co-tenancy
finding clears."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hack.localcluster import kwok_pool_node
from tests.integration.operator_helpers import (
    SCOPE,
    baseline,
    create,
    get,
    install_crd,
    operator,
    unique,
    wait_for,
)

pytestmark = pytest.mark.e2e
TIER = "kube-baseline.io/tier"


@pytest.fixture
def pools(kube_full: Any) -> Iterator[tuple[str, str]]:
    """A shared node (labelled pool=shared-*) and a restricted one (labelled and tainted
    pool=restricted-*), both managed by kwok; removed afterwards."""
    suffix = unique("p")[2:]
    shared, restricted = f"shared-{suffix}", f"restricted-{suffix}"
    nodes = [
        kwok_pool_node(f"kwok-{shared}", shared, tainted=False),
        kwok_pool_node(f"kwok-{restricted}", restricted),
    ]
    for node in nodes:
        create(kube_full, node)

    def ready() -> bool:
        for node in nodes:
            conds = get(kube_full, "node", node["metadata"]["name"]).get("status", {}).get("conditions", [])
            if {c["type"]: c["status"] for c in conds}.get("Ready") != "True":
                return False
        return True

    wait_for(ready, timeout=60, what="kwok pool nodes Ready")
    yield shared, restricted
    for node in nodes:
        kube_full.kubectl("delete", "node", node["metadata"]["name"], "--ignore-not-found", "--wait=false")


def pinned_deployment(name: str, namespace: str, pools: list[str]) -> dict[str, Any]:
    """One replica that may run only on nodes of `pools` (a required node affinity, which the
    placement fill never touches)."""
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": pools}]}
                ]
            }
        }
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "affinity": affinity,
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }


def nodes_of(kube: Any, namespace: str) -> set[str]:
    pods = get(kube, "pods", "-n", namespace)["items"]
    return {
        p["spec"].get("nodeName", "")
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def tiers_of(kube: Any, name: str) -> dict[str, Any]:
    return (get(kube, "sb", name).get("status") or {}).get("tiers") or {}


def test_restricted_workload_moves_to_its_pool_and_co_tenancy_clears(
    kube_full: Any, namespace: Any, pools: tuple[str, str]
) -> None:
    kube = kube_full
    install_crd(kube)
    shared, restricted = pools
    scope = unique("s")
    www, vault = namespace(), namespace()
    kube.kubectl("label", "namespace", www, f"{SCOPE}={scope}", f"{TIER}=public")
    kube.kubectl("label", "namespace", vault, f"{SCOPE}={scope}", f"{TIER}=restricted")
    create(kube, pinned_deployment("web", www, [shared]))
    create(kube, pinned_deployment("secrets", vault, [shared, restricted]))
    shared_node, restricted_node = f"kwok-{shared}", f"kwok-{restricted}"
    # The restricted pool is tainted: without the toleration, both land on the shared node.
    wait_for(lambda: nodes_of(kube, www) == {shared_node}, timeout=90, what="web on the shared pool")
    wait_for(lambda: nodes_of(kube, vault) == {shared_node}, timeout=90, what="secrets on the shared pool")

    name = unique("tiers")
    tiers = [
        {"name": "public", "network": {"defaultDenyEgress": False}},
        {
            "name": "restricted",
            "placement": {
                "nodeSelector": {"pool": restricted},
                "tolerations": [
                    {"key": "pool", "operator": "Equal", "value": restricted, "effect": "NoSchedule"}
                ],
            },
        },
    ]
    body = baseline(
        name,
        mode="audit",
        remediation={"riskClasses": ["safe", "guarded"]},
        namespaces={"selector": {"matchLabels": {SCOPE: scope}}},
        tiers=tiers,
    )
    body["metadata"]["labels"] = {SCOPE: scope}
    create(kube, body)
    try:
        with operator(kube, timeout=180):
            # Audit: the node shared by two tiers, and the workload without its placement.
            status = wait_for(
                lambda: tiers_of(kube, name).get("sharedNodes") == 1 and tiers_of(kube, name),
                timeout=60,
                what="co-tenancy reported",
            )
            assert status["shared"] == [{"name": shared_node, "tiers": ["public", "restricted"]}]
            drifted = (get(kube, "sb", name).get("status") or {}).get("mostDrifted", [])
            assert any(d["name"] == "secrets" and "tierPlacement" in d["checks"] for d in drifted), drifted
            compliant = next(
                c for c in get(kube, "sb", name)["status"]["conditions"] if c["type"] == "Compliant"
            )
            assert "tierCoTenancy: 1 nodes run pods of more than one tier" in compliant["message"]
            # Reported on the node itself, too: an Event `kubectl describe node` shows.
            event = wait_for(
                lambda: [
                    e
                    for e in get(kube, "events", "-n", "default")["items"]
                    if e["reason"] == "TierCoTenancy" and e["involvedObject"].get("name") == shared_node
                ],
                timeout=30,
                what="TierCoTenancy Event on the shared node",
            )[0]
            assert event["involvedObject"]["kind"] == "Node" and event["involvedObject"].get("uid")
            assert "public, restricted" in event["message"] and name in event["message"]

            # Remediate: the placement is filled, the scheduler moves the pods, co-tenancy clears.
            kube.kubectl(
                "patch", "sb", name, "--type=merge", "-p", json.dumps({"spec": {"mode": "remediate"}})
            )
            spec = wait_for(
                lambda: (
                    (s := get(kube, "deployment", "-n", vault, "secrets")["spec"]["template"]["spec"]).get(
                        "nodeSelector"
                    )
                    and s
                ),
                timeout=60,
                what="placement filled",
            )
            assert spec["nodeSelector"] == {"pool": restricted}
            assert "affinity" in spec  # the user's affinity untouched
            wait_for(
                lambda: nodes_of(kube, vault) == {restricted_node},
                timeout=120,
                what="secrets rescheduled onto the restricted pool",
            )
            assert nodes_of(kube, www) == {shared_node}
            status = wait_for(
                lambda: tiers_of(kube, name).get("sharedNodes") == 0 and tiers_of(kube, name),
                timeout=60,
                what="co-tenancy cleared",
            )
            assert status["nodes"] == 2 and status["shared"] == []
    finally:
        kube.kubectl("delete", "sb", name, "--ignore-not-found", "--wait=false")
