"""Pod Security Standards controls (baseline and restricted, Kubernetes 1.35) and the
securityContext checks beyond them.

Semantics follow k8s.io/pod-security-admission/policy at the 1.35 level, control by control:
containers, initContainers and ephemeralContainers are all checked; pod-level settings are the
fallback for containers that leave a field unset; Windows pods (spec.os.name: windows) are exempt
from allowPrivilegeEscalation, seccompProfile_restricted and capabilities_restricted; pods with
`hostUsers: false` are exempt from runAsNonRoot, runAsUser and the baseline procMount control.

Every function here takes a PodView and returns violations (message, field, class, container).
A violation whose field holds an explicit value is `manual`: remediation never overwrites it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kube_baseline.engine.checks.pod import EMPTY, Container, PodView, Violation, mapping, sequence

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
APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"
RESTRICTED_VOLUME_TYPES: Final = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Setting allowPrivilegeEscalation=false is rejected by the API server for these containers.
_ESCALATION_REQUIRED_CAPS: Final = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})


def _quote(value: Any) -> str:
    return f'"{value}"'


def _explicit(value: Any) -> str:
    """How an explicit value reads in a message."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    return str(value)


# --- baseline ---------------------------------------------------------------------------------


def host_namespaces_shared(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    spec = pod.spec
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            out.append((f"pod sets {key}=true", f"{pod.prefix}.{key}", "manual", ""))
    return out


def container_is_privileged(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        if c.sc.get("privileged") is True:
            out.append(
                (
                    f"container {_quote(c.name)} must not set securityContext.privileged=true",
                    f"{c.field}.securityContext.privileged",
                    "manual",
                    c.name,
                )
            )
    return out


def capabilities_beyond_baseline(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        caps = c.sc.get("capabilities")
        if not caps or not isinstance(caps, dict):
            continue
        bad = sorted({str(cap) for cap in sequence(caps, "add") if cap not in BASELINE_CAPABILITIES})
        if bad:
            out.append(
                (
                    f"container {_quote(c.name)} must not add {', '.join(map(_quote, bad))} "
                    "in securityContext.capabilities.add",
                    f"{c.field}.securityContext.capabilities.add",
                    "manual",
                    c.name,
                )
            )
    return out


def host_path_volume_used(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for volume in sequence(pod.spec, "volumes"):
        if isinstance(volume, dict) and volume.get("hostPath") is not None:
            name = volume.get("name", "")
            out.append(
                (
                    f"volume {_quote(name)} must not use hostPath",
                    f"{pod.prefix}.volumes[{name}].hostPath",
                    "manual",
                    "",
                )
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
                out.append(
                    (
                        f"container {_quote(c.name)} must not use hostPort {host_port}",
                        f"{c.field}.ports[{index}].hostPort",
                        "manual",
                        c.name,
                    )
                )
    return out


_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLERS: Final = ("httpGet", "tcpSocket")


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
                    out.append(
                        (
                            f"container {_quote(c.name)} must not set {where}.{kind}.host ({_quote(host)})",
                            f"{c.field}.{where}.{kind}.host",
                            "manual",
                            c.name,
                        )
                    )
    return out


def apparmor_profile_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    profile = pod.pod_sc.get("appArmorProfile")
    if profile is not None:
        kind = profile.get("type", "") if isinstance(profile, dict) else profile
        if kind not in ALLOWED_APPARMOR_TYPES:
            out.append(
                (
                    f"pod must not set AppArmor profile type to {_explicit(kind)}",
                    f"{pod.pod_sc_field}.appArmorProfile.type",
                    "manual",
                    "",
                )
            )
    for c in pod.containers:
        profile = c.sc.get("appArmorProfile")
        if profile is None:
            continue
        kind = profile.get("type", "") if isinstance(profile, dict) else profile
        if kind not in ALLOWED_APPARMOR_TYPES:
            out.append(
                (
                    f"container {_quote(c.name)} must not set AppArmor profile type to {_explicit(kind)}",
                    f"{c.field}.securityContext.appArmorProfile.type",
                    "manual",
                    c.name,
                )
            )
    annotations = pod.workload.pod_metadata.get("annotations")
    if isinstance(annotations, dict) and annotations:
        meta_field = _pod_metadata_field(pod)
        for key in sorted(k for k in annotations if isinstance(k, str)):
            if not key.startswith(APPARMOR_ANNOTATION_PREFIX):
                continue
            value = annotations[key]
            if not value or value == "runtime/default" or str(value).startswith("localhost/"):
                continue
            container = key[len(APPARMOR_ANNOTATION_PREFIX) :]
            out.append(
                (
                    f"annotation {key}={_explicit(value)} sets a forbidden AppArmor profile "
                    f"for container {_quote(container)}",
                    f"{meta_field}.annotations[{key}]",
                    "manual",
                    container,
                )
            )
    return out


def _pod_metadata_field(pod: PodView) -> str:
    path = pod.workload.pod_path
    return ".".join((*path[:-1], "metadata"))


def _selinux_problems(opts: Any) -> list[str]:
    if not isinstance(opts, dict):
        return [] if opts is None else ["malformed seLinuxOptions"]
    problems = []
    kind = opts.get("type") or ""
    if kind not in ALLOWED_SELINUX_TYPES:
        problems.append(f"type {_explicit(kind)}")
    if opts.get("user"):
        problems.append("user may not be set")
    if opts.get("role"):
        problems.append("role may not be set")
    return problems


def selinux_options_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    problems = _selinux_problems(pod.pod_sc.get("seLinuxOptions"))
    if problems:
        out.append(
            (
                f"pod sets forbidden securityContext.seLinuxOptions: {'; '.join(problems)}",
                f"{pod.pod_sc_field}.seLinuxOptions",
                "manual",
                "",
            )
        )
    for c in pod.containers:
        problems = _selinux_problems(c.sc.get("seLinuxOptions"))
        if problems:
            out.append(
                (
                    f"container {_quote(c.name)} sets forbidden securityContext.seLinuxOptions: "
                    f"{'; '.join(problems)}",
                    f"{c.field}.securityContext.seLinuxOptions",
                    "manual",
                    c.name,
                )
            )
    return out


def _proc_mount_not_default(pod: PodView) -> list[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        value = c.sc.get("procMount")
        if value is not None and value != "Default":
            out.append(
                (
                    f"container {_quote(c.name)} must not set securityContext.procMount "
                    f"to {_explicit(value)}",
                    f"{c.field}.securityContext.procMount",
                    "manual",
                    c.name,
                )
            )
    return out


def proc_mount_unmasked(pod: PodView) -> Sequence[Violation]:
    """Baseline: any procMount is allowed for pods in a user namespace (1.35+)."""
    if pod.user_namespace:
        return NONE
    return _proc_mount_not_default(pod)


def proc_mount_unmasked_restricted(pod: PodView) -> Sequence[Violation]:
    """Restricted (1.35+): Default only, with no user-namespace relaxation."""
    return _proc_mount_not_default(pod)


def _seccomp_type(profile: Any) -> Any:
    return profile.get("type", "") if isinstance(profile, dict) else profile


def seccomp_profile_unconfined(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    profile = pod.pod_sc.get("seccompProfile")
    if profile is not None and (kind := _seccomp_type(profile)) not in ALLOWED_SECCOMP_TYPES:
        out.append(
            (
                f"pod must not set securityContext.seccompProfile.type to {_explicit(kind)}",
                f"{pod.pod_sc_field}.seccompProfile.type",
                "manual",
                "",
            )
        )
    for c in pod.containers:
        profile = c.sc.get("seccompProfile")
        if profile is not None and (kind := _seccomp_type(profile)) not in ALLOWED_SECCOMP_TYPES:
            out.append(
                (
                    f"container {_quote(c.name)} must not set securityContext.seccompProfile.type "
                    f"to {_explicit(kind)}",
                    f"{c.field}.securityContext.seccompProfile.type",
                    "manual",
                    c.name,
                )
            )
    return out


def sysctl_forbidden(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for sysctl in sequence(pod.pod_sc, "sysctls"):
        name = sysctl.get("name") if isinstance(sysctl, dict) else None
        if name not in ALLOWED_SYSCTLS:
            out.append(
                (
                    f"pod must not set sysctl {_explicit(name)}",
                    f"{pod.pod_sc_field}.sysctls[{name}]",
                    "manual",
                    "",
                )
            )
    return out


def windows_host_process(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    if mapping(pod.pod_sc, "windowsOptions").get("hostProcess") is True:
        out.append(
            (
                "pod must not set securityContext.windowsOptions.hostProcess=true",
                f"{pod.pod_sc_field}.windowsOptions.hostProcess",
                "manual",
                "",
            )
        )
    for c in pod.containers:
        if mapping(c.sc, "windowsOptions").get("hostProcess") is True:
            out.append(
                (
                    f"container {_quote(c.name)} must not set "
                    "securityContext.windowsOptions.hostProcess=true",
                    f"{c.field}.securityContext.windowsOptions.hostProcess",
                    "manual",
                    c.name,
                )
            )
    return out


# --- restricted -------------------------------------------------------------------------------


def volume_type_restricted(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for volume in sequence(pod.spec, "volumes"):
        if not isinstance(volume, dict):
            continue
        kinds = [k for k, v in volume.items() if k != "name" and v is not None]
        # A volume with no source is defaulted to emptyDir by the API server.
        if not kinds or any(k in RESTRICTED_VOLUME_TYPES for k in kinds):
            continue
        name = volume.get("name", "")
        kind = kinds[0]
        out.append(
            (
                f"volume {_quote(name)} uses restricted volume type {_quote(kind)}",
                f"{pod.prefix}.volumes[{name}].{kind}",
                "manual",
                "",
            )
        )
    return out


def escalation_blocked_by(c: Container) -> str:
    """Why allowPrivilegeEscalation=false cannot be set on this container ('' if it can)."""
    if c.sc.get("privileged") is True:
        return "privileged: true"
    caps = c.sc.get("capabilities")
    if isinstance(caps, dict):
        for cap in sequence(caps, "add"):
            if cap in _ESCALATION_REQUIRED_CAPS:
                return f"capability {cap} added"
    return ""


def privilege_escalation_allowed(pod: PodView) -> Sequence[Violation]:
    if pod.windows:
        return NONE
    out: list[Violation] = []
    for c in pod.containers:
        value = c.sc.get("allowPrivilegeEscalation")
        if value is False:
            continue
        field = f"{c.field}.securityContext.allowPrivilegeEscalation"
        if value is None:
            blocked = escalation_blocked_by(c)
            if blocked:
                out.append(
                    (
                        f"container {_quote(c.name)} must set securityContext.allowPrivilegeEscalation=false "
                        f"(unset; cannot be set while {blocked})",
                        field,
                        "manual",
                        c.name,
                    )
                )
            else:
                out.append(
                    (
                        f"container {_quote(c.name)} must set securityContext.allowPrivilegeEscalation=false "
                        "(unset)",
                        field,
                        "safe",
                        c.name,
                    )
                )
        else:
            out.append(
                (
                    f"container {_quote(c.name)} must set securityContext.allowPrivilegeEscalation=false "
                    f"(set to {_explicit(value)})",
                    field,
                    "manual",
                    c.name,
                )
            )
    return out


def run_as_non_root_blocked_by(pod: PodView) -> str:
    """Why pod-level runAsNonRoot=true cannot be filled in ('' if it can): a container that
    would inherit it runs as UID 0 explicitly, and the kubelet would refuse to start it."""
    pod_uid = pod.pod_sc.get("runAsUser")
    for c in pod.containers:
        if c.sc.get("runAsNonRoot") is not None:
            continue
        uid = c.sc.get("runAsUser", pod_uid)
        if _is_root_uid(uid):
            return f'container "{c.name}" runs as runAsUser=0'
    return ""


def may_run_as_root(pod: PodView) -> Sequence[Violation]:
    if pod.user_namespace:
        return NONE
    out: list[Violation] = []
    blocked = ""
    pod_value = pod.pod_sc.get("runAsNonRoot")
    pod_field = f"{pod.pod_sc_field}.runAsNonRoot"
    if pod_value is not None and pod_value is not True:
        out.append(
            (
                f"pod must not set securityContext.runAsNonRoot={_explicit(pod_value)}",
                pod_field,
                "manual",
                "",
            )
        )
    for c in pod.containers:
        value = c.sc.get("runAsNonRoot")
        if value is None:
            if pod_value is None:
                if blocked == "":
                    blocked = run_as_non_root_blocked_by(pod) or "-"
                detail = "unset" if blocked == "-" else f"unset; cannot be set while {blocked}"
                out.append(
                    (
                        f"container {_quote(c.name)} may run as root: pod or container must set "
                        f"securityContext.runAsNonRoot=true ({detail})",
                        pod_field,
                        "guarded" if blocked == "-" else "manual",
                        c.name,
                    )
                )
        elif value is not True:
            out.append(
                (
                    f"container {_quote(c.name)} must not set "
                    f"securityContext.runAsNonRoot={_explicit(value)}",
                    f"{c.field}.securityContext.runAsNonRoot",
                    "manual",
                    c.name,
                )
            )
    return out


def _is_root_uid(value: Any) -> bool:
    return type(value) is int and value == 0


def runs_as_root_uid(pod: PodView) -> Sequence[Violation]:
    if pod.user_namespace:
        return NONE
    out: list[Violation] = []
    if _is_root_uid(pod.pod_sc.get("runAsUser")):
        out.append(("pod must not set runAsUser=0", f"{pod.pod_sc_field}.runAsUser", "manual", ""))
    for c in pod.containers:
        if _is_root_uid(c.sc.get("runAsUser")):
            out.append(
                (
                    f"container {_quote(c.name)} must not set securityContext.runAsUser=0",
                    f"{c.field}.securityContext.runAsUser",
                    "manual",
                    c.name,
                )
            )
    return out


def seccomp_profile_missing(pod: PodView) -> Sequence[Violation]:
    if pod.windows:
        return NONE
    out: list[Violation] = []
    pod_profile = pod.pod_sc.get("seccompProfile")
    if pod_profile is not None and (kind := _seccomp_type(pod_profile)) not in ALLOWED_SECCOMP_TYPES:
        out.append(
            (
                f"pod must not set securityContext.seccompProfile.type to {_explicit(kind)}",
                f"{pod.pod_sc_field}.seccompProfile.type",
                "manual",
                "",
            )
        )
    for c in pod.containers:
        profile = c.sc.get("seccompProfile")
        if profile is None:
            if pod_profile is None:
                out.append(
                    (
                        f"container {_quote(c.name)} has no seccomp profile: pod or container must set "
                        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost" (unset)',
                        f"{pod.pod_sc_field}.seccompProfile",
                        "safe",
                        c.name,
                    )
                )
        elif (kind := _seccomp_type(profile)) not in ALLOWED_SECCOMP_TYPES:
            out.append(
                (
                    f"container {_quote(c.name)} must not set securityContext.seccompProfile.type "
                    f"to {_explicit(kind)}",
                    f"{c.field}.securityContext.seccompProfile.type",
                    "manual",
                    c.name,
                )
            )
    return out


def capabilities_not_dropped(pod: PodView) -> Sequence[Violation]:
    if pod.windows:
        return NONE
    out: list[Violation] = []
    for c in pod.containers:
        caps = c.sc.get("capabilities")
        if not isinstance(caps, dict):
            caps = EMPTY
        drop = caps.get("drop")
        field = f"{c.field}.securityContext.capabilities"
        if drop is None:
            out.append(
                (
                    f'container {_quote(c.name)} must set securityContext.capabilities.drop=["ALL"] (unset)',
                    f"{field}.drop",
                    "guarded",
                    c.name,
                )
            )
        elif not isinstance(drop, list) or "ALL" not in drop:
            out.append(
                (
                    f'container {_quote(c.name)} must set securityContext.capabilities.drop=["ALL"] '
                    f"(set to {drop!r})",
                    f"{field}.drop",
                    "manual",
                    c.name,
                )
            )
        bad = sorted({str(cap) for cap in sequence(caps, "add") if cap != "NET_BIND_SERVICE"})
        if bad:
            out.append(
                (
                    f"container {_quote(c.name)} must not add {', '.join(map(_quote, bad))} "
                    "in securityContext.capabilities.add (only NET_BIND_SERVICE)",
                    f"{field}.add",
                    "manual",
                    c.name,
                )
            )
    return out


# --- beyond PSS -------------------------------------------------------------------------------


def root_filesystem_writable(pod: PodView) -> Sequence[Violation]:
    """readOnlyRootFilesystem is a Linux-only field: Windows pods are not checked."""
    if pod.windows:
        return NONE
    out: list[Violation] = []
    for c in pod.containers:
        value = c.sc.get("readOnlyRootFilesystem")
        if value is True:
            continue
        if value is None:
            detail, risk = "unset", "guarded"
        else:
            detail, risk = f"set to {_explicit(value)}", "manual"
        out.append(
            (
                f"container {_quote(c.name)} must set securityContext.readOnlyRootFilesystem=true ({detail})",
                f"{c.field}.securityContext.readOnlyRootFilesystem",
                risk,  # type: ignore[arg-type]
                c.name,
            )
        )
    return out


def service_account_token_mounted(pod: PodView) -> Sequence[Violation]:
    value = pod.spec.get("automountServiceAccountToken")
    if value is False:
        return NONE
    field = f"{pod.prefix}.automountServiceAccountToken"
    if value is None:
        return (("pod must set automountServiceAccountToken=false (unset)", field, "guarded", ""),)
    return (
        (f"pod must set automountServiceAccountToken=false (set to {_explicit(value)})", field, "manual", ""),
    )
