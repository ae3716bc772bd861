"""The SecurityBaseline API and the engine's plain data.

The pydantic models here are the single source of the CRD schema (`make crds` writes
`crds/securitybaselines.yaml` from them). Python names are snake_case; the wire format is
camelCase. `Finding` is a plain frozen dataclass: the engine creates many of them, cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "kube-baseline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SecurityBaseline"
PLURAL = "securitybaselines"
SINGULAR = "securitybaseline"
SHORT_NAMES = ["baseline", "baselines", "sb"]
FIELD_MANAGER = "kube-baseline"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OPERATOR_NAMESPACE = "kube-baseline"

# Never governed, whatever a baseline says: the control plane's own namespaces and ours.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", OPERATOR_NAMESPACE)

Profile = Literal["baseline", "restricted"]
Mode = Literal["audit", "remediate"]
RiskClass = Literal["safe", "guarded", "manual"]
FixableRiskClass = Literal["safe", "guarded"]
Severity = Literal["low", "medium", "high", "critical"]
# The level a check belongs to: a Pod Security Standards level, or "extra" for checks beyond PSS.
Level = Literal["baseline", "restricted", "extra"]
PodSecurityLevel = Literal["", "privileged", "baseline", "restricted"]

# Check ids are a contract: they appear in status, CLI output and exemptions. Written once, as
# the Literal types pydantic turns into the CRD's enums; the tuples are derived from them.
PssBaselineCheckId = Literal[
    "hostNamespaces",
    "privileged",
    "capabilities_baseline",
    "hostPathVolumes",
    "hostPorts",
    "hostProbesAndHostLifecycle",
    "appArmorProfile",
    "seLinuxOptions",
    "procMount",
    "seccompProfile_baseline",
    "sysctls",
    "windowsHostProcess",
]
PssRestrictedCheckId = Literal[
    "restrictedVolumes",
    "allowPrivilegeEscalation",
    "runAsNonRoot",
    "runAsUser",
    "seccompProfile_restricted",
    "capabilities_restricted",
    "procMount_restricted",
]
ExtraCheckId = Literal[
    "readOnlyRootFilesystem",
    "automountServiceAccountToken",
    "resourceRequests",
    "resourceLimits",
    "imagePinned",
    "requiredLabels",
    "networkPolicyCoverage",
]
CheckId = Literal[PssBaselineCheckId, PssRestrictedCheckId, ExtraCheckId]
PSS_BASELINE_CHECKS: tuple[str, ...] = get_args(PssBaselineCheckId)
PSS_RESTRICTED_CHECKS: tuple[str, ...] = get_args(PssRestrictedCheckId)
EXTRA_CHECKS: tuple[str, ...] = get_args(ExtraCheckId)

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

# Label maps are bounded so the API server's CEL cost estimate stays within budget.
_LABEL_MAP_MAX = 64
_LABEL_MAP_RULES = [
    {
        "rule": f"self.all(k, k.matches(r'{LABEL_KEY_PATTERN}'))",
        "message": (
            "every key must be a valid label key (optional DNS prefix/ plus a name of at most 63 characters)"
        ),
    },
    {
        "rule": f"self.all(k, self[k].matches(r'{LABEL_VALUE_PATTERN}'))",
        "message": (
            "every value must be a valid label value (at most 63 characters, alphanumeric at both ends)"
        ),
    },
]
_LABEL_MAP_SCHEMA: dict[str, Any] = {
    "x-kubernetes-validations": _LABEL_MAP_RULES,
    "maxProperties": _LABEL_MAP_MAX,
    "additionalProperties": {"type": "string", "maxLength": 63},
}


class Model(BaseModel):
    """Base for the API models: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class LabelSelectorRequirement(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0"
                    ),
                    "message": (
                        "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
                    ),
                }
            ]
        }
    )

    key: str = Field(pattern=LABEL_KEY_PATTERN, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, json_schema_extra=_LABEL_MAP_SCHEMA)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = key_present = req.key in labels
            if req.operator == "In":
                present = key_present and labels[req.key] in req.values
            elif req.operator == "NotIn":
                present = not key_present or labels[req.key] not in req.values
            elif req.operator == "DoesNotExist":
                present = not key_present
            if not present:
                return False
        return True


class NamespaceSelection(Model):
    """Which namespaces the baseline governs. System namespaces are always excluded."""

    selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces whose labels match are governed; empty matches every namespace.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description=(
            "Namespace names never governed, in addition to kube-system, kube-public, "
            "kube-node-lease and the operator's own namespace, which are always excluded."
        ),
        json_schema_extra={
            "items": {"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63},
            "x-kubernetes-list-type": "set",
        },
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


class SecurityContextDefaults(Model):
    """The values remediation fills in where a field is absent. Explicit values are never overwritten."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "self.seccompProfile == 'Localhost' ? size(self.localhostProfile) > 0 "
                        ": size(self.localhostProfile) == 0"
                    ),
                    "message": (
                        "localhostProfile is required when seccompProfile is Localhost, "
                        "and not allowed otherwise"
                    ),
                    "fieldPath": ".localhostProfile",
                }
            ]
        }
    )

    run_as_user: int = Field(
        default=65532, ge=1, le=2147483647, description="UID set with runAsNonRoot (guarded)."
    )
    seccomp_profile: Literal["RuntimeDefault", "Localhost"] = "RuntimeDefault"
    localhost_profile: str = Field(default="", max_length=255)


class Remediation(Model):
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description=(
            "Governed namespaces whose labels match are remediated when mode is remediate; "
            "empty matches every governed namespace."
        ),
    )
    risk_classes: list[FixableRiskClass] = Field(
        default_factory=lambda: list[FixableRiskClass](["safe"]),
        description=(
            "Which fixes may be applied: safe (allowPrivilegeEscalation, seccomp) and/or guarded "
            "(runAsNonRoot, drop ALL, readOnlyRootFilesystem, ...). Manual findings are only reported."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    security_context: SecurityContextDefaults = Field(default_factory=SecurityContextDefaults)


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
    """Per-workload PolicyReports (wgpolicyk8s.io/v1alpha2), for Policy Reporter and other tools."""

    enabled: bool = Field(
        default=False,
        description=(
            "Write one PolicyReport per governed workload, in its namespace and owned by it, with one "
            "result per check. Costs one write per workload whose results change; needs the "
            "PolicyReport CRD (status condition ReportsWritten says when reports cannot be written)."
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
    reports: Reports = Field(default_factory=Reports)


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int = 0


class Summary(Model):
    namespaces: int = 0
    workloads: int = 0
    compliant: int = 0
    drifted: int = 0
    remediated: int = 0
    exempt: int = 0


class DriftedWorkload(Model):
    namespace: str
    kind: str
    name: str
    findings: int
    checks: list[str] = Field(default_factory=list)


class SecurityBaselineStatus(Model):
    model_config = ConfigDict(extra="ignore")

    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    most_drifted: list[DriftedWorkload] = Field(default_factory=list, max_length=20)


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
