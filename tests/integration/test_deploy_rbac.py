"""Deploy `manifests/` with kubectl and run the operator as its ServiceAccount.

Sufficient: the operator process, authenticated only with a token of the kube-baseline
ServiceAccount (never the admin kubeconfig), runs a whole remediation scenario (a Deployment
patched, a NetworkPolicy created, replaced after tampering and deleted with its baseline,
namespace labels added and removed, status written, an Event posted) with no 403 in its log.
Minimal: a `kubectl auth can-i --as=<the ServiceAccount>` matrix of what it may and may not do.

The module installs the manifests once and removes them afterwards (the CRD only if it was
not there before), so other tests see the cluster as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import (
    FORBIDDEN,
    MANIFESTS,
    NAMESPACE,
    SA,
    SA_NAME,
    free_port,
    healthy,
    manifests_applied,
    remediated_namespace,
)
from operator_helpers import ROOT, exists, get, managers, unique, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployed(kube: Any) -> Iterator[str]:
    """`kubectl apply -k manifests/`; yields the applied output. Removes it all afterwards."""
    files = ("deployment.yaml", "serviceaccount.yaml", "rbac.yaml", "namespace.yaml")
    with manifests_applied(kube, remove=files) as applied:
        yield applied


def test_apply_k_creates_every_object(kube: Any, deployed: str) -> None:
    expected = {
        "customresourcedefinition.apiextensions.k8s.io/securitybaselines.kube-baseline.io",
        "namespace/kube-baseline",
        "serviceaccount/kube-baseline",
        "clusterrole.rbac.authorization.k8s.io/kube-baseline",
        "clusterrolebinding.rbac.authorization.k8s.io/kube-baseline",
        "role.rbac.authorization.k8s.io/kube-baseline",
        "rolebinding.rbac.authorization.k8s.io/kube-baseline",
        "deployment.apps/kube-baseline",
        "service/kube-baseline-metrics",
    }
    applied = {line.rsplit(" ", 1)[0] for line in deployed.splitlines() if line.strip()}
    assert applied == expected, deployed
    # The Deployment object exists as written (its Pods cannot run here: no image pulls).
    dep = get(kube, "deployment", "-n", NAMESPACE, "kube-baseline")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SA_NAME
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    ns = get(kube, "namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --------------------------------------------------------------------------- minimal: can-i


def can_i(kube: Any, verb: str, resource: str, namespace: str | None) -> bool:
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={SA}"]
    args += [f"--subresource={sub}"] if sub else []
    args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    res = kube.kubectl(*args, check=False)
    answer = str(res.stdout).strip()
    assert answer in ("yes", "no"), res.stderr
    return answer == "yes"


# (verb, resource, namespace or None for cluster-wide). `resource/name` is not used: a
# ClusterRole rule without resourceNames grants every name.
ALLOWED = [
    ("list", "configmaps", NAMESPACE),  # the rollout guard's record
    ("patch", "configmaps", NAMESPACE),
    ("create", "configmaps", NAMESPACE),
    ("list", "deployments.apps", None),
    ("watch", "deployments.apps", None),
    ("patch", "deployments.apps", "team-a"),
    ("patch", "statefulsets.apps", "team-a"),
    ("patch", "daemonsets.apps", "team-a"),
    ("patch", "replicasets.apps", "team-a"),
    ("patch", "replicationcontrollers", "team-a"),
    ("patch", "cronjobs.batch", "team-a"),
    ("list", "pods", None),
    ("list", "nodes", None),  # tierCoTenancy: the nodes' labels
    ("watch", "nodes", None),
    ("watch", "jobs.batch", None),
    ("list", "securitybaselines.kube-baseline.io", None),
    ("watch", "securitybaselines.kube-baseline.io", None),
    ("patch", "securitybaselines.kube-baseline.io", None),
    ("patch", "securitybaselines.kube-baseline.io/status", None),
    ("list", "namespaces", None),
    ("patch", "namespaces", None),
    ("list", "networkpolicies.networking.k8s.io", None),
    ("create", "networkpolicies.networking.k8s.io", "team-a"),
    ("update", "networkpolicies.networking.k8s.io", "team-a"),
    ("delete", "networkpolicies.networking.k8s.io", "team-a"),
    ("create", "events", "team-a"),
    ("create", "events", "default"),  # Events about the cluster-scoped baselines
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", None),
    # Generated admission policies (spec.admission): applied, watched, deleted with the baseline.
    ("patch", "validatingadmissionpolicies.admissionregistration.k8s.io", None),
    ("create", "validatingadmissionpolicybindings.admissionregistration.k8s.io", None),
    ("watch", "validatingadmissionpolicies.admissionregistration.k8s.io", None),
    ("delete", "validatingadmissionpolicybindings.admissionregistration.k8s.io", None),
    # A ClusterRole cannot leave a namespace out: the operator skips its own namespace in code
    # (models.SYSTEM_NAMESPACES), not by RBAC. Stated here so the matrix does not overclaim.
    ("patch", "deployments.apps", NAMESPACE),
]
DENIED = [
    ("list", "configmaps", "team-a"),  # only the operator's own namespace
    ("patch", "configmaps", "team-a"),
    ("get", "secrets", "team-a"),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("get", "secrets", NAMESPACE),
    ("create", "pods/exec", "team-a"),
    ("get", "pods/exec", "team-a"),
    ("create", "pods/attach", "team-a"),
    ("create", "pods/portforward", "team-a"),
    ("create", "serviceaccounts/token", NAMESPACE),
    ("get", "pods/log", "team-a"),
    ("create", "pods", "team-a"),
    ("patch", "pods", "team-a"),
    ("delete", "pods", "team-a"),
    ("create", "deployments.apps", "team-a"),
    ("update", "deployments.apps", "team-a"),
    ("delete", "deployments.apps", "team-a"),
    ("deletecollection", "deployments.apps", "team-a"),
    ("delete", "statefulsets.apps", "team-a"),
    ("delete", "daemonsets.apps", "team-a"),
    ("create", "jobs.batch", "team-a"),
    ("patch", "jobs.batch", "team-a"),
    ("delete", "cronjobs.batch", "team-a"),
    ("patch", "deployments.apps/scale", "team-a"),
    ("create", "namespaces", None),
    ("delete", "namespaces", None),
    ("update", "namespaces", None),
    ("create", "securitybaselines.kube-baseline.io", None),
    ("delete", "securitybaselines.kube-baseline.io", None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
    ("bind", "clusterroles.rbac.authorization.k8s.io", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", "team-a"),
    ("impersonate", "users", None),
    ("impersonate", "serviceaccounts", NAMESPACE),
    ("get", "nodes", None),
    ("patch", "nodes", None),
    ("update", "nodes", None),
    ("get", "configmaps", "team-a"),
    ("delete", "events", "team-a"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io", None),
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io", None),
    ("update", "leases.coordination.k8s.io", NAMESPACE),
    # Not used by the operator nor by Kopf (they list, watch and patch; they never get or replace
    # these), so not granted.
    ("get", "securitybaselines.kube-baseline.io", None),
    ("update", "securitybaselines.kube-baseline.io", None),
    ("update", "securitybaselines.kube-baseline.io/status", None),
    ("get", "namespaces", None),
    ("patch", "networkpolicies.networking.k8s.io", "team-a"),
    ("patch", "events", "team-a"),
    ("create", "events.events.k8s.io", "team-a"),
]


def _id(case: tuple[str, str, str | None]) -> str:
    verb, resource, namespace = case
    return f"{verb} {resource} in {namespace or 'all namespaces'}"


@pytest.mark.parametrize("case", ALLOWED, ids=[_id(c) for c in ALLOWED])
def test_service_account_may(kube: Any, deployed: str, case: tuple[str, str, str | None]) -> None:
    assert can_i(kube, *case), f"the operator needs to {_id(case)}"


@pytest.mark.parametrize("case", DENIED, ids=[_id(c) for c in DENIED])
def test_service_account_may_not(kube: Any, deployed: str, case: tuple[str, str, str | None]) -> None:
    assert not can_i(kube, *case), f"the ServiceAccount must not {_id(case)}"


def test_can_i_matrix_tells_yes_from_no(kube: Any, deployed: str) -> None:
    """Guards the matrix itself: the admin may do everything the ServiceAccount may not."""
    for verb, resource, namespace in DENIED[:3]:
        resource, _, sub = resource.partition("/")
        args = ["auth", "can-i", verb, resource, *([f"--subresource={sub}"] if sub else [])]
        args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
        assert kube.kubectl(*args).stdout.strip() == "yes"


# --------------------------------------------------------------------------- sufficient: a real run


def operator_args(liveness: str) -> list[str]:
    """The container args of manifests/deployment.yaml, with the liveness URL on a local port."""
    dep = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    args = list(dep["spec"]["template"]["spec"]["containers"][0]["args"])
    local = {"--liveness": f"--liveness={liveness}", "--metrics-port": "--metrics-port=0"}  # no fixed ports
    return [local.get(a.split("=", 1)[0], a) for a in args]


def kube_baseline_exe() -> list[str]:
    script = Path(sys.executable).parent / "kube-baseline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kube_baseline.main"]


def start_operator(kubeconfig: str, log: Path, liveness: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "KUBE_BASELINE_"))}
    env["KUBECONFIG"] = kubeconfig
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [*kube_baseline_exe(), *operator_args(liveness)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_operator_as_its_service_account_remediates_with_no_403(
    kube: Any, deployed: str, namespace: Any, scope: str, tmp_path: Path
) -> None:
    sa_kubeconfig = kube.service_account_kubeconfig(NAMESPACE, SA_NAME)
    assert Path(sa_kubeconfig) != Path(kube.kubeconfig)
    whoami = json.loads(kube.kubectl(f"--kubeconfig={sa_kubeconfig}", "auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == SA  # the operator's credentials, not admin's

    name = unique("rbac")
    dev = remediated_namespace(
        kube,
        namespace,
        scope,
        name,
        "plain",
        networkPolicies={
            "enabled": True,
            "namespaceSelector": {"matchLabels": {"env": "dev"}},
            "defaultDenyEgress": True,
            "allowDnsEgress": True,
        },
        labels={"namespaceDefaults": {"tier": "dev"}, "podSecurity": {"warn": "restricted"}},
    )
    log = tmp_path / "operator.log"
    try:
        run_scenario(kube, sa_kubeconfig, dev, name, log)
    except AssertionError as exc:
        denied = forbidden(log)
        raise AssertionError(
            f"{exc}\noperator log, 403s: {denied or 'none'}\n{log.read_text()[-3000:]}"
        ) from exc
    text = log.read_text()
    requests = [line for line in text.splitlines() if "requests sent" in line]
    print(f"\n[operator as {SA}] {requests[-1] if requests else 'no request summary'}")
    assert not forbidden(log), "\n".join(forbidden(log)[:20])
    assert "Started kube-baseline" in text, text[-3000:]


def if_(cond: Callable[[dict[str, Any]], bool], obj: dict[str, Any]) -> dict[str, Any]:
    """obj when cond holds, else {} (falsy: wait_for keeps waiting)."""
    return obj if cond(obj) else {}


def forbidden(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if FORBIDDEN.search(line)] if log.exists() else []


def run_scenario(kube: Any, sa_kubeconfig: str, dev: str, name: str, log: Path) -> None:
    np_name = f"kube-baseline-{name}"
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    proc = start_operator(sa_kubeconfig, log, liveness)
    try:
        wait_for(lambda: healthy(liveness), timeout=30, what="the liveness endpoint")
        # A non-compliant Deployment gets its one patch.
        plain = wait_for(
            lambda: if_(
                lambda d: "kube-baseline" in managers(d), get(kube, "deployment", "-n", dev, "plain")
            ),
            timeout=60,
            what="the Deployment remediated",
        )
        container = plain["spec"]["template"]["spec"]["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # A NetworkPolicy is created.
        policy = wait_for(
            lambda: (
                get(kube, "networkpolicy", "-n", dev, np_name)
                if exists(kube, "networkpolicy", "-n", dev, np_name)
                else {}
            ),
            what="the NetworkPolicy",
        )
        assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-baseline"
        # Namespace labels are applied.
        wait_for(
            lambda: get(kube, "namespace", dev)["metadata"]["labels"].get("tier") == "dev",
            what="namespace labels",
        )
        assert get(kube, "namespace", dev)["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == (
            "restricted"
        )
        # Baseline status is written.
        status = wait_for(
            lambda: if_(
                lambda s: s.get("summary", {}).get("remediated", 0) >= 1,
                get(kube, "securitybaseline", name).get("status") or {},
            ),
            timeout=30,
            what="baseline status",
        )
        assert status["summary"]["workloads"] == 1
        # An Event is posted about the patched Deployment.
        events = wait_for(
            lambda: [
                e
                for e in get(kube, "events", "-n", dev)["items"]
                if e["involvedObject"].get("name") == "plain" and e["reason"] == "Remediated"
            ],
            what="the Remediated Event",
        )
        assert events[0]["source"]["component"] == "kube-baseline"
        # Someone edits the managed NetworkPolicy: the operator puts it back (update).
        kube.kubectl(
            "patch", "networkpolicy", "-n", dev, np_name, "--type=merge", "-p",
            json.dumps({"spec": {"policyTypes": ["Ingress"], "egress": None}}),
        )  # fmt: skip
        wait_for(
            lambda: (
                get(kube, "networkpolicy", "-n", dev, np_name)["spec"]["policyTypes"] == ["Ingress", "Egress"]
            ),
            what="the NetworkPolicy restored",
        )
        # Deleting the baseline removes its NetworkPolicy (delete) and labels (patch).
        kube.kubectl("delete", "securitybaseline", name, "--timeout=30s")
        wait_for(lambda: not exists(kube, "networkpolicy", "-n", dev, np_name), what="NetworkPolicy removed")
        wait_for(
            lambda: "tier" not in get(kube, "namespace", dev)["metadata"]["labels"], what="labels removed"
        )
        assert proc.poll() is None, log.read_text()
    finally:
        kube.kubectl("delete", "securitybaseline", name, "--ignore-not-found", "--wait=false")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
