"""PolicyReports, /metrics, /healthz and the write log of the operator, on the real API server.

A scenario with compliant, drifted, exempt and remediated workloads: the reports and the scraped
metrics must agree with the baseline's status counts; a second full pass (and a restart) must not
write any report again. The PolicyReport CRD is the optional one in manifests/optional/, as is
the OpenReports one for `--report-format=openreports`.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from operator_helpers import (
    ROOT,
    SCOPE,
    baseline,
    compliant_deployment,
    create,
    deployment,
    get,
    install_crd,
    operator,
    unique,
    wait_for,
    writes,
)

pytestmark = pytest.mark.integration
REPORT_CRD = ROOT / "manifests" / "optional" / "policyreport-crd.yaml"
OPEN_REPORTS_CRD = ROOT / "manifests" / "optional" / "openreports-crd.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        assert match, line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
        samples[match.group(1), labels] = float(match.group(3))
    return samples


def metric(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module", autouse=True)
def crd(kube: Any) -> None:
    install_crd(kube)


def status_of(kube: Any, name: str) -> dict[str, Any]:
    return get(kube, "securitybaseline", name).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def reports(kube: Any, ns: str) -> dict[str, dict[str, Any]]:
    return {r["scope"]["name"]: r for r in get(kube, "policyreports", "-n", ns)["items"]}


@pytest.fixture
def scoped(kube: Any, namespace: Any, scope: str) -> tuple[str, str]:
    """The test's scope (its baselines are deleted after it) and a namespace labelled with it."""
    ns = namespace()
    kube.kubectl("label", "namespace", ns, f"{SCOPE}={scope}", "env=dev")
    return scope, ns


def reporting_baseline(name: str, scope: str, **spec: Any) -> dict[str, Any]:
    body = baseline(name, mode="remediate", profile="restricted", reports={"enabled": True}, **spec)
    body["metadata"]["labels"] = {SCOPE: scope}
    body["spec"]["namespaces"] = {"selector": {"matchLabels": {SCOPE: scope}}}
    return body


def test_a_missing_crd_is_said_in_status(kube: Any, scoped: tuple[str, str]) -> None:
    """Without the PolicyReport CRD the condition says so, and nothing else breaks. (The CRD is
    removed if an earlier test installed it; the tests that need it apply it.)"""
    kube.kubectl("delete", "crd", "policyreports.wgpolicyk8s.io", "--ignore-not-found", "--wait=true")
    wait_for(
        lambda: kube.kubectl("get", "--raw", "/apis/wgpolicyk8s.io/v1alpha2", check=False).returncode != 0,
        what="the PolicyReport API to leave discovery",
    )
    scope, ns = scoped
    create(kube, deployment("plain", ns))
    name = unique("nocrd")
    create(kube, reporting_baseline(name, scope))
    with operator(kube):
        found = wait_for(
            lambda: condition(status_of(kube, name), "ReportsWritten").get("reason") == "CRDNotInstalled",
            what="ReportsWritten=False CRDNotInstalled",
        )
        assert found
        assert status_of(kube, name)["summary"]["workloads"] == 1  # auditing goes on


def test_reports_and_metrics_agree_with_status_and_are_not_rewritten(
    kube: Any, scoped: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.kubectl("apply", "--server-side", "-f", str(REPORT_CRD))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/policyreports.wgpolicyk8s.io")
    scope, ns = scoped
    create(kube, compliant_deployment("good", ns))
    create(kube, deployment("plain", ns))  # remediated (safe fields), still drifted (runAsNonRoot ...)
    create(
        kube,
        deployment(
            "priv", ns, [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": True}}]
        ),
    )
    create(kube, deployment("legacy", ns))  # every check exempted
    name = unique("rep")
    exemption = {"workload": "Deployment/legacy", "reason": "vendor image", "owner": "team-a"}
    create(kube, reporting_baseline(name, scope, exemptions=[exemption]))
    port = free_port()
    monkeypatch.setenv("KUBE_BASELINE_METRICS_PORT", str(port))
    with operator(kube) as runner:
        wait_for(lambda: len(reports(kube, ns)) == 4, what="4 PolicyReports")
        wait_for(
            lambda: status_of(kube, name).get("summary", {}).get("remediated", 0) >= 1, what="remediation"
        )
        time.sleep(2)  # the echo of the patch re-evaluates "plain"; status and reports settle
        status = status_of(kube, name)
        summary = status["summary"]
        assert condition(status, "ReportsWritten")["status"] == "True", status
        found = reports(kube, ns)
        assert summary["workloads"] == len(found) == 4
        drifted = {n for n, r in found.items() if r["summary"]["fail"] > 0}
        assert drifted == {d["name"] for d in status["mostDrifted"]} == {"plain", "priv"}
        assert summary["drifted"] == len(drifted) and summary["compliant"] == 4 - len(drifted)
        assert summary["exempt"] == sum(1 for r in found.values() if r["summary"]["skip"] > 0) == 1
        legacy = found["legacy"]
        assert legacy["summary"]["fail"] == 0 and "team-a" in json.dumps(legacy["results"])
        for workload, report in found.items():
            dep = get(kube, "deployment", "-n", ns, workload)
            assert report["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
            assert report["metadata"]["name"] == f"kb-deployment-{workload}"
            assert {r["policy"] for r in report["results"]} == {name}
            assert not any("kube-baseline" in k for k in dep["metadata"].get("annotations") or {})

        samples = scrape(port)
        for state in ("compliant", "drifted"):
            assert metric(samples, "kubebaseline_workloads", baseline=name, state=state) == summary[state]
        assert metric(samples, "kubebaseline_workloads_remediated", baseline=name) == summary["remediated"]
        assert metric(samples, "kubebaseline_workloads_exempt", baseline=name) == summary["exempt"]
        for check in ("runAsNonRoot", "privileged", "allowPrivilegeEscalation"):
            failing = sum(
                1
                for r in found.values()
                for x in r["results"]
                if x["rule"] == check and x["result"] == "fail"
            )
            assert (
                metric(samples, "kubebaseline_check_failing_workloads", baseline=name, check=check) == failing
            )
        assert metric(samples, "kubebaseline_remediations_total", baseline=name, result="applied") >= 1
        assert metric(samples, "kubebaseline_reconcile_total", controller="workload", result="success") >= 4
        patches = sum(
            metric(samples, "kubebaseline_api_requests_total", verb="PATCH", code=c) for c in ("200", "201")
        )
        assert patches >= 6  # two Deployments, four PolicyReports (created by apply: 201)
        assert metric(samples, "kubebaseline_build_info", version="0.1.0") == 1
        assert metric(samples, "kubebaseline_last_full_evaluation_timestamp_seconds") > 0
        assert not [k for k in samples if ("name", ns) in k[1] or any(v == "plain" for _, v in k[1])]
        assert http_get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")

        # A second full pass (a baseline change that changes no result) writes no report.
        before = {n: r["metadata"]["resourceVersion"] for n, r in reports(kube, ns).items()}
        report_writes = writes(kube, "policyreports", ("PATCH", "APPLY", "POST", "CREATE", "UPDATE"))
        kube.kubectl(
            "patch", "securitybaseline", name, "--type=json",
            "-p", json.dumps([{"op": "add", "path": "/spec/exemptions/-",
                               "value": {"workload": "nothing-here", "reason": "no such workload"}}]),
        )  # fmt: skip
        generation = get(kube, "securitybaseline", name)["metadata"]["generation"]
        wait_for(lambda: status_of(kube, name).get("observedGeneration") == generation, what="second pass")
        time.sleep(2)
        assert writes(kube, "policyreports", ("PATCH", "APPLY", "POST", "CREATE", "UPDATE")) == report_writes
        assert {n: r["metadata"]["resourceVersion"] for n, r in reports(kube, ns).items()} == before
    lines = [json.loads(x) for x in runner.output.splitlines() if '"logger":"kube_baseline.writes"' in x]
    patched = [
        x for x in lines if x["action"] == "patch" and x["kind"] == "Deployment" and x["name"] == "plain"
    ]
    assert len(patched) == 1 and patched[0]["baselines"] == [name] and patched[0]["namespace"] == ns
    assert any(f.endswith("allowPrivilegeEscalation") for f in patched[0]["fields"])
    applied = {x["name"] for x in lines if x["kind"] == "PolicyReport" and x["namespace"] == ns}
    assert applied == {f"kb-deployment-{n}" for n in ("good", "plain", "priv", "legacy")}

    # A restart reads the digests back: nothing is rewritten.
    with operator(kube):
        wait_for(lambda: status_of(kube, name).get("summary", {}).get("workloads") == 4, what="status")
        time.sleep(3)
        assert writes(kube, "policyreports", ("PATCH", "APPLY", "POST", "CREATE", "UPDATE")) == report_writes

    # Turning reports off deletes them; a deleted workload's report goes away too (see e2e for the GC).
    kube.kubectl(
        "patch", "securitybaseline", name, "--type=merge", "-p", '{"spec":{"reports":{"enabled":false}}}'
    )
    with operator(kube):
        wait_for(lambda: not reports(kube, ns), what="reports deleted once the baseline stops asking")
        status = status_of(kube, name)
        assert not condition(status, "ReportsWritten")


def test_openreports_format_writes_reports_of_that_api(
    kube: Any, scoped: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--report-format=openreports` (here KUBE_BASELINE_REPORT_FORMAT): the same results as
    openreports.io Reports with a top-level source, no PolicyReport, and a restart rewrites none."""
    kube.kubectl("apply", "--server-side", "-f", str(OPEN_REPORTS_CRD))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/reports.openreports.io")
    scope, ns = scoped
    create(kube, compliant_deployment("good", ns))
    create(kube, deployment("plain", ns))
    name = unique("openrep")
    create(kube, reporting_baseline(name, scope))
    monkeypatch.setenv("KUBE_BASELINE_REPORT_FORMAT", "openreports")

    def open_reports() -> dict[str, dict[str, Any]]:
        return {r["scope"]["name"]: r for r in get(kube, "reports.openreports.io", "-n", ns)["items"]}

    with operator(kube):
        wait_for(lambda: len(open_reports()) == 2, what="2 openreports.io Reports")
        wait_for(
            lambda: condition(status_of(kube, name), "ReportsWritten").get("status") == "True",
            what="ReportsWritten=True",
        )
        wait_for(lambda: open_reports()["plain"]["summary"]["fail"] > 0, what="plain's report settles")
        time.sleep(2)
        found = open_reports()
        assert "openreports.io" in condition(status_of(kube, name), "ReportsWritten")["message"]
    for workload, report in found.items():
        assert report["apiVersion"] == "openreports.io/v1alpha1" and report["kind"] == "Report"
        assert report["source"] == "kube-baseline"
        assert {r["policy"] for r in report["results"]} == {name}
        dep = get(kube, "deployment", "-n", ns, workload)
        assert report["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    assert found["good"]["summary"]["fail"] == 0 and found["plain"]["summary"]["fail"] > 0
    if kube.kubectl("get", "--raw", "/apis/wgpolicyk8s.io/v1alpha2", check=False).returncode == 0:
        assert not reports(kube, ns)  # the other format is not written beside it
    # A restart reads the Reports' digests back: nothing is rewritten.
    written_before = writes(kube, "reports", ("PATCH", "APPLY", "POST", "CREATE", "UPDATE"))
    assert written_before >= 2
    with operator(kube):
        wait_for(lambda: status_of(kube, name).get("summary", {}).get("workloads") == 2, what="status")
        time.sleep(3)
        assert writes(kube, "reports", ("PATCH", "APPLY", "POST", "CREATE", "UPDATE")) == written_before
