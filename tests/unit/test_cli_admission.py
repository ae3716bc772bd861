"""`kube-baseline admission render`: YAML out, Off says so, bad input exits 2 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kube_baseline.main import main

BASELINE = """\
apiVersion: kube-baseline.io/v1alpha1
kind: SecurityBaseline
metadata: {name: shop}
spec:
  profile: restricted
  checks: {extra: [networkPolicyCoverage]}
  admission: {validation: "%s"}
  exemptions:
  - {namespace: legacy, reason: old, expires: "2026-01-01T00:00:00Z"}
  - {namespace: batch, reason: later, expires: "2027-01-01T00:00:00Z"}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "baseline.yaml"
    path.write_text(text)
    return str(path)


def test_render_prints_the_policies_and_bindings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASELINE % "Deny")
    assert main(["admission", "render", "-f", path, "--now", "2026-06-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    docs = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ValidatingAdmissionPolicy", "kube-baseline-shop-pods"),
        ("ValidatingAdmissionPolicyBinding", "kube-baseline-shop-pods"),
        ("ValidatingAdmissionPolicy", "kube-baseline-shop-templates"),
        ("ValidatingAdmissionPolicyBinding", "kube-baseline-shop-templates"),
        ("ValidatingAdmissionPolicy", "kube-baseline-shop-cronjobs"),
        ("ValidatingAdmissionPolicyBinding", "kube-baseline-shop-cronjobs"),
    ]
    assert "# Not enforced at admission: networkPolicyCoverage" in out
    assert "expires at 2027-01-01T00:00:00+00:00" in out
    variables = [v["expression"] for v in docs[2]["spec"]["variables"] if v["name"].startswith("exempt")]
    assert variables == ['request.namespace == "batch"']  # the expired exemption is left out


def test_off_renders_nothing_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASELINE % "Off")
    assert main(["admission", "render", "-f", path]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "validation is Off" in captured.err
    assert main(["admission", "render", "-f", path, "--validation", "Warn"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {tuple(d["spec"]["validationActions"]) for d in docs if "validationActions" in d["spec"]} == {
        ("Warn",)
    }


def test_bad_input_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASELINE % "Block")
    assert main(["admission", "render", "-f", path]) == 2
    assert "admission.validation" in capsys.readouterr().err
    assert main(["admission", "render", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert main(["admission", "render", "-f", write(tmp_path, BASELINE % "Deny"), "--now", "soon"]) == 2
    assert "--now" in capsys.readouterr().err
