"""The deploy manifests: the operator Deployment passes its own restricted profile, and the
ClusterRole grants only what the operator needs, every rule saying why.

The Deployment lives in the operator's own namespace, which every baseline (and the offline
`check`) always leaves out. So `check manifests/` alone proves nothing about it: the tests also
check a copy of it moved to an ordinary namespace, and make sure it was evaluated, not skipped.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kube_baseline.engine.models import OPERATOR_NAMESPACE
from kube_baseline.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
DEPLOYMENT = MANIFESTS / "deployment.yaml"
RBAC = MANIFESTS / "rbac.yaml"
EXTRAS = ("readOnlyRootFilesystem", "resourceRequests", "resourceLimits")
RESTRICTED = ("--profile", "restricted")
RESTRICTED_PLUS = (*RESTRICTED, *(a for e in EXTRAS for a in ("--extra", e)))

WORKLOAD_RESOURCES = {
    "pods",
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "replicationcontrollers",
    "jobs",
    "cronjobs",
}
WORKLOAD_WRITES_DENIED = {"create", "update", "delete", "deletecollection"}
NEVER_GRANTED = {"secrets", "pods/exec", "pods/attach", "pods/portforward", "serviceaccounts/token"}


def check_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "-o", "json", *args])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, json.loads(out)


def operator_deployment() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d]
    assert [d["kind"] for d in docs] == ["Deployment"]
    return docs[0]  # type: ignore[no-any-return]


def moved(obj: dict[str, Any], namespace: str = "operator-under-test") -> dict[str, Any]:
    """The Deployment in an ordinary namespace, so that `check` evaluates it."""
    out = copy.deepcopy(obj)
    out["metadata"]["namespace"] = namespace
    return out


def write(tmp_path: Path, obj: dict[str, Any]) -> str:
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return str(path)


# --------------------------------------------------------------------------- the Deployment


@pytest.mark.parametrize("args", [RESTRICTED, RESTRICTED_PLUS], ids=["restricted", "restricted+extras"])
def test_check_manifests_directory_exits_zero(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, result = check_json(capsys, *args, str(MANIFESTS))
    assert code == 0, result
    deployments = [o for o in result["objects"] if o["kind"] == "Deployment"]
    assert [(o["namespace"], o["name"], o["findings"]) for o in deployments] == [
        (OPERATOR_NAMESPACE, "kube-baseline", [])
    ]
    assert result["summary"]["findings"] == 0


def test_operator_deployment_is_evaluated_in_its_own_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    """Without -f, every object given is checked, system namespaces included."""
    code, result = check_json(capsys, *RESTRICTED, str(DEPLOYMENT))
    assert code == 0, result
    assert result["summary"] == {"objects": 1, "failed": 0, "findings": 0, "skipped": 0}


def test_operator_namespace_is_skipped_under_a_baseline_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With -f, the baseline's namespace rules apply: the operator's namespace is never governed.
    (The tests below move the Deployment into an ordinary namespace to check it under -f rules.)"""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "apiVersion: kube-baseline.io/v1alpha1\nkind: SecurityBaseline\n"
        "metadata: {name: b}\nspec: {profile: restricted}\n"
    )
    code, result = check_json(capsys, "-f", str(baseline), str(DEPLOYMENT))
    assert code == 0
    assert result["summary"] == {"objects": 1, "failed": 0, "findings": 0, "skipped": 1}


@pytest.mark.parametrize("args", [RESTRICTED, RESTRICTED_PLUS], ids=["restricted", "restricted+extras"])
def test_operator_deployment_passes_its_own_profile(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, result = check_json(capsys, *args, write(tmp_path, moved(operator_deployment())))
    assert code == 0, result
    assert result["summary"] == {"objects": 1, "failed": 0, "findings": 0, "skipped": 0}
    [obj] = result["objects"]
    assert (obj["kind"], obj["name"], obj["findings"]) == ("Deployment", "kube-baseline", [])


def _drop(obj: dict[str, Any], *path: str) -> dict[str, Any]:
    out = moved(obj)
    node: Any = out["spec"]["template"]["spec"]
    for key in path[:-1]:
        node = node["containers"][0] if key == "container" else node[key]
    del node[path[-1]]
    return out


# A hardening setting removed from the manifest -> the check that must then fail. Proves the
# test above can fail, and that each setting in the manifest is what satisfies its check.
WEAKENED = {
    "no pod seccompProfile": (("securityContext", "seccompProfile"), "seccompProfile_restricted"),
    "no runAsNonRoot": (("securityContext", "runAsNonRoot"), "runAsNonRoot"),
    "no allowPrivilegeEscalation": (
        ("container", "securityContext", "allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    "no capabilities drop": (("container", "securityContext", "capabilities"), "capabilities_restricted"),
    "no readOnlyRootFilesystem": (
        ("container", "securityContext", "readOnlyRootFilesystem"),
        "readOnlyRootFilesystem",
    ),
    "no resource requests": (("container", "resources", "requests"), "resourceRequests"),
    "no resource limits": (("container", "resources", "limits"), "resourceLimits"),
}


@pytest.mark.parametrize(("path", "check"), WEAKENED.values(), ids=WEAKENED.keys())
def test_weakened_deployment_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path: tuple[str, ...], check: str
) -> None:
    code, result = check_json(capsys, *RESTRICTED_PLUS, write(tmp_path, _drop(operator_deployment(), *path)))
    assert code == 1
    assert check in {f["check"] for f in result["objects"][0]["findings"]}, result


def test_probes_and_liveness_argument_agree() -> None:
    pod = operator_deployment()["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kube-baseline"
    [container] = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.standalone) == ("run", True)
    url = urlsplit(args.liveness)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # Readiness: Kopf's probe. Liveness: /healthz on the metrics port, which also fails when a
    # workload watch went stale.
    get = container["readinessProbe"]["httpGet"]
    assert (get["path"], ports[get["port"]]) == (url.path, url.port)
    get = container["livenessProbe"]["httpGet"]
    assert (get["path"], ports[get["port"]]) == ("/healthz", args.metrics_port)


# --------------------------------------------------------------------------- RBAC


def rbac_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def cluster_role() -> dict[str, Any]:
    [role] = [d for d in rbac_docs() if d["kind"] == "ClusterRole"]
    return role


def grants() -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every combination a rule grants."""
    return [
        (group, resource, verb)
        for rule in cluster_role()["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    ]


def test_rbac_has_no_wildcards_or_non_resource_urls() -> None:
    for rule in cluster_role()["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, nonResourceURLs
        for key in ("apiGroups", "resources", "verbs"):
            assert rule[key] and "*" not in rule[key], rule


def test_rbac_never_grants_secrets_exec_or_attach() -> None:
    resources = {resource for _, resource, _ in grants()}
    assert resources and not resources & NEVER_GRANTED, resources & NEVER_GRANTED


def test_rbac_never_creates_updates_or_deletes_workloads() -> None:
    workload_grants = [g for g in grants() if g[1] in WORKLOAD_RESOURCES]
    assert {r for _, r, _ in workload_grants} == WORKLOAD_RESOURCES  # all are audited
    assert not [g for g in workload_grants if g[2] in WORKLOAD_WRITES_DENIED]


def test_rbac_never_grants_escalation() -> None:
    for group, resource, verb in grants():
        assert verb not in {"escalate", "bind", "impersonate"}, (group, resource, verb)
        assert group != "rbac.authorization.k8s.io", (group, resource, verb)


def test_rbac_binding_names_the_role_and_the_service_account() -> None:
    [binding] = [d for d in rbac_docs() if d["kind"] == "ClusterRoleBinding"]
    sa = yaml.safe_load((MANIFESTS / "serviceaccount.yaml").read_text())
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role()["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    ]


def rule_comments(text: str) -> list[list[str]]:
    """For each list item under `rules:`, the comment lines right above it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^rules:\s*$", line))
    found: list[list[str]] = []
    comment: list[str] = []
    item_indent: int | None = None
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        if indent == 0 or stripped == "---":
            break
        if stripped.startswith("- ") and (item_indent is None or indent == item_indent):
            item_indent = indent
            found.append(comment)
        comment = []
    return found


def test_every_rbac_rule_is_preceded_by_a_comment() -> None:
    comments = rule_comments(RBAC.read_text())
    assert len(comments) == len(cluster_role()["rules"])  # the text parse saw every rule
    for index, lines in enumerate(comments):
        words = " ".join(lines).split()
        assert len(words) >= 4, f"rule {index} of the ClusterRole has no comment saying why: {lines}"


def test_rule_comment_parser_notices_a_missing_comment() -> None:
    text = "rules:\n  # why\n  - apiGroups: ['']\n    verbs: [get]\n  - apiGroups: [apps]\n---\n"
    assert rule_comments(text) == [["why"], []]


def test_the_only_namespaced_role_is_the_rollout_record() -> None:
    """ConfigMaps in the operator's own namespace only, without get/update/delete; every rule
    commented like the ClusterRole's."""
    [role] = [d for d in rbac_docs() if d["kind"] == "Role"]
    [binding] = [d for d in rbac_docs() if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "kube-baseline"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create", "patch"]}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    text = RBAC.read_text()
    comments = rule_comments(text[text.index("kind: Role\n") :])
    assert len(comments) == 1 and len(" ".join(comments[0]).split()) >= 4
