"""`kube-baseline report --cluster`: the audit report from the real API server (read-only client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_helpers import SCOPE, compliant_deployment, create, deployment, get, unique, wait_for

from kube_baseline.main import main

pytestmark = pytest.mark.integration


def test_report_from_the_cluster(
    kube: Any,
    namespace: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scope, ns = unique("s"), namespace()
    kube.kubectl("label", "namespace", ns, f"{SCOPE}={scope}")
    create(kube, deployment("drifted", ns))
    create(kube, compliant_deployment("good", ns))
    create(kube, deployment("fixed", ns))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": False}}]
                }
            }
        }
    }
    kube.kubectl(
        "patch", "deployment", "fixed", "-n", ns, "--field-manager=kube-baseline", "-p", json.dumps(patch)
    )
    owner = get(kube, "deployment", "-n", ns, "drifted")["metadata"]
    if kube.profile == "full":  # the Deployment controller makes the ReplicaSet (and releases strays)
        wait_for(
            lambda: get(kube, "replicasets", "-n", ns)["items"], timeout=60, what="a ReplicaSet of drifted"
        )
    else:  # no controllers: one as the Deployment controller would make it
        replica_set = deployment("drifted-abc", ns)  # owned by "drifted": attributed to it, not reported
        replica_set["kind"] = "ReplicaSet"
        replica_set["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "drifted",
                "uid": owner["uid"],
                "controller": True,
            }
        ]
        create(kube, replica_set)
    baseline = tmp_path / "baseline.yaml"
    spec = {"profile": "restricted", "namespaces": {"selector": {"matchLabels": {SCOPE: scope}}}}
    baseline.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kube-baseline.io/v1alpha1",
                "kind": "SecurityBaseline",
                "metadata": {"name": "audit"},
                "spec": spec,
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)

    assert main(["report", "--cluster", "-f", str(baseline), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["header"]["source"] == "cluster" and kube.server in data["header"]["inputs"][0]
    ours = [d for d in data["drifted"] if d["namespace"] == ns]
    assert {d["name"] for d in ours} == {"drifted", "fixed"}  # fixed: safe field set, still not restricted
    assert data["namespaces"] == [{"namespace": ns, "compliant": 1, "drifted": 2}]  # only the selected one
    assert [(r["namespace"], r["name"]) for r in data["remediated"]] == [(ns, "fixed")]
    assert not any(d["kind"] == "ReplicaSet" for d in data["drifted"])

    assert main(["report", "--cluster", "-f", str(baseline), "-o", "html"]) == 0
    html = capsys.readouterr().out
    assert f"Deployment {ns}/drifted" in html and "cluster" in html

    assert main(["report", "--cluster", "some.yaml"]) == 2
    assert "give no PATH" in capsys.readouterr().err
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    assert main(["report", "--cluster"]) == 2
    assert "cluster: no kubeconfig found" in capsys.readouterr().err
