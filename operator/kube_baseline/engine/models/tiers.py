"""Sensitivity tiers (spec.tiers): membership, profile, network rule and placement of a tier."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kube_baseline.engine.models.base import (
    _LABEL_MAP_SCHEMA,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    GROUP,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    LabelSelector,
    Model,
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
