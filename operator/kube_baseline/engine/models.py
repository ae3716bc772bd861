"""The SecurityBaseline API and the engine's plain data.

The pydantic models here are the single source of the CRD schema (`make crds` writes
`crds/securitybaselines.yaml` from them). Python names are snake_case; the wire format is
camelCase. `Finding` is a plain frozen dataclass: the engine creates many of them, cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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
    "tierPlacement",
    "tierCoTenancy",
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
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

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

    def matches(self, labels: Mapping[str, Any]) -> bool:
        expressions = [
            {"key": r.key, "operator": r.operator, "values": r.values} for r in self.match_expressions
        ]
        return selector_matches({"matchLabels": self.match_labels, "matchExpressions": expressions}, labels)


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Kubernetes label selector semantics on raw dicts; an empty selector matches everything.

    A malformed selector matches nothing.
    """
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or ():
        if not isinstance(req, dict) or not isinstance(key := req.get("key"), str):
            return False
        op = req.get("operator")
        values = req.get("values") or ()
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
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


WAITING_REASONS = (
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
_MAX_IN_FLIGHT_PATTERN = r"^([1-9][0-9]{0,4}|([1-9][0-9]?|100)%)$"


def _int_or_string(schema: dict[str, Any]) -> None:
    """An int-or-string field in the CRD (like a Deployment's maxUnavailable)."""
    for key in ("anyOf", "type", "pattern"):
        schema.pop(key, None)
    schema["x-kubernetes-int-or-string"] = True
    schema["x-kubernetes-validations"] = [
        {
            "rule": f"type(self) == int ? self >= 1 : self.matches(r'{_MAX_IN_FLIGHT_PATTERN}')",
            "message": "maxInFlight must be a positive count or a percentage such as 10%",
        }
    ]


class Rollout(Model):
    """How remediation follows the rollout each fix causes (Deployments, StatefulSets, DaemonSets)."""

    guard: bool = Field(
        default=True,
        description=(
            "Follow the rollout each fix causes and remove exactly the fields the fix set when the "
            "new pods fail; a rolled-back fix is not re-applied until the pod template changes."
        ),
    )
    deadline_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        description=(
            "How long a rollout may take. Past it: rolled back if the new pods are still not "
            "available, Unverified (never undone) if no controller made progress."
        ),
    )
    restart_threshold: int = Field(
        default=3, ge=1, le=100, description="Restarts of a new pod's container that count as failing."
    )
    waiting_reasons: list[str] = Field(
        default_factory=lambda: list(WAITING_REASONS),
        max_length=16,
        description="Container waiting reasons of a new pod that count as failing at once.",
        json_schema_extra={"items": {"type": "string", "maxLength": 128}, "x-kubernetes-list-type": "set"},
    )
    max_in_flight: int | str = Field(
        default=10,
        description=(
            "At most this many workloads (or this percentage of the workloads the baseline "
            "governs, at least 1) have a remediation rollout in progress; the rest wait in order."
        ),
        json_schema_extra=_int_or_string,
    )

    @field_validator("max_in_flight")
    @classmethod
    def _count_or_percent(cls, value: int | str) -> int | str:
        if isinstance(value, bool) or not re.fullmatch(_MAX_IN_FLIGHT_PATTERN, str(value)):
            raise ValueError("must be a positive count or a percentage such as 10%")
        return value

    def in_flight_limit(self, governed: int) -> int:
        """The limit as a count, for a baseline governing `governed` workloads."""
        value = self.max_in_flight
        if isinstance(value, str) and value.endswith("%"):
            return max(1, -(-governed * int(value[:-1]) // 100))
        return max(1, int(value))


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
    rollout: Rollout = Field(default_factory=Rollout)


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


# --- sensitivity tiers -----------------------------------------------------------------------

TIER_LABEL = f"{GROUP}/tier"
TIERS_MAX = 16
_TOLERATIONS_MAX = 16
TierProfile = Literal["privileged", "baseline", "restricted"]


class Toleration(Model):
    """A toleration the tier's pods need for its dedicated nodes' taints (as in a pod spec)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator != 'Exists' || size(self.value) == 0",
                    "message": "value must be empty when operator is Exists",
                    "fieldPath": ".value",
                },
                {
                    "rule": "size(self.key) > 0 || self.operator == 'Exists'",
                    "message": "an empty key needs operator Exists",
                    "fieldPath": ".key",
                },
            ]
        }
    )

    key: str = Field(default="", max_length=317, pattern=f"({LABEL_KEY_PATTERN})|^$")
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = Field(default="", max_length=63, pattern=LABEL_VALUE_PATTERN)
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = Field(default=None, ge=0)

    def as_pod_toleration(self) -> dict[str, Any]:
        """The toleration as a pod spec carries it (empty fields left out)."""
        out: dict[str, Any] = {}
        if self.key:
            out["key"] = self.key
        out["operator"] = self.operator
        if self.value:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


class TierPlacement(Model):
    """Where the tier's pods run: dedicated nodes and/or a sandboxed runtime (a separate kernel)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "size(self.nodeSelector) > 0 || size(self.tolerations) > 0 "
                        "|| size(self.runtimeClassName) > 0"
                    ),
                    "message": "placement needs a nodeSelector, tolerations or a runtimeClassName",
                }
            ]
        }
    )

    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of the tier's dedicated nodes; filled into pod templates lacking the key.",
        json_schema_extra=_LABEL_MAP_SCHEMA,
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=_TOLERATIONS_MAX,
        description="Tolerations of the dedicated nodes' taints; added to pod templates that lack them.",
    )
    runtime_class_name: str = Field(
        default="",
        max_length=253,
        pattern=f"({DNS_SUBDOMAIN_PATTERN})|^$",
        description="A RuntimeClass (e.g. a gVisor or Kata sandbox); filled where the pod sets none.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> TierPlacement:
        if not (self.node_selector or self.tolerations or self.runtime_class_name):
            raise ValueError("placement needs a nodeSelector, tolerations or a runtimeClassName")
        return self


class TierNetwork(Model):
    """The tier's NetworkPolicy per namespace: ingress only from its tier (and allowFrom)."""

    default_deny_egress: bool = Field(
        default=True, description="Deny egress except to DNS (allowDnsEgress) and the allowed tiers."
    )
    allow_dns_egress: bool = True
    allow_from: list[str] = Field(
        default_factory=list,
        max_length=TIERS_MAX,
        description="Other tiers (by name) whose namespaces may connect to this tier's pods.",
        json_schema_extra={
            "items": {"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63},
            "x-kubernetes-list-type": "set",
        },
    )


class Tier(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.placement) || has(self.network)",
                    "message": "a tier needs a placement or a network rule (or both)",
                }
            ]
        }
    )

    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description=f"Namespaces of the tier; when absent, those labelled {TIER_LABEL}=<name>.",
    )
    profile: TierProfile | None = Field(
        default=None,
        description=(
            "Pod Security level enforced on the tier's namespaces (the label, where absent); "
            "their workloads are also audited at this level (privileged: at spec.profile)."
        ),
    )
    network: TierNetwork | None = None
    placement: TierPlacement | None = None

    @model_validator(mode="after")
    def _has_a_rule(self) -> Tier:
        if self.network is None and self.placement is None:
            raise ValueError("a tier needs a placement or a network rule (or both)")
        return self

    def membership(self) -> LabelSelector:
        """The selector of the tier's namespaces (the tier label when none is given)."""
        if self.namespace_selector is not None:
            return self.namespace_selector
        return LabelSelector(match_labels={TIER_LABEL: self.name})


# CEL: the same rules as `tier_conflicts` (the API server and the CLI reject the same specs).
_EFFECTIVE_LABELS = (
    "(has({t}.namespaceSelector) ? {t}.namespaceSelector.matchLabels : {{'" + TIER_LABEL + "': {t}.name}})"
)
_HAS_EXPRESSIONS = "(has({t}.namespaceSelector) && size({t}.namespaceSelector.matchExpressions) > 0)"
_TIERS_RULES: list[Any] = [
    {
        "rule": (
            "self.all(a, self.all(b, a.name == b.name || "
            + _HAS_EXPRESSIONS.format(t="a")
            + " || "
            + _HAS_EXPRESSIONS.format(t="b")
            + " || !"
            + _EFFECTIVE_LABELS.format(t="a")
            + ".all(k, k in "
            + _EFFECTIVE_LABELS.format(t="b")
            + " && "
            + _EFFECTIVE_LABELS.format(t="b")
            + "[k] == "
            + _EFFECTIVE_LABELS.format(t="a")
            + "[k])))"
        ),
        "message": (
            "two tiers select the same namespaces by label value: a tier's namespaceSelector "
            f"(by default {TIER_LABEL}=<name>) must not match every namespace of another tier"
        ),
    },
    {
        "rule": "self.all(t, !has(t.network) || t.network.allowFrom.all(n, self.exists(o, o.name == n)))",
        "message": "network.allowFrom must name tiers of this baseline",
    },
]


def tier_conflicts(tiers: list[Tier]) -> str:
    """Why the tiers are inconsistent ("" when they are not): the checks of `_TIERS_RULES`."""
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        return "tier names must be unique"
    for a in tiers:
        for b in tiers:
            if a.name == b.name or a.membership().match_expressions or b.membership().match_expressions:
                continue
            la, lb = a.membership().match_labels, b.membership().match_labels
            if all(lb.get(k) == v for k, v in la.items()):
                return (
                    f"tiers {a.name} and {b.name} select the same namespaces by label value: "
                    f"{a.name}'s namespaceSelector matches every namespace of {b.name}"
                )
        if a.network is not None:
            unknown = [n for n in a.network.allow_from if n not in names]
            if unknown:
                return f"tier {a.name}: network.allowFrom names unknown tiers: {', '.join(unknown)}"
    return ""


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


class SharedNode(Model):
    name: str
    tiers: list[str] = Field(default_factory=list)


class TierStatus(Model):
    """Co-tenancy (check tierCoTenancy): nodes that run pods of more than one tier."""

    nodes: int = Field(default=0, description="Nodes running pods of the baseline's tiers.")
    shared_nodes: int = Field(default=0, description="Of those, nodes running pods of two tiers or more.")
    shared: list[SharedNode] = Field(default_factory=list, max_length=20)


class RolledBackWorkload(Model):
    namespace: str
    kind: str
    name: str
    reason: str = Field(description="The signal that failed the rollout.")
    fields: list[str] = Field(default_factory=list, description="The fields the undo removed.")


class Rollouts(Model):
    """Remediation rollouts of this baseline's fixes (see spec.remediation.rollout)."""

    in_flight: int = 0
    waiting: int = 0
    succeeded: int = 0
    unverified: int = 0
    rolled_back: int = 0
    rolled_back_workloads: list[RolledBackWorkload] = Field(default_factory=list, max_length=20)


class SecurityBaselineStatus(Model):
    model_config = ConfigDict(extra="ignore")

    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    most_drifted: list[DriftedWorkload] = Field(default_factory=list, max_length=20)
    tiers: TierStatus | None = None
    rollouts: Rollouts = Field(default_factory=Rollouts)


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
