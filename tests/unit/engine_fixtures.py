"""Loading the named workload fixtures in tests/fixtures/workloads/ for the engine tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kube_baseline.engine.checks import Policy, audit, policy_for_profile
from kube_baseline.engine.models import EXTRA_CHECKS
from kube_baseline.engine.workloads import Workload, workload_of
from tests.objects import iter_objects

__all__ = ["iter_objects"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workloads"


def fixture_names() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    with (FIXTURES / f"{name}.yaml").open() as handle:
        doc = yaml.safe_load(handle)
    assert isinstance(doc, dict), name
    return doc


def workload(name: str) -> Workload:
    found = workload_of(load(name))
    assert found is not None, f"{name} is not a workload"
    return found


def policy(profile: str = "restricted", extra: Iterable[str] = ()) -> Policy:
    return policy_for_profile(profile, extra=extra)


def verdicts(name: str, check: str, profile: str = "restricted") -> list[tuple[str, str]]:
    """(container, remediation class) of each finding of one check, sorted."""
    extra = [check] if check in EXTRA else []
    result = audit(workload(name), policy(profile, extra))
    return sorted((f.container, f.remediation) for f in result.findings if f.check == check)


EXTRA = EXTRA_CHECKS
