"""The operator keeps only `workloads.audit_view` of each workload in memory: audit and
remediation planning must see no difference between the view and the whole object."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_fixtures import fixture_names, iter_objects, load
from hypothesis import HealthCheck, given, settings
from test_remediation_properties import workloads

from kube_baseline.engine.checks import audit, policy_for_profile
from kube_baseline.engine.models import EXTRA_CHECKS, Labels, Remediation, Tier
from kube_baseline.engine.remediation import plan
from kube_baseline.engine.tiers import placement_patch
from kube_baseline.engine.workloads import audit_view, pack_view, unpack_view, workload_of

EXTRAS = [c for c in EXTRA_CHECKS if c != "networkPolicyCoverage"]  # tierPlacement included
POLICY = policy_for_profile(
    "restricted", extra=EXTRAS, required_labels=["team", "owner"], label_defaults=["team"]
)
LABELS = Labels(required=["team", "owner"], workload_defaults={"team": "shop"})
REMEDIATION = Remediation(risk_classes=["safe", "guarded"])
# The tier of every workload here: its placement check and fill must see the same in the view.
TIER = Tier.model_validate(
    {
        "name": "restricted",
        "placement": {
            "nodeSelector": {"pool": "restricted"},
            "tolerations": [{"key": "pool", "value": "restricted", "effect": "NoSchedule"}],
            "runtimeClassName": "gvisor",
        },
    }
)
TESTDATA = Path(os.environ.get("KUBE_BASELINE_TESTDATA") or Path(__file__).parents[3] / "shared" / "testdata")


def assert_same_verdicts(obj: dict[str, Any]) -> None:
    """The view, as the operator stores it (packed) and reads it back, audits and plans the same."""
    whole = workload_of(obj)
    assert whole is not None
    stored = pack_view(audit_view(whole))
    assert unpack_view(stored) == audit_view(whole)
    view = workload_of(unpack_view(stored))
    assert view is not None
    assert (view.kind, view.namespace, view.name) == (whole.kind, whole.namespace, whole.name)
    found_whole = audit(whole, POLICY, tier=TIER).findings
    assert audit(view, POLICY, tier=TIER).findings == found_whole
    assert plan(view, found_whole, REMEDIATION, LABELS) == plan(whole, found_whole, REMEDIATION, LABELS)
    assert placement_patch(view, TIER, found_whole, REMEDIATION) == placement_patch(
        whole, TIER, found_whole, REMEDIATION
    )


@pytest.mark.parametrize("name", fixture_names())
def test_view_of_each_fixture_audits_and_plans_the_same(name: str) -> None:
    for obj in iter_objects(load(name)):
        if workload_of(obj) is not None:
            assert_same_verdicts(obj)


@pytest.mark.skipif(not (TESTDATA / "realworld").is_dir(), reason="shared/testdata/realworld is absent")
def test_view_of_real_world_manifests_audits_and_plans_the_same() -> None:
    seen = 0
    for path in sorted((TESTDATA / "realworld").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for obj in iter_objects(doc):
                if workload_of(obj) is not None:
                    assert_same_verdicts(obj)
                    seen += 1
    assert seen > 10


@given(workloads())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_view_of_random_workloads_audits_and_plans_the_same(obj: dict[str, Any]) -> None:
    assert_same_verdicts(obj)


def test_view_drops_what_no_check_reads() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 5000},
        },
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
                },
                "spec": {
                    "containers": [
                        {"name": "app", "image": "web:1", "env": [{"name": "A", "value": "b"}], "args": ["x"]}
                    ],
                    "priorityClassName": "high",
                },
            },
        },
        "status": {"replicas": 3},
    }
    whole = workload_of(obj)
    assert whole is not None
    assert audit_view(whole) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
                },
                "spec": {"containers": [{"name": "app", "image": "web:1"}]},
            }
        },
    }


@pytest.mark.skipif(not (TESTDATA / "realworld").is_dir(), reason="shared/testdata/realworld is absent")
def test_packed_views_of_real_world_manifests_are_a_third_of_their_json() -> None:
    json_size = packed_size = 0
    for path in sorted((TESTDATA / "realworld").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for obj in iter_objects(doc):
                if (whole := workload_of(obj)) is not None:
                    view = audit_view(whole)
                    json_size += len(json.dumps(view, separators=(",", ":")))
                    packed_size += len(pack_view(view))
    assert json_size > 0 and packed_size < json_size / 2.5, (json_size, packed_size)
