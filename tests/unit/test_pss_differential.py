"""Differential test: our PSS verdicts against upstream Pod Security Admission's own checks.

hack/psa-verdicts runs k8s.io/pod-security-admission (the library the API server embeds, built
from the Go module proxy like the control plane) on generated pods; every PSS check our
restricted profile runs must agree with upstream's latest version of the same check id.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubectl_decode import psa_verdicts, require

from kube_baseline.engine.checks import audit, policy_for_profile
from kube_baseline.engine.workloads import workload_of

RESTRICTED = policy_for_profile("restricted")

maybe_bool = st.sampled_from([None, True, False])
capability = st.sampled_from(
    ["ALL", "all", "NET_BIND_SERVICE", "NET_RAW", "SYS_ADMIN", "CHOWN", "KILL", "AUDIT_WRITE"]
)
seccomp = st.one_of(
    st.none(),
    st.sampled_from(
        [{"type": "RuntimeDefault"}, {"type": "Unconfined"}, {"type": "Localhost", "localhostProfile": "p"}]
    ),
)
apparmor = st.one_of(
    st.none(),
    st.sampled_from(
        [{"type": "RuntimeDefault"}, {"type": "Unconfined"}, {"type": "Localhost", "localhostProfile": "p"}]
    ),
)
selinux = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["", "container_t", "container_init_t", "container_kvm_t", "spc_t"]),
            "user": st.sampled_from(["", "u"]),
            "role": st.sampled_from(["", "r"]),
            "level": st.sampled_from(["", "s0:c1"]),
        },
    ),
)
windows = st.one_of(st.none(), st.fixed_dictionaries({}, optional={"hostProcess": st.booleans()}))
user_id = st.sampled_from([None, 0, 1000])


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


container_sc = st.builds(
    lambda *v: _compact(
        dict(
            zip(
                (
                    "privileged",
                    "allowPrivilegeEscalation",
                    "runAsNonRoot",
                    "runAsUser",
                    "procMount",
                    "seccompProfile",
                    "appArmorProfile",
                    "seLinuxOptions",
                    "windowsOptions",
                    "capabilities",
                ),
                v,
                strict=True,
            )
        )
    ),
    maybe_bool,
    maybe_bool,
    maybe_bool,
    user_id,
    st.sampled_from([None, "Default", "Unmasked"]),
    seccomp,
    apparmor,
    selinux,
    windows,
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"add": st.lists(capability, max_size=2), "drop": st.lists(capability, max_size=2)}
        ),
    ),
)
probe = st.one_of(
    st.none(),
    st.sampled_from(
        [
            {"httpGet": {"port": 80}},
            {"httpGet": {"port": 80, "host": "10.0.0.1"}},
            {"tcpSocket": {"port": 80, "host": "x"}},
        ]
    ),
)


@st.composite
def containers(draw: st.DrawFn, prefix: str, min_size: int) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=min_size, max_value=2))):
        c: dict[str, Any] = {"name": f"{prefix}{i}", "image": "busybox:1.36"}
        if draw(st.booleans()):
            c["securityContext"] = draw(container_sc)
        if draw(st.booleans()):
            c["ports"] = [{"containerPort": 80, **({"hostPort": 8080} if draw(st.booleans()) else {})}]
        if (p := draw(probe)) is not None:
            c["livenessProbe"] = p
        out.append(c)
    return out


volume = st.sampled_from(
    [
        {"name": "e", "emptyDir": {}},
        {"name": "c", "configMap": {"name": "x"}},
        {"name": "h", "hostPath": {"path": "/var"}},
        {"name": "n", "nfs": {"server": "s", "path": "/"}},
        {"name": "p", "persistentVolumeClaim": {"claimName": "x"}},
        {"name": "pr", "projected": {"sources": []}},
    ]
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(containers("c", 1))}
    if init := draw(containers("i", 0)):
        spec["initContainers"] = init
    for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        if (value := draw(maybe_bool)) is not None:
            spec[key] = value
    if vols := draw(st.lists(volume, max_size=2, unique_by=lambda v: v["name"])):
        spec["volumes"] = vols
    pod_sc = _compact(
        {
            "runAsNonRoot": draw(maybe_bool),
            "runAsUser": draw(user_id),
            "seccompProfile": draw(seccomp),
            "appArmorProfile": draw(apparmor),
            "seLinuxOptions": draw(selinux),
            "windowsOptions": draw(windows),
            "sysctls": draw(
                st.one_of(
                    st.none(),
                    st.lists(
                        st.sampled_from(
                            [
                                {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                                {"name": "kernel.shm_rmid_forced", "value": "1"},
                                {"name": "net.core.somaxconn", "value": "1024"},
                            ]
                        ),
                        max_size=2,
                    ),
                )
            ),
        }
    )
    if pod_sc:
        spec["securityContext"] = pod_sc
    annotations = draw(
        st.sampled_from(
            [
                {},
                {"container.apparmor.security.beta.kubernetes.io/c0": "unconfined"},
                {"container.apparmor.security.beta.kubernetes.io/c0": "runtime/default"},
            ]
        )
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
        "spec": spec,
    }


def _ours(pod: dict[str, Any]) -> set[str]:
    workload = workload_of(pod)
    assert workload is not None
    return {f.check for f in audit(workload, RESTRICTED).findings}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pods(), min_size=10, max_size=10))
def test_pss_verdicts_agree_with_upstream(batch: list[dict[str, Any]]) -> None:
    require("psa-verdicts")
    verdicts = psa_verdicts([{"metadata": p["metadata"], "spec": p["spec"]} for p in batch])
    for pod, upstream in zip(batch, verdicts, strict=True):
        assert "checks" in upstream, upstream
        compared = RESTRICTED.enabled & set(upstream["checks"])
        failing_upstream = {cid for cid in compared if not upstream["checks"][cid]}
        assert _ours(pod) & compared == failing_upstream, pod
