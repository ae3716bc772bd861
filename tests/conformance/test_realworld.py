"""Remediation invariants over real-world manifests (realworld/: no expected verdicts).

For every workload: audit and plan do not fail; the patch touches only securityContext fields,
automountServiceAccountToken and metadata.labels; applying it re-checks clean for the applied
classes; remediating twice equals once; host-access DaemonSets are reported, not changed in
their host settings.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conformance_support import shared_testdata

from kube_baseline.engine.checks import audit, policy_for_profile
from kube_baseline.engine.models import EXTRA_CHECKS, Labels, Remediation
from kube_baseline.engine.remediation import apply_patch, plan
from kube_baseline.engine.workloads import workload_of
from tests.objects import iter_objects

REALWORLD = shared_testdata() / "realworld"

pytestmark = pytest.mark.skipif(
    not REALWORLD.is_dir(), reason=f"third-party test data not found at {REALWORLD}"
)

POLICY = policy_for_profile(
    "restricted",
    extra=[c for c in EXTRA_CHECKS if c != "networkPolicyCoverage"],
    required_labels=["team"],
    label_defaults=["team"],
)
FIX = Remediation(risk_classes=["safe", "guarded"])
LABELS = Labels(required=["team"], workload_defaults={"team": "unassigned"})
HOST_FIELDS = ("hostNetwork", "hostPID", "hostIPC", "volumes")


def _workloads() -> list[tuple[str, dict[str, Any]]]:
    out = []
    if not REALWORLD.is_dir():
        return out
    for path in sorted(REALWORLD.rglob("*.y*ml")):
        with path.open() as handle:
            try:
                docs = list(yaml.safe_load_all(handle))
            except yaml.YAMLError:
                continue
        for doc in docs:
            for obj in iter_objects(doc):
                if workload_of(obj) is not None:
                    out.append(
                        (f"{path.relative_to(REALWORLD)}:{obj['kind']}/{obj['metadata']['name']}", obj)
                    )
    return out


WORKLOADS = _workloads()


def _strip_security(obj: Any, path: tuple[str, ...] = ()) -> Any:
    """The object without the parts remediation may change."""
    if isinstance(obj, dict):
        return {
            k: _strip_security(v, (*path, k))
            for k, v in obj.items()
            if k not in ("securityContext", "automountServiceAccountToken")
            and (*path, k) != ("metadata", "labels")
        }
    if isinstance(obj, list):
        return [_strip_security(v, path) for v in obj]
    return obj


def test_there_are_real_workloads() -> None:
    assert len(WORKLOADS) > 50


@pytest.mark.parametrize(("case", "obj"), WORKLOADS, ids=[c for c, _ in WORKLOADS])
def test_remediation_invariants(case: str, obj: dict[str, Any]) -> None:
    wl = workload_of(obj)
    assert wl is not None
    result = plan(wl, audit(wl, POLICY).findings, FIX, LABELS)
    fixed = apply_patch(obj, result.patch)
    assert _strip_security(fixed) == _strip_security(obj), "only securityContext/labels/token may change"
    fixed_wl = workload_of(fixed)
    assert fixed_wl is not None
    for key in HOST_FIELDS:
        assert fixed_wl.pod_spec.get(key) == wl.pod_spec.get(key)
    remaining = audit(fixed_wl, POLICY).findings
    assert [f for f in remaining if f.remediation != "manual"] == []
    assert plan(fixed_wl, remaining, FIX, LABELS).patch == {}


def test_host_access_daemonsets_are_reported() -> None:
    reported = {
        case
        for case, obj in WORKLOADS
        if obj["kind"] == "DaemonSet"
        and any(
            f.check in ("hostNamespaces", "hostPathVolumes", "restrictedVolumes", "privileged")
            for f in audit(workload_of(obj), POLICY).findings  # type: ignore[arg-type]
        )
    }
    assert any("node-exporter" in case or "nodeExporter" in case for case in reported), reported
