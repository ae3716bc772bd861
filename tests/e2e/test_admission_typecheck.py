"""The API server's own type checking of the generated CEL (done by kube-controller-manager's
ValidatingAdmissionPolicy status controller, hence the full profile): no warnings, and the
operator's parser of status.typeChecking reads what the server writes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kube_baseline.engine.admission.condition import typecheck_warnings
from kube_baseline.engine.admission.validating import render_validation
from kube_baseline.engine.models import EXTRA_CHECKS, parse_spec

pytestmark = pytest.mark.e2e


def test_generated_policies_type_check_without_warnings(kube_full: Any) -> None:
    spec = parse_spec(
        {
            "profile": "restricted",
            "checks": {"extra": [c for c in EXTRA_CHECKS if c != "networkPolicyCoverage"]},
            "labels": {"required": ["team"]},
            "exemptions": [{"namespace": "legacy", "workload": "Deployment/web-*", "reason": "r"}],
            "namespaces": {"selector": {"matchLabels": {"kube-baseline.io/typecheck": "x"}}},
            "admission": {"validation": "Deny"},
        }
    )
    objects = list(render_validation("typecheck", "", spec).objects)
    # A deliberately ill-typed policy next to them proves that warnings do show up and parse.
    broken = json.loads(json.dumps(objects[2]))
    broken["metadata"]["name"] = "kube-baseline-typecheck-broken"
    broken["spec"]["validations"] = [{"expression": "object.spec.noSuchField == 1"}]
    kube_full.kubectl(
        "apply", "--server-side", "-f", "-", input="\n---\n".join(json.dumps(o) for o in [*objects, broken])
    )
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    try:
        deadline = time.monotonic() + 90
        checked: dict[str, Any] = {}
        while time.monotonic() < deadline and len(checked) < len(names) + 1:
            for name in [*names, broken["metadata"]["name"]]:
                obj = json.loads(
                    kube_full.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
                )
                if (obj.get("status") or {}).get("typeChecking") is not None:
                    checked[name] = obj
            time.sleep(1)
        assert set(checked) == {*names, broken["metadata"]["name"]}, "type checking never reported"
        for name in names:
            assert typecheck_warnings(checked[name]) == [], typecheck_warnings(checked[name])
        warnings = typecheck_warnings(checked[broken["metadata"]["name"]])
        assert warnings and "noSuchField" in warnings[0], warnings
    finally:
        for o in [*objects, broken]:
            kube_full.kubectl("delete", o["kind"], o["metadata"]["name"], "--ignore-not-found", check=False)
