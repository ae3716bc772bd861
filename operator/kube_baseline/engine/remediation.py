"""Findings -> the smallest patch that fixes what the baseline allows to fix.

Pure. Only absent fields are filled; an explicit value (even `privileged: true`) is a decision
to report, never to overwrite. Nothing outside the securityContext fields, the pod's
automountServiceAccountToken and the workload's own metadata.labels is ever touched.

Fixes by check and risk class:

- safe: allowPrivilegeEscalation=false per container (not where the API server would reject it:
  privileged or SYS_ADMIN containers); a pod-level seccompProfile when the pod level is absent;
  required labels that have a value in labels.workloadDefaults.
- guarded: pod-level runAsNonRoot=true (+ pod-level runAsUser from the baseline's settings when
  absent), capabilities.drop=["ALL"] (+ add NET_BIND_SERVICE when the container exposes a port
  below 1024), readOnlyRootFilesystem=true, automountServiceAccountToken=false.
- manual: everything else.

Windows pods never get Linux-only fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kube_baseline.engine.checks.pod import CONTAINER_LISTS, EMPTY, Container, PodView, sequence
from kube_baseline.engine.checks.security_context import escalation_blocked_by, run_as_non_root_blocked_by
from kube_baseline.engine.models import Finding, Labels, Remediation, RiskClass
from kube_baseline.engine.workloads import Workload

__all__ = ["Change", "Plan", "apply_patch", "plan"]

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

    @property
    def empty(self) -> bool:
        return not self.patch


class _Builder:
    """Collects the edits, then emits them in a canonical order (so output is deterministic)."""

    def __init__(self, view: PodView) -> None:
        self.view = view
        self.labels: dict[str, tuple[str, str]] = {}  # key -> (value, check)
        self.pod: dict[str, tuple[Any, str, RiskClass]] = {}  # pod spec field -> (value, check, risk)
        self.pod_sc: dict[str, tuple[Any, str, RiskClass]] = {}
        # (list name, container name) -> field -> (value, check, risk)
        self.containers: dict[tuple[str, str], dict[str, tuple[Any, str, RiskClass]]] = {}

    def container(self, c: Container, key: str, value: Any, check: str, risk: RiskClass) -> None:
        self.containers.setdefault((c.list_name, c.name), {}).setdefault(key, (value, check, risk))

    def build(self) -> tuple[dict[str, Any], tuple[Change, ...]]:
        view = self.view
        workload = view.workload
        patch: dict[str, Any] = {}
        changes: list[Change] = []
        if self.labels:
            label_patch = {}
            for key in sorted(self.labels):
                value, check = self.labels[key]
                label_patch[key] = value
                changes.append(Change(f"metadata.labels[{key}]", value, check, "safe"))
            patch["metadata"] = {"labels": label_patch}
        pod_patch: dict[str, Any] = {}
        for key in sorted(self.pod):
            value, check, risk = self.pod[key]
            pod_patch[key] = value
            changes.append(Change(f"{view.prefix}.{key}", value, check, risk))
        if self.pod_sc:
            sc_patch = {}
            for key in _POD_SC_FIELDS:
                if key in self.pod_sc:
                    value, check, risk = self.pod_sc[key]
                    sc_patch[key] = value
                    changes.append(Change(f"{view.pod_sc_field}.{key}", value, check, risk))
            pod_patch["securityContext"] = sc_patch
        for list_name in CONTAINER_LISTS:
            items = []
            for c in view.containers:
                edits = self.containers.get((list_name, c.name)) if c.list_name == list_name else None
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
            for key in workload.pod_path:
                node = node.setdefault(key, {})
            node.update(pod_patch)
        return patch, tuple(changes)


def _low_port(c: Container) -> bool:
    for port in sequence(c.raw, "ports"):
        if isinstance(port, dict):
            number = port.get("containerPort")
            if type(number) is int and 0 < number < 1024:
                return True
    return False


def _absent(parent: Mapping[str, Any], key: str) -> bool:
    return parent.get(key) is None


def plan(
    workload: Workload,
    findings: Sequence[Finding],
    remediation: Remediation,
    labels: Labels,
) -> Plan:
    """The minimal patch that fixes the findings in the classes `remediation.risk_classes` allows."""
    allowed = frozenset(remediation.risk_classes)
    view = PodView(workload)
    by_name: dict[str, Container] = {}
    for c in view.containers:
        # The field path is unique per container; a missing name cannot be keyed in a patch.
        if isinstance(c.raw.get("name"), str) and c.raw.get("name"):
            by_name.setdefault(c.field, c)
    builder = _Builder(view)
    unfixed: list[Finding] = []
    settings = remediation.security_context
    windows = view.windows
    for finding in findings:
        if finding.remediation == "manual" or finding.remediation not in allowed:
            unfixed.append(finding)
            continue
        if not _fix(finding, view, by_name, builder, settings, labels, windows):
            unfixed.append(finding)
    patch, changes = builder.build()
    return Plan(patch, changes, tuple(unfixed))


def _container_of(finding: Finding, view: PodView, by_name: Mapping[str, Container]) -> Container | None:
    if not finding.container:
        return None
    for c in view.containers:
        if c.name == finding.container and finding.field.startswith(c.field + "."):
            return by_name.get(c.field)
    return None


def _fix(
    finding: Finding,
    view: PodView,
    by_name: Mapping[str, Container],
    builder: _Builder,
    settings: Any,
    labels: Labels,
    windows: bool,
) -> bool:
    check = finding.check
    risk = finding.remediation
    pod_sc = view.pod_sc
    if check == "allowPrivilegeEscalation":
        c = _container_of(finding, view, by_name)
        if windows or c is None or not _absent(c.sc, "allowPrivilegeEscalation") or escalation_blocked_by(c):
            return False
        builder.container(c, "allowPrivilegeEscalation", False, check, risk)
        return True
    if check == "seccompProfile_restricted":
        if windows or not _absent(pod_sc, "seccompProfile"):
            return False
        c = next((c for c in view.containers if c.name == finding.container), None)
        if c is not None and not _absent(c.sc, "seccompProfile"):
            return False
        profile: dict[str, Any] = {"type": settings.seccomp_profile}
        if settings.seccomp_profile == "Localhost":
            profile["localhostProfile"] = settings.localhost_profile
        builder.pod_sc.setdefault("seccompProfile", (profile, check, risk))
        return True
    if check == "runAsNonRoot":
        if not _absent(pod_sc, "runAsNonRoot") or run_as_non_root_blocked_by(view):
            return False
        builder.pod_sc.setdefault("runAsNonRoot", (True, check, risk))
        if not windows and _absent(pod_sc, "runAsUser"):
            builder.pod_sc.setdefault("runAsUser", (settings.run_as_user, check, risk))
        return True
    if check == "capabilities_restricted":
        c = _container_of(finding, view, by_name)
        if windows or c is None or not finding.field.endswith(".drop"):
            return False
        caps = c.sc.get("capabilities")
        if caps is None:
            caps = EMPTY
        elif not isinstance(caps, dict):
            return False
        if not _absent(caps, "drop"):
            return False
        value: dict[str, Any] = {"drop": ["ALL"]}
        if _absent(caps, "add") and _low_port(c):
            value["add"] = ["NET_BIND_SERVICE"]
        builder.container(c, "capabilities", value, check, risk)
        return True
    if check == "readOnlyRootFilesystem":
        c = _container_of(finding, view, by_name)
        if windows or c is None or not _absent(c.sc, "readOnlyRootFilesystem"):
            return False
        builder.container(c, "readOnlyRootFilesystem", True, check, risk)
        return True
    if check == "automountServiceAccountToken":
        if not _absent(view.spec, "automountServiceAccountToken"):
            return False
        builder.pod.setdefault("automountServiceAccountToken", (False, check, risk))
        return True
    if check == "requiredLabels":
        key = finding.field.removeprefix("metadata.labels[").removesuffix("]")
        default = labels.workload_defaults.get(key)
        if default is None or key in view.workload.labels:
            return False
        builder.labels.setdefault(key, (default, check))
        return True
    return False


# --- applying a patch ---------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts and lists; scalars are immutable)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = {}
                target[key] = current
            _merge(current, value)
        elif isinstance(value, list) and key in MERGE_BY_NAME and isinstance(target.get(key), list):
            _merge_by_name(target[key], value)
        else:
            target[key] = _clone(value)


def _merge_by_name(target: list[Any], patch: list[Any]) -> None:
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
            _merge(current, item)


def apply_patch(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A new object: `obj` with the strategic-merge patch applied (maps merge recursively,
    container lists merge by name, other lists are replaced, None deletes). `obj` is untouched."""
    result: dict[str, Any] = _clone(obj)
    _merge(result, patch)
    return result
