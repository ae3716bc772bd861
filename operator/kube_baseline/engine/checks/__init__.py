"""The check catalogue, the policy a baseline compiles to, and `audit`.

A check is data (id, title, severity, level, references, fix class) plus a pure function from a
PodView to violations and, unless its fix class is manual, the fixer that fills what it finds
absent (checks/fixes.py). `audit` runs the enabled checks of a Policy over one workload and splits
the findings into reported and exempted ones. It is on the operator's hot path and the CLI's:
no pydantic, no copies, one pass per check.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from kube_baseline.engine.checks import hardening, labels, network_policies, resources, tiers
from kube_baseline.engine.checks import pss_baseline as base
from kube_baseline.engine.checks import pss_restricted as restr
from kube_baseline.engine.checks.fixes import Fixer
from kube_baseline.engine.checks.pod import PodView, Violation
from kube_baseline.engine.models import (
    EXTRA_CHECKS,
    PSS_BASELINE_CHECKS,
    PSS_RESTRICTED_CHECKS,
    Finding,
    Level,
    RiskClass,
    SecurityBaselineSpec,
    Severity,
    Tier,
)
from kube_baseline.engine.models import Exemption as ExemptionModel
from kube_baseline.engine.workloads import Workload

__all__ = [
    "CHECKS",
    "OVERRIDES",
    "Audit",
    "Check",
    "Exemption",
    "Policy",
    "References",
    "audit",
    "policy_for_profile",
    "policy_from_spec",
]


@dataclass(frozen=True)
class References:
    """Where a check comes from: PSS level/control, CIS Kubernetes Benchmark 5.x ids, NSA/CISA."""

    pss: str
    cis: tuple[str, ...]
    nsa: str


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    level: Level
    references: References
    # The class of the fix when the field is absent (explicit values are always manual).
    fix: RiskClass
    evaluate: Callable[[PodView], Sequence[Violation]] = field(repr=False, compare=False)
    # Fills what the check finds absent; None exactly when `fix` is manual.
    fixer: Fixer | None = field(default=None, repr=False, compare=False)


_NSA_POD_SECURITY = "NSA/CISA v1.2: Pod security (enforce pod security, least privilege)"
_NSA_NON_ROOT = "NSA/CISA v1.2: Non-root containers"
_NSA_IMMUTABLE = "NSA/CISA v1.2: Immutable container file systems"
_NSA_SECCOMP = "NSA/CISA v1.2: Seccomp and other kernel security features"
_NSA_TOKENS = "NSA/CISA v1.2: Protecting Pod service account tokens"
_NSA_RESOURCES = "NSA/CISA v1.2: Resource policies (limits, LimitRange, ResourceQuota)"
_NSA_IMAGES = "NSA/CISA v1.2: Building secure container images (trusted, scanned images)"
_NSA_NETWORK = "NSA/CISA v1.2: Network separation (default-deny NetworkPolicies)"
_NSA_NAMESPACES = "NSA/CISA v1.2: Namespaces (administrative boundaries)"


def _c(
    id_: str,
    title: str,
    severity: Severity,
    level: Level,
    pss: str,
    cis: tuple[str, ...],
    nsa: str,
    fix: RiskClass,
    evaluate: Callable[[PodView], Sequence[Violation]],
    fixer: Fixer | None = None,
) -> Check:
    return Check(id_, title, severity, level, References(pss, cis, nsa), fix, evaluate, fixer)


_CATALOGUE: tuple[Check, ...] = (
    # --- PSS baseline ---
    _c("hostNamespaces", "Host namespaces are not shared", "high", "baseline",
       "Baseline: Host Namespaces", ("5.2.3", "5.2.4", "5.2.5"), _NSA_POD_SECURITY, "manual",
       base.host_namespaces_shared),
    _c("privileged", "Containers are not privileged", "critical", "baseline",
       "Baseline: Privileged Containers", ("5.2.2",), _NSA_POD_SECURITY, "manual",
       base.container_is_privileged),
    _c("capabilities_baseline", "No capabilities beyond the default set are added", "high", "baseline",
       "Baseline: Capabilities", ("5.2.8", "5.2.9"), _NSA_POD_SECURITY, "manual",
       base.capabilities_beyond_baseline),
    _c("hostPathVolumes", "No hostPath volumes", "high", "baseline",
       "Baseline: HostPath Volumes", ("5.2.12",), _NSA_POD_SECURITY, "manual",
       base.host_path_volume_used),
    _c("hostPorts", "No host ports", "medium", "baseline",
       "Baseline: Host Ports", ("5.2.13",), _NSA_POD_SECURITY, "manual",
       base.host_port_used),
    _c("hostProbesAndHostLifecycle", "Probes and lifecycle hooks do not target another host", "medium",
       "baseline", "Baseline: Host Probes / Lifecycle Hooks", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       base.probe_or_lifecycle_host_set),
    _c("appArmorProfile", "AppArmor is not disabled or overridden", "high", "baseline",
       "Baseline: AppArmor", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       base.apparmor_profile_forbidden),
    _c("seLinuxOptions", "SELinux type is allowed; user and role are unset", "high", "baseline",
       "Baseline: SELinux", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       base.selinux_options_forbidden),
    _c("procMount", "The default /proc mask is used", "medium", "baseline",
       "Baseline: /proc Mount Type", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       base.proc_mount_unmasked),
    _c("seccompProfile_baseline", "Seccomp is not disabled", "high", "baseline",
       "Baseline: Seccomp", ("5.7.2",), _NSA_SECCOMP, "manual",
       base.seccomp_profile_unconfined),
    _c("sysctls", "Only safe sysctls are set", "medium", "baseline",
       "Baseline: Sysctls", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       base.sysctl_forbidden),
    _c("windowsHostProcess", "No Windows HostProcess containers", "critical", "baseline",
       "Baseline: HostProcess", ("5.2.11",), _NSA_POD_SECURITY, "manual",
       base.windows_host_process),
    # --- PSS restricted ---
    _c("restrictedVolumes", "Only restricted volume types are used", "medium", "restricted",
       "Restricted: Volume Types", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       restr.volume_type_restricted),
    _c("allowPrivilegeEscalation", "Privilege escalation is disallowed", "medium", "restricted",
       "Restricted: Privilege Escalation", ("5.2.6",), _NSA_POD_SECURITY, "safe",
       restr.privilege_escalation_allowed, restr.fill_allow_privilege_escalation),
    _c("runAsNonRoot", "Containers must run as non-root", "medium", "restricted",
       "Restricted: Running as Non-root", ("5.2.7",), _NSA_NON_ROOT, "guarded",
       restr.may_run_as_root, restr.fill_run_as_non_root),
    _c("runAsUser", "Containers do not set UID 0", "high", "restricted",
       "Restricted: Running as Non-root user", ("5.2.7",), _NSA_NON_ROOT, "manual",
       restr.runs_as_root_uid),
    _c("seccompProfile_restricted", "A seccomp profile is set (RuntimeDefault or Localhost)", "medium",
       "restricted", "Restricted: Seccomp", ("5.7.2",), _NSA_SECCOMP, "safe",
       restr.seccomp_profile_missing, restr.fill_seccomp_profile),
    _c("capabilities_restricted", "All capabilities are dropped; only NET_BIND_SERVICE is added", "medium",
       "restricted", "Restricted: Capabilities", ("5.2.8", "5.2.9", "5.2.10"), _NSA_POD_SECURITY, "guarded",
       restr.capabilities_not_dropped, restr.fill_drop_all_capabilities),
    _c("procMount_restricted", "The default /proc mask is used, also in user namespaces", "medium",
       "restricted", "Restricted: /proc Mount Type", ("5.7.3",), _NSA_POD_SECURITY, "manual",
       restr.proc_mount_unmasked_restricted),
    # --- beyond PSS ---
    _c("readOnlyRootFilesystem", "Root filesystems are read-only", "low", "extra",
       "", ("5.7.3",), _NSA_IMMUTABLE, "guarded",
       hardening.root_filesystem_writable, hardening.fill_read_only_root_filesystem),
    _c("automountServiceAccountToken", "Service account tokens are not mounted automatically", "low",
       "extra", "", ("5.1.6",), _NSA_TOKENS, "guarded",
       hardening.service_account_token_mounted, hardening.fill_automount_service_account_token),
    _c("resourceRequests", "CPU and memory requests are set", "low", "extra",
       "", (), _NSA_RESOURCES, "manual",
       resources.requests_missing),
    _c("resourceLimits", "CPU and memory limits are set", "low", "extra",
       "", (), _NSA_RESOURCES, "manual",
       resources.limits_missing),
    _c("imagePinned", "Images are pinned to a tag or digest (not latest)", "medium", "extra",
       "", (), _NSA_IMAGES, "manual",
       resources.image_not_pinned),
    _c("requiredLabels", "Workloads carry the required labels", "low", "extra",
       "", ("5.7.1",), _NSA_NAMESPACES, "safe",
       labels.required_label_missing, labels.fill_required_label),
    _c("networkPolicyCoverage", "An ingress NetworkPolicy selects the workload's pods", "medium", "extra",
       "", ("5.3.2",), _NSA_NETWORK, "manual",
       network_policies.no_network_policy_selects),
    _c("tierPlacement", "Workloads of a tier run on its nodes / in its sandboxed runtime", "high", "extra",
       "", (), _NSA_POD_SECURITY, "guarded",
       tiers.placement_missing),
    _c("tierCoTenancy", "No node runs pods of two tiers", "high", "extra",
       "", (), _NSA_POD_SECURITY, "manual",
       tiers.per_node_only),
)  # fmt: skip

CHECKS: Mapping[str, Check] = MappingProxyType({check.id: check for check in _CATALOGUE})

ALL_CHECK_IDS: frozenset[str] = frozenset(CHECKS)

# At the restricted level a restricted control replaces the baseline control it tightens, as in
# Pod Security Admission (so a hostPath volume is reported once, by restrictedVolumes).
OVERRIDES: Mapping[str, str] = MappingProxyType(
    {
        "restrictedVolumes": "hostPathVolumes",
        "capabilities_restricted": "capabilities_baseline",
        "seccompProfile_restricted": "seccompProfile_baseline",
        "procMount_restricted": "procMount",
    }
)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Exemption:
    """A plain-data exemption (see models.Exemption): namespace, workload glob, checks, expiry."""

    namespace: str = "*"
    workload: str = "*"
    checks: frozenset[str] = frozenset()
    reason: str = ""
    expires: datetime | None = None

    @classmethod
    def of(cls, model: ExemptionModel | Exemption) -> Exemption:
        if isinstance(model, Exemption):
            return model
        return cls(
            namespace=model.namespace,
            workload=model.workload,
            checks=frozenset(model.checks),
            reason=model.reason,
            expires=model.expires,
        )

    def applies_to(self, workload: Workload, now: datetime | None) -> bool:
        """Whether it covers this workload (for its checks) at `now`."""
        if self.expires is not None and now is not None and _utc(self.expires) < _utc(now):
            return False
        if self.namespace != "*" and self.namespace != workload.namespace:
            return False
        pattern = self.workload
        if pattern == "*":
            return True
        if "/" in pattern:
            return fnmatch.fnmatchcase(f"{workload.kind}/{workload.name}", pattern)
        return fnmatch.fnmatchcase(workload.name, pattern)

    def covers(self, check: str) -> bool:
        return not self.checks or check in self.checks


@dataclass(frozen=True)
class Policy:
    """What a baseline asks of a workload, compiled for audit."""

    profile: str
    enabled: frozenset[str]
    required_labels: tuple[str, ...] = ()
    exemptions: tuple[Exemption, ...] = ()
    # Required label keys that remediation can fill (labels.workloadDefaults has them).
    label_defaults: frozenset[str] = frozenset()
    # The enabled checks in catalogue order (derived).
    checks: tuple[Check, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = self.enabled - ALL_CHECK_IDS
        if unknown:
            raise ValueError(f"unknown check ids: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "checks", tuple(c for c in _CATALOGUE if c.id in self.enabled))
        # Accept the API's Exemption models too; audit needs the plain form.
        object.__setattr__(self, "exemptions", tuple(Exemption.of(e) for e in self.exemptions))


def _check_ids(ids: Iterable[str], what: str) -> frozenset[str]:
    result = frozenset(ids)
    unknown = result - ALL_CHECK_IDS
    if unknown:
        raise ValueError(f"unknown check ids in {what}: {', '.join(sorted(unknown))}")
    return result


def policy_for_profile(
    profile: str,
    extra: Iterable[str] = (),
    disabled: Iterable[str] = (),
    required_labels: Iterable[str] = (),
    *,
    exemptions: Iterable[ExemptionModel | Exemption] = (),
    label_defaults: Iterable[str] = (),
) -> Policy:
    """A Policy from a profile name: its PSS checks, plus `extra`, minus `disabled`.

    requiredLabels is enabled automatically when `required_labels` is non-empty. At the restricted
    level the restricted controls replace the baseline controls they override (OVERRIDES),
    unless the restricted control is disabled.
    """
    if profile == "baseline":
        enabled = set(PSS_BASELINE_CHECKS)
    elif profile == "restricted":
        enabled = set(PSS_BASELINE_CHECKS) | set(PSS_RESTRICTED_CHECKS)
    else:
        raise ValueError(f"unknown profile {profile!r} (expected baseline or restricted)")
    extras = _check_ids(extra, "extra")
    not_extra = extras - set(EXTRA_CHECKS)
    if not_extra:
        raise ValueError(f"not extra checks: {', '.join(sorted(not_extra))}")
    enabled |= extras
    required = tuple(dict.fromkeys(required_labels))
    if required:
        enabled.add("requiredLabels")
    enabled -= _check_ids(disabled, "disabled")
    if profile == "restricted":
        for restricted_id, baseline_id in OVERRIDES.items():
            if restricted_id in enabled:
                enabled.discard(baseline_id)
    return Policy(
        profile=profile,
        enabled=frozenset(enabled),
        required_labels=required,
        exemptions=tuple(Exemption.of(e) for e in exemptions),
        label_defaults=frozenset(label_defaults),
    )


def policy_from_spec(spec: SecurityBaselineSpec) -> Policy:
    """The Policy a SecurityBaseline spec asks for."""
    tier_checks = ["tierPlacement", "tierCoTenancy"] if spec.tiers else []
    return policy_for_profile(
        spec.profile,
        extra=[*spec.checks.extra, *tier_checks],
        disabled=spec.checks.disabled,
        required_labels=spec.labels.required,
        exemptions=spec.exemptions,
        label_defaults=spec.labels.workload_defaults,
    )


@dataclass(frozen=True)
class Audit:
    findings: tuple[Finding, ...]
    exempted: tuple[Finding, ...]

    @property
    def compliant(self) -> bool:
        return not self.findings


_CLEAN = Audit((), ())


def audit(
    workload: Workload,
    policy: Policy,
    *,
    now: datetime | None = None,
    network_policies: Sequence[dict[str, Any]] | None = None,
    tier: Tier | None = None,
) -> Audit:
    """Run the policy's enabled checks over one workload.

    Exemptions whose `expires` is before `now` do not apply (when `now` is None, they all apply).
    networkPolicyCoverage runs only when `network_policies` (those of the workload's namespace)
    is given; tierPlacement only for a workload of a `tier` (that of its namespace).
    """
    view = PodView(workload)
    view.required_labels = policy.required_labels
    view.label_defaults = policy.label_defaults
    view.network_policies = network_policies
    view.tier = tier
    findings: list[Finding] = []
    for check in policy.checks:
        violations = check.evaluate(view)
        if violations:
            cid, severity, level = check.id, check.severity, check.level
            for message, field_, risk, container in violations:
                findings.append(Finding(cid, severity, level, message, field_, risk, container))
    if not findings:
        return _CLEAN
    if policy.exemptions:
        applicable = [e for e in policy.exemptions if e.applies_to(workload, now)]
        if applicable:
            kept: list[Finding] = []
            exempted: list[Finding] = []
            for finding in findings:
                if any(e.covers(finding.check) for e in applicable):
                    exempted.append(finding)
                else:
                    kept.append(finding)
            return Audit(tuple(kept), tuple(exempted))
    return Audit(tuple(findings), ())
