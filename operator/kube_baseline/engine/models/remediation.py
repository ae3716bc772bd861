"""spec.remediation of a SecurityBaseline: which fixes may be applied, the values they fill in,
and how the rollout each fix causes is followed (the rollout guard's settings)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from kube_baseline.engine.models.base import FixableRiskClass, LabelSelector, Model


class SecurityContextDefaults(Model):
    """The values remediation fills in where a field is absent. Explicit values are never overwritten."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "self.seccompProfile == 'Localhost' ? size(self.localhostProfile) > 0 "
                        ": size(self.localhostProfile) == 0"
                    ),
                    "message": (
                        "localhostProfile is required when seccompProfile is Localhost, "
                        "and not allowed otherwise"
                    ),
                    "fieldPath": ".localhostProfile",
                }
            ]
        }
    )

    run_as_user: int = Field(
        default=65532, ge=1, le=2147483647, description="UID set with runAsNonRoot (guarded)."
    )
    seccomp_profile: Literal["RuntimeDefault", "Localhost"] = "RuntimeDefault"
    localhost_profile: str = Field(default="", max_length=255)


WAITING_REASONS = (
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
_MAX_IN_FLIGHT_PATTERN = r"^([1-9][0-9]{0,4}|([1-9][0-9]?|100)%)$"


def _int_or_string(schema: dict[str, Any]) -> None:
    """An int-or-string field in the CRD (like a Deployment's maxUnavailable)."""
    for key in ("anyOf", "type", "pattern"):
        schema.pop(key, None)
    schema["x-kubernetes-int-or-string"] = True
    schema["x-kubernetes-validations"] = [
        {
            "rule": f"type(self) == int ? self >= 1 : self.matches(r'{_MAX_IN_FLIGHT_PATTERN}')",
            "message": "maxInFlight must be a positive count or a percentage such as 10%",
        }
    ]


class Rollout(Model):
    """How remediation follows the rollout each fix causes (Deployments, StatefulSets, DaemonSets)."""

    guard: bool = Field(
        default=True,
        description=(
            "Remove exactly the fields a fix set when its new pods fail; a rolled-back fix is not "
            "re-applied until the pod template changes. Off: never undone; rollouts are followed "
            "(and reported) only where maxInFlight paces them."
        ),
    )
    deadline_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        description=(
            "How long a rollout may take. Past it: rolled back if the new pods are still not "
            "available, Unverified (never undone) if no controller made progress."
        ),
    )
    restart_threshold: int = Field(
        default=3, ge=1, le=100, description="Restarts of a new pod's container that count as failing."
    )
    waiting_reasons: list[str] = Field(
        default_factory=lambda: list(WAITING_REASONS),
        max_length=16,
        description="Container waiting reasons of a new pod that count as failing at once.",
        json_schema_extra={"items": {"type": "string", "maxLength": 128}, "x-kubernetes-list-type": "set"},
    )
    max_in_flight: int | str = Field(
        default=10,
        description=(
            "At most this many workloads (or this percentage of the workloads the baseline "
            "governs, at least 1) have a remediation rollout in progress; the rest wait in order."
        ),
        json_schema_extra=_int_or_string,
    )

    @field_validator("max_in_flight")
    @classmethod
    def _count_or_percent(cls, value: int | str) -> int | str:
        if isinstance(value, bool) or not re.fullmatch(_MAX_IN_FLIGHT_PATTERN, str(value)):
            raise ValueError("must be a positive count or a percentage such as 10%")
        return value

    def in_flight_limit(self, governed: int) -> int:
        """The limit as a count, for a baseline governing `governed` workloads."""
        value = self.max_in_flight
        if isinstance(value, str) and value.endswith("%"):
            return max(1, -(-governed * int(value[:-1]) // 100))
        return max(1, int(value))


class Remediation(Model):
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description=(
            "Governed namespaces whose labels match are remediated when mode is remediate; "
            "empty matches every governed namespace."
        ),
    )
    risk_classes: list[FixableRiskClass] = Field(
        default_factory=lambda: list[FixableRiskClass](["safe"]),
        description=(
            "Which fixes may be applied: safe (allowPrivilegeEscalation, seccomp) and/or guarded "
            "(runAsNonRoot, drop ALL, readOnlyRootFilesystem, ...). Manual findings are only reported."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    security_context: SecurityContextDefaults = Field(default_factory=SecurityContextDefaults)
    rollout: Rollout = Field(default_factory=Rollout)
