"""Pure: the parsed baselines and namespaces, and which baselines govern, remediate and protect
(NetworkPolicies) a namespace.

Namespace selectors are matched against the namespace's labels *without* the labels a baseline
added (`NamespaceInfo.selector_labels`), so a label the operator adds can never change whether
the operator adds it (no add/remove loop).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kube_baseline.engine.checks import Policy, policy_from_spec
from kube_baseline.engine.models import GROUP, SYSTEM_NAMESPACES, SecurityBaselineSpec, Tier, parse_spec
from kube_baseline.engine.tiers import tier_policies

BASELINE_LABEL = f"{GROUP}/baseline"
ADDED_LABELS_ANNOTATION = f"{GROUP}/added-labels"
OVERLAP_RULE = (
    "each baseline reports on its own; remediation applies every remediating baseline in name order "
    "in one patch, the first by name winning where values differ"
)


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    uid: str
    generation: int
    spec: SecurityBaselineSpec
    policy: Policy
    tier_policies: Mapping[str, Policy] = field(default_factory=dict)  # tier -> its profile's policy

    def policy_for(self, tier: Tier | None) -> Policy:
        """The policy for a workload of `tier` (None: of no tier)."""
        return self.tier_policies.get(tier.name, self.policy) if tier is not None else self.policy


def build_baseline(body: Mapping[str, Any]) -> Baseline:
    """Parse a SecurityBaseline object. Raises pydantic.ValidationError on an invalid spec."""
    meta = body.get("metadata") or {}
    spec = parse_spec(dict(body.get("spec") or {}))
    return Baseline(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        policy=policy_from_spec(spec),
        tier_policies=tier_policies(spec),
    )


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    name: str
    labels: Mapping[str, str]
    # baseline name -> {label key: value} that baseline added (from ADDED_LABELS_ANNOTATION).
    added: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    resource_version: str = ""

    @property
    def selector_labels(self) -> dict[str, str]:
        """The labels selectors see: without the ones a baseline added (and that still hold its value)."""
        ours = {k for kv in self.added.values() for k, v in kv.items() if self.labels.get(k) == v}
        return {k: v for k, v in self.labels.items() if k not in ours}


def parse_added_labels(annotations: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    raw = (annotations or {}).get(ADDED_LABELS_ANNOTATION)
    if not isinstance(raw, str):
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(b): {str(k): str(v) for k, v in kv.items()} for b, kv in data.items() if isinstance(kv, dict)}


def build_namespace_info(body: Mapping[str, Any]) -> NamespaceInfo:
    meta = body.get("metadata") or {}
    return NamespaceInfo(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        added=parse_added_labels(meta.get("annotations")),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def why_not_governed(baseline: Baseline, ns: NamespaceInfo) -> str:
    """ "" when the baseline governs the namespace, else why not (a sentence naming it)."""
    selection = baseline.spec.namespaces
    if ns.name in SYSTEM_NAMESPACES:
        return f"namespace {ns.name} is a system namespace"
    if ns.name in selection.exclude:
        return f"namespace {ns.name} is excluded by the baseline"
    if not selection.selector.matches(ns.selector_labels):
        return f"namespace {ns.name} does not match the baseline's namespace selector"
    return ""


def governs(baseline: Baseline, ns: NamespaceInfo) -> bool:
    return not why_not_governed(baseline, ns)


def remediates(baseline: Baseline, ns: NamespaceInfo) -> bool:
    """Fixes workloads and adds namespace labels here (mode remediate and remediation selector)."""
    return (
        baseline.spec.mode == "remediate"
        and governs(baseline, ns)
        and baseline.spec.remediation.namespace_selector.matches(ns.selector_labels)
    )


def protects(baseline: Baseline, ns: NamespaceInfo) -> bool:
    """Creates its NetworkPolicy here."""
    nps = baseline.spec.network_policies
    return (
        baseline.spec.mode == "remediate"
        and nps.enabled
        and governs(baseline, ns)
        and nps.namespace_selector.matches(ns.selector_labels)
    )
