"""Baseline status from verdicts: counts, the most-drifted list, conditions and their transitions."""

from __future__ import annotations

from typing import Any

import pytest

from kube_baseline.engine.models import Finding
from kube_baseline.engine.status import (
    MOST_DRIFTED_LIMIT,
    Verdict,
    build_conditions,
    build_most_drifted,
    build_status,
    build_summary,
    build_verdict,
    status_differs,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
READY = (True, "Auditing", "Auditing 2 namespaces")


def finding(check: str) -> Finding:
    return Finding(check, "high", "baseline", "m", "spec.x", "safe")


def verdict(
    name: str, findings: int = 0, *, exempted: int = 0, remediated: bool = False, ns: str = "a"
) -> Verdict:
    checks = tuple(f"check{i}" for i in range(findings))
    return Verdict(ns, "Deployment", name, checks, findings, exempted, remediated)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_build_verdict_dedupes_and_sorts_check_ids() -> None:
    v = build_verdict(
        "ns", "Deployment", "web", [finding("b"), finding("a"), finding("b")], [finding("c")], remediated=True
    )
    assert v == Verdict("ns", "Deployment", "web", ("a", "b"), 3, 1, True)
    assert not v.compliant


SUMMARY_CASES = {
    "empty": ([], (0, 0, 0, 0, 0)),
    "all-compliant": ([verdict("a"), verdict("b")], (2, 2, 0, 0, 0)),
    "mixed": (
        [
            verdict("a"),
            verdict("b", 2, remediated=True),
            verdict("c", 1, exempted=1),
            verdict("d", remediated=True),
        ],
        (4, 2, 2, 2, 1),
    ),
}


@pytest.mark.parametrize("case", SUMMARY_CASES)
def test_summary_counts(case: str) -> None:
    verdicts, (workloads, compliant, drifted, remediated, exempt) = SUMMARY_CASES[case]
    summary = build_summary(verdicts, namespaces=3)
    assert (summary.workloads, summary.compliant, summary.drifted, summary.remediated, summary.exempt) == (
        workloads,
        compliant,
        drifted,
        remediated,
        exempt,
    )
    assert summary.namespaces == 3


def test_most_drifted_is_bounded_and_ordered() -> None:
    verdicts = [verdict(f"w{i:02}", i % 5) for i in range(40)]
    most = build_most_drifted(verdicts)
    assert len(most) == MOST_DRIFTED_LIMIT
    assert [m.findings for m in most] == sorted((m.findings for m in most), reverse=True)
    assert most[0].findings == 4 and most[0].name == "w04"  # ties broken by name
    assert all(m.findings > 0 for m in most)


def test_compliant_condition_follows_drift() -> None:
    ok = build_status(None, generation=3, ready=READY, verdicts=[verdict("a")], namespaces=1, now=T0)
    bad = build_status(None, generation=3, ready=READY, verdicts=[verdict("a", 2)], namespaces=1, now=T0)
    assert conditions(ok)["Compliant"]["status"] == "True"
    assert conditions(ok)["Compliant"]["reason"] == "AllCompliant"
    assert conditions(bad)["Compliant"]["status"] == "False"
    assert conditions(bad)["Compliant"]["reason"] == "DriftDetected"
    assert "1 of 1 workloads" in conditions(bad)["Compliant"]["message"]
    assert all(c["observedGeneration"] == 3 for c in ok["conditions"])
    assert ok["observedGeneration"] == 3


def test_last_transition_time_is_kept_unless_status_flips() -> None:
    first = build_status(None, generation=1, ready=READY, verdicts=[verdict("a")], namespaces=1, now=T0)
    same = build_status(
        first, generation=2, ready=READY, verdicts=[verdict("a"), verdict("b")], namespaces=1, now=T1
    )
    flipped = build_status(first, generation=2, ready=READY, verdicts=[verdict("a", 1)], namespaces=1, now=T1)
    assert conditions(same)["Compliant"]["lastTransitionTime"] == T0
    assert conditions(flipped)["Compliant"]["lastTransitionTime"] == T1
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == T0


def test_recomputing_an_unchanged_world_is_equal() -> None:
    verdicts = [verdict("a", 1), verdict("b")]
    first = build_status(None, generation=1, ready=READY, verdicts=verdicts, namespaces=1, now=T0)
    again = build_status(first, generation=1, ready=READY, verdicts=verdicts, namespaces=1, now=T1)
    assert again == first
    assert not status_differs(first, again)
    assert status_differs(
        first, build_status(first, generation=2, ready=READY, verdicts=verdicts, namespaces=1, now=T1)
    )


def test_invalid_spec_is_not_ready_and_compliance_unknown() -> None:
    status = build_status(
        None, generation=1, ready=(False, "InvalidSpec", "mode: bad"), verdicts=None, namespaces=0, now=T0
    )
    assert conditions(status)["Ready"] | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "mode: bad",
        "lastTransitionTime": None,
        "observedGeneration": 1,
    }
    assert conditions(status)["Compliant"]["status"] == "Unknown"


def test_notes_are_appended_to_the_compliant_message() -> None:
    conds = build_conditions(
        [],
        generation=1,
        ready=READY,
        summary=build_summary([verdict("a")], namespaces=1),
        notes=["overlaps with x"],
        now=T0,
    )
    assert conds[1].message.endswith("; overlaps with x")
