"""Pure: a baseline's status from per-workload verdicts.

A `Verdict` is what one baseline concluded about one top-level workload. The status holds the
conditions Ready and Compliant, summary counts and a bounded list of the most-drifted
workloads. `build_status` carries `lastTransitionTime` over unless a condition's status flips,
so recomputing an unchanged world yields an equal dict and the caller can skip the write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kube_baseline.engine.desired import OVERLAP_RULE, Baseline, NamespaceInfo, governs, remediates
from kube_baseline.engine.models import (
    Condition,
    DriftedWorkload,
    Finding,
    Rollouts,
    SecurityBaselineStatus,
    Summary,
    TierStatus,
)
from kube_baseline.engine.tiers import NodeUse, co_tenancy, tier_of

MOST_DRIFTED_LIMIT = 10
# At most this many check ids are listed per drifted workload.
CHECKS_PER_WORKLOAD = 8
ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One baseline's view of one top-level workload."""

    namespace: str
    kind: str
    name: str
    # Check ids of the findings not covered by an exemption (sorted, unique).
    checks: tuple[str, ...]
    findings: int
    exempted: int
    # The operator has written to this workload (its managedFields name our field manager).
    remediated: bool

    @property
    def compliant(self) -> bool:
        return self.findings == 0


def build_verdict(
    namespace: str,
    kind: str,
    name: str,
    findings: Sequence[Finding],
    exempted: Sequence[Finding],
    *,
    remediated: bool,
) -> Verdict:
    return Verdict(
        namespace=namespace,
        kind=kind,
        name=name,
        checks=tuple(sorted({f.check for f in findings})),
        findings=len(findings),
        exempted=len(exempted),
        remediated=remediated,
    )


def build_summary(verdicts: Iterable[Verdict], *, namespaces: int) -> Summary:
    workloads = compliant = drifted = remediated = exempt = 0
    for verdict in verdicts:
        workloads += 1
        if verdict.compliant:
            compliant += 1
        else:
            drifted += 1
        if verdict.remediated:
            remediated += 1
        if verdict.exempted:
            exempt += 1
    return Summary(
        namespaces=namespaces,
        workloads=workloads,
        compliant=compliant,
        drifted=drifted,
        remediated=remediated,
        exempt=exempt,
    )


def build_most_drifted(verdicts: Iterable[Verdict], limit: int = MOST_DRIFTED_LIMIT) -> list[DriftedWorkload]:
    """The `limit` workloads with the most findings (ties by namespace, kind, name)."""
    drifted = sorted(
        (v for v in verdicts if not v.compliant),
        key=lambda v: (-v.findings, v.namespace, v.kind, v.name),
    )
    return [
        DriftedWorkload(
            namespace=v.namespace,
            kind=v.kind,
            name=v.name,
            findings=v.findings,
            checks=list(v.checks[:CHECKS_PER_WORKLOAD]),
        )
        for v in drifted[:limit]
    ]


def _transition_time(
    previous: Mapping[str, Mapping[str, Any]], type_: str, status: ConditionStatus, now: str
) -> str:
    old = previous.get(type_)
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        return str(old["lastTransitionTime"])
    return now


def build_conditions(
    previous: Sequence[Mapping[str, Any]],
    *,
    generation: int,
    ready: tuple[bool, str, str],
    summary: Summary | None,
    notes: Sequence[str] = (),
    now: str,
) -> list[Condition]:
    """Ready and Compliant. `ready` is (ok, reason, message); `summary` None means not evaluated yet."""
    by_type = {str(c.get("type")): c for c in previous if isinstance(c, Mapping)}
    ok, ready_reason, ready_message = ready
    ready_status: ConditionStatus = "True" if ok else "False"
    compliant_status: ConditionStatus
    if not ok or summary is None:
        compliant_status, reason, message = "Unknown", "NotEvaluated", "The baseline has not been evaluated"
    elif summary.drifted == 0:
        compliant_status, reason = "True", "AllCompliant"
        message = f"All {summary.workloads} workloads in {summary.namespaces} namespaces comply"
    else:
        compliant_status, reason = "False", "DriftDetected"
        message = (
            f"{summary.drifted} of {summary.workloads} workloads in {summary.namespaces} namespaces drifted"
        )
    if notes and summary is not None:
        message = "; ".join([message, *notes])
    return [
        Condition(
            type="Ready",
            status=ready_status,
            reason=ready_reason,
            message=ready_message,
            last_transition_time=_transition_time(by_type, "Ready", ready_status, now),
            observed_generation=generation,
        ),
        Condition(
            type="Compliant",
            status=compliant_status,
            reason=reason,
            message=message,
            last_transition_time=_transition_time(by_type, "Compliant", compliant_status, now),
            observed_generation=generation,
        ),
    ]


def build_status(
    previous: Mapping[str, Any] | None,
    *,
    generation: int,
    ready: tuple[bool, str, str],
    verdicts: Iterable[Verdict] | None,
    namespaces: int,
    notes: Sequence[str] = (),
    now: str,
    tiers: TierStatus | None = None,
    rollouts: Rollouts | None = None,
    extra_conditions: Sequence[Condition] = (),
) -> dict[str, Any]:
    """The status subresource as wire JSON. `verdicts` None means "not evaluated" (e.g. invalid spec)."""
    previous = previous or {}
    prev_conditions = previous.get("conditions") or []
    if verdicts is None:
        summary = None
        most: list[DriftedWorkload] = []
    else:
        listed = list(verdicts)
        summary = build_summary(listed, namespaces=namespaces)
        most = build_most_drifted(listed)
    status = SecurityBaselineStatus(
        observed_generation=generation,
        conditions=[
            *build_conditions(
                prev_conditions, generation=generation, ready=ready, summary=summary, notes=notes, now=now
            ),
            *extra_conditions,  # AdmissionReady, ReportsWritten: each built by its own module
        ],
        summary=summary if summary is not None else Summary(),
        most_drifted=most,
        tiers=tiers,
        rollouts=rollouts or Rollouts(),
    )
    return status.model_dump(by_alias=True, mode="json")


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change the stored status (only the keys we own)."""
    current = current or {}
    return any(current.get(key) != value for key, value in desired.items())


def overlap_notes(
    baseline: Baseline, others: Iterable[Baseline], governed: Sequence[NamespaceInfo]
) -> list[str]:
    """A note naming the other baselines that govern any of the same namespaces, and the rule."""
    overlapping = sorted(
        {o.name for o in others if o.name != baseline.name and any(governs(o, ns) for ns in governed)}
    )
    if not overlapping:
        return []
    return [f"overlaps with {', '.join(overlapping)}: {OVERLAP_RULE}"]


def desired_status(
    parsed: Baseline | str,
    previous: Mapping[str, Any] | None,
    *,
    generation: int,
    namespaces: Iterable[NamespaceInfo],
    baselines: Iterable[Baseline],
    verdicts: Iterable[Verdict],
    dry_run: bool,
    now: datetime,
    nodes: Iterable[NodeUse] = (),
    rollouts: Rollouts | None = None,
    extra_conditions: Sequence[Condition] = (),
) -> dict[str, Any]:
    """A baseline's status: `parsed` is the baseline, or its validation error as text; `namespaces`
    every namespace known, `baselines` every valid baseline (for the overlap note), `verdicts`
    this baseline's verdicts on the workloads it governs, `nodes` where pods run (tierCoTenancy),
    `extra_conditions` those other modules build (AdmissionReady, ReportsWritten)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(parsed, str):
        return build_status(
            previous,
            generation=generation,
            ready=(False, "InvalidSpec", parsed[:1000]),
            verdicts=None,
            namespaces=0,
            now=stamp,
        )
    governed = [ns for ns in namespaces if governs(parsed, ns)]
    remediating = sum(1 for ns in governed if remediates(parsed, ns))
    if dry_run:
        ready = (True, "DryRun", f"Auditing {len(governed)} namespaces; dry run: nothing is written")
    elif parsed.spec.mode == "remediate":
        ready = (True, "Remediating", f"Auditing {len(governed)} namespaces, remediating {remediating}")
    else:
        ready = (True, "Auditing", f"Auditing {len(governed)} namespaces")
    notes = overlap_notes(parsed, baselines, governed)
    tiers = None
    if parsed.spec.tiers:
        namespace_tiers = {
            ns.name: tier.name for ns in governed if (tier := tier_of(parsed.spec.tiers, ns.selector_labels))
        }
        tiers = co_tenancy(parsed.spec.tiers, namespace_tiers, nodes)
        if tiers.shared_nodes:
            notes.append(f"tierCoTenancy: {tiers.shared_nodes} nodes run pods of more than one tier")
    return build_status(
        previous,
        generation=generation,
        ready=ready,
        verdicts=verdicts,
        namespaces=len(governed),
        notes=notes,
        now=stamp,
        tiers=tiers,
        rollouts=rollouts,
        extra_conditions=extra_conditions,
    )
