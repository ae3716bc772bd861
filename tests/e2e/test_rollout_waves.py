"""Waves, not storms: N non-compliant Deployments whose fixes all roll pods, maxInFlight M. The
number of rollouts in progress, sampled from the API server (the Deployments' own status), never
exceeds M; every fix converges and succeeds. KB_WAVES_N / KB_WAVES_MAX shrink it for a laptop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator_helpers import (
    baseline,
    create,
    get,
    install_crd,
    spawn_operator,
    unique,
    wait_for,
    writes,
)

pytestmark = pytest.mark.e2e

N = int(os.environ.get("KB_WAVES_N", "500"))
MAX_IN_FLIGHT = int(os.environ.get("KB_WAVES_MAX", "50"))
ROW = (
    "{range .items[*]}{.metadata.generation} {.status.observedGeneration} {.spec.replicas} "
    "{.status.replicas} {.status.updatedReplicas} {.status.availableReplicas} "
    '{.spec.template.spec.securityContext.seccompProfile.type}{"\\n"}{end}'
)


def in_progress(kube: Any, ns: str) -> tuple[int, int]:
    """(rollouts in progress, Deployments fixed), from the Deployments' status as kubectl
    rollout status reads it."""
    rows = kube.kubectl("get", "deployments", "-n", ns, "-o", f"jsonpath={ROW}").stdout.splitlines()
    rolling = fixed = 0
    for row in rows:
        gen, observed, want, replicas, updated, available, *profile = [*row.split(" "), ""]
        fixed += profile[0] == "RuntimeDefault"
        as_int = [int(v) if v else 0 for v in (gen, observed, want, replicas, updated, available)]
        gen_i, observed_i, want_i, replicas_i, updated_i, available_i = as_int
        if observed_i < gen_i or updated_i < want_i or replicas_i > updated_i or available_i < updated_i:
            rolling += 1
    return rolling, fixed


@pytest.mark.timeout(1800)
def test_at_most_max_in_flight_rollouts(
    kube_full: Any, namespace: Callable[..., str], tmp_path: Path
) -> None:
    kube = kube_full
    install_crd(kube)
    ns, record_ns = namespace(), namespace("kb-record")
    template = {
        "metadata": {"labels": {}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }
    items = []
    for i in range(N):
        t = {**template, "metadata": {"labels": {"app": f"w{i:03}"}}}
        items.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"w{i:03}", "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"w{i:03}"}}, "template": t},
            }
        )
    create(kube, {"apiVersion": "v1", "kind": "List", "items": items})
    wait_for(lambda: in_progress(kube, ns)[0] == 0, timeout=300, interval=1, what="all Deployments available")
    name = unique("waves")
    create(
        kube,
        baseline(
            name,
            mode="remediate",
            profile="restricted",
            namespaces={"selector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            remediation={"riskClasses": ["safe"], "rollout": {"maxInFlight": MAX_IN_FLIGHT}},
        ),
    )
    patches_before = writes(kube, "deployments", ("PATCH",))
    cm_before = writes(kube, "configmaps", ("PATCH", "POST", "CREATE"))
    started = time.monotonic()
    proc = spawn_operator(kube, tmp_path / "operator.log", KUBE_BASELINE_NAMESPACE=record_ns)
    samples: list[int] = []
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            rolling, fixed = in_progress(kube, ns)
            samples.append(rolling)
            assert rolling <= MAX_IN_FLIGHT, (rolling, samples[-10:])
            if fixed == N and rolling == 0:
                break
            if len(samples) % 20 == 0:
                print(f"[waves] {time.monotonic() - started:.0f} s: {fixed}/{N} fixed, {rolling} rolling")
        else:
            log = (tmp_path / "operator.log").read_text()[-3000:]
            raise AssertionError(f"not converged: samples {samples[-10:]}\n{log}")
        converged = time.monotonic() - started
        status = wait_for(
            lambda: (
                (r := get(kube, "sb", name).get("status", {}).get("rollouts", {})).get("succeeded") == N and r
            ),
            timeout=120,
            what=f"{N} succeeded rollouts on the status",
        )
        assert (status["inFlight"], status["waiting"], status["rolledBack"]) == (0, 0, 0), status
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        kube.kubectl("delete", "sb", name, "--ignore-not-found")
    patches = writes(kube, "deployments", ("PATCH",)) - patches_before
    record_writes = writes(kube, "configmaps", ("PATCH", "POST", "CREATE")) - cm_before
    print(
        f"\n[waves] {N} Deployments, maxInFlight {MAX_IN_FLIGHT}: converged in {converged:.1f} s;"
        f" peak {max(samples)} rollouts in progress over {len(samples)} samples;"
        f" {patches} Deployment PATCHes, {record_writes} record writes"
        f" ({(patches + record_writes) / N:.2f} writes per fix)"
    )
    assert max(samples) > 1  # it did roll in parallel
    # One patch per Deployment of this namespace (the server's count above is cluster-wide).
    patched = [
        line.split("Patched Deployment ")[1].split(" ")[0]
        for line in (tmp_path / "operator.log").read_text().splitlines()
        if f"Patched Deployment {ns}/" in line
    ]
    assert len(patched) == len(set(patched)) == N
