"""The SecurityBaseline API and the engine's plain data.

The pydantic models of this package are the single source of the CRD schema (`make crds` writes
`crds/securitybaselines.yaml` from them). Python names are snake_case; the wire format is
camelCase. `Finding` is a plain frozen dataclass: the engine creates many of them, cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from kube_baseline.engine.models.base import (
    _LABEL_MAP_SCHEMA,
    API_VERSION,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    EXTRA_CHECKS,
    FIELD_MANAGER,
    GROUP,
    KIND,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MANAGED_BY_LABEL,
    OPERATOR_NAMESPACE,
    PLURAL,
    PSS_BASELINE_CHECKS,
    PSS_RESTRICTED_CHECKS,
    SHORT_NAMES,
    SINGULAR,
    SYSTEM_NAMESPACES,
    VERSION,
    CheckId,
    ExtraCheckId,
    FixableRiskClass,
    LabelSelector,
    LabelSelectorRequirement,
    Level,
    Mode,
    Model,
    NamespaceSelection,
    PodSecurityLevel,
    Profile,
    PssBaselineCheckId,
    PssRestrictedCheckId,
    RiskClass,
    Severity,
    selector_matches,
)
from kube_baseline.engine.models.remediation import (
    WAITING_REASONS,
    Remediation,
    Rollout,
    SecurityContextDefaults,
)
from kube_baseline.engine.models.status import (
    Condition,
    DriftedWorkload,
    RolledBackWorkload,
    Rollouts,
    SecurityBaselineStatus,
    SharedNode,
    Summary,
    TierStatus,
)
from kube_baseline.engine.models.tiers import (
    _TIERS_RULES,
    TIER_LABEL,
    TIERS_MAX,
    Tier,
    TierNetwork,
    TierPlacement,
    TierProfile,
    Toleration,
    tier_conflicts,
)


class Checks(Model):
    extra: list[ExtraCheckId] = Field(
        default_factory=list,
        description="Checks beyond the Pod Security Standards profile to run.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    disabled: list[CheckId] = Field(
        default_factory=list,
        description="Checks not to run, whatever the profile says.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class NetworkPolicies(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || self.defaultDenyIngress || self.defaultDenyEgress",
                    "message": "enabled network policies need defaultDenyIngress or defaultDenyEgress",
                },
                {
                    "rule": "!self.allowDnsEgress || self.defaultDenyEgress",
                    "message": "allowDnsEgress only makes sense together with defaultDenyEgress",
                    "fieldPath": ".allowDnsEgress",
                },
            ]
        }
    )

    enabled: bool = False
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Governed namespaces whose labels match get the policies; empty matches all.",
    )
    default_deny_ingress: bool = True
    default_deny_egress: bool = False
    allow_dns_egress: bool = False
    allow_same_namespace: bool = False


class PodSecurityLabels(Model):
    """Pod Security Admission labels to put on governed namespaces (empty = leave alone)."""

    enforce: PodSecurityLevel = ""
    audit: PodSecurityLevel = ""
    warn: PodSecurityLevel = ""


class Labels(Model):
    required: list[str] = Field(
        default_factory=list,
        description="Label keys every workload must carry (check requiredLabels).",
        json_schema_extra={
            "items": {"type": "string", "pattern": LABEL_KEY_PATTERN, "maxLength": 317},
            "x-kubernetes-list-type": "set",
        },
    )
    workload_defaults: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to workloads that lack the key (when remediated).",
        json_schema_extra=_LABEL_MAP_SCHEMA,
    )
    namespace_defaults: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to governed namespaces that lack the key.",
        json_schema_extra=_LABEL_MAP_SCHEMA,
    )
    pod_security: PodSecurityLabels = Field(default_factory=PodSecurityLabels)


class Exemption(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.namespace != '*' || self.workload != '*' || size(self.checks) > 0",
                    "message": "an exemption must name a namespace, a workload or checks",
                }
            ]
        }
    )

    namespace: str = Field(default="*", description="Namespace name, or * for any.", max_length=63)
    workload: str = Field(
        default="*",
        description="Workload as Kind/name or name (glob patterns allowed), or * for any.",
        max_length=317,
    )
    checks: list[CheckId] = Field(
        default_factory=list,
        description="Checks exempted; empty means every check.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    reason: str = Field(min_length=1, max_length=1024, description="Why: shown in status and audits.")
    expires: datetime | None = Field(
        default=None, description="After this time the exemption no longer applies."
    )
    owner: str | None = Field(
        default=None,
        max_length=253,
        description="Who approved the exemption and answers for it (shown in audit reports).",
    )


class Reports(Model):
    """Per-workload reports for Policy Reporter and other tools: PolicyReports (wgpolicyk8s.io/v1alpha2)
    or OpenReports (openreports.io/v1alpha1), as the operator's `run --report-format` says."""

    enabled: bool = Field(
        default=False,
        description=(
            "Write one report per governed workload, in its namespace and owned by it, with one "
            "result per check: a PolicyReport (wgpolicyk8s.io), or an OpenReports Report "
            "(openreports.io) when the operator runs with --report-format=openreports. Costs one "
            "write per workload whose results change; needs that API's CRD (status condition "
            "ReportsWritten says when reports cannot be written)."
        ),
    )


AdmissionValidation = Literal["Off", "Warn", "Audit", "Deny"]
AdmissionMutation = Literal["Off", "Safe"]


class Admission(Model):
    """Admission policies generated from the baseline, enforced inside the API server."""

    validation: AdmissionValidation = Field(
        default="Off",
        description=(
            "Generate ValidatingAdmissionPolicies from the baseline's checks: Off, Warn (admit with "
            "warnings), Audit (audit-log annotations only) or Deny (refuse). Updates are refused "
            "only for violations they introduce."
        ),
    )
    mutation: AdmissionMutation = Field(
        default="Off",
        description=(
            "Safe: also generate a MutatingAdmissionPolicy that fills the absent safe-class fields "
            "on CREATE in remediating namespaces (only where the API server serves it)."
        ),
    )
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description=(
            "Narrows the policies to governed namespaces whose labels also match; empty means every "
            "governed namespace."
        ),
    )


class SecurityBaselineSpec(Model):
    mode: Mode = Field(
        default="audit", description="audit reports only; remediate also fixes, creates and labels."
    )
    profile: Profile = Field(default="baseline", description="Pod Security Standards level to check.")
    namespaces: NamespaceSelection = Field(default_factory=NamespaceSelection)
    checks: Checks = Field(default_factory=Checks)
    remediation: Remediation = Field(default_factory=Remediation)
    network_policies: NetworkPolicies = Field(default_factory=NetworkPolicies)
    labels: Labels = Field(default_factory=Labels)
    exemptions: list[Exemption] = Field(default_factory=list, max_length=256)
    tiers: list[Tier] = Field(
        default_factory=list,
        max_length=TIERS_MAX,
        description=(
            "Sensitivity tiers: groups of namespaces, each with its Pod Security profile, its network "
            "rule and its placement on dedicated nodes or a sandboxed runtime. A namespace belongs to "
            "the first tier (in list order) that selects it."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": _TIERS_RULES,
        },
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_are_consistent(cls, tiers: list[Tier]) -> list[Tier]:
        if problem := tier_conflicts(tiers):
            raise ValueError(problem)
        return tiers

    admission: Admission = Field(default_factory=Admission)
    reports: Reports = Field(default_factory=Reports)


def parse_spec(spec: dict[str, Any]) -> SecurityBaselineSpec:
    """Validate a spec from the wire (camelCase keys)."""
    return SecurityBaselineSpec.model_validate(spec)


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation of one check by one workload (or one container of it)."""

    check: str
    severity: Severity
    level: Level
    message: str
    # Where, as a path from the object's root, e.g.
    # "spec.template.spec.containers[app].securityContext.allowPrivilegeEscalation".
    field: str
    # The class of the fix: safe/guarded can be filled in; manual is report-only
    # (also any finding whose field holds an explicit value: it is never overwritten).
    remediation: RiskClass
    container: str = ""


__all__ = [
    "API_VERSION",
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "EXTRA_CHECKS",
    "FIELD_MANAGER",
    "GROUP",
    "KIND",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "MANAGED_BY_LABEL",
    "OPERATOR_NAMESPACE",
    "PLURAL",
    "PSS_BASELINE_CHECKS",
    "PSS_RESTRICTED_CHECKS",
    "SHORT_NAMES",
    "SINGULAR",
    "SYSTEM_NAMESPACES",
    "TIERS_MAX",
    "TIER_LABEL",
    "VERSION",
    "WAITING_REASONS",
    "Admission",
    "AdmissionMutation",
    "AdmissionValidation",
    "CheckId",
    "Checks",
    "Condition",
    "DriftedWorkload",
    "Exemption",
    "ExtraCheckId",
    "Finding",
    "FixableRiskClass",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Labels",
    "Level",
    "Mode",
    "Model",
    "NamespaceSelection",
    "NetworkPolicies",
    "PodSecurityLabels",
    "PodSecurityLevel",
    "Profile",
    "PssBaselineCheckId",
    "PssRestrictedCheckId",
    "Remediation",
    "Reports",
    "RiskClass",
    "RolledBackWorkload",
    "Rollout",
    "Rollouts",
    "SecurityBaselineSpec",
    "SecurityBaselineStatus",
    "SecurityContextDefaults",
    "Severity",
    "SharedNode",
    "Summary",
    "Tier",
    "TierNetwork",
    "TierPlacement",
    "TierProfile",
    "TierStatus",
    "Toleration",
    "parse_spec",
    "selector_matches",
    "tier_conflicts",
]
