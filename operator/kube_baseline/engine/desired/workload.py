"""Pure: the decision for one workload: its audit under every governing baseline and the ONE
patch of every baseline that remediates its namespace (name order, each filling only what is
still absent, the first by name winning where two would set different values)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kube_baseline.engine.checks import Audit, audit
from kube_baseline.engine.desired.governance import Baseline, NamespaceInfo, remediates
from kube_baseline.engine.remediation import Change, apply_patch, merge, plan
from kube_baseline.engine.tiers import placement_patch, tier_of
from kube_baseline.engine.workloads import KINDS, Workload, controller_owner, workload_of


def is_attributed_to_controller(obj: Mapping[str, Any]) -> bool:
    """Owned by a workload controller (a Deployment's ReplicaSet, a Job's Pod): not evaluated alone."""
    owner = controller_owner(dict(obj))
    kind = KINDS.get(str(owner.get("kind"))) if owner is not None else None
    return kind is not None and kind.controller


def is_patchable(workload: Workload) -> bool:
    """Its pod template may be patched: a mutable template and no controller that would revert it."""
    return KINDS[workload.kind].patchable and controller_owner(workload.obj) is None


def is_remediated(obj: Mapping[str, Any], field_manager: str) -> bool:
    """The object's managedFields name our field manager: we have written to it."""
    managed = (obj.get("metadata") or {}).get("managedFields") or ()
    return any(isinstance(m, Mapping) and m.get("manager") == field_manager for m in managed)


@dataclass(frozen=True, slots=True)
class Decision:
    audits: Mapping[str, Audit]  # baseline name -> audit of the current object
    patch: dict[str, Any]  # {} when nothing is to be written
    # baseline name -> audit of the object once the patch is applied (`audits` when no patch)
    audits_after: Mapping[str, Audit]
    changes: tuple[Change, ...]
    remediated_by: tuple[str, ...]  # baselines whose fixes are in the patch


def merge_patches(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two strategic-merge patches into one (`remediation.merge`, keeping deletions)."""
    return merge(a, b, keep_nulls=True)


def decide_workload(
    workload: Workload,
    governing: Sequence[Baseline],
    ns: NamespaceInfo,
    *,
    network_policies: Sequence[Mapping[str, Any]],
    now: datetime | None,
    allow_writes: bool,
) -> Decision:
    """Audit under each governing baseline; plan one patch from the remediating ones (name order),
    and audit the patched object too, so acting on the decision needs no second call."""
    nps = [dict(p) for p in network_policies]
    tiers = {b.name: tier_of(b.spec.tiers, ns.selector_labels) if b.spec.tiers else None for b in governing}
    audits = {
        b.name: audit(
            workload, b.policy_for(tiers[b.name]), now=now, network_policies=nps, tier=tiers[b.name]
        )
        for b in governing
    }
    if not allow_writes or not is_patchable(workload):
        return Decision(audits=audits, patch={}, audits_after=audits, changes=(), remediated_by=())
    current = workload
    patch: dict[str, Any] = {}
    changes: list[Change] = []
    by: list[str] = []
    for baseline in sorted((b for b in governing if remediates(b, ns)), key=lambda b: b.name):
        found = (
            audits[baseline.name]
            if current is workload
            else audit(
                current,
                baseline.policy_for(tiers[baseline.name]),
                now=now,
                network_policies=nps,
                tier=tiers[baseline.name],
            )
        )
        step = plan(current, found.findings, baseline.spec.remediation, baseline.spec.labels)
        fill, fill_changes = placement_patch(
            current, tiers[baseline.name], found.findings, baseline.spec.remediation
        )
        step_patch = merge_patches(step.patch, fill)
        if not step_patch:
            continue
        patch = merge_patches(patch, step_patch)
        changes.extend((*step.changes, *fill_changes))
        by.append(baseline.name)
        patched = workload_of(apply_patch(current.obj, step_patch))
        if patched is None:  # cannot happen for a valid plan; stop rather than guess
            break
        current = patched
    if current is workload:
        after = audits
    else:
        after = {
            b.name: audit(
                current, b.policy_for(tiers[b.name]), now=now, network_policies=nps, tier=tiers[b.name]
            )
            for b in governing
        }
    return Decision(
        audits=audits, patch=patch, audits_after=after, changes=tuple(changes), remediated_by=tuple(by)
    )


def describe_changes(changes: Iterable[Change]) -> str:
    fields = sorted({c.field for c in changes})
    return ", ".join(fields)
