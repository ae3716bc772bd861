"""A cheap, read-only view of a pod spec that every check shares.

Built once per audit: the containers in the order Pod Security Admission visits them
(initContainers, containers, ephemeralContainers), their security contexts, and the field path
prefixes used in findings. Nothing here copies or mutates the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from kube_baseline.engine.models import RiskClass, Tier
from kube_baseline.engine.workloads import Workload

# One violation found by a check: (message, field, remediation class, container name).
Violation = tuple[str, str, RiskClass, str]

EMPTY: Final[Mapping[str, Any]] = {}

CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")
ContainerList = Literal["initContainers", "containers", "ephemeralContainers"]


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


class PodView:
    """What the checks read. Extra inputs (labels policy, NetworkPolicies) are set by audit."""

    __slots__ = (
        "containers",
        "label_defaults",
        "network_policies",
        "pod_sc",
        "prefix",
        "required_labels",
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
        self.pod_sc = mapping(spec, "securityContext")
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
