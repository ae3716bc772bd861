"""The pure renderer of MutatingAdmissionPolicies: only when asked and remediating, CREATE only,
failurePolicy Ignore, scoped to remediating namespaces, only safe-class fields. What the
patches do on real objects is checked against a real API server in
tests/integration/test_admission_mutation.py."""

from __future__ import annotations

import json
from typing import Any

import yaml

from kube_baseline.engine.admission.mutating import mutation_blocked_by, render_mutation
from kube_baseline.engine.models import parse_spec
from kube_baseline.main import main

SAFE = {"mode": "remediate", "profile": "restricted", "admission": {"mutation": "Safe"}}


def render(**spec: Any) -> tuple[dict[str, Any], ...]:
    return render_mutation("web", "u-1", parse_spec({**SAFE, **spec}))


def test_nothing_unless_safe_and_remediating() -> None:
    assert render(admission={"mutation": "Off"}) == ()
    assert render(mode="audit") == ()
    assert "mode remediate" in mutation_blocked_by(parse_spec({**SAFE, "mode": "audit"}))
    assert render(remediation={"riskClasses": ["guarded"]}) == ()


def test_create_only_ignore_on_failure_and_scoped_to_remediating_namespaces() -> None:
    objects = render(remediation={"namespaceSelector": {"matchLabels": {"fix": "yes"}}})
    policies = [o for o in objects if o["kind"] == "MutatingAdmissionPolicy"]
    bindings = [o for o in objects if o["kind"] == "MutatingAdmissionPolicyBinding"]
    assert len(policies) == 3 and len(bindings) == 3
    for policy in policies:
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Ignore" and spec["reinvocationPolicy"] == "Never"
        assert {op for r in spec["matchConstraints"]["resourceRules"] for op in r["operations"]} == {"CREATE"}
        assert all(
            "/" not in res for r in spec["matchConstraints"]["resourceRules"] for res in r["resources"]
        )
        assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    expressions = bindings[0]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert {"key": "fix", "operator": "In", "values": ["yes"]} in expressions


def test_only_safe_fields_with_the_baselines_values() -> None:
    objects = render(
        remediation={"securityContext": {"seccompProfile": "Localhost", "localhostProfile": "p.json"}},
        labels={"required": ["team"], "workloadDefaults": {"team": "shop"}},
    )
    patch = objects[2]["spec"]["mutations"][0]["jsonPatch"]["expression"]
    assert "allowPrivilegeEscalation" in patch and "'localhostProfile': \"p.json\"" in patch
    assert '"/metadata/labels/team"' in patch
    for guarded in ("runAsNonRoot", "readOnlyRootFilesystem", "drop", "automountServiceAccountToken"):
        assert guarded not in patch
    # At the baseline profile no safe check is enabled: nothing to fill but nothing breaks.
    baseline_patch = render(profile="baseline")[2]["spec"]["mutations"][0]["jsonPatch"]["expression"]
    assert baseline_patch == "[]"


def test_cli_renders_mutation_and_quotes_yaml11_booleans(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "b.yaml"
    doc = {
        "apiVersion": "kube-baseline.io/v1alpha1",
        "kind": "SecurityBaseline",
        "metadata": {"name": "web"},
        "spec": {**SAFE, "namespaces": {"selector": {"matchLabels": {"harden": "y"}}}},
    }
    # JSON is YAML with every string quoted: PyYAML would write `harden: y` bare, which kubectl (and
    # so kube-baseline) reads as a boolean.
    path.write_text(json.dumps(doc))
    assert main(["admission", "render", "-f", str(path)]) == 0
    out = capsys.readouterr().out
    assert "values:\n        - 'y'" in out or "- 'y'" in out
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds.count("MutatingAdmissionPolicy") == 3 and "ValidatingAdmissionPolicy" not in kinds
