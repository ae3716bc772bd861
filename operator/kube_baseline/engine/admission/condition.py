"""The AdmissionReady condition of a baseline, from what applying its admission policies gave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kube_baseline.engine.models import Condition

CONDITION = "AdmissionReady"


@dataclass(frozen=True)
class AdmissionReport:
    validation: str  # the mode: Off | Warn | Audit | Deny
    mutation: str  # Off | Safe
    policies: int = 0  # policies applied (each with its binding)
    mutating: int = 0  # of which MutatingAdmissionPolicies
    unenforced: tuple[str, ...] = ()  # checks no admission policy can express
    warnings: tuple[str, ...] = ()  # the API server's type-checking warnings on our CEL
    mutation_note: str = ""  # why mutation is not in place although asked for
    error: str = ""  # applying failed
    next_expiry: datetime | None = None


def typecheck_warnings(policy: Mapping[str, Any]) -> list[str]:
    """A policy's status.typeChecking.expressionWarnings as "name: field: warning" lines."""
    name = (policy.get("metadata") or {}).get("name", "")
    checking = (policy.get("status") or {}).get("typeChecking") or {}
    return [
        f"{name}: {w.get('fieldRef', '')}: {w.get('warning', '')}"
        for w in checking.get("expressionWarnings") or ()
        if isinstance(w, Mapping)
    ]


def admission_condition(
    report: AdmissionReport, previous: Sequence[Mapping[str, Any]], *, generation: int, now: str
) -> Condition:
    status: Literal["True", "False"]
    if report.error:
        status, reason, message = "False", "ApplyFailed", report.error
    elif report.warnings:
        status, reason = "False", "TypeCheckWarnings"
        message = "The API server warns about the generated CEL: " + "; ".join(report.warnings)
    elif report.policies == 0 and not report.mutation_note:
        status, reason, message = "True", "Disabled", "spec.admission is Off: no admission policies"
    else:
        status, reason = "True", "PoliciesApplied"
        validating = report.policies - report.mutating
        parts = []
        if validating:
            parts.append(f"{validating} ValidatingAdmissionPolicies with bindings ({report.validation})")
        if report.mutating:
            parts.append(f"{report.mutating} MutatingAdmissionPolicies with bindings (safe fields on CREATE)")
        message = (" and ".join(parts) or "No admission policies") + " applied"
    notes = []
    if report.mutation_note:
        notes.append(report.mutation_note)
    if report.unenforced and report.validation != "Off":
        notes.append(f"not enforceable at admission (audited only): {', '.join(report.unenforced)}")
    if report.next_expiry is not None:
        notes.append(f"regenerated when an exemption expires at {report.next_expiry.isoformat()}")
    if notes:
        message = "; ".join([message, *notes])
    old = next((c for c in previous if isinstance(c, Mapping) and c.get("type") == CONDITION), None)
    since = now
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        since = str(old["lastTransitionTime"])
    return Condition(
        type=CONDITION,
        status=status,
        reason=reason,
        message=message[:4000],
        last_transition_time=since,
        observed_generation=generation,
    )
