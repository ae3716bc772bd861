#!/usr/bin/env python3
"""Memory of the operator's pod-placement view (controller.placement.PlacementView) at N pods.

The view keeps, per running pod, only its node name (and per node the namespaces of its pods);
the whole Pod bodies it is fed are dropped. This feeds N realistic Pod bodies (as the API server
sends them: metadata with managedFields, spec, status) through `pod_event`, spread over
namespaces and nodes, and reports what stays allocated (tracemalloc), the cost per event, and
the operator's RSS target it must fit in (performance notes R7: <= 100 MB at 10,000).
Not a test; `make bench` runs it. No cluster needed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from typing import Any

from kube_baseline.controller.placement import PlacementView


def pod_body(i: int, namespaces: int, nodes: int) -> dict[str, Any]:
    namespace = f"team-{i % namespaces:03d}"
    name = f"web-{i // 3:05d}-7d9f8b6c5d-{i:05x}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"0c7a1d2e-{i:04x}-4b7e-9a51-6f1c2d3e4f5a",
            "resourceVersion": str(100000 + i),
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "controller": True}
            ],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
        },
        "spec": {
            "nodeName": f"node-{i % nodes:03d}",
            "containers": [{"name": "app", "image": "nginx:1.25", "resources": {}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
        },
        "status": {"phase": "Running", "podIP": f"10.0.{i // 250}.{i % 250}"},
    }


def cost(raw: list[bytes]) -> float:
    """Seconds per pod_event over already decoded bodies (the watch decodes them anyway)."""
    bodies = [json.loads(b) for b in raw]
    view = PlacementView()
    started = time.perf_counter()
    for body in bodies:
        view.pod_event(None, "ADDED", body)
    return (time.perf_counter() - started) / len(bodies)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=10_000, help="running pods (default 10000)")
    p.add_argument("--namespaces", type=int, default=100)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--target-mib", type=float, default=100.0, help="the operator's RSS target at 10,000")
    p.add_argument(
        "--operator-mib", type=float, default=89.0, help="measured operator RSS at 10,000 (RESULTS)"
    )
    args = p.parse_args()

    # Bodies arrive one at a time from the watch; each is built, handed over and dropped.
    raw = [json.dumps(pod_body(i, args.namespaces, args.nodes)).encode() for i in range(args.n)]
    gc.collect()
    tracemalloc.start()
    view = PlacementView()
    view.pod_event(None, "LISTING", {})
    for body in raw:
        view.pod_event(None, "LISTED", json.loads(body))
    view.pod_event(None, "SYNCED", {})
    for i in range(args.nodes):
        view.node_event("ADDED", {"metadata": {"name": f"node-{i:03d}", "labels": {"pool": "shared"}}})
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nodes = view.nodes()
    assert len(view) == args.n and len(nodes) == args.nodes
    mib = kept / 2**20
    print(f"pods: {args.n}, namespaces: {args.namespaces}, nodes: {args.nodes}")
    print(f"view kept: {mib:.2f} MiB ({kept / args.n:.0f} bytes per pod); peak: {peak / 2**20:.2f} MiB")
    print(f"pod_event: {cost(raw) * 1e6:.1f} us per event (without tracemalloc; decoding excluded)")
    total = args.operator_mib + mib
    verdict = "within" if total <= args.target_mib else "OVER"
    print(
        f"operator at 10,000 ({args.operator_mib:.0f} MiB measured) + view = {total:.1f} MiB: "
        f"{verdict} the {args.target_mib:.0f} MiB target"
    )
    return 0 if total <= args.target_mib else 1


if __name__ == "__main__":
    sys.exit(main())
