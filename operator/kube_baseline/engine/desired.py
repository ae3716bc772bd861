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
    FIELD_MANAGER,
    GROUP,
    KIND,
    MANAGED_BY_LABEL,
    SYSTEM_NAMESPACES,
    SecurityBaselineSpec,
    Tier,
    parse_spec,
)
from kube_baseline.engine.remediation import Change, apply_patch, merge, plan
from kube_baseline.engine.tiers import (
    egress_peers,
    ingress_peers,
    placement_patch,
    tier_namespace_labels,
    tier_of,
    tier_policies,
)
from kube_baseline.engine.workloads import KINDS, Workload, controller_owner, workload_of

BASELINE_LABEL = f"{GROUP}/baseline"
ADDED_LABELS_ANNOTATION = f"{GROUP}/added-labels"
PSA_PREFIX = "pod-security.kubernetes.io/"
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
    tier_policies: Mapping[str, Policy] = field(default_factory=dict)  # tier -> its profile's policy

    def policy_for(self, tier: Tier | None) -> Policy:
        """The policy for a workload of `tier` (None: of no tier)."""
        return self.tier_policies.get(tier.name, self.policy) if tier is not None else self.policy


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
        tier_policies=tier_policies(spec),
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


def tier_network_policy_name(baseline_name: str, tier_name: str) -> str:
    return network_policy_name(f"{baseline_name}-tier-{tier_name}")


def build_tier_network_policy(baseline: Baseline, namespace: str, tier_name: str) -> dict[str, Any]:
    """The NetworkPolicy of a tier for one of its namespaces: ingress only from the tier's own
    namespaces (and the tiers it allows), and with defaultDenyEgress, egress only to DNS and
    the tier's own namespaces (and the tiers that accept it)."""
    tiers = baseline.spec.tiers
    tier = next(t for t in tiers if t.name == tier_name)
    cfg = tier.network
    assert cfg is not None, "only tiers with a network rule have a NetworkPolicy"
    spec: dict[str, Any] = {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": ingress_peers(tier, tiers)}],
    }
    if cfg.default_deny_egress:
        spec["policyTypes"].append("Egress")
        dns = [{"to": [DNS_PEER], "ports": DNS_PORTS}] if cfg.allow_dns_egress else []
        spec["egress"] = [*dns, {"to": egress_peers(tier, tiers)}]
    body = build_network_policy(baseline, namespace)
    body["metadata"]["name"] = tier_network_policy_name(baseline.name, tier.name)
    body["spec"] = spec
    return body


def desired_network_policies(ns: NamespaceInfo, baselines: Sequence[Baseline]) -> list[dict[str, Any]]:
    """Every managed NetworkPolicy the namespace should have: each protecting baseline's, and the
    policy of the namespace's tier under each remediating baseline whose tier has a network rule."""
    desired = [build_network_policy(b, ns.name) for b in baselines if protects(b, ns)]
    for b in baselines:
        tier = tier_of(b.spec.tiers, ns.selector_labels) if b.spec.tiers else None
        if tier is not None and tier.network is not None and remediates(b, ns):
            desired.append(build_tier_network_policy(b, ns.name, tier.name))
    return desired


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
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, BASELINE_LABEL: baseline.name},
            "ownerReferences": [owner_reference(baseline)],
        },
        "spec": spec,
    }


def is_managed_network_policy(policy: Mapping[str, Any]) -> bool:
    labels = (policy.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == FIELD_MANAGER and BASELINE_LABEL in labels


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


def desired_namespace_labels(baseline: Baseline, ns: NamespaceInfo | None = None) -> dict[str, str]:
    """The labels the baseline adds to a namespace where absent (the level of the namespace's
    tier, when it has one, wins over spec.labels.podSecurity.enforce)."""
    labels = dict(baseline.spec.labels.namespace_defaults)
    psa = baseline.spec.labels.pod_security
    for mode in ("enforce", "audit", "warn"):
        level = getattr(psa, mode)
        if level:
            labels[f"{PSA_PREFIX}{mode}"] = level
    if ns is not None and baseline.spec.tiers:
        labels.update(tier_namespace_labels(tier_of(baseline.spec.tiers, ns.selector_labels)))
    return labels


def build_namespace_patch(ns: NamespaceInfo, labelling: Sequence[Baseline]) -> dict[str, Any] | None:
    """A JSON merge patch for the namespace's labels and our record of them, or None if nothing changes.

    `labelling` are the baselines that remediate this namespace. Labels a baseline added that it no
    longer wants (or that belong to a baseline no longer labelling the namespace, e.g. deleted) are
    removed, but only while they still hold the value we set. Then absent keys are added.
    """
    labels = dict(ns.labels)
    wants = {b.name: desired_namespace_labels(b, ns) for b in sorted(labelling, key=lambda b: b.name)}
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
