"""The report renderer (engine.reports): shape, results per check, stability, the condition."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from kube_baseline.engine.checks import audit
from kube_baseline.engine.desired import Baseline, build_baseline
from kube_baseline.engine.reports import (
    CONDITION,
    HASH_ANNOTATION,
    OPEN_REPORTS,
    BaselineAudit,
    build_report,
    content_hash,
    report_name,
    reports_condition,
    stored_hash,
)
from kube_baseline.engine.status import desired_status
from kube_baseline.engine.workloads import Workload, workload_of

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def deployment(containers: list[dict[str, Any]] | None = None, **pod: Any) -> Workload:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers or [{"name": "app", "image": "nginx:1.25"}], **pod},
            },
        },
    }
    found = workload_of(obj)
    assert found is not None
    return found


def baseline(name: str = "prod", **spec: Any) -> Baseline:
    body = {
        "metadata": {"name": name, "uid": "b-1", "generation": 3},
        "spec": {"reports": {"enabled": True}, **spec},
    }
    return build_baseline(body)


def render(workload: Workload, *baselines: Baseline) -> dict[str, Any]:
    items = [BaselineAudit(b, audit(workload, b.policy, now=NOW)) for b in baselines]
    return build_report(workload, items, now=NOW)


def results(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["policy"], r["rule"]): r for r in report["results"]}


def test_one_result_per_baseline_and_enabled_check_with_summary() -> None:
    prod, strict = baseline("prod"), baseline("strict", profile="restricted")
    report = render(deployment(), prod, strict)
    got = results(report)
    assert {rule for (policy, rule) in got if policy == "prod"} == set(prod.policy.enabled)
    assert {rule for (policy, rule) in got if policy == "strict"} == set(strict.policy.enabled)
    assert len(report["results"]) == len(prod.policy.enabled) + len(strict.policy.enabled)
    counted = {k: sum(1 for r in report["results"] if r["result"] == k) for k in report["summary"]}
    assert report["summary"] == counted and set(counted) == {"pass", "fail", "warn", "error", "skip"}
    # A plain nginx container fails the restricted checks that need explicit settings.
    assert got["strict", "runAsNonRoot"]["result"] == "fail"
    assert got["strict", "allowPrivilegeEscalation"]["result"] == "fail"
    assert got["prod", "privileged"]["result"] == "pass"
    assert report["summary"]["fail"] >= 3


def test_result_fields_severity_references_field_and_risk_class() -> None:
    report = render(deployment(), baseline("strict", profile="restricted"))
    ape = results(report)["strict", "allowPrivilegeEscalation"]
    assert ape["source"] == "kube-baseline" and ape["scored"] is True
    assert ape["severity"] == "medium"
    assert ape["category"] == "Pod Security Standards (restricted)"
    props = ape["properties"]
    assert props["cis"] == "5.2.6"
    assert props["pss"] == "Restricted: Privilege Escalation"
    assert props["riskClass"] == "safe"
    assert props["field"].endswith("containers[app].securityContext.allowPrivilegeEscalation")
    assert "timestamp" not in ape  # stable: no scan time in the content
    assert all(isinstance(v, str) for r in report["results"] for v in r["properties"].values())


def test_explicit_value_is_manual_and_privileged_is_critical() -> None:
    workload = deployment([{"name": "app", "image": "x:1", "securityContext": {"privileged": True}}])
    got = results(render(workload, baseline()))
    assert got["prod", "privileged"]["result"] == "fail"
    assert got["prod", "privileged"]["severity"] == "critical"
    assert got["prod", "privileged"]["properties"]["riskClass"] == "manual"


def test_exempted_check_is_skipped_and_names_owner_and_expiry() -> None:
    exemption = {
        "workload": "Deployment/web",
        "checks": ["runAsNonRoot"],
        "reason": "legacy image runs as root",
        "owner": "team-shop",
        "expires": "2027-01-01T00:00:00Z",
    }
    got = results(render(deployment(), baseline("strict", profile="restricted", exemptions=[exemption])))
    skipped = got["strict", "runAsNonRoot"]
    assert skipped["result"] == "skip"
    assert "team-shop" in skipped["message"] and "legacy image" in skipped["message"]
    assert "2027-01-01" in skipped["message"]
    assert got["strict", "allowPrivilegeEscalation"]["result"] == "fail"  # not exempted


def test_identity_scope_owner_and_labels() -> None:
    report = render(deployment(), baseline())
    meta = report["metadata"]
    assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and report["kind"] == "PolicyReport"
    assert meta["name"] == "kb-deployment-web" and meta["namespace"] == "shop"
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "kube-baseline"}
    assert meta["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u-1"}
    ]
    assert report["scope"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
    }


def test_rendering_is_stable_and_the_hash_follows_content() -> None:
    prod, strict = baseline("prod"), baseline("strict", profile="restricted")
    first = render(deployment(), prod, strict)
    again = render(deployment(), strict, prod)  # baseline order does not matter
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert [(r["policy"], r["rule"]) for r in first["results"]] == sorted(
        (r["policy"], r["rule"]) for r in first["results"]
    )
    assert stored_hash(first) == content_hash(first) == first["metadata"]["annotations"][HASH_ANNOTATION]
    fixed = deployment(
        [{"name": "app", "image": "nginx:1.25", "securityContext": {"allowPrivilegeEscalation": False}}]
    )
    assert content_hash(render(fixed, prod, strict)) != content_hash(first)
    moved = copy.deepcopy(first)
    moved["metadata"]["ownerReferences"][0]["uid"] = "u-2"  # a new workload of the same name
    assert content_hash(moved) != content_hash(first)
    # The resourceVersion of the workload is not part of the report.
    bumped = deployment()
    bumped.obj["metadata"]["resourceVersion"] = "8"
    assert content_hash(render(bumped, prod, strict)) == content_hash(first)


def test_long_names_are_shortened_with_a_digest() -> None:
    assert report_name("Deployment", "web") == "kb-deployment-web"
    long_a, long_b = report_name("Deployment", "a" * 250 + "x"), report_name("Deployment", "a" * 250 + "y")
    assert len(long_a) == 253 and long_a != long_b


def test_condition_says_why_reports_are_missing() -> None:
    def cond(**kw: Any) -> dict[str, Any]:
        condition = reports_condition([], generation=3, now="2026-06-01T00:00:00Z", **kw)
        return condition.model_dump(by_alias=True, mode="json")

    assert cond(served=True, failures=[])["status"] == "True"
    missing = cond(served=False, failures=[])
    assert (missing["status"], missing["reason"]) == ("False", "CRDNotInstalled")
    assert "policyreport-crd.yaml" in missing["message"]
    failed = cond(served=True, failures=["HTTP 403", "HTTP 422: bad"])
    assert (failed["reason"], failed["type"]) == ("WriteFailed", CONDITION)
    assert "2 PolicyReports" in failed["message"] and "HTTP 422" in failed["message"]
    assert cond(served=None, failures=[])["status"] == "Unknown"
    assert set(failed) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}


def test_openreports_carry_the_same_results_as_policyreports() -> None:
    """The OpenReports Report differs only in its type and a top-level source; its digest differs
    too, so switching formats writes each workload's report once in the new API."""
    workload, prod = deployment(), baseline()
    items = [BaselineAudit(prod, audit(workload, prod.policy, now=NOW))]
    policy_report = build_report(workload, items, now=NOW)
    report = build_report(workload, items, now=NOW, api=OPEN_REPORTS)
    assert (report["apiVersion"], report["kind"], report["source"]) == (
        "openreports.io/v1alpha1",
        "Report",
        "kube-baseline",
    )
    assert "source" not in policy_report
    same = ("metadata", "scope", "summary", "results")
    assert {k: report[k] for k in same if k != "metadata"} == {
        k: policy_report[k] for k in same if k != "metadata"
    }
    assert report["metadata"]["name"] == policy_report["metadata"]["name"]
    assert stored_hash(report) == content_hash(report) != content_hash(policy_report)
    missing = reports_condition([], served=False, failures=[], generation=1, now="t", api=OPEN_REPORTS)
    assert "reports.openreports.io/v1alpha1" in missing.message and "openreports-crd.yaml" in missing.message
    failed = reports_condition(
        [], served=True, failures=["HTTP 403"], generation=1, now="t", api=OPEN_REPORTS
    )
    assert failed.message.startswith("1 Reports could not be written")


def test_condition_keeps_transition_time_unless_status_flips() -> None:
    first = reports_condition([], served=True, failures=[], generation=1, now="2026-01-01T00:00:00Z")
    old = first.model_dump(by_alias=True, mode="json")  # as the stored status holds it
    same = reports_condition([old], served=True, failures=[], generation=2, now="2026-06-01T00:00:00Z")
    flipped = reports_condition([old], served=False, failures=[], generation=2, now="2026-06-01T00:00:00Z")
    assert same.last_transition_time == "2026-01-01T00:00:00Z"
    assert flipped.last_transition_time == "2026-06-01T00:00:00Z"


def test_condition_follows_admission_ready_in_the_status() -> None:
    """ReportsWritten is one of desired_status's extra conditions, after the ones it builds."""
    baseline = build_baseline({"metadata": {"name": "b", "uid": "u", "generation": 1}, "spec": {}})
    cond = reports_condition([], served=True, failures=[], generation=1, now="t")
    status = desired_status(
        baseline,
        None,
        generation=1,
        namespaces=[],
        baselines=[baseline],
        verdicts=[],
        dry_run=False,
        now=NOW,
        extra_conditions=[cond],
    )
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Compliant", CONDITION]
    assert status["conditions"][-1] == cond.model_dump(by_alias=True, mode="json")
