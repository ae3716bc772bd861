"""A cheap, read-only view of a pod spec that every check shares.

Built once per audit: the containers in the order Pod Security Admission visits them
(initContainers, containers, ephemeralContainers), their security contexts, and the field path
prefixes used in findings. Nothing here copies or mutates the object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from kube_baseline.engine.models import RiskClass, Tier
from kube_baseline.engine.workloads import CONTAINER_LISTS, Workload

__all__ = ["CONTAINER_LISTS", "EMPTY", "Container", "PodView", "Subject", "Violation", "explicit", "quote"]

# One violation found by a check: (message, field, remediation class, container name).
Violation = tuple[str, str, RiskClass, str]

EMPTY: Final[Mapping[str, Any]] = {}


def quote(value: Any) -> str:
    return f'"{value}"'


def explicit(value: Any) -> str:
    """How an explicit value reads in a message."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    return str(value)


def mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """parent[key] if it is a mapping, else an empty mapping (tolerates malformed input)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else EMPTY


def sequence(parent: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = parent.get(key)
    return value if isinstance(value, list) else ()


class Container:
    """One container of the pod: where it sits, its name and its securityContext."""

    __slots__ = ("field", "list_name", "name", "raw", "sc")

    def __init__(self, list_name: str, index: int, raw: dict[str, Any], prefix: str) -> None:
        name = raw.get("name")
        self.name: str = name if isinstance(name, str) and name else str(index)
        self.list_name = list_name
        self.raw = raw
        sc = raw.get("securityContext")
        self.sc: Mapping[str, Any] = sc if isinstance(sc, dict) else EMPTY
        # e.g. "spec.template.spec.containers[app]"
        self.field = f"{prefix}.{list_name}[{self.name}]"

    def violation(self, text: str, suffix: str, risk: RiskClass = "manual") -> Violation:
        """A violation at `<this container>.suffix`; the message starts 'container "<name>" '."""
        return (f"container {quote(self.name)} {text}", f"{self.field}.{suffix}", risk, self.name)

    def sc_violation(self, text: str, suffix: str, risk: RiskClass = "manual") -> Violation:
        """A violation at `<this container>.securityContext.suffix`."""
        return self.violation(text, f"securityContext.{suffix}", risk)

    def sc_must_be(
        self, key: str, wanted: bool, unset: RiskClass, blocked_by: Callable[[Container], str] | None = None
    ) -> Violation | None:
        """A violation unless securityContext.key is `wanted`: `unset` is the class when the field
        is absent (manual when `blocked_by` names why it cannot be filled), manual when set."""
        value = self.sc.get(key)
        if value is wanted:
            return None
        text = f"must set securityContext.{key}={explicit(wanted)}"
        if value is not None:
            return self.sc_violation(f"{text} (set to {explicit(value)})", key)
        if blocked_by is not None and (blocked := blocked_by(self)):
            return self.sc_violation(f"{text} (unset; cannot be set while {blocked})", key)
        return self.sc_violation(f"{text} (unset)", key, unset)


class Subject(Protocol):
    """What owns a securityContext: the pod (`PodView`) or one of its containers (`Container`)."""

    @property
    def sc(self) -> Mapping[str, Any]: ...

    def sc_violation(self, text: str, suffix: str, risk: RiskClass = "manual") -> Violation: ...


class PodView:
    """What the checks read. Extra inputs (labels policy, NetworkPolicies) are set by audit."""

    __slots__ = (
        "containers",
        "label_defaults",
        "network_policies",
        "prefix",
        "required_labels",
        "sc",
        "spec",
        "tier",
        "user_namespace",
        "windows",
        "workload",
    )

    def __init__(self, workload: Workload) -> None:
        spec = workload.pod_spec
        self.workload = workload
        self.spec = spec
        self.prefix = ".".join(workload.pod_path)
        containers: list[Container] = []
        for list_name in CONTAINER_LISTS:
            items = spec.get(list_name)
            if isinstance(items, list):
                for index, raw in enumerate(items):
                    if isinstance(raw, dict):
                        containers.append(Container(list_name, index, raw, self.prefix))
        self.containers: tuple[Container, ...] = tuple(containers)
        self.sc = mapping(spec, "securityContext")  # the pod's securityContext
        os_ = spec.get("os")
        self.windows = isinstance(os_, dict) and os_.get("name") == "windows"
        # PSA relaxes some checks for pods in a user namespace (hostUsers: false), from 1.35.
        self.user_namespace = spec.get("hostUsers") is False
        self.required_labels: tuple[str, ...] = ()
        self.label_defaults: frozenset[str] = frozenset()
        self.network_policies: Sequence[dict[str, Any]] | None = None
        self.tier: Tier | None = None  # the sensitivity tier of the workload's namespace

    @property
    def pod_sc_field(self) -> str:
        return f"{self.prefix}.securityContext"

    def security_contexts(self) -> tuple[Subject, ...]:
        """The pod's securityContext, then each container's (in PSA order)."""
        return (self, *self.containers)

    def violation(
        self, message: str, suffix: str, risk: RiskClass = "manual", container: str = ""
    ) -> Violation:
        """A violation at `<pod spec>.suffix`."""
        return (message, f"{self.prefix}.{suffix}", risk, container)

    def sc_violation(self, text: str, suffix: str, risk: RiskClass = "manual") -> Violation:
        """A violation at the pod's `securityContext.suffix`; the message starts "pod "."""
        return self.violation(f"pod {text}", f"securityContext.{suffix}", risk)
