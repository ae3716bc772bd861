"""The names of the SecurityBaseline API (a contract), the check ids, the patterns its fields
follow, the pydantic base model and label selectors."""

from __future__ import annotations

from collections.abc import Mapping
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
