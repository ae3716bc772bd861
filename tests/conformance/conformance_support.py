"""Shared helpers of the conformance tests: where the third-party test data lives, loading
documents by index, and the agreement table every source reports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kube_baseline.engine.checks import Policy, audit, policy_for_profile
from kube_baseline.engine.models import Finding
from kube_baseline.engine.workloads import workload_of
from tests.objects import iter_objects

REPO = Path(__file__).resolve().parents[2]


def shared_testdata() -> Path:
    """$KUBE_BASELINE_TESTDATA, else the shared/testdata folder beside the repository root."""
    env = os.environ.get("KUBE_BASELINE_TESTDATA")
    return Path(env) if env else REPO.parent / "shared" / "testdata"


@cache
def documents(path: Path) -> tuple[Any, ...]:
    """The non-empty YAML documents of a file, in order."""
    with path.open() as handle:
        return tuple(doc for doc in yaml.safe_load_all(handle) if doc is not None)


def objects(path: Path) -> list[dict[str, Any]]:
    return [obj for doc in documents(path) for obj in iter_objects(doc)]


# A predicate narrows a check's findings to the part a third-party rule looks at.
Predicate = Callable[[Finding], bool]


def any_finding(_: Finding) -> bool:
    return True


@dataclass(frozen=True)
class Ours:
    """Our side of a third-party rule: the checks (and profile) that must agree with it."""

    checks: tuple[str, ...]
    profile: str = "restricted"
    predicate: Predicate = any_finding
    required_labels: tuple[str, ...] = ()

    def policy(self) -> Policy:
        from kube_baseline.engine.models import EXTRA_CHECKS

        extra = [c for c in self.checks if c in EXTRA_CHECKS]
        return policy_for_profile(self.profile, extra=extra, required_labels=self.required_labels)

    def fails(
        self, obj: dict[str, Any], network_policies: Sequence[dict[str, Any]] | None = None
    ) -> bool | None:
        """True when we report a finding, False when clean, None when obj is not a workload."""
        wl = workload_of(obj)
        if wl is None:
            return None
        result = audit(wl, _policy(self), network_policies=network_policies)
        return any(f.check in self.checks and self.predicate(f) for f in result.findings)


@cache
def _policy(mapping: Ours) -> Policy:
    return mapping.policy()


@dataclass
class Tally:
    """Agreement per group (e.g. per policy or check) for one source."""

    source: str
    rows: dict[str, list[int]] = field(default_factory=dict)  # group -> [agree, total]
    skipped: int = 0

    def add(self, group: str, agree: bool) -> None:
        counts = self.rows.setdefault(group, [0, 0])
        counts[0] += agree
        counts[1] += 1

    @property
    def agree(self) -> int:
        return sum(a for a, _ in self.rows.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.rows.values())

    @property
    def rate(self) -> float:
        return self.agree / self.total if self.total else 0.0

    def lines(self) -> Iterable[str]:
        yield (
            f"{self.source}: {self.agree}/{self.total} agree ({self.rate:.1%}); "
            f"{self.skipped} rows not compared"
        )
        for group in sorted(self.rows):
            agree, total = self.rows[group]
            yield f"  {group:<66} {agree:>4}/{total:<4} {agree / total:6.1%}"


# Filled by the tests, printed by conftest.pytest_terminal_summary.
REPORTS: list[Tally] = []


def assert_agreement(
    tally: Tally,
    disagreements: dict[Any, str],
    differences: dict[Any, str],
    *,
    floor: float,
    minimum: int,
) -> None:
    """Report the tally; fail on a disagreement not listed (with its reason) in `differences`,
    on a listed one that no longer occurs, on too few comparisons, or below the measured floor."""
    REPORTS.append(tally)
    print(*tally.lines(), sep="\n")
    unexplained = {k: v for k, v in disagreements.items() if k not in differences}
    stale = sorted(set(differences) - set(disagreements))
    assert not unexplained, "\n".join(f"{k}: {v}" for k, v in sorted(unexplained.items()))
    assert not stale, f"listed differences that no longer occur: {stale}"
    assert tally.total > minimum
    assert tally.rate >= floor
