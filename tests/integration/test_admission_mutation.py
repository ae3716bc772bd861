"""Mutation on a control plane that serves MutatingAdmissionPolicy (its own local API server,
started with the feature gate and runtime-config): a new weak Deployment in a remediating
namespace is stored compliant, and the operator writes nothing to it (apiserver_request_total).
The other world (not served: the condition explains) is in test_admission_policies.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    baseline,
    deployment,
    get,
    install_crd,
    managers,
    metrics,
    operator,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration
SCOPE = "kube-baseline.io/mutation-test"
WEAK = [
    {
        "name": "app",
        "image": "nginx:1.27",
        # Compliant but for the safe-class fields: allowPrivilegeEscalation and seccomp absent.
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}},
    }
]


def serves_map(kube: Any) -> bool:
    names = kube.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout
    return "mutatingadmissionpolicies" in names


class MapKube:
    """What the helpers need of a cluster handle (kubeconfig, kubectl) for a second cluster."""

    def __init__(self, kubeconfig: str, kubectl: str) -> None:
        self.kubeconfig, self._kubectl = kubeconfig, kubectl

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any:
        res = subprocess.run(
            [self._kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{res.stderr}{res.stdout}")
        return res


@pytest.fixture(scope="module")
def map_kube(kube: Any) -> Iterator[Any]:
    kubectl = str(kube.bin_dir / "kubectl") if kube.bin_dir else shutil.which("kubectl") or "kubectl"
    if os.environ.get("KB_USE_EXISTING_CLUSTER") == "1":
        existing = MapKube(kube.kubeconfig, kubectl)
        if not serves_map(existing):
            pytest.skip("the existing cluster does not serve MutatingAdmissionPolicy")
        yield existing
        return
    from localcluster import LocalCluster, find_bin_dir

    workdir = Path(tempfile.mkdtemp(prefix="kb-pytest-map-"))
    cluster = LocalCluster(
        workdir / "cluster",
        "api",
        bin_dir=find_bin_dir(),
        mutating_admission_policy=True,
        die_with_parent=True,
    )
    try:
        cluster.up()
        yield MapKube(cluster.kubeconfig, kubectl)
    finally:
        cluster.down()
        shutil.rmtree(workdir, ignore_errors=True)


def deployment_writes(kube: Any) -> dict[str, float]:
    return {
        verb: sum(
            v
            for (vb, res, sub, code), v in metrics(kube).items()
            if vb == verb and res == "deployments" and sub == "" and code.startswith("2")
        )
        for verb in ("PATCH", "APPLY", "UPDATE", "POST", "CREATE")
    }


def test_a_new_weak_deployment_is_born_compliant(map_kube: Any) -> None:
    kube = map_kube
    assert serves_map(kube)
    install_crd(kube)
    name, ns = unique("mut"), unique("mut-ns")
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("label", "namespace", ns, f"{SCOPE}={name}")
    body = baseline(
        name,
        mode="remediate",
        profile="restricted",
        namespaces={"selector": {"matchLabels": {SCOPE: name}}},
        admission={"validation": "Deny", "mutation": "Safe"},
    )
    with operator(kube):
        kube.kubectl("create", "-f", "-", input=json.dumps(body))

        def condition() -> dict[str, Any] | None:
            conditions = (get(kube, "securitybaseline", name).get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "AdmissionReady"), None)

        cond = wait_for(
            lambda: (c := condition()) and "MutatingAdmissionPolicies" in c["message"] and c,
            what="AdmissionReady with mutation",
        )
        assert cond["status"] == "True", cond

        def mutated_dry_run() -> bool:
            res = kube.kubectl(
                "create",
                "--dry-run=server",
                "-o",
                "json",
                "-f",
                "-",
                input=json.dumps(deployment(unique("probe"), ns, WEAK)),
                check=False,
            )
            return res.returncode == 0 and '"allowPrivilegeEscalation": false' in res.stdout

        wait_for(mutated_dry_run, what="the MutatingAdmissionPolicy to act")
        before = deployment_writes(kube)
        kube.kubectl("create", "-f", "-", input=json.dumps(deployment("weak", ns, WEAK)))
        stored = get(kube, "deployment", "-n", ns, "weak")
        spec = stored["spec"]["template"]["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["containers"][0]["securityContext"]["runAsUser"] == 10001  # untouched

        def evaluated() -> bool:
            summary = (get(kube, "securitybaseline", name).get("status") or {}).get("summary") or {}
            return summary.get("workloads") == 1 and summary.get("compliant") == 1

        wait_for(evaluated, what="the operator to find the new Deployment compliant")
        after = deployment_writes(kube)
        delta = {verb: after[verb] - before[verb] for verb in after}
        assert delta == {"PATCH": 0, "APPLY": 0, "UPDATE": 0, "POST": 1, "CREATE": 0}, delta
        assert "kube-baseline" not in managers(get(kube, "deployment", "-n", ns, "weak"))

        # The generated MutatingAdmissionPolicy, edited or deleted by someone, is put back.
        listed = kube.kubectl(
            "get", "mutatingadmissionpolicies", "-l", f"kube-baseline.io/baseline={name}", "-o", "json"
        )
        policy = json.loads(listed.stdout)["items"][0]["metadata"]["name"]
        assert get(kube, "mutatingadmissionpolicy", policy)["spec"]["failurePolicy"] == "Ignore"
        edit = '{"spec":{"failurePolicy":"Fail"}}'
        kube.kubectl("patch", "mutatingadmissionpolicy", policy, "--type=merge", "-p", edit)
        wait_for(
            lambda: get(kube, "mutatingadmissionpolicy", policy)["spec"]["failurePolicy"] == "Ignore",
            what="the edited MutatingAdmissionPolicy put back",
        )
        kube.kubectl("delete", "mutatingadmissionpolicy", policy)
        wait_for(
            lambda: kube.kubectl("get", "mutatingadmissionpolicy", policy, check=False).returncode == 0,
            what="the deleted MutatingAdmissionPolicy recreated",
        )
