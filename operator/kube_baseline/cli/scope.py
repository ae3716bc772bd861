"""Which namespaces a baseline governs and remediates, in the CLI, by the operator's own rules.

The rules are the engine's (`desired.why_not_governed`, `desired.remediates`) over a
`NamespaceInfo` per namespace. Only one rule is the CLI's own: a namespace the input says
nothing about (no Namespace object in the files) is taken to match every namespace selector,
since its labels are unknown; system namespaces and `spec.namespaces.exclude` still apply.
`plan` previews remediation whatever the baseline's mode, so it is evaluated as if the mode
were `remediate`, with the remediation settings of the command line (`--risk`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kube_baseline.engine import desired
from kube_baseline.engine.checks import Policy
from kube_baseline.engine.desired import Baseline, NamespaceInfo, parse_added_labels
from kube_baseline.engine.models import LabelSelector, Remediation, SecurityBaselineSpec, Tier
from kube_baseline.engine.tiers import tier_of

NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_info(obj: Mapping[str, Any]) -> NamespaceInfo | None:
    """A Namespace object as the engine sees it, with the name label the API server adds."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return None
    name = str(meta["name"])
    raw = meta.get("labels")
    labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    labels.setdefault(NAME_LABEL, name)
    annotations = meta.get("annotations")
    added = parse_added_labels(annotations if isinstance(annotations, dict) else None)
    return NamespaceInfo(name, labels, added)


def _unselective(spec: SecurityBaselineSpec) -> SecurityBaselineSpec:
    """The spec with both namespace selectors emptied (they match every namespace)."""
    return spec.model_copy(
        update={
            "namespaces": spec.namespaces.model_copy(update={"selector": LabelSelector()}),
            "remediation": spec.remediation.model_copy(update={"namespace_selector": LabelSelector()}),
        }
    )


class Scope:
    """Governance and remediation per namespace name (answers are cached)."""

    def __init__(
        self,
        spec: SecurityBaselineSpec,
        policy: Policy,
        remediation: Remediation,
        namespaces: Iterable[NamespaceInfo],
        namespace_rules: bool,
    ) -> None:
        self.namespace_rules = namespace_rules
        self.namespaces = {ns.name: ns for ns in namespaces}
        self.tiers = spec.tiers
        preview = spec.model_copy(update={"mode": "remediate", "remediation": remediation})
        self._known = Baseline("", "", 0, preview, policy)
        self._unknown = Baseline("", "", 0, _unselective(preview), policy)
        self._why: dict[str, str] = {}
        self._remediated: dict[str, bool] = {}

    def _info(self, namespace: str) -> tuple[Baseline, NamespaceInfo]:
        info = self.namespaces.get(namespace)
        if info is None:  # the CLI's own rule: unknown labels match every selector
            return self._unknown, NamespaceInfo(namespace, {})
        return self._known, info

    def why_not_governed(self, namespace: str) -> str:
        """ "" when the namespace is governed, else why not."""
        if not self.namespace_rules:
            return ""
        why = self._why.get(namespace)
        if why is None:
            why = desired.why_not_governed(*self._info(namespace))
            self._why[namespace] = why
        return why

    def remediated(self, namespace: str) -> bool:
        """Remediation would fix workloads here (spec.remediation.namespaceSelector selects it)."""
        if not self.namespace_rules:
            return True
        done = self._remediated.get(namespace)
        if done is None:
            done = desired.remediates(*self._info(namespace))
            self._remediated[namespace] = done
        return done

    def tier_for(self, namespace: str) -> Tier | None:
        """The namespace's sensitivity tier, from its Namespace object in the input (None without
        one: a namespace the input says nothing about belongs to no tier)."""
        info = self.namespaces.get(namespace)
        if not self.tiers or info is None:
            return None
        return tier_of(self.tiers, info.labels)
