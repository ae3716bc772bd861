"""The status subresource of a SecurityBaseline: conditions, counts, shared nodes, rollouts."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from kube_baseline.engine.models.base import Model


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int = 0


class Summary(Model):
    namespaces: int = 0
    workloads: int = 0
    compliant: int = 0
    drifted: int = 0
    remediated: int = 0
    exempt: int = 0


class DriftedWorkload(Model):
    namespace: str
    kind: str
    name: str
    findings: int
    checks: list[str] = Field(default_factory=list)


class SharedNode(Model):
    name: str
    tiers: list[str] = Field(default_factory=list)


class TierStatus(Model):
    """Co-tenancy (check tierCoTenancy): nodes that run pods of more than one tier."""

    nodes: int = Field(default=0, description="Nodes running pods of the baseline's tiers.")
    shared_nodes: int = Field(default=0, description="Of those, nodes running pods of two tiers or more.")
    shared: list[SharedNode] = Field(default_factory=list, max_length=20)


class RolledBackWorkload(Model):
    namespace: str
    kind: str
    name: str
    reason: str = Field(description="The signal that failed the rollout.")
    fields: list[str] = Field(default_factory=list, description="The fields the undo removed.")


class Rollouts(Model):
    """Remediation rollouts of this baseline's fixes (see spec.remediation.rollout)."""

    in_flight: int = 0
    waiting: int = 0
    succeeded: int = 0
    unverified: int = 0
    rolled_back: int = 0
    rolled_back_workloads: list[RolledBackWorkload] = Field(default_factory=list, max_length=20)


class SecurityBaselineStatus(Model):
    model_config = ConfigDict(extra="ignore")

    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    most_drifted: list[DriftedWorkload] = Field(default_factory=list, max_length=20)
    tiers: TierStatus | None = None
    rollouts: Rollouts = Field(default_factory=Rollouts)
