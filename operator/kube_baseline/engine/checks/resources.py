"""Container resources and images: requests, limits, and images pinned to a tag or digest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kube_baseline.engine.checks.pod import PodView, Violation, mapping

RESOURCES: Final = ("cpu", "memory")


def _missing(pod: PodView, section: str) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        # Ephemeral containers may not set resources at all.
        if c.list_name == "ephemeralContainers":
            continue
        values = mapping(mapping(c.raw, "resources"), section)
        for resource in RESOURCES:
            if values.get(resource) is None:
                where = f"resources.{section}.{resource}"
                out.append(c.violation(f"must set {where} (unset)", where))
    return out


def requests_missing(pod: PodView) -> Sequence[Violation]:
    return _missing(pod, "requests")


def limits_missing(pod: PodView) -> Sequence[Violation]:
    return _missing(pod, "limits")


def image_reference_problem(image: Any) -> str:
    """Why an image reference is not pinned ('' when it has a digest or a tag other than latest)."""
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@" in image:
        return ""
    last = image.rsplit("/", 1)[-1]
    _, sep, tag = last.partition(":")
    if not sep or not tag:
        return f'image "{image}" has no tag or digest'
    if tag == "latest":
        return f'image "{image}" uses the tag "latest"'
    return ""


def image_not_pinned(pod: PodView) -> Sequence[Violation]:
    out: list[Violation] = []
    for c in pod.containers:
        if problem := image_reference_problem(c.raw.get("image")):
            out.append(c.violation(f"{problem}: pin it to a tag or digest", "image"))
    return out
