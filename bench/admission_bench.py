"""Admission cost of the generated ValidatingAdmissionPolicies (spec.admission.validation: Deny).

One run, one API server (the local control plane, api profile, unless --kubeconfig): the
policies of a restricted baseline (plus the extra checks) are bound to one namespace; N compliant
Deployments are created there (every validation runs and passes) and N in a namespace no policy
binds, in alternating blocks of 50 so drift of the machine hits both alike, 8 requests in flight.
Reported: the ratio of the two create loops' wall time (target <= 1.10), and from the API
server's own metrics the mean time of the ValidatingAdmissionPolicy admission plugin per CREATE on each side
(apiserver_admission_controller_admission_duration_seconds).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "operator"))

from kube_baseline.engine.admission.validating import GROUPS, render_validation  # noqa: E402
from kube_baseline.engine.models import EXTRA_CHECKS, parse_spec  # noqa: E402

BLOCK = 50
IN_FLIGHT = 8
LABEL = "kube-baseline.io/admission-bench"


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "team": "bench"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.27",
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "100m", "memory": "64Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def reference_policy(obj: dict[str, Any]) -> dict[str, Any]:
    """The same policy object with one validation (no privileged container) and no variables:
    what any policy on these kinds costs at least."""
    if obj["kind"] != "ValidatingAdmissionPolicy":
        return obj
    group = next(g for g in GROUPS if obj["metadata"]["name"].endswith("-" + g.name))
    spec = {k: v for k, v in obj["spec"].items() if k not in ("variables", "validations", "matchConditions")}
    pred = "c.?securityContext.?privileged.orValue(false)"
    spec["validations"] = [{"expression": f"!object.{group.spec_path}.containers.exists(c, {pred})"}]
    return {**obj, "spec": spec}


def scrape(api: Any) -> str:
    response = api.call_api("GET", api.configuration.host + "/metrics")
    response.read()
    return response.data.decode()


def metric_sum_count(text: str, name: str, match: Callable[[dict[str, str]], bool]) -> tuple[float, float]:
    total = count = 0.0
    for line in text.splitlines():
        for suffix in ("_sum{", "_count{"):
            if line.startswith(name + suffix):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                if match(labels):
                    value = float(line.rsplit(" ", 1)[1])
                    if suffix == "_sum{":
                        total += value
                    else:
                        count += value
    return total, count


def vap_plugin(text: str) -> tuple[float, float]:
    """The ValidatingAdmissionPolicy plugin's time on admitted CREATEs (sum, count)."""
    return metric_sum_count(
        text,
        "apiserver_admission_controller_admission_duration_seconds",
        lambda labels: (
            labels.get("name") == "ValidatingAdmissionPolicy"
            and labels.get("operation") == "CREATE"
            and labels.get("rejected") == "false"
        ),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=1000, help="Deployments per side (default: %(default)s)")
    p.add_argument(
        "--profile",
        choices=("restricted+extras", "restricted", "baseline"),
        default="restricted+extras",
        help="the checks the policies enforce (default: %(default)s)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="bind a one-expression policy (privileged containers) instead: the plugin's floor",
    )
    p.add_argument("--kubeconfig", help="use this cluster instead of starting the local control plane")
    args = p.parse_args()
    from kubernetes import client, config

    cluster = None
    if args.kubeconfig:
        kubeconfig = args.kubeconfig
    else:
        from localcluster import LocalCluster, find_bin_dir

        cluster = LocalCluster(
            Path(tempfile.mkdtemp(prefix="kb-adm-bench-")),
            "api",
            bin_dir=find_bin_dir(),
            die_with_parent=True,
        )
        cluster.up()
        kubeconfig = cluster.kubeconfig
    try:
        api = config.new_client_from_config(config_file=kubeconfig)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        stamp = time.strftime("%H%M%S")
        bound, free = f"adm-bench-deny-{stamp}", f"adm-bench-free-{stamp}"
        extras = args.profile == "restricted+extras"
        spec = parse_spec(
            {
                "profile": args.profile.split("+")[0],
                "checks": {"extra": [c for c in EXTRA_CHECKS if c != "networkPolicyCoverage" and extras]},
                "labels": {"required": ["team"] if extras else []},
                "namespaces": {"selector": {"matchLabels": {LABEL: stamp}}},
                "admission": {"validation": "Deny"},
            }
        )
        objects = render_validation(f"bench-{stamp}", "", spec).objects
        if args.reference:
            objects = tuple(reference_policy(o) for o in objects)
        for ns, labels in ((bound, {LABEL: stamp}), (free, {})):
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
        admission = client.AdmissionregistrationV1Api(api)
        for obj in objects:
            if obj["kind"] == "ValidatingAdmissionPolicy":
                admission.create_validating_admission_policy(obj)
            else:
                admission.create_validating_admission_policy_binding(obj)
        bad = deployment("probe")
        bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        deadline = time.monotonic() + 30
        while True:  # until the policies act
            try:
                apps.create_namespaced_deployment(bound, bad, dry_run="All")
            except client.ApiException:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the generated policies never acted")
            time.sleep(0.2)
        # Warm both paths up.
        for ns in (bound, free):
            apps.create_namespaced_deployment(ns, deployment("warm"))
        elapsed = {bound: 0.0, free: 0.0}
        step = {bound: [0.0, 0.0], free: [0.0, 0.0]}
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            for block in range(0, args.n, BLOCK):
                order = (bound, free) if (block // BLOCK) % 2 == 0 else (free, bound)
                for ns in order:
                    names = [f"d-{i}" for i in range(block, min(block + BLOCK, args.n))]
                    s0, c0 = vap_plugin(scrape(api))
                    t0 = time.perf_counter()
                    list(
                        pool.map(lambda n, ns=ns: apps.create_namespaced_deployment(ns, deployment(n)), names)
                    )
                    elapsed[ns] += time.perf_counter() - t0
                    s1, c1 = vap_plugin(scrape(api))
                    step[ns][0] += s1 - s0
                    step[ns][1] += c1 - c0
        result = {
            "profile": "reference (one expression)" if args.reference else args.profile,
            "deployments_per_side": args.n,
            "seconds_with_policies": round(elapsed[bound], 3),
            "seconds_without": round(elapsed[free], 3),
            "ratio": round(elapsed[bound] / elapsed[free], 3),
            # ValidatingAdmissionPolicy plugin time per admitted CREATE, from the API server.
            "vap_plugin_ms_per_create_with": round(1000 * step[bound][0] / max(step[bound][1], 1), 3),
            "vap_plugin_ms_per_create_without": round(1000 * step[free][0] / max(step[free][1], 1), 3),
        }
        print(json.dumps(result, indent=2))
        for ns in (bound, free):
            core.delete_namespace(ns)
        for obj in objects:
            if obj["kind"] == "ValidatingAdmissionPolicy":
                admission.delete_validating_admission_policy(obj["metadata"]["name"])
            else:
                admission.delete_validating_admission_policy_binding(obj["metadata"]["name"])
        return 0
    finally:
        if cluster is not None:
            cluster.down()


if __name__ == "__main__":
    sys.exit(main())
