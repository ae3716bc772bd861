"""Sensitivity tiers with the operator (KopfRunner) on the real local API server: the placement
filled into a tier's workloads (never over what the user set), the tier's NetworkPolicy (own
tier and DNS only; a user NetworkPolicy untouched), the tier's PSA label, and the status."""

from __future__ import annotations

from typing import Any

import pytest
from operator_helpers import (
    SCOPE,
    baseline,
    create,
    deployment,
    exists,
    get,
    install_crd,
    operator,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration
TIER = "kube-baseline.io/tier"
TOLERATION = {"key": "pool", "operator": "Equal", "value": "restricted", "effect": "NoSchedule"}
TIERS = [
    {"name": "public", "network": {"defaultDenyEgress": False}},
    {
        "name": "restricted",
        "profile": "restricted",
        "network": {},
        "placement": {
            "nodeSelector": {"pool": "restricted"},
            "tolerations": [TOLERATION],
            "runtimeClassName": "gvisor",
        },
    },
]


@pytest.fixture(scope="module", autouse=True)
def crd(kube: Any) -> None:
    install_crd(kube)


def tiers_baseline(name: str, scope: str, **spec: Any) -> dict[str, Any]:
    body = baseline(
        name,
        mode="remediate",
        remediation={"riskClasses": ["safe", "guarded"]},
        namespaces={"selector": {"matchLabels": {SCOPE: scope}}},
        tiers=TIERS,
        **spec,
    )
    body["metadata"]["labels"] = {SCOPE: scope}
    return body


def pod_spec(kube: Any, ns: str, name: str) -> dict[str, Any]:
    return get(kube, "deployment", "-n", ns, name)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_tier_placement_network_policy_psa_label_and_status(kube: Any, namespace: Any, scope: str) -> None:
    vault, www, plain = namespace(), namespace(), namespace()
    kube.kubectl("label", "namespace", vault, f"{SCOPE}={scope}", f"{TIER}=restricted")
    kube.kubectl("label", "namespace", www, f"{SCOPE}={scope}", f"{TIER}=public")
    kube.kubectl("label", "namespace", plain, f"{SCOPE}={scope}")
    own_toleration = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    create(kube, deployment("bare", vault))
    create(
        kube,
        deployment("pinned", vault, nodeSelector={"pool": "shared"}, tolerations=[own_toleration]),
    )
    create(kube, deployment("web", www))
    user_np = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-metrics", "namespace": vault},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 9090}]}]},
    }
    create(kube, user_np)
    user_rv = get(kube, "networkpolicy", "-n", vault, "allow-metrics")["metadata"]["resourceVersion"]
    name = unique("tiers")
    create(kube, tiers_baseline(name, scope))
    np_name = f"kube-baseline-{name}-tier-restricted"
    with operator(kube):
        bare = wait_for(
            lambda: (s := pod_spec(kube, vault, "bare")).get("runtimeClassName") and s, what="bare placed"
        )
        assert bare["nodeSelector"] == {"pool": "restricted"}
        assert bare["tolerations"] == [TOLERATION]
        assert bare["runtimeClassName"] == "gvisor"
        pinned = wait_for(
            lambda: (s := pod_spec(kube, vault, "pinned")).get("runtimeClassName") and s, what="pinned placed"
        )
        assert pinned["nodeSelector"] == {"pool": "shared"}  # the user's value: reported, kept
        assert pinned["tolerations"] == [own_toleration, TOLERATION]  # the user's first, kept
        # A tier without placement: nothing to fill.
        assert "nodeSelector" not in pod_spec(kube, www, "web")

        policy = wait_for(
            lambda: (
                exists(kube, "networkpolicy", "-n", vault, np_name)
                and get(kube, "networkpolicy", "-n", vault, np_name)
            ),
            what="tier NetworkPolicy",
        )
        own = {"namespaceSelector": {"matchLabels": {TIER: "restricted"}}}
        assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-baseline"
        assert policy["metadata"]["ownerReferences"][0]["name"] == name
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}, own]}]
        dns, same_tier = policy["spec"]["egress"]
        assert dns["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]
        assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
        assert same_tier == {"to": [{"podSelector": {}}, own]}
        public = wait_for(
            lambda: (
                exists(kube, "networkpolicy", "-n", www, f"kube-baseline-{name}-tier-public")
                and get(kube, "networkpolicy", "-n", www, f"kube-baseline-{name}-tier-public")
            ),
            what="public tier NetworkPolicy",
        )
        assert public["spec"]["policyTypes"] == ["Ingress"]
        assert not exists(kube, "networkpolicy", "-n", plain, np_name)
        # The user's NetworkPolicy is untouched.
        assert (
            get(kube, "networkpolicy", "-n", vault, "allow-metrics")["metadata"]["resourceVersion"] == user_rv
        )

        labels = wait_for(
            lambda: (
                (lb := get(kube, "namespace", vault)["metadata"]["labels"]).get(
                    "pod-security.kubernetes.io/enforce"
                )
                and lb
            ),
            what="PSA label",
        )
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert "pod-security.kubernetes.io/enforce" not in get(kube, "namespace", www)["metadata"]["labels"]

        status = wait_for(
            lambda: (st := get(kube, "sb", name).get("status") or {}).get("tiers") is not None and st,
            what="tier status",
        )
        assert status["tiers"]["sharedNodes"] == 0
        # The pinned Deployment still carries manual tierPlacement findings (nodeSelector pool=shared).
        wait_for(
            lambda: (
                "tierPlacement"
                in {
                    (d["namespace"], d["name"]): d["checks"]
                    for d in (get(kube, "sb", name).get("status") or {}).get("mostDrifted", [])
                }.get((vault, "pinned"), [])
            ),
            what="pinned reported",
        )
        # Leaving the tier removes the tier's policy.
        kube.kubectl("label", "namespace", vault, f"{TIER}-")
        wait_for(lambda: not exists(kube, "networkpolicy", "-n", vault, np_name), what="policy removed")
        assert exists(kube, "networkpolicy", "-n", vault, "allow-metrics")
