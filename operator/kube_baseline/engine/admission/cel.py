"""Each check of the catalogue as a CEL expression, for the generated admission policies.

`violations(check, ctx)` is a CEL expression of type list(string): the fields (paths from the
object's root, as in findings) that violate the check, empty when the object complies. The
semantics are those of engine/checks, control by control, written for the typed objects the
API server hands to a ValidatingAdmissionPolicy (optional chaining `.?` for absent fields).

A check that needs more than the object (networkPolicyCoverage reads the namespace's
NetworkPolicies) cannot be expressed: it is in UNENFORCEABLE with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from kube_baseline.engine.checks.pss_baseline import (
    ALLOWED_SECCOMP_TYPES,
    ALLOWED_SELINUX_TYPES,
    ALLOWED_SYSCTLS,
    BASELINE_CAPABILITIES,
)
from kube_baseline.engine.checks.pss_restricted import RESTRICTED_VOLUME_TYPES
from kube_baseline.engine.workloads import APPARMOR_ANNOTATION_PREFIX

__all__ = ["UNENFORCEABLE", "Ctx", "Expr", "lit", "violations"]

UNENFORCEABLE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "networkPolicyCoverage": (
            "needs the namespace's NetworkPolicies, which an admission policy cannot read; "
            "still audited by the operator"
        ),
        "tierPlacement": (
            "needs the tier of the namespace, which spec.tiers decides from labels the policy would "
            "have to re-implement; still audited and filled by the operator"
        ),
        "tierCoTenancy": "is about nodes, not one object; still audited by the operator",
    }
)

# Every volume source of a 1.35 PodSpec that is not in RESTRICTED_VOLUME_TYPES. The API server
# accepts exactly one source per volume, so "has one of these" equals the engine's "has no
# allowed source".
NON_RESTRICTED_VOLUME_TYPES: Final = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)
assert not set(NON_RESTRICTED_VOLUME_TYPES) & RESTRICTED_VOLUME_TYPES

_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")


def lit(value: object) -> str:
    """A CEL literal for a string or a list of strings (JSON's syntax is valid CEL for these)."""
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (frozenset, set)) else list(value)
        return "[" + ", ".join(json.dumps(str(v)) for v in items) + "]"
    return json.dumps(str(value))


@dataclass(frozen=True)
class Expr:
    """A check as CEL, twice: `any`, a bool (cheap, short-circuiting: evaluated on every
    request), and `fields`, the list(string) of violating fields (only for the message)."""

    fields: str
    any: str


def _cat(*parts: Expr) -> Expr:
    return Expr(
        "(" + " + ".join(p.fields for p in parts) + ")", "(" + " || ".join(p.any for p in parts) + ")"
    )


def _filtered(source: str, var: str, pred: str, field: str) -> Expr:
    """Items of the list (or keys of the map) `source` for which `pred` holds, as fields."""
    return Expr(f"{source}.filter({var}, {pred}).map({var}, {field})", f"{source}.exists({var}, {pred})")


@dataclass(frozen=True)
class Ctx:
    """Where things are, as CEL: the pod spec, the pod's annotations, the object's labels, and
    the pod spec's path as text (for the field names in messages)."""

    spec: str  # e.g. "variables.spec"
    annotations: str  # a map(string, string) expression
    labels: str  # the object's own labels, a map expression
    prefix: str  # e.g. "spec.template.spec"
    meta_prefix: str  # the pod metadata path, e.g. "spec.template.metadata"
    containers: str = ""  # a list of every container (all three lists), if the caller has one

    @property
    def psc(self) -> str:
        return f"{self.spec}.?securityContext"

    @property
    def p(self) -> str:
        return lit(self.prefix)


def _per_container(ctx: Ctx, pred: str, suffix: str, lists: tuple[str, ...] = _LISTS) -> Expr:
    """The fields of the containers (in every list) for which `pred` (over `c`) holds. The
    boolean walks one precomputed list of every container (ctx.containers) when it can."""
    found = _cat(
        *(
            _filtered(
                f"{ctx.spec}.?{name}.orValue([])",
                "c",
                pred,
                f"{lit(ctx.prefix + '.' + name + '[')} + c.name + {lit(']' + suffix)}",
            )
            for name in lists
        )
    )
    if lists == _LISTS and ctx.containers:
        return Expr(found.fields, f"{ctx.containers}.exists(c, {pred})")
    return found


def _when(cond: str, field: str) -> Expr:
    return Expr(f"({cond} ? [{field}] : [])", f"({cond})")


def _field(ctx: Ctx, rest: str) -> str:
    return lit(f"{ctx.prefix}.{rest}")


def _unless(gate: str, expr: Expr) -> Expr:
    return Expr(f"({gate} ? [] : {expr.fields})", f"(!({gate}) && {expr.any})")


def _windows(ctx: Ctx) -> str:
    return f"{ctx.spec}.?os.?name.orValue('') == 'windows'"


def _userns(ctx: Ctx) -> str:
    return f"{ctx.spec}.?hostUsers.orValue(true) == false"


def _host_namespaces(ctx: Ctx) -> Expr:
    return _cat(
        *(
            _when(f"{ctx.spec}.?{key}.orValue(false)", _field(ctx, key))
            for key in ("hostNetwork", "hostPID", "hostIPC")
        )
    )


def _privileged(ctx: Ctx) -> Expr:
    return _per_container(ctx, "c.?securityContext.?privileged.orValue(false)", ".securityContext.privileged")


def _capabilities_baseline(ctx: Ctx) -> Expr:
    allowed = lit(BASELINE_CAPABILITIES)
    return _per_container(
        ctx,
        f"c.?securityContext.?capabilities.?add.orValue([]).exists(a, !(a in {allowed}))",
        ".securityContext.capabilities.add",
    )


def _host_path(ctx: Ctx) -> Expr:
    return _filtered(
        f"{ctx.spec}.?volumes.orValue([])",
        "v",
        "has(v.hostPath)",
        f"{lit(ctx.prefix + '.volumes[')} + v.name + '].hostPath'",
    )


def _host_ports(ctx: Ctx) -> Expr:
    return _per_container(
        ctx, "c.?ports.orValue([]).exists(p, p.?hostPort.orValue(0) != 0)", ".ports[].hostPort"
    )


def _probe_hosts(ctx: Ctx) -> Expr:
    handlers = [
        *(f"c.?{probe}" for probe in ("livenessProbe", "readinessProbe", "startupProbe")),
        "c.?lifecycle.?postStart",
        "c.?lifecycle.?preStop",
    ]
    pred = " || ".join(
        f"{h}.?{kind}.?host.orValue('') != ''" for h in handlers for kind in ("httpGet", "tcpSocket")
    )
    return _per_container(ctx, pred, ".(probe or lifecycle handler).host")


def _profile_bad(opt: str, allowed: str) -> str:
    """An optional profile (seccomp, AppArmor) that is set with a type outside `allowed`."""
    return f"({opt}.hasValue() && !({opt}.?type.orValue('') in {allowed}))"


def _apparmor(ctx: Ctx) -> Expr:
    allowed = lit(("RuntimeDefault", "Localhost"))
    pod = _when(
        _profile_bad(f"{ctx.psc}.?appArmorProfile", allowed),
        _field(ctx, "securityContext.appArmorProfile.type"),
    )
    containers = _per_container(
        ctx,
        _profile_bad("c.?securityContext.?appArmorProfile", allowed),
        ".securityContext.appArmorProfile.type",
    )
    a = ctx.annotations
    annotations = _filtered(
        a,
        "k",
        f"k.startsWith({lit(APPARMOR_ANNOTATION_PREFIX)}) && {a}[k] != '' && "
        f"{a}[k] != 'runtime/default' && !{a}[k].startsWith('localhost/')",
        f"{lit(ctx.meta_prefix + '.annotations[')} + k + ']'",
    )
    return _cat(pod, containers, annotations)


def _selinux_bad(opt: str) -> str:
    allowed = lit(ALLOWED_SELINUX_TYPES)
    return (
        f"({opt}.hasValue() && (!({opt}.?type.orValue('') in {allowed}) || "
        f"{opt}.?user.orValue('') != '' || {opt}.?role.orValue('') != ''))"
    )


def _selinux(ctx: Ctx) -> Expr:
    pod = _when(_selinux_bad(f"{ctx.psc}.?seLinuxOptions"), _field(ctx, "securityContext.seLinuxOptions"))
    containers = _per_container(
        ctx, _selinux_bad("c.?securityContext.?seLinuxOptions"), ".securityContext.seLinuxOptions"
    )
    return _cat(pod, containers)


def _proc_mount_any(ctx: Ctx) -> Expr:
    return _per_container(
        ctx, "c.?securityContext.?procMount.orValue('Default') != 'Default'", ".securityContext.procMount"
    )


def _proc_mount(ctx: Ctx) -> Expr:
    return _unless(_userns(ctx), _proc_mount_any(ctx))


_SECCOMP: Final = lit(ALLOWED_SECCOMP_TYPES)


def _seccomp_pod_bad(ctx: Ctx) -> Expr:
    return _when(
        _profile_bad(f"{ctx.psc}.?seccompProfile", _SECCOMP),
        _field(ctx, "securityContext.seccompProfile.type"),
    )


def _seccomp_baseline(ctx: Ctx) -> Expr:
    containers = _per_container(
        ctx,
        _profile_bad("c.?securityContext.?seccompProfile", _SECCOMP),
        ".securityContext.seccompProfile.type",
    )
    return _cat(_seccomp_pod_bad(ctx), containers)


def _sysctls(ctx: Ctx) -> Expr:
    return _filtered(
        f"{ctx.psc}.?sysctls.orValue([])",
        "x",
        f"!(x.name in {lit(ALLOWED_SYSCTLS)})",
        f"{lit(ctx.prefix + '.securityContext.sysctls[')} + x.name + ']'",
    )


def _host_process(ctx: Ctx) -> Expr:
    pod = _when(
        f"{ctx.psc}.?windowsOptions.?hostProcess.orValue(false)",
        _field(ctx, "securityContext.windowsOptions.hostProcess"),
    )
    containers = _per_container(
        ctx,
        "c.?securityContext.?windowsOptions.?hostProcess.orValue(false)",
        ".securityContext.windowsOptions.hostProcess",
    )
    return _cat(pod, containers)


def _restricted_volumes(ctx: Ctx) -> Expr:
    pred = " || ".join(f"has(v.{kind})" for kind in NON_RESTRICTED_VOLUME_TYPES)
    return _filtered(
        f"{ctx.spec}.?volumes.orValue([])", "v", pred, f"{lit(ctx.prefix + '.volumes[')} + v.name + ']'"
    )


def _escalation(ctx: Ctx) -> Expr:
    return _unless(
        _windows(ctx),
        _per_container(
            ctx,
            "c.?securityContext.?allowPrivilegeEscalation.orValue(true) != false",
            ".securityContext.allowPrivilegeEscalation",
        ),
    )


def _run_as_non_root(ctx: Ctx) -> Expr:
    pod_opt = f"{ctx.psc}.?runAsNonRoot"
    pod = _when(f"{pod_opt}.orValue(true) == false", _field(ctx, "securityContext.runAsNonRoot"))
    containers = _per_container(
        ctx,
        "(c.?securityContext.?runAsNonRoot.hasValue() ? c.securityContext.runAsNonRoot == false "
        f": !{pod_opt}.hasValue())",
        ".securityContext.runAsNonRoot",
    )
    return _unless(_userns(ctx), _cat(pod, containers))


def _run_as_user(ctx: Ctx) -> Expr:
    pod = _when(f"{ctx.psc}.?runAsUser.orValue(1) == 0", _field(ctx, "securityContext.runAsUser"))
    containers = _per_container(
        ctx, "c.?securityContext.?runAsUser.orValue(1) == 0", ".securityContext.runAsUser"
    )
    return _unless(_userns(ctx), _cat(pod, containers))


def _seccomp_restricted(ctx: Ctx) -> Expr:
    pod_opt = f"{ctx.psc}.?seccompProfile"
    containers = _per_container(
        ctx,
        "(c.?securityContext.?seccompProfile.hasValue() ? "
        f"{_profile_bad('c.?securityContext.?seccompProfile', _SECCOMP)} : !{pod_opt}.hasValue())",
        ".securityContext.seccompProfile",
    )
    return _unless(_windows(ctx), _cat(_seccomp_pod_bad(ctx), containers))


def _capabilities_restricted(ctx: Ctx) -> Expr:
    caps = "c.?securityContext.?capabilities"
    pred = (
        f"!{caps}.?drop.orValue([]).exists(d, d == 'ALL') || "
        f"{caps}.?add.orValue([]).exists(a, a != 'NET_BIND_SERVICE')"
    )
    return _unless(_windows(ctx), _per_container(ctx, pred, ".securityContext.capabilities"))


def _read_only_root(ctx: Ctx) -> Expr:
    return _unless(
        _windows(ctx),
        _per_container(
            ctx,
            "c.?securityContext.?readOnlyRootFilesystem.orValue(false) != true",
            ".securityContext.readOnlyRootFilesystem",
        ),
    )


def _token(ctx: Ctx) -> Expr:
    return _when(
        f"{ctx.spec}.?automountServiceAccountToken.orValue(true) != false",
        _field(ctx, "automountServiceAccountToken"),
    )


def _resources(section: str) -> Callable[[Ctx], Expr]:
    def expr(ctx: Ctx) -> Expr:
        values = f"c.?resources.?{section}.orValue({{}})"
        return _per_container(
            ctx,
            f"!('cpu' in {values}) || !('memory' in {values})",
            f".resources.{section}",
            ("initContainers", "containers"),
        )

    return expr


def _image_pinned(ctx: Ctx) -> Expr:
    image = "c.?image.orValue('')"
    last = f"{image}.substring({image}.lastIndexOf('/') + 1)"
    tag = f"{last}.substring({last}.indexOf(':') + 1)"
    ok = f"{image} != '' && ({image}.contains('@') || ({last}.contains(':') && !({tag} in ['', 'latest'])))"
    return _per_container(ctx, f"!({ok})", ".image")


def _required_labels(keys: tuple[str, ...]) -> Callable[[Ctx], Expr]:
    def expr(ctx: Ctx) -> Expr:
        return _filtered(lit(keys), "k", f"!(k in {ctx.labels})", "'metadata.labels[' + k + ']'")

    return expr


_RENDERERS: Final[Mapping[str, Callable[[Ctx], Expr]]] = MappingProxyType(
    {
        "hostNamespaces": _host_namespaces,
        "privileged": _privileged,
        "capabilities_baseline": _capabilities_baseline,
        "hostPathVolumes": _host_path,
        "hostPorts": _host_ports,
        "hostProbesAndHostLifecycle": _probe_hosts,
        "appArmorProfile": _apparmor,
        "seLinuxOptions": _selinux,
        "procMount": _proc_mount,
        "seccompProfile_baseline": _seccomp_baseline,
        "sysctls": _sysctls,
        "windowsHostProcess": _host_process,
        "restrictedVolumes": _restricted_volumes,
        "allowPrivilegeEscalation": _escalation,
        "runAsNonRoot": _run_as_non_root,
        "runAsUser": _run_as_user,
        "seccompProfile_restricted": _seccomp_restricted,
        "capabilities_restricted": _capabilities_restricted,
        "procMount_restricted": _proc_mount_any,
        "readOnlyRootFilesystem": _read_only_root,
        "automountServiceAccountToken": _token,
        "resourceRequests": _resources("requests"),
        "resourceLimits": _resources("limits"),
        "imagePinned": _image_pinned,
    }
)


def violations(check: str, ctx: Ctx, required_labels: tuple[str, ...] = ()) -> Expr | None:
    """`check` as CEL (whether violated, and the violating fields), or None if UNENFORCEABLE."""
    if check == "requiredLabels":
        return _required_labels(required_labels)(ctx)
    render = _RENDERERS.get(check)
    if render is None:
        if check in UNENFORCEABLE:
            return None
        raise ValueError(f"no CEL for check {check!r}")
    return render(ctx)
