"""Required labels on the workload's own metadata, and their fixer."""

from __future__ import annotations

from collections.abc import Sequence

from kube_baseline.engine.checks.fixes import Fixes
from kube_baseline.engine.checks.pod import PodView, Violation
from kube_baseline.engine.models import Finding


def required_label_missing(pod: PodView) -> Sequence[Violation]:
    if not pod.required_labels:
        return ()
    labels = pod.workload.labels
    return [
        (
            f'{pod.workload.kind} must carry the label "{key}" in metadata.labels',
            f"metadata.labels[{key}]",
            "safe" if key in pod.label_defaults else "manual",
            "",
        )
        for key in pod.required_labels
        if key not in labels
    ]


def fill_required_label(finding: Finding, fixes: Fixes) -> bool:
    """The label's value from the baseline's labels.workloadDefaults."""
    key = finding.field.removeprefix("metadata.labels[").removesuffix("]")
    default = fixes.label_defaults.get(key)
    if default is None or key in fixes.view.workload.labels:
        return False
    fixes.fill_label(key, default, finding)
    return True
