"""Property tests: random pod specs in random workload kinds.

- remediating twice equals remediating once;
- after applying a plan, no finding of an applied class remains (what remains is manual:
  blocked by an explicit value);
- the patch only touches securityContext fields, automountServiceAccountToken and
  metadata.labels, and never a field that was set;
- the plan does not depend on the order of the findings.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kube_baseline.engine.checks import audit, policy_for_profile
from kube_baseline.engine.models import EXTRA_CHECKS, Labels, Remediation
from kube_baseline.engine.remediation import apply_patch, plan
from kube_baseline.engine.workloads import workload_of

EXTRAS = [c for c in EXTRA_CHECKS if c != "networkPolicyCoverage"]
POLICY = policy_for_profile(
    "restricted", extra=EXTRAS, required_labels=["team", "owner"], label_defaults=["team"]
)
LABELS = Labels(required=["team", "owner"], workload_defaults={"team": "shop"})

maybe_bool = st.sampled_from([None, True, False])
caps = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "add": st.lists(
                st.sampled_from(["NET_BIND_SERVICE", "CHOWN", "NET_RAW", "SYS_ADMIN"]), max_size=2
            ),
            "drop": st.lists(st.sampled_from(["ALL", "NET_RAW"]), max_size=2),
        },
    ),
)
seccomp = st.one_of(
    st.none(), st.sampled_from(["RuntimeDefault", "Localhost", "Unconfined"]).map(lambda t: {"type": t})
)
uid = st.sampled_from([None, 0, 1000])


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


container_sc = st.builds(
    lambda *values: _without_none(
        dict(
            zip(
                (
                    "privileged",
                    "allowPrivilegeEscalation",
                    "runAsNonRoot",
                    "runAsUser",
                    "readOnlyRootFilesystem",
                    "capabilities",
                    "seccompProfile",
                    "procMount",
                ),
                values,
                strict=True,
            )
        )
    ),
    maybe_bool,
    maybe_bool,
    maybe_bool,
    uid,
    maybe_bool,
    caps,
    seccomp,
    st.sampled_from([None, "Default", "Unmasked"]),
)
pod_sc = st.builds(
    lambda a, b, c: _without_none({"runAsNonRoot": a, "runAsUser": b, "seccompProfile": c}),
    maybe_bool,
    uid,
    seccomp,
)


@st.composite
def containers(draw: st.DrawFn, prefix: str, max_size: int) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=max_size))
    out = []
    for i in range(count):
        c: dict[str, Any] = {"name": f"{prefix}{i}", "image": draw(st.sampled_from(["nginx", "nginx:1.25"]))}
        if draw(st.booleans()):
            c["securityContext"] = draw(container_sc)
        if draw(st.booleans()):
            c["ports"] = [{"containerPort": draw(st.sampled_from([80, 443, 8080]))}]
        out.append(c)
    return out


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(containers("c", 3))}
    if spec["containers"] == []:
        spec["containers"] = [{"name": "only", "image": "nginx:1.25"}]
    if init := draw(containers("i", 2)):
        spec["initContainers"] = init
    if draw(st.booleans()):
        spec["securityContext"] = draw(pod_sc)
    for key, strategy in (
        ("automountServiceAccountToken", maybe_bool),
        ("hostUsers", maybe_bool),
        ("os", st.sampled_from([None, {"name": "linux"}, {"name": "windows"}])),
    ):
        if (value := draw(strategy)) is not None:
            spec[key] = value
    kind = draw(st.sampled_from(["Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]))
    labels = draw(st.sampled_from([{}, {"team": "x"}, {"owner": "y"}]))
    meta = {"name": "w", "namespace": "ns", "labels": labels}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    template = {"metadata": {"labels": {"app": "w"}}, "spec": spec}
    if kind == "CronJob":
        body = {"jobTemplate": {"spec": {"template": template}}}
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": body}
    group = "batch/v1" if kind == "Job" else "apps/v1"
    return {"apiVersion": group, "kind": kind, "metadata": meta, "spec": {"template": template}}


remediations = st.sampled_from(
    [
        Remediation(risk_classes=["safe"]),
        Remediation(risk_classes=["guarded"]),
        Remediation(risk_classes=["safe", "guarded"]),
    ]
)

POD_SC_FIELDS = {"runAsNonRoot", "runAsUser", "seccompProfile"}
CONTAINER_SC_FIELDS = {"allowPrivilegeEscalation", "capabilities", "readOnlyRootFilesystem"}


def _leaf_paths(patch: dict[str, Any], pod_path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Where a patch writes, as tuples; containers as (list, name, "securityContext", field)."""
    out: list[tuple[str, ...]] = []
    for key in patch.get("metadata", {}).get("labels", {}):
        out.append(("metadata", "labels", key))
    assert set(patch.get("metadata", {})) <= {"labels"}
    node: Any = patch
    for key in pod_path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    outside = (
        {k for k in patch if k != "metadata"} - {pod_path[0]}
        if node
        else {k for k in patch if k != "metadata"}
    )
    assert not outside, outside
    for key, value in node.items():
        if key == "securityContext":
            out.extend(("pod", "securityContext", k) for k in value)
        elif key in ("containers", "initContainers", "ephemeralContainers"):
            for item in value:
                assert set(item) == {"name", "securityContext"}, item
                out.extend((key, item["name"], "securityContext", k) for k in item["securityContext"])
        else:
            out.append(("pod", key))
    return out


def _container_patch(patch: dict[str, Any], pod_path: tuple[str, ...], name: str) -> dict[str, Any]:
    node: Any = patch
    for key in pod_path:
        node = node[key]
    for key in ("containers", "initContainers"):
        for item in node.get(key, []):
            if item["name"] == name:
                return dict(item["securityContext"])
    raise AssertionError(name)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=workloads(), remediation=remediations, seed=st.integers(0, 2**16))
def test_remediation_properties(obj: dict[str, Any], remediation: Remediation, seed: int) -> None:
    original = copy.deepcopy(obj)
    wl = workload_of(obj)
    assert wl is not None
    findings = audit(wl, POLICY).findings
    first = plan(wl, findings, remediation, LABELS)

    # Order of findings does not matter.
    shuffled = list(findings)
    random.Random(seed).shuffle(shuffled)
    again = plan(wl, shuffled, remediation, LABELS)
    assert (again.patch, again.changes) == (first.patch, first.changes)

    # Only allowed paths, never a field that was set.
    pod = wl.pod_spec
    by_name = {c["name"]: c for k in ("containers", "initContainers") for c in pod.get(k, [])}
    for path in _leaf_paths(first.patch, wl.pod_path):
        if path[0] == "metadata":
            assert path[2] not in wl.labels
        elif path[:2] == ("pod", "securityContext"):
            assert path[2] in POD_SC_FIELDS and path[2] not in pod.get("securityContext", {})
        elif path[0] == "pod":
            assert path == ("pod", "automountServiceAccountToken") and path[1] not in pod
        else:
            assert path[3] in CONTAINER_SC_FIELDS
            sc = by_name[path[1]].get("securityContext", {})
            if path[3] == "capabilities":
                # Fills drop (and add) inside a capabilities map that may exist.
                patch_caps = _container_patch(first.patch, wl.pod_path, path[1])["capabilities"]
                assert not set(patch_caps) & set(sc.get("capabilities") or {})
            else:
                assert path[3] not in sc

    fixed = apply_patch(obj, first.patch)
    assert obj == original

    # Re-check clean for the applied classes; what remains is manual or a class not applied.
    fixed_wl = workload_of(fixed)
    assert fixed_wl is not None
    remaining = audit(fixed_wl, POLICY).findings
    applied = set(remediation.risk_classes)
    assert [f for f in remaining if f.remediation in applied] == []

    # Twice equals once.
    second = plan(fixed_wl, remaining, remediation, LABELS)
    assert second.patch == {}
    assert apply_patch(fixed, first.patch) == fixed
