"""Pod Security Standards, baseline level (Kubernetes 1.35).

Semantics follow k8s.io/pod-security-admission/policy at the 1.35 level, control by control:
containers, initContainers and ephemeralContainers are all checked; pod-level settings are the
fallback for containers that leave a field unset; pods with `hostUsers: false` are exempt from
the baseline procMount control.

Every function here takes a PodView and returns violations (message, field, class, container).
None of these controls is fixable: the value that violates is always explicit, and remediation
never overwrites an explicit value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kube_baseline.engine.checks.pod import PodView, Subject, Violation, explicit, mapping, quote, sequence
from kube_baseline.engine.workloads import APPARMOR_ANNOTATION_PREFIX

NONE: Final[Sequence[Violation]] = ()

BASELINE_CAPABILITIES: Final = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# Allowed sysctls as of Kubernetes 1.35 (the 1.32 set; 1.37 adds two more).
ALLOWED_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
# Allowed SELinux types as of 1.31+ ("" = unset).
ALLOWED_SELINUX_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
ALLOWED_SECCOMP_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
ALLOWED_APPARMOR_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})

_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLERS: Final = ("httpGet", "tcpSocket")


def profile_type(profile: Any) -> Any:
    """The type of a seccomp or AppArmor profile (the profile itself when it is not a mapping)."""
    return profile.get("type", "") if isinstance(profile, dict) else profile


def host_namespaces_shared(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.spec.get(key) is True:
            out.append(pod.violation(f"pod sets {key}=true", key))
    return out


def container_is_privileged(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        if c.sc.get("privileged") is True:
            out.append(c.sc_violation("must not set securityContext.privileged=true", "privileged"))
    return out


def capabilities_beyond_baseline(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        caps = c.sc.get("capabilities")
        if not caps or not isinstance(caps, dict):
            continue
        bad = sorted({str(cap) for cap in sequence(caps, "add") if cap not in BASELINE_CAPABILITIES})
        if bad:
            text = f"must not add {', '.join(map(quote, bad))} in securityContext.capabilities.add"
            out.append(c.sc_violation(text, "capabilities.add"))
    return out


def host_path_volume_used(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for volume in sequence(pod.spec, "volumes"):
        if isinstance(volume, dict) and volume.get("hostPath") is not None:
            name = volume.get("name", "")
            out.append(
                pod.violation(f"volume {quote(name)} must not use hostPath", f"volumes[{name}].hostPath")
            )
    return out


def host_port_used(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        for index, port in enumerate(sequence(c.raw, "ports")):
            if not isinstance(port, dict):
                continue
            host_port = port.get("hostPort")
            if host_port is not None and host_port != 0:
                out.append(c.violation(f"must not use hostPort {host_port}", f"ports[{index}].hostPort"))
    return out


def probe_or_lifecycle_host_set(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        raw = c.raw
        sources: list[tuple[str, Any]] = [(probe, raw.get(probe)) for probe in _PROBES]
        lifecycle = raw.get("lifecycle")
        if isinstance(lifecycle, dict):
            sources.append(("lifecycle.postStart", lifecycle.get("postStart")))
            sources.append(("lifecycle.preStop", lifecycle.get("preStop")))
        for where, handler in sources:
            if not isinstance(handler, dict):
                continue
            for kind in _HANDLERS:
                host = mapping(handler, kind).get("host")
                if host:
                    text = f"must not set {where}.{kind}.host ({quote(host)})"
                    out.append(c.violation(text, f"{where}.{kind}.host"))
    return out


def apparmor_profile_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for s in pod.security_contexts():
        profile = s.sc.get("appArmorProfile")
        if profile is not None and (kind := profile_type(profile)) not in ALLOWED_APPARMOR_TYPES:
            text = f"must not set AppArmor profile type to {explicit(kind)}"
            out.append(s.sc_violation(text, "appArmorProfile.type"))
    annotations = pod.workload.pod_metadata.get("annotations")
    if isinstance(annotations, dict) and annotations:
        meta_field = ".".join((*pod.workload.pod_path[:-1], "metadata"))
        for key in sorted(k for k in annotations if isinstance(k, str)):
            if not key.startswith(APPARMOR_ANNOTATION_PREFIX):
                continue
            value = annotations[key]
            if not value or value == "runtime/default" or str(value).startswith("localhost/"):
                continue
            container = key[len(APPARMOR_ANNOTATION_PREFIX) :]
            message = (
                f"annotation {key}={explicit(value)} sets a forbidden AppArmor profile "
                f"for container {quote(container)}"
            )
            out.append((message, f"{meta_field}.annotations[{key}]", "manual", container))
    return out


def _selinux_problems(opts: Any) -> list[str]:
    if not isinstance(opts, dict):
        return [] if opts is None else ["malformed seLinuxOptions"]
    problems = []
    kind = opts.get("type") or ""
    if kind not in ALLOWED_SELINUX_TYPES:
        problems.append(f"type {explicit(kind)}")
    if opts.get("user"):
        problems.append("user may not be set")
    if opts.get("role"):
        problems.append("role may not be set")
    return problems


def selinux_options_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for s in pod.security_contexts():
        if problems := _selinux_problems(s.sc.get("seLinuxOptions")):
            text = f"sets forbidden securityContext.seLinuxOptions: {'; '.join(problems)}"
            out.append(s.sc_violation(text, "seLinuxOptions"))
    return out


def proc_mount_not_default(pod: PodView) -> list[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        if (value := c.sc.get("procMount")) is not None and value != "Default":
            out.append(
                c.sc_violation(f"must not set securityContext.procMount to {explicit(value)}", "procMount")
            )
    return out


def proc_mount_unmasked(pod: PodView) -> Sequence[Violation]:
    """Baseline: any procMount is allowed for pods in a user namespace (1.35+)."""
    if pod.user_namespace:
        return NONE
    return proc_mount_not_default(pod)


def seccomp_not_allowed(s: Subject) -> Violation | None:
    """The pod's or a container's explicit seccomp profile, when its type is not allowed."""
    profile = s.sc.get("seccompProfile")
    if profile is None or (kind := profile_type(profile)) in ALLOWED_SECCOMP_TYPES:
        return None
    return s.sc_violation(
        f"must not set securityContext.seccompProfile.type to {explicit(kind)}", "seccompProfile.type"
    )


def seccomp_profile_unconfined(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for s in pod.security_contexts():
        if v := seccomp_not_allowed(s):
            out.append(v)
    return out


def sysctl_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for sysctl in sequence(pod.sc, "sysctls"):
        name = sysctl.get("name") if isinstance(sysctl, dict) else None
        if name not in ALLOWED_SYSCTLS:
            out.append(
                pod.violation(f"pod must not set sysctl {explicit(name)}", f"securityContext.sysctls[{name}]")
            )
    return out


def windows_host_process(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for s in pod.security_contexts():
        if mapping(s.sc, "windowsOptions").get("hostProcess") is True:
            text = "must not set securityContext.windowsOptions.hostProcess=true"
            out.append(s.sc_violation(text, "windowsOptions.hostProcess"))
    return out
