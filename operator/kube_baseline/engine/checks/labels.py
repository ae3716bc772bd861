"""Required labels on the workload's own metadata."""

from __future__ import annotations

from collections.abc import Sequence

from kube_baseline.engine.checks.pod import PodView, Violation


def required_label_missing(pod: PodView) -> Sequence[Violation]:
    required = pod.required_labels
    if not required:
        return ()
    labels = pod.workload.labels
    out: list[Violation] = []
    for key in required:
        if key not in labels:
            out.append(
                (
                    f'{pod.workload.kind} must carry the label "{key}" in metadata.labels',
                    f"metadata.labels[{key}]",
                    "safe" if key in pod.label_defaults else "manual",
                    "",
                )
            )
    return out
