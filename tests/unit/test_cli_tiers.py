"""`check`, `plan` and `fix` evaluate sensitivity tiers offline: a namespace's tier comes from
its Namespace object in the input, with the same check ids and fill as the operator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_baseline.main import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "tiers.yaml"

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: vault
  labels:
    kube-baseline.io/tier: restricted
---
apiVersion: v1
kind: Namespace
metadata:
  name: www
  labels:
    kube-baseline.io/tier: public
---
# a restricted workload without its placement
apiVersion: apps/v1
kind: Deployment
metadata:
  name: secrets
  namespace: vault
spec:
  selector:
    matchLabels: {app: secrets}
  template:
    metadata:
      labels: {app: secrets}
    spec:
      tolerations:
        - key: gpu
          operator: Exists
      containers:
        - name: app
          image: vault:1.15
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: www
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: web:1
---
# no Namespace object in the input: no tier known
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: elsewhere
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: app
          image: api:1
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "apps.yaml"
    path.write_text(MANIFESTS)
    return path


def placement_checks(report: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    return {
        o["name"]: sorted(
            (f["field"].rsplit(".", 1)[-1], f["remediation"])
            for f in o["findings"]
            if f["check"] == "tierPlacement"
        )
        for o in report["objects"]
        if o["kind"] == "Deployment"
    }


def test_check_reports_tier_placement_by_namespace_object(
    capsys: pytest.CaptureFixture[str], inputs: Path
) -> None:
    code, out, err = run(capsys, "check", "-o", "json", "-f", str(SAMPLE), str(inputs))
    assert code == 1 and err == ""
    assert placement_checks(json.loads(out)) == {
        "secrets": [
            ("nodeSelector[pool]", "guarded"),
            ("runtimeClassName", "guarded"),
            ("tolerations", "guarded"),
        ],
        "web": [],  # public: no placement
        "api": [],  # tier unknown offline
    }
    checks = {
        o["name"]: {f["check"] for f in o["findings"]}
        for o in json.loads(out)["objects"]
        if o["kind"] == "Deployment"
    }
    assert "allowPrivilegeEscalation" in checks["secrets"]  # the restricted tier's profile
    assert "allowPrivilegeEscalation" not in checks["web"]  # the baseline's profile


def test_plan_and_fix_fill_the_placement(capsys: pytest.CaptureFixture[str], inputs: Path) -> None:
    code, out, _ = run(capsys, "plan", "-o", "json", "-f", str(SAMPLE), str(inputs))
    assert code == 1
    secrets = next(o for o in json.loads(out)["objects"] if o["name"] == "secrets")
    pod = secrets["patch"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "restricted"}
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists"},
        {"key": "pool", "operator": "Equal", "value": "restricted", "effect": "NoSchedule"},
    ]
    assert not [f for f in secrets["unfixed"] if f["check"] == "tierPlacement"]

    code, out, _ = run(capsys, "fix", "-f", str(SAMPLE), str(inputs))
    assert "tierPlacement" in out
    fixed = [d for d in yaml.safe_load_all(inputs.read_text()) if d]
    spec = next(d for d in fixed if d["metadata"]["name"] == "secrets")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "restricted"} and spec["runtimeClassName"] == "gvisor"
    assert spec["tolerations"] == [
        {"key": "gpu", "operator": "Exists"},
        {"key": "pool", "operator": "Equal", "value": "restricted", "effect": "NoSchedule"},
    ]
    assert "# a restricted workload without its placement" in inputs.read_text()  # comments kept
    code, out, _ = run(capsys, "check", "-o", "json", "-f", str(SAMPLE), str(inputs))
    assert placement_checks(json.loads(out))["secrets"] == []


def test_user_values_are_not_overwritten_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "pinned.yaml"
    path.write_text(
        MANIFESTS.replace("      tolerations:", "      runtimeClassName: kata\n      tolerations:")
    )
    _, out, _ = run(capsys, "plan", "-o", "json", "-f", str(SAMPLE), str(path))
    secrets = next(o for o in json.loads(out)["objects"] if o["name"] == "secrets")
    assert "runtimeClassName" not in secrets["patch"]["spec"]["template"]["spec"]
    assert [f["field"] for f in secrets["unfixed"] if f["check"] == "tierPlacement"] == [
        "spec.template.spec.runtimeClassName"
    ]


def test_invalid_tiers_are_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, inputs: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    shutil.copy(SAMPLE, bad)
    bad.write_text(
        bad.read_text().replace("profile: restricted\n      network", "profile: strict\n      network")
    )
    code, _, err = run(capsys, "check", "-f", str(bad), str(inputs))
    assert code == 2 and "spec.tiers[2].profile" in err, err
