"""Pure: what the cluster should look like under the baselines, as data.

- Which baselines govern, remediate and protect (NetworkPolicies) a namespace.
- The one patch a workload needs under every baseline that remediates its namespace.
- The NetworkPolicies a namespace needs, and the create/replace/delete actions to get there.
- The namespace labels to add or remove, recorded in an annotation so a baseline's deletion
  removes exactly the labels it added.

Overlapping baselines (the rule, also stated in the status message):
- Auditing: each baseline reports on its own, with its own profile, checks and exemptions.
- Remediation: the remediating baselines are applied in name order to the same object, each
  filling only what is still absent, and the result is sent as ONE patch: the union of their
  fixes, the first baseline by name winning where two would set different values. Nothing
  explicit is ever overwritten, so the union is never less safe than either baseline alone.
- NetworkPolicies: each baseline owns its own policy per namespace; Kubernetes NetworkPolicies
  are additive, so the allowed traffic is the union of what the policies allow.
- Namespace labels: only absent keys are added; the first baseline by name to add a key owns it.

Namespace selectors are matched against the namespace's labels *without* the labels a baseline
added (`NamespaceInfo.selector_labels`), so a label the operator adds can never change whether
the operator adds it (no add/remove loop).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kube_baseline.engine.checks import Audit, Policy, audit, policy_from_spec
from kube_baseline.engine.models import (
    API_VERSION,
    KIND,
    MANAGED_BY_LABEL,
    SYSTEM_NAMESPACES,
    SecurityBaselineSpec,
    parse_spec,
)
from kube_baseline.engine.remediation import Change, apply_patch, plan
from kube_baseline.engine.workloads import Workload, controller_owner, workload_of

FIELD_PREFIX = "kube-baseline.io"
BASELINE_LABEL = f"{FIELD_PREFIX}/baseline"
ADDED_LABELS_ANNOTATION = f"{FIELD_PREFIX}/added-labels"
PSA_PREFIX = "pod-security.kubernetes.io/"
MANAGED_BY = "kube-baseline"
# Kinds whose pod template can be patched (Pods and Jobs have immutable pod specs).
PATCHABLE_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "CronJob"}
)
# Workload kinds that, as a controller, own other workloads (their dependents are attributed to them).
CONTROLLER_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"}
)
OVERLAP_RULE = (
    "each baseline reports on its own; remediation applies every remediating baseline in name order "
    "in one patch, the first by name winning where values differ"
)


# --- baselines and namespaces ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    uid: str
    generation: int
    spec: SecurityBaselineSpec
    policy: Policy


def build_baseline(body: Mapping[str, Any]) -> Baseline:
    """Parse a SecurityBaseline object. Raises pydantic.ValidationError on an invalid spec."""
    meta = body.get("metadata") or {}
    spec = parse_spec(dict(body.get("spec") or {}))
    return Baseline(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        policy=policy_from_spec(spec),
    )


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    name: str
    labels: Mapping[str, str]
    # baseline name -> {label key: value} that baseline added (from ADDED_LABELS_ANNOTATION).
    added: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    resource_version: str = ""

    @property
    def selector_labels(self) -> dict[str, str]:
        """The labels selectors see: without the ones a baseline added (and that still hold its value)."""
        ours = {k for kv in self.added.values() for k, v in kv.items() if self.labels.get(k) == v}
        return {k: v for k, v in self.labels.items() if k not in ours}


def parse_added_labels(annotations: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    raw = (annotations or {}).get(ADDED_LABELS_ANNOTATION)
    if not isinstance(raw, str):
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(b): {str(k): str(v) for k, v in kv.items()} for b, kv in data.items() if isinstance(kv, dict)}


def build_namespace_info(body: Mapping[str, Any]) -> NamespaceInfo:
    meta = body.get("metadata") or {}
    return NamespaceInfo(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        added=parse_added_labels(meta.get("annotations")),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def why_not_governed(baseline: Baseline, ns: NamespaceInfo) -> str:
    """ "" when the baseline governs the namespace, else why not (a sentence naming it)."""
    selection = baseline.spec.namespaces
    if ns.name in SYSTEM_NAMESPACES:
        return f"namespace {ns.name} is a system namespace"
    if ns.name in selection.exclude:
        return f"namespace {ns.name} is excluded by the baseline"
    if not selection.selector.matches(ns.selector_labels):
        return f"namespace {ns.name} does not match the baseline's namespace selector"
    return ""


def governs(baseline: Baseline, ns: NamespaceInfo) -> bool:
    return not why_not_governed(baseline, ns)


def remediates(baseline: Baseline, ns: NamespaceInfo) -> bool:
    """Fixes workloads and adds namespace labels here (mode remediate and remediation selector)."""
    return (
        baseline.spec.mode == "remediate"
        and governs(baseline, ns)
        and baseline.spec.remediation.namespace_selector.matches(ns.selector_labels)
    )


def protects(baseline: Baseline, ns: NamespaceInfo) -> bool:
    """Creates its NetworkPolicy here."""
    nps = baseline.spec.network_policies
    return (
        baseline.spec.mode == "remediate"
        and nps.enabled
        and governs(baseline, ns)
        and nps.namespace_selector.matches(ns.selector_labels)
    )


# --- workloads ----------------------------------------------------------------------------------


def is_attributed_to_controller(obj: Mapping[str, Any]) -> bool:
    """Owned by a workload controller (a Deployment's ReplicaSet, a Job's Pod): not evaluated alone."""
    owner = controller_owner(dict(obj))
    return owner is not None and owner.get("kind") in CONTROLLER_KINDS


def is_patchable(workload: Workload) -> bool:
    """Its pod template may be patched: a mutable template and no controller that would revert it."""
    return workload.kind in PATCHABLE_KINDS and controller_owner(workload.obj) is None


def is_remediated(obj: Mapping[str, Any], field_manager: str) -> bool:
    """The object's managedFields name our field manager: we have written to it."""
    managed = (obj.get("metadata") or {}).get("managedFields") or ()
    return any(isinstance(m, Mapping) and m.get("manager") == field_manager for m in managed)


@dataclass(frozen=True, slots=True)
class Decision:
    audits: Mapping[str, Audit]  # baseline name -> audit of the current object
    patch: dict[str, Any]  # {} when nothing is to be written
    changes: tuple[Change, ...]
    remediated_by: tuple[str, ...]  # baselines whose fixes are in the patch


def merge_patches(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two strategic-merge patches (maps recursively, lists of named maps by name)."""
    out: dict[str, Any] = dict(a)
    for key, value in b.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge_patches(old, value)
        elif isinstance(old, list) and isinstance(value, list) and _named_list(old) and _named_list(value):
            merged = {item["name"]: item for item in old}
            for item in value:
                prev = merged.get(item["name"])
                merged[item["name"]] = merge_patches(prev, item) if prev is not None else item
            out[key] = list(merged.values())
        else:
            out[key] = value
    return out


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, Mapping) and "name" in i for i in value)


def decide_workload(
    workload: Workload,
    governing: Sequence[Baseline],
    ns: NamespaceInfo,
    *,
    network_policies: Sequence[Mapping[str, Any]],
    now: datetime | None,
    allow_writes: bool,
) -> Decision:
    """Audit under each governing baseline; plan one patch from the remediating ones (name order)."""
    nps = [dict(p) for p in network_policies]
    audits = {b.name: audit(workload, b.policy, now=now, network_policies=nps) for b in governing}
    if not allow_writes or not is_patchable(workload):
        return Decision(audits=audits, patch={}, changes=(), remediated_by=())
    current = workload
    patch: dict[str, Any] = {}
    changes: list[Change] = []
    by: list[str] = []
    for baseline in sorted((b for b in governing if remediates(b, ns)), key=lambda b: b.name):
        found = (
            audits[baseline.name]
            if current is workload
            else audit(current, baseline.policy, now=now, network_policies=nps)
        )
        step = plan(current, found.findings, baseline.spec.remediation, baseline.spec.labels)
        if not step.patch:
            continue
        patch = merge_patches(patch, step.patch)
        changes.extend(step.changes)
        by.append(baseline.name)
        patched = workload_of(apply_patch(current.obj, step.patch))
        if patched is None:  # cannot happen for a valid plan; stop rather than guess
            break
        current = patched
    return Decision(audits=audits, patch=patch, changes=tuple(changes), remediated_by=tuple(by))


def describe_changes(changes: Iterable[Change]) -> str:
    fields = sorted({c.field for c in changes})
    return ", ".join(fields)


# --- NetworkPolicies ------------------------------------------------------------------------


def network_policy_name(baseline_name: str) -> str:
    name = f"kube-baseline-{baseline_name}"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(baseline_name.encode()).hexdigest()[:10]
    return f"{name[:242]}-{digest}"


def owner_reference(baseline: Baseline) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": baseline.name,
        "uid": baseline.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def build_network_policy(baseline: Baseline, namespace: str) -> dict[str, Any]:
    """The baseline's NetworkPolicy for a namespace (one object: deny, plus the allowed exceptions)."""
    cfg = baseline.spec.network_policies
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": []}
    if cfg.default_deny_ingress:
        spec["policyTypes"].append("Ingress")
        if cfg.allow_same_namespace:  # no rule = deny all (an empty list is dropped by the server)
            spec["ingress"] = [{"from": [{"podSelector": {}}]}]
    if cfg.default_deny_egress:
        spec["policyTypes"].append("Egress")
        egress: list[dict[str, Any]] = []
        if cfg.allow_dns_egress:
            egress.append({"to": [DNS_PEER], "ports": DNS_PORTS})
        if cfg.allow_same_namespace:
            egress.append({"to": [{"podSelector": {}}]})
        if egress:
            spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(baseline.name),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, BASELINE_LABEL: baseline.name},
            "ownerReferences": [owner_reference(baseline)],
        },
        "spec": spec,
    }


def is_managed_network_policy(policy: Mapping[str, Any]) -> bool:
    labels = (policy.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and BASELINE_LABEL in labels


@dataclass(frozen=True, slots=True)
class NetworkPolicyActions:
    create: tuple[dict[str, Any], ...] = ()
    replace: tuple[dict[str, Any], ...] = ()  # desired bodies; the caller adds the resourceVersion
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.replace or self.delete)


def _differs(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    meta, want = existing.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return True
    owners = {(r.get("uid"), r.get("controller")) for r in meta.get("ownerReferences") or ()}
    if (want["ownerReferences"][0]["uid"], True) not in owners:
        return True
    return bool(existing.get("spec") != desired["spec"])


def plan_network_policies(
    desired: Sequence[Mapping[str, Any]], existing: Iterable[Mapping[str, Any]]
) -> NetworkPolicyActions:
    """Actions turning the managed NetworkPolicies of one namespace into `desired`.

    Policies without our managed-by and baseline labels are never touched.
    """
    managed = {p["metadata"]["name"]: p for p in existing if is_managed_network_policy(p)}
    wanted = {p["metadata"]["name"]: p for p in desired}
    create = tuple(dict(p) for name, p in sorted(wanted.items()) if name not in managed)
    replace = tuple(
        dict(p) for name, p in sorted(wanted.items()) if name in managed and _differs(managed[name], p)
    )
    delete = tuple(sorted(name for name in managed if name not in wanted))
    return NetworkPolicyActions(create=create, replace=replace, delete=delete)


# --- namespace labels -----------------------------------------------------------------------


def desired_namespace_labels(baseline: Baseline) -> dict[str, str]:
    labels = dict(baseline.spec.labels.namespace_defaults)
    psa = baseline.spec.labels.pod_security
    for mode in ("enforce", "audit", "warn"):
        level = getattr(psa, mode)
        if level:
            labels[f"{PSA_PREFIX}{mode}"] = level
    return labels


def build_namespace_patch(ns: NamespaceInfo, labelling: Sequence[Baseline]) -> dict[str, Any] | None:
    """A JSON merge patch for the namespace's labels and our record of them, or None if nothing changes.

    `labelling` are the baselines that remediate this namespace. Labels a baseline added that it no
    longer wants (or that belong to a baseline no longer labelling the namespace, e.g. deleted) are
    removed, but only while they still hold the value we set. Then absent keys are added.
    """
    labels = dict(ns.labels)
    wants = {b.name: desired_namespace_labels(b) for b in sorted(labelling, key=lambda b: b.name)}
    kept: dict[str, dict[str, str]] = {}
    for owner, added in ns.added.items():
        for key, value in added.items():
            if labels.get(key) != value:
                continue  # someone changed or removed it: no longer ours
            if wants.get(owner, {}).get(key) == value:
                kept.setdefault(owner, {})[key] = value
            else:
                del labels[key]
    for owner, desired in wants.items():
        for key, value in desired.items():
            if key not in labels:
                labels[key] = value
                kept.setdefault(owner, {})[key] = value
    label_patch: dict[str, Any] = {k: v for k, v in labels.items() if ns.labels.get(k) != v}
    label_patch.update({k: None for k in ns.labels if k not in labels})
    record = json.dumps(kept, sort_keys=True, separators=(",", ":")) if kept else None
    old_record = json.dumps(ns.added, sort_keys=True, separators=(",", ":")) if ns.added else None
    meta: dict[str, Any] = {}
    if label_patch:
        meta["labels"] = label_patch
    if record != old_record:
        meta["annotations"] = {ADDED_LABELS_ANNOTATION: record}
    return {"metadata": meta} if meta else None
