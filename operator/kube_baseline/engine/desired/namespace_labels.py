"""Pure: the namespace labels to add or remove, recorded in an annotation so a baseline's deletion
removes exactly the labels it added. Only absent keys are added; the first baseline by name to
add a key owns it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kube_baseline.engine.desired.governance import ADDED_LABELS_ANNOTATION, Baseline, NamespaceInfo
from kube_baseline.engine.tiers import tier_namespace_labels, tier_of

PSA_PREFIX = "pod-security.kubernetes.io/"


def desired_namespace_labels(baseline: Baseline, ns: NamespaceInfo | None = None) -> dict[str, str]:
    """The labels the baseline adds to a namespace where absent (the level of the namespace's
    tier, when it has one, wins over spec.labels.podSecurity.enforce)."""
    labels = dict(baseline.spec.labels.namespace_defaults)
    psa = baseline.spec.labels.pod_security
    for mode in ("enforce", "audit", "warn"):
        level = getattr(psa, mode)
        if level:
            labels[f"{PSA_PREFIX}{mode}"] = level
    if ns is not None and baseline.spec.tiers:
        labels.update(tier_namespace_labels(tier_of(baseline.spec.tiers, ns.selector_labels)))
    return labels


def build_namespace_patch(ns: NamespaceInfo, labelling: Sequence[Baseline]) -> dict[str, Any] | None:
    """A JSON merge patch for the namespace's labels and our record of them, or None if nothing changes.

    `labelling` are the baselines that remediate this namespace. Labels a baseline added that it no
    longer wants (or that belong to a baseline no longer labelling the namespace, e.g. deleted) are
    removed, but only while they still hold the value we set. Then absent keys are added.
    """
    labels = dict(ns.labels)
    wants = {b.name: desired_namespace_labels(b, ns) for b in sorted(labelling, key=lambda b: b.name)}
    kept: dict[str, dict[str, str]] = {}
    for owner, added in ns.added.items():
        for key, value in added.items():
            if labels.get(key) != value:
                continue  # someone changed or removed it: no longer ours
            if wants.get(owner, {}).get(key) == value:
                kept.setdefault(owner, {})[key] = value
            else:
                del labels[key]
    for owner, desired in wants.items():
        for key, value in desired.items():
            if key not in labels:
                labels[key] = value
                kept.setdefault(owner, {})[key] = value
    label_patch: dict[str, Any] = {k: v for k, v in labels.items() if ns.labels.get(k) != v}
    label_patch.update({k: None for k in ns.labels if k not in labels})
    record = json.dumps(kept, sort_keys=True, separators=(",", ":")) if kept else None
    old_record = json.dumps(ns.added, sort_keys=True, separators=(",", ":")) if ns.added else None
    meta: dict[str, Any] = {}
    if label_patch:
        meta["labels"] = label_patch
    if record != old_record:
        meta["annotations"] = {ADDED_LABELS_ANNOTATION: record}
    return {"metadata": meta} if meta else None
