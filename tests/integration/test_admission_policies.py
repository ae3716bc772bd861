"""Generated admission policies on the real API server.

- Without the operator (the renderer's objects applied with kubectl): Deny refuses with the
  check and the field in the message; Warn admits with warnings; a drifted Deployment admitted
  before the policy can still be scaled and get a new image, but a change that adds a violation
  is refused.
- With the operator: it applies the policies (server-side apply, field manager kube-baseline,
  ownerReference, managed-by label), reports AdmissionReady, puts back an edited or deleted
  policy, deletes them when validation is turned Off or the baseline is deleted; with the
  operator stopped the API server keeps enforcing. Mutation asked for where the API server does
  not serve MutatingAdmissionPolicy: the condition says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from operator_helpers import (
    baseline,
    compliant_deployment,
    deployment,
    exists,
    get,
    install_crd,
    managers,
    operator,
    unique,
    wait_for,
)

from kube_baseline.engine.admission.validating import render_validation
from kube_baseline.engine.models import parse_spec

pytestmark = pytest.mark.integration
SCOPE = "kube-baseline.io/admission-test"
BAD = [{"name": "app", "image": "nginx:1.27"}]  # no allowPrivilegeEscalation=false etc.


@pytest.fixture(scope="module", autouse=True)
def crd(kube: Any) -> None:
    install_crd(kube)


def apply_rendered(kube: Any, name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    objects = list(render_validation(name, "", parse_spec(spec)).objects)
    kube.kubectl(
        "apply",
        "--server-side",
        "--field-manager=kube-baseline",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(o) for o in objects),
    )
    return objects


def delete_all(kube: Any, objects: list[dict[str, Any]]) -> None:
    for o in objects:
        kube.kubectl("delete", o["kind"], o["metadata"]["name"], "--ignore-not-found", check=False)


def try_create(kube: Any, obj: dict[str, Any]) -> Any:
    return kube.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)


def scoped(kube: Any, namespace: Any, value: str) -> str:
    ns = namespace()
    kube.kubectl("label", "namespace", ns, f"{SCOPE}={value}")
    return ns


@pytest.fixture
def deny_policies(kube: Any) -> Iterator[str]:
    value = unique("deny")
    spec = {
        "profile": "restricted",
        "namespaces": {"selector": {"matchLabels": {SCOPE: value}}},
        "admission": {"validation": "Deny"},
    }
    objects = apply_rendered(kube, value, spec)
    yield value
    delete_all(kube, objects)


def wait_enforced(kube: Any, ns: str) -> None:
    wait_for(
        lambda: try_create(kube, deployment(unique("probe"), ns, BAD)).returncode != 0,
        what=f"the policy to act in {ns}",
    )


def test_deny_names_the_check_and_the_field(kube: Any, namespace: Any, deny_policies: str) -> None:
    ns = scoped(kube, namespace, deny_policies)
    wait_enforced(kube, ns)
    res = try_create(kube, deployment("web", ns, BAD))
    assert res.returncode != 0
    assert "allowPrivilegeEscalation" in res.stderr
    assert "spec.template.spec.containers[app].securityContext.allowPrivilegeEscalation" in res.stderr
    assert try_create(kube, compliant_deployment("good", ns)).returncode == 0


def test_warn_admits_with_warnings(kube: Any, namespace: Any) -> None:
    value = unique("warn")
    spec = {
        "profile": "restricted",
        "namespaces": {"selector": {"matchLabels": {SCOPE: value}}},
        "admission": {"validation": "Warn"},
    }
    objects = apply_rendered(kube, value, spec)
    try:
        ns = scoped(kube, namespace, value)
        res = wait_for(
            lambda: (
                (r := try_create(kube, deployment(unique("w"), ns, BAD))).returncode == 0
                and "Warning:" in r.stderr
                and r
            ),
            what="a warning",
        )
        assert "allowPrivilegeEscalation" in res.stderr
        assert "securityContext.allowPrivilegeEscalation" in res.stderr
    finally:
        delete_all(kube, objects)


def test_ratcheting_lets_a_drifted_deployment_scale_and_roll(
    kube: Any, namespace: Any, deny_policies: str
) -> None:
    ns = namespace()
    kube.kubectl("create", "-f", "-", input=json.dumps(deployment("drifted", ns, BAD)))
    kube.kubectl("label", "namespace", ns, f"{SCOPE}={deny_policies}")  # now the policy binds
    wait_enforced(kube, ns)
    kube.kubectl("patch", "deployment", "drifted", "-n", ns, "-p", '{"spec":{"replicas":3}}')
    kube.kubectl("scale", "deployment", "drifted", "-n", ns, "--replicas=2")
    kube.kubectl("set", "image", "deployment/drifted", "-n", ns, "app=nginx:1.28")
    assert get(kube, "deployment", "drifted", "-n", ns)["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("nginx:1.28")
    # A change that adds a violation of another check is refused, naming it.
    res = kube.kubectl(
        "patch",
        "deployment",
        "drifted",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]',
        check=False,
    )
    assert res.returncode != 0 and "hostNamespaces" in res.stderr and "hostNetwork" in res.stderr


def map_served(kube: Any) -> bool:
    names = kube.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout
    return "mutatingadmissionpolicies" in names


def admission_condition(kube: Any, name: str) -> dict[str, Any] | None:
    conditions = (get(kube, "securitybaseline", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "AdmissionReady"), None)


def test_operator_applies_repairs_and_removes_policies(kube: Any, namespace: Any) -> None:
    name = unique("adm")
    ns = scoped(kube, namespace, name)
    body = baseline(
        name,
        profile="restricted",
        namespaces={"selector": {"matchLabels": {SCOPE: name}}},
        checks={"extra": ["networkPolicyCoverage"]},
        admission={"validation": "Deny", "mutation": "Safe"},
    )
    policy = f"kube-baseline-{name}-templates"
    with operator(kube):
        kube.kubectl("create", "-f", "-", input=json.dumps(body))
        uid = get(kube, "securitybaseline", name)["metadata"]["uid"]
        vap = wait_for(
            lambda: (
                exists(kube, "validatingadmissionpolicy", policy)
                and get(kube, "validatingadmissionpolicy", policy)
            ),
            what="the generated policy",
        )
        assert vap["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-baseline"
        assert [r["uid"] for r in vap["metadata"]["ownerReferences"]] == [uid]
        assert managers(vap) == {"kube-baseline"}
        cond = wait_for(lambda: admission_condition(kube, name), what="AdmissionReady")
        assert cond["status"] == "True" and cond["reason"] == "PoliciesApplied", cond
        if not map_served(kube):
            assert "does not serve MutatingAdmissionPolicy" in cond["message"]
        assert "networkPolicyCoverage" in cond["message"]
        wait_enforced(kube, ns)
        # Edited by someone: put back. Deleted by someone: put back.
        kube.kubectl(
            "patch",
            "validatingadmissionpolicybinding",
            policy,
            "--type=merge",
            "-p",
            '{"spec":{"validationActions":["Warn"]}}',
        )
        wait_for(
            lambda: (
                get(kube, "validatingadmissionpolicybinding", policy)["spec"]["validationActions"] == ["Deny"]
            ),
            what="the binding put back",
        )
        kube.kubectl("delete", "validatingadmissionpolicy", policy)
        wait_for(lambda: exists(kube, "validatingadmissionpolicy", policy), what="the policy recreated")
        wait_enforced(kube, ns)
    # The operator stopped: the API server still enforces.
    res = try_create(kube, deployment("while-stopped", ns, BAD))
    assert res.returncode != 0 and "allowPrivilegeEscalation" in res.stderr
    with operator(kube):
        kube.kubectl(
            "patch",
            "securitybaseline",
            name,
            "--type=merge",
            "-p",
            '{"spec":{"admission":{"validation":"Off","mutation":"Off"}}}',
        )
        wait_for(
            lambda: not exists(kube, "validatingadmissionpolicy", policy), what="policies removed when Off"
        )
        wait_for(
            lambda: (c := admission_condition(kube, name)) and c["reason"] == "Disabled", what="Disabled"
        )
        # The API server drops a deleted policy from its cache a moment later.
        wait_for(
            lambda: try_create(kube, deployment(unique("after-off"), ns, BAD)).returncode == 0,
            what="no enforcement once Off",
        )
        kube.kubectl(
            "patch",
            "securitybaseline",
            name,
            "--type=merge",
            "-p",
            '{"spec":{"admission":{"validation":"Deny"}}}',
        )
        wait_for(lambda: exists(kube, "validatingadmissionpolicybinding", policy), what="policies again")
        kube.kubectl("delete", "securitybaseline", name)
        for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
            for part in ("pods", "templates", "cronjobs"):
                wait_for(
                    lambda k=kind, p=part: not exists(kube, k, f"kube-baseline-{name}-{p}"),
                    what=f"{kind} {part} gone with the baseline",
                )
