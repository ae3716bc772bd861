"""PolicyReports are deleted with their workload by the garbage collector (full profile: the
api profile has no kube-controller-manager, so nothing there deletes dependents)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator_helpers import (
    ROOT,
    SCOPE,
    baseline,
    create,
    deployment,
    get,
    install_crd,
    operator,
    unique,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_deleting_a_workload_removes_its_report(kube_full: Any, namespace: Any) -> None:
    install_crd(kube_full)
    kube_full.kubectl(
        "apply", "--server-side", "-f", str(ROOT / "manifests" / "optional" / "policyreport-crd.yaml")
    )
    kube_full.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/policyreports.wgpolicyk8s.io"
    )
    scope, ns = unique("s"), namespace()
    kube_full.kubectl("label", "namespace", ns, f"{SCOPE}={scope}")
    create(kube_full, deployment("web", ns))
    create(kube_full, deployment("api", ns))
    name = unique("gc")
    body = baseline(name, profile="restricted", reports={"enabled": True})
    body["metadata"]["labels"] = {SCOPE: scope}
    body["spec"]["namespaces"] = {"selector": {"matchLabels": {SCOPE: scope}}}
    create(kube_full, body)

    def report_names() -> set[str]:
        return {r["metadata"]["name"] for r in get(kube_full, "policyreports", "-n", ns)["items"]}

    try:
        with operator(kube_full):
            wait_for(lambda: report_names() == {"kb-deployment-web", "kb-deployment-api"}, what="two reports")
        # The operator is stopped: the garbage collector alone removes the report of a deleted workload.
        kube_full.kubectl("delete", "deployment", "web", "-n", ns, "--wait=true")
        wait_for(
            lambda: report_names() == {"kb-deployment-api"}, timeout=60, what="the report of web deleted"
        )
    finally:
        kube_full.kubectl("delete", "securitybaseline", name, "--ignore-not-found", "--wait=false")
