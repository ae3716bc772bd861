"""Findings -> the smallest patch that fixes what the baseline allows to fix; applying patches.

Pure. Only absent fields are filled; an explicit value (even `privileged: true`) is a decision
to report, never to overwrite. Nothing outside the securityContext fields, the pod's
automountServiceAccountToken and the workload's own metadata.labels is ever touched.

What each check fills, and in which risk class, is its catalogue row (checks/__init__.py): the
row's `fix` class and its `fixer`. Manual checks have no fixer. Windows pods never get
Linux-only fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kube_baseline.engine.checks import CHECKS
from kube_baseline.engine.checks.fixes import Fixes
from kube_baseline.engine.checks.pod import PodView
from kube_baseline.engine.models import Finding, Labels, Remediation, RiskClass
from kube_baseline.engine.workloads import CONTAINER_LISTS, Workload

__all__ = ["Change", "Plan", "apply_patch", "merge", "plan"]

# Lists merged by the `name` key in a strategic-merge patch of a pod spec.
MERGE_BY_NAME = frozenset(CONTAINER_LISTS)

# Container-level securityContext fields in the order they appear in a patch.
_CONTAINER_FIELDS = ("allowPrivilegeEscalation", "capabilities", "readOnlyRootFilesystem")
# Pod-level fields in the order they appear in a patch.
_POD_SC_FIELDS = ("runAsNonRoot", "runAsUser", "seccompProfile")


@dataclass(frozen=True)
class Change:
    """One field remediation fills in: path from the object root, value, why, and its class."""

    field: str
    value: Any
    check: str
    risk: RiskClass


@dataclass(frozen=True)
class Plan:
    # Strategic-merge patch from the object root; {} when there is nothing to do.
    patch: dict[str, Any]
    changes: tuple[Change, ...]
    unfixed: tuple[Finding, ...]


def plan(
    workload: Workload,
    findings: Sequence[Finding],
    remediation: Remediation,
    labels: Labels,
) -> Plan:
    """The minimal patch that fixes the findings in the classes `remediation.risk_classes` allows."""
    allowed = frozenset(remediation.risk_classes)
    view = PodView(workload)
    fixes = Fixes(view, remediation.security_context, labels.workload_defaults)
    unfixed: list[Finding] = []
    for finding in findings:
        check = CHECKS.get(finding.check)
        fixer = check.fixer if check is not None else None
        if (
            finding.remediation == "manual"
            or finding.remediation not in allowed
            or fixer is None
            or not fixer(finding, fixes)
        ):
            unfixed.append(finding)
    patch, changes = _patch_of(fixes)
    return Plan(patch, changes, tuple(unfixed))


def _patch_of(fixes: Fixes) -> tuple[dict[str, Any], tuple[Change, ...]]:
    """The recorded edits as one patch and its changes, in a canonical (deterministic) order."""
    view = fixes.view
    patch: dict[str, Any] = {}
    changes: list[Change] = []
    if fixes.labels:
        label_patch = {}
        for key in sorted(fixes.labels):
            value, check, risk = fixes.labels[key]
            label_patch[key] = value
            changes.append(Change(f"metadata.labels[{key}]", value, check, risk))
        patch["metadata"] = {"labels": label_patch}
    pod_patch: dict[str, Any] = {}
    for key in sorted(fixes.pod):
        value, check, risk = fixes.pod[key]
        pod_patch[key] = value
        changes.append(Change(f"{view.prefix}.{key}", value, check, risk))
    if fixes.pod_sc:
        sc_patch = {}
        for key in _POD_SC_FIELDS:
            if key in fixes.pod_sc:
                value, check, risk = fixes.pod_sc[key]
                sc_patch[key] = value
                changes.append(Change(f"{view.pod_sc_field}.{key}", value, check, risk))
        pod_patch["securityContext"] = sc_patch
    for list_name in CONTAINER_LISTS:
        items = []
        for c in view.containers:
            edits = fixes.containers.get((list_name, c.name)) if c.list_name == list_name else None
            if not edits:
                continue
            sc_patch = {}
            for key in _CONTAINER_FIELDS:
                if key in edits:
                    value, check, risk = edits[key]
                    sc_patch[key] = value
                    changes.append(Change(f"{c.field}.securityContext.{key}", value, check, risk))
            items.append({"name": c.name, "securityContext": sc_patch})
        if items:
            pod_patch[list_name] = items
    if pod_patch:
        node = patch
        for key in view.workload.pod_path:
            node = node.setdefault(key, {})
        node.update(pod_patch)
    return patch, tuple(changes)


# --- applying a patch ---------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts and lists; scalars are immutable)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _merge(target: dict[str, Any], patch: Mapping[str, Any], keep_nulls: bool) -> None:
    for key, value in patch.items():
        if value is None and not keep_nulls:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = {}
                target[key] = current
            _merge(current, value, keep_nulls)
        elif isinstance(value, list) and key in MERGE_BY_NAME and isinstance(target.get(key), list):
            _merge_by_name(target[key], value, keep_nulls)
        else:
            target[key] = _clone(value)


def _merge_by_name(target: list[Any], patch: list[Any], keep_nulls: bool) -> None:
    index = {item.get("name"): item for item in target if isinstance(item, dict)}
    for item in patch:
        if not isinstance(item, dict):
            continue
        current = index.get(item.get("name"))
        if current is None:
            new = _clone(item)
            target.append(new)
            index[new.get("name")] = new
        else:
            _merge(current, item, keep_nulls)


def merge(
    current: Mapping[str, Any], patch: Mapping[str, Any], *, keep_nulls: bool = False
) -> dict[str, Any]:
    """A new dict: `current` with the strategic-merge `patch` applied. Neither is changed.

    Maps merge recursively; container lists (MERGE_BY_NAME) merge by the `name` of their
    elements, unknown names appended; other lists and scalars are replaced; None deletes a key.
    With `keep_nulls` (merging two patches into one) a None is kept, as the deletion it asks for.
    """
    result = {key: _clone(value) for key, value in current.items()}
    _merge(result, patch, keep_nulls)
    return result


def apply_patch(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A new object: `obj` with the strategic-merge patch applied (see `merge`). `obj` is untouched."""
    return merge(obj, patch)
