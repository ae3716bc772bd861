"""Pure: the report of one workload, and the ReportsWritten condition.

Two APIs carry the same report: PolicyReport (wgpolicyk8s.io/v1alpha2, the default) and
OpenReports' Report (openreports.io/v1alpha1, its successor, which adds a top-level `source`).
The operator writes one of them (`run --report-format`); `ReportApi` says which.

One report per governed workload, in its namespace, owned by it (deleted with it by the garbage
collector). One result per reporting baseline and enabled check: `fail` when the check has
findings, `skip` when all its findings are exempted, `pass` otherwise. Results are sorted and
carry no timestamp, so an unchanged world renders an equal report and `content_hash` lets the
writer skip the write. The shape is the one Policy Reporter reads: top-level `scope`, `summary`
and `results` (no spec or status).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kube_baseline.engine.checks import Audit, Check
from kube_baseline.engine.desired import Baseline
from kube_baseline.engine.models import FIELD_MANAGER, GROUP, MANAGED_BY_LABEL, Condition, Finding
from kube_baseline.engine.workloads import Workload


@dataclass(frozen=True, slots=True)
class ReportApi:
    """One API a report can be written as."""

    format: str  # the name `run --report-format` takes
    group: str
    version: str
    kind: str
    plural: str
    crd_file: str  # the optional manifest that installs it
    report_source: bool  # a top-level `source` (the tool that wrote the results) is required

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}"


POLICY_REPORT = ReportApi(
    format="policyreport",
    group="wgpolicyk8s.io",
    version="v1alpha2",
    kind="PolicyReport",
    plural="policyreports",
    crd_file="policyreport-crd.yaml",
    report_source=False,
)
OPEN_REPORTS = ReportApi(
    format="openreports",
    group="openreports.io",
    version="v1alpha1",
    kind="Report",
    plural="reports",
    crd_file="openreports-crd.yaml",
    report_source=True,
)
REPORT_APIS = {api.format: api for api in (POLICY_REPORT, OPEN_REPORTS)}
SOURCE = FIELD_MANAGER
# The digest of the content the operator wrote, on the report itself (never on the workload): a
# restarted operator reads it back instead of rewriting every report.
HASH_ANNOTATION = f"{GROUP}/report-hash"
CONDITION = "ReportsWritten"
MESSAGE_LIMIT = 1024
FIELDS_LIMIT = 512
CATEGORIES = {
    "baseline": "Pod Security Standards (baseline)",
    "restricted": "Pod Security Standards (restricted)",
    "extra": "kube-baseline extra checks",
}
_RISK_ORDER = {"safe": 0, "guarded": 1, "manual": 2}


def report_name(kind: str, name: str) -> str:
    """`kb-<kind>-<name>`, shortened with a digest when it would exceed an object name's 253."""
    full = f"kb-{kind.lower()}-{name}"
    if len(full) <= 253:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return f"{full[:242]}-{digest}"


@dataclass(frozen=True, slots=True)
class BaselineAudit:
    """One reporting baseline's audit of the workload."""

    baseline: Baseline
    audit: Audit


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _joined(values: Sequence[str], limit: int) -> str:
    return _clip(", ".join(dict.fromkeys(v for v in values if v)), limit)


def _risk(findings: Sequence[Finding], check: Check) -> str:
    if not findings:
        return check.fix
    return max((f.remediation for f in findings), key=lambda r: _RISK_ORDER.get(r, 2))


def _exemption_note(baseline: Baseline, workload: Workload, check: str, now: datetime | None) -> str:
    # policy.exemptions are the spec's, compiled in the same order.
    for exemption, plain in zip(baseline.spec.exemptions, baseline.policy.exemptions, strict=False):
        if plain.applies_to(workload, now) and plain.covers(check):
            owner = f" (owner {exemption.owner})" if exemption.owner else ""
            expires = f", expires {exemption.expires.isoformat()}" if exemption.expires else ""
            return f"Exempted{owner}{expires}: {exemption.reason}"
    return "Exempted"


def check_result(
    baseline: Baseline, check: Check, audit: Audit, workload: Workload, now: datetime | None
) -> dict[str, Any]:
    """One result: the baseline's verdict on one check for the workload."""
    failed = [f for f in audit.findings if f.check == check.id]
    exempted = [f for f in audit.exempted if f.check == check.id]
    shown = failed or exempted
    if failed:
        result = "fail"
        message = "; ".join(dict.fromkeys(f.message for f in failed))
    elif exempted:
        result, message = "skip", _exemption_note(baseline, workload, check.id, now)
    else:
        result, message = "pass", check.title
    properties = {
        "level": check.level,
        "riskClass": _risk(shown, check),
        "pss": check.references.pss,
        "cis": ", ".join(check.references.cis),
        "nsa": check.references.nsa,
        "field": _joined([f.field for f in shown], FIELDS_LIMIT),
    }
    return {
        "source": SOURCE,
        "policy": baseline.name,
        "rule": check.id,
        "category": CATEGORIES.get(check.level, CATEGORIES["extra"]),
        "severity": check.severity,
        "result": result,
        "scored": True,
        "message": _clip(message, MESSAGE_LIMIT),
        "properties": {k: v for k, v in properties.items() if v},
    }


def build_report(
    workload: Workload,
    audits: Sequence[BaselineAudit],
    *,
    now: datetime | None = None,
    api: ReportApi = POLICY_REPORT,
) -> dict[str, Any]:
    """The workload's report under the reporting baselines, as `api`. `now` only decides which
    exemption a skipped result names (the one in force); it is never written."""
    meta = workload.metadata
    api_version = str(workload.obj.get("apiVersion") or "")
    uid = str(meta.get("uid") or "")
    results = [
        check_result(item.baseline, check, item.audit, workload, now)
        for item in audits
        for check in item.baseline.policy.checks
    ]
    results.sort(key=lambda r: (r["policy"], r["rule"]))
    summary = dict.fromkeys(("pass", "fail", "warn", "error", "skip"), 0)
    for result in results:
        summary[result["result"]] += 1
    scope = {
        "apiVersion": api_version,
        "kind": workload.kind,
        "name": workload.name,
        "namespace": workload.namespace,
        "uid": uid,
    }
    report: dict[str, Any] = {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": {
            "name": report_name(workload.kind, workload.name),
            "namespace": workload.namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER},
            "ownerReferences": [
                {"apiVersion": api_version, "kind": workload.kind, "name": workload.name, "uid": uid}
            ],
        },
        "scope": scope,
        "summary": summary,
        "results": results,
    }
    if api.report_source:
        report["source"] = SOURCE
    report["metadata"]["annotations"] = {HASH_ANNOTATION: content_hash(report)}
    return report


def content_hash(report: Mapping[str, Any]) -> str:
    """A short digest of what the report says (API, name, owner, scope, summary, results)."""
    meta = report.get("metadata") or {}
    owners = [o.get("uid") for o in meta.get("ownerReferences") or ()]
    essence = [
        report.get("apiVersion"),
        meta.get("name"),
        owners,
        report.get("scope"),
        report.get("summary"),
        report.get("results"),
    ]
    text = json.dumps(essence, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def stored_hash(report: Mapping[str, Any]) -> str:
    """The digest a stored report carries in its annotation ("" when none)."""
    annotations = (report.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(HASH_ANNOTATION) or "")


def reports_condition(
    previous: Sequence[Mapping[str, Any]],
    *,
    served: bool | None,
    failures: Sequence[str],
    generation: int,
    now: str,
    api: ReportApi = POLICY_REPORT,
) -> Condition:
    """The ReportsWritten condition of a baseline with `spec.reports.enabled` (one of the
    `extra_conditions` of engine.status.desired_status, as AdmissionReady): `served` whether the
    report API the operator writes is served (None: not known yet), `failures` the errors of the
    reports that could not be written."""
    status: Literal["True", "False", "Unknown"]
    if served is False:
        status, reason = "False", "CRDNotInstalled"
        message = (
            f"The {api.resource} API is not served: install manifests/optional/{api.crd_file} "
            "(or the CRDs of a policy engine that ships it, e.g. Kyverno)"
        )
    elif failures:
        status, reason = "False", "WriteFailed"
        message = _clip(f"{len(failures)} {api.kind}s could not be written; last error: {failures[-1]}", 1000)
    elif served is None:
        status, reason, message = "Unknown", "NotChecked", f"Whether {api.kind}s are served is not known yet"
    else:
        status, reason = "True", "Written"
        message = f"A {api.kind} ({api.group}) is kept per governed workload"
    old = next((c for c in previous if isinstance(c, Mapping) and c.get("type") == CONDITION), None)
    since = str(old["lastTransitionTime"]) if old and old.get("status") == status else now
    return Condition(
        type=CONDITION,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
