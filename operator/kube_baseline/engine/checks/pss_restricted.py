"""Pod Security Standards, restricted level (Kubernetes 1.35), and the fixers of its controls.

Semantics follow k8s.io/pod-security-admission/policy at the 1.35 level (see pss_baseline.py).
Windows pods (spec.os.name: windows) are exempt from allowPrivilegeEscalation,
seccompProfile_restricted and capabilities_restricted; pods with `hostUsers: false` are exempt
from runAsNonRoot and runAsUser.

A violation whose field holds an explicit value is `manual`: remediation never overwrites it.
An absent field is `safe` or `guarded` (the catalogue's class), unless filling it would be
rejected or stop the pod from starting; then it is `manual` and the message says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kube_baseline.engine.checks.fixes import Fixes, absent
from kube_baseline.engine.checks.pod import EMPTY, Container, PodView, Violation, explicit, quote, sequence
from kube_baseline.engine.checks.pss_baseline import NONE, proc_mount_not_default, seccomp_not_allowed
from kube_baseline.engine.models import Finding, RiskClass

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


def volume_type_restricted(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for volume in sequence(pod.spec, "volumes"):
        if not isinstance(volume, dict):
            continue
        kinds = [k for k, v in volume.items() if k != "name" and v is not None]
        # A volume with no source is defaulted to emptyDir by the API server.
        if not kinds or any(k in RESTRICTED_VOLUME_TYPES for k in kinds):
            continue
        name, kind = volume.get("name", ""), kinds[0]
        message = f"volume {quote(name)} uses restricted volume type {quote(kind)}"
        out.append(pod.violation(message, f"volumes[{name}].{kind}"))
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
        if v := c.sc_must_be("allowPrivilegeEscalation", False, "safe", escalation_blocked_by):
            out.append(v)
    return out


def fill_allow_privilege_escalation(finding: Finding, fixes: Fixes) -> bool:
    """allowPrivilegeEscalation=false on the container (not where the API server would reject it:
    privileged or SYS_ADMIN containers)."""
    c = fixes.container_of(finding)
    if (
        fixes.view.windows
        or c is None
        or not absent(c.sc, "allowPrivilegeEscalation")
        or escalation_blocked_by(c)
    ):
        return False
    fixes.fill_container(c, "allowPrivilegeEscalation", False, finding)
    return True


def _is_root_uid(value: Any) -> bool:
    return type(value) is int and value == 0


def run_as_non_root_blocked_by(pod: PodView) -> str:
    """Why pod-level runAsNonRoot=true cannot be filled in ('' if it can): a container that
    would inherit it runs as UID 0 explicitly, and the kubelet would refuse to start it."""
    pod_uid = pod.sc.get("runAsUser")
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
    pod_value = pod.sc.get("runAsNonRoot")
    if pod_value is not None and pod_value is not True:
        out.append(
            pod.sc_violation(
                f"must not set securityContext.runAsNonRoot={explicit(pod_value)}", "runAsNonRoot"
            )
        )
    for c in pod.containers:
        value = c.sc.get("runAsNonRoot")
        if value is None:
            if pod_value is None:
                if blocked == "":
                    blocked = run_as_non_root_blocked_by(pod) or "-"
                detail = "unset" if blocked == "-" else f"unset; cannot be set while {blocked}"
                message = (
                    f"container {quote(c.name)} may run as root: pod or container must set "
                    f"securityContext.runAsNonRoot=true ({detail})"
                )
                risk: RiskClass = "guarded" if blocked == "-" else "manual"
                out.append(pod.violation(message, "securityContext.runAsNonRoot", risk, c.name))
        elif value is not True:
            out.append(
                c.sc_violation(f"must not set securityContext.runAsNonRoot={explicit(value)}", "runAsNonRoot")
            )
    return out


def fill_run_as_non_root(finding: Finding, fixes: Fixes) -> bool:
    """Pod-level runAsNonRoot=true, plus the baseline's runAsUser where the pod sets none."""
    pod_sc = fixes.view.sc
    if not absent(pod_sc, "runAsNonRoot") or run_as_non_root_blocked_by(fixes.view):
        return False
    fixes.fill_pod_sc("runAsNonRoot", True, finding)
    if not fixes.view.windows and absent(pod_sc, "runAsUser"):
        fixes.fill_pod_sc("runAsUser", fixes.settings.run_as_user, finding)
    return True


def runs_as_root_uid(pod: PodView) -> Sequence[Violation]:
    if pod.user_namespace:
        return NONE
    out: list[Violation] = []
    if _is_root_uid(pod.sc.get("runAsUser")):
        out.append(pod.violation("pod must not set runAsUser=0", "securityContext.runAsUser"))
    for c in pod.containers:
        if _is_root_uid(c.sc.get("runAsUser")):
            out.append(c.sc_violation("must not set securityContext.runAsUser=0", "runAsUser"))
    return out


def seccomp_profile_missing(pod: PodView) -> Sequence[Violation]:
    if pod.windows:
        return NONE
    pod_set = pod.sc.get("seccompProfile") is not None
    out: list[Violation] = []
    for s in pod.security_contexts():
        if s.sc.get("seccompProfile") is not None:
            if (bad := seccomp_not_allowed(s)) is not None:
                out.append(bad)
        elif not pod_set and isinstance(s, Container):
            message = (
                f"container {quote(s.name)} has no seccomp profile: pod or container must set "
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost" (unset)'
            )
            out.append(pod.violation(message, "securityContext.seccompProfile", "safe", s.name))
    return out


def fill_seccomp_profile(finding: Finding, fixes: Fixes) -> bool:
    """A pod-level seccompProfile (the baseline's type) when neither pod nor container sets one."""
    view, settings = fixes.view, fixes.settings
    if view.windows or not absent(view.sc, "seccompProfile"):
        return False
    c = next((c for c in view.containers if c.name == finding.container), None)
    if c is not None and not absent(c.sc, "seccompProfile"):
        return False
    profile: dict[str, Any] = {"type": settings.seccomp_profile}
    if settings.seccomp_profile == "Localhost":
        profile["localhostProfile"] = settings.localhost_profile
    fixes.fill_pod_sc("seccompProfile", profile, finding)
    return True


def capabilities_not_dropped(pod: PodView) -> Sequence[Violation]:
    if pod.windows:
        return NONE
    out: list[Violation] = []
    for c in pod.containers:
        caps = c.sc.get("capabilities")
        if not isinstance(caps, dict):
            caps = EMPTY
        drop = caps.get("drop")
        text = 'must set securityContext.capabilities.drop=["ALL"]'
        if drop is None:
            out.append(c.sc_violation(f"{text} (unset)", "capabilities.drop", "guarded"))
        elif not isinstance(drop, list) or "ALL" not in drop:
            out.append(c.sc_violation(f"{text} (set to {drop!r})", "capabilities.drop"))
        bad = sorted({str(cap) for cap in sequence(caps, "add") if cap != "NET_BIND_SERVICE"})
        if bad:
            added = ", ".join(map(quote, bad))
            text = f"must not add {added} in securityContext.capabilities.add (only NET_BIND_SERVICE)"
            out.append(c.sc_violation(text, "capabilities.add"))
    return out


def _low_port(c: Container) -> bool:
    for port in sequence(c.raw, "ports"):
        if isinstance(port, dict):
            number = port.get("containerPort")
            if type(number) is int and 0 < number < 1024:
                return True
    return False


def fill_drop_all_capabilities(finding: Finding, fixes: Fixes) -> bool:
    """capabilities.drop=["ALL"] on the container, plus add NET_BIND_SERVICE when it exposes a
    port below 1024 and adds nothing itself."""
    c = fixes.container_of(finding)
    if fixes.view.windows or c is None or not finding.field.endswith(".drop"):
        return False
    caps = c.sc.get("capabilities")
    if caps is None:
        caps = EMPTY
    elif not isinstance(caps, dict):
        return False
    if not absent(caps, "drop"):
        return False
    value: dict[str, Any] = {"drop": ["ALL"]}
    if absent(caps, "add") and _low_port(c):
        value["add"] = ["NET_BIND_SERVICE"]
    fixes.fill_container(c, "capabilities", value, finding)
    return True


def proc_mount_unmasked_restricted(pod: PodView) -> Sequence[Violation]:
    """Restricted (1.35+): Default only, with no user-namespace relaxation."""
    return proc_mount_not_default(pod)
