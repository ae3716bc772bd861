"""`check --cluster` and `plan --cluster --server-dry-run` against the real local API server.

The preview is read-only: check runs as a ServiceAccount that may only get and list, and plan's
dry run leaves every object as it was and creates nothing. A workload whose patch an
admission policy refuses is reported on its own entry (exit 2) while the others are still shown.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import written

from kube_baseline.main import main

pytestmark = pytest.mark.integration


def deployment(
    name: str, namespace: str, container_sc: dict[str, Any], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "busybox:1.36", "securityContext": container_sc}]
                },
            },
        },
    }


def apply(kube: Any, *objects: dict[str, Any]) -> None:
    kube.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    )


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def state_of(kube: Any, namespace: str) -> dict[str, Any]:
    """What a write would change on the namespace and on each Deployment and NetworkPolicy in it
    (not resourceVersion: the Deployment controller moves it while it syncs status)."""
    got = json.loads(kube.kubectl("get", "deployments,networkpolicies", "-n", namespace, "-o", "json").stdout)
    found = {f"{o['kind']}/{o['metadata']['name']}": written(o) for o in got["items"]}
    ns = json.loads(kube.kubectl("get", "namespace", namespace, "-o", "json").stdout)
    found[f"Namespace/{namespace}"] = written(ns)
    return found


@pytest.fixture
def workloads(kube: Any, namespace: Any) -> str:
    ns = namespace("cli-cluster")
    apply(
        kube,
        deployment("bad", ns, {"privileged": True}),
        deployment("fixable", ns, {}),
        deployment("frozen", ns, {}, labels={"kb-test-frozen": "true"}),
        deployment("clean", ns, {"allowPrivilegeEscalation": False}),
    )
    return ns


def test_check_cluster_as_a_read_only_service_account(kube: Any, workloads: str, tmp_path: Path) -> None:
    ns = workloads
    role = f"kb-cli-read-{uuid.uuid4().hex[:6]}"
    rules = [
        {
            "apiGroups": [""],
            "resources": ["pods", "replicationcontrollers", "namespaces"],
            "verbs": ["get", "list"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
            "verbs": ["get", "list"],
        },
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list"]},
    ]
    apply(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    try:
        kubeconfig = kube.service_account_kubeconfig(ns, "reader")
        before = state_of(kube, ns)
        code, out, err = run("check", "--cluster", "--kubeconfig", kubeconfig, "-n", ns, "-o", "json")
        assert code == 1, err
        report = json.loads(out)
        failed = {o["name"]: {f["check"] for f in o["findings"]} for o in report["objects"] if o["findings"]}
        assert failed == {"bad": {"privileged"}}
        assert {o["source"] for o in report["objects"]} >= {f"Deployment/{ns}/clean", f"Deployment/{ns}/bad"}
        # The same engine and exit codes as files: restricted finds more, all four are listed.
        code, out, _ = run(
            "check", "--cluster", "--kubeconfig", kubeconfig, "-n", ns, "--profile", "restricted"
        )
        assert code == 1 and "4 objects checked" in out
        code, _, err = run("check", "--cluster", "--kubeconfig", kubeconfig, "-n", ns, "--progress", "always")
        # Controller-owned objects (ReplicaSets, Pods when controllers run) are listed, not evaluated.
        assert code == 1 and re.search(r"listed \d+ workload objects, 4 to evaluate", err), err
        assert state_of(kube, ns) == before
        # Without list on namespaces-wide resources the error names what is missing (exit 2).
        kube.kubectl("delete", "clusterrolebinding", role)
        code, out, err = run("check", "--cluster", "--kubeconfig", kubeconfig)
        assert (code, out) == (2, "")
        assert "forbidden" in err and "needs get and list" in err
    finally:
        kube.kubectl("delete", "clusterrole,clusterrolebinding", role, "--ignore-not-found")


def _freeze_policy(name: str, ns: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy refusing any update of Deployments labelled kb-test-frozen."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "frozen by the test"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                    "objectSelector": {"matchLabels": {"kb-test-frozen": "true"}},
                },
            },
        },
    ]


def test_plan_cluster_server_dry_run(kube: Any, workloads: str, tmp_path: Path) -> None:
    ns = workloads
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        json.dumps(
            {
                "apiVersion": "kube-baseline.io/v1alpha1",
                "kind": "SecurityBaseline",
                "metadata": {"name": "preview"},
                "spec": {
                    "profile": "restricted",
                    "namespaces": {"selector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
                    "networkPolicies": {"enabled": True},
                    "labels": {"podSecurity": {"warn": "restricted"}},
                },
            }
        )
    )
    policy = f"kb-cli-freeze-{uuid.uuid4().hex[:6]}"
    apply(kube, *_freeze_policy(policy, ns))
    try:
        before = state_of(kube, ns)
        args = (
            "plan",
            "--cluster",
            "--kubeconfig",
            kube.kubeconfig,
            "-f",
            str(baseline),
            "--server-dry-run",
            "-o",
            "json",
        )
        deadline = time.monotonic() + 30
        while True:  # the new admission policy takes a moment to be enforced
            code, out, err = run(*args)
            report = json.loads(out)
            by_source = {o["source"]: o for o in report["objects"]}
            frozen = by_source[f"Deployment/{ns}/frozen"]
            if "refused" in frozen.get("serverDryRun", "") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert code == 2, err
        assert (
            frozen["serverDryRun"].startswith("refused: ") and "frozen by the test" in frozen["serverDryRun"]
        )
        fixable = by_source[f"Deployment/{ns}/fixable"]
        assert fixable["serverDryRun"] == "accepted" and fixable["patch"]
        nps = [o for o in report["objects"] if o["kind"] == "NetworkPolicy"]
        assert [(o["namespace"], o["name"], o["serverDryRun"]) for o in nps] == [
            (ns, "kube-baseline-preview", "accepted")
        ]
        [ns_entry] = [o for o in report["objects"] if o["kind"] == "Namespace"]
        assert ns_entry["patch"]["metadata"]["labels"] == {"pod-security.kubernetes.io/warn": "restricted"}
        assert ns_entry["serverDryRun"] == "accepted"
        # Nothing was written: no object changed and no NetworkPolicy exists.
        assert state_of(kube, ns) == before
        assert not any(k.startswith("NetworkPolicy/") for k in before)
        # Text output shows the refusal on its entry and still shows the others.
        code, out, _ = run(*args[:-2])
        assert code == 2
        assert "refused by the API server (dry run)" in out and f"Deployment {ns}/fixable" in out
        # Without --server-dry-run the plan is exit 1 (changes), nothing sent.
        code, out, _ = run(*args[:-3], "-o", "json")
        assert code == 1 and "serverDryRun" not in out
    finally:
        kube.kubectl(
            "delete",
            "validatingadmissionpolicy,validatingadmissionpolicybinding",
            policy,
            "--ignore-not-found",
        )
