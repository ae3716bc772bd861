"""NetworkPolicy coverage: is a workload's pod selected by an ingress NetworkPolicy?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kube_baseline.engine.checks.pod import PodView, Violation, mapping


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Kubernetes label selector semantics on raw dicts; an empty selector matches everything.

    A malformed selector matches nothing.
    """
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or ():
        if not isinstance(req, dict):
            return False
        key = req.get("key")
        if not isinstance(key, str):
            return False
        op = req.get("operator")
        values = req.get("values") or ()
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


def governs_ingress(policy: Mapping[str, Any]) -> bool:
    """policyTypes absent means Ingress (plus Egress when egress rules are present)."""
    types = mapping(policy, "spec").get("policyTypes")
    if types is None:
        return True
    return isinstance(types, list) and "Ingress" in types


def covering_policy(pod_labels: Mapping[str, Any], namespace: str, policies: Sequence[Any]) -> str | None:
    """The name of the first ingress NetworkPolicy that selects these pod labels, if any."""
    for policy in policies:
        if not isinstance(policy, dict) or policy.get("kind", "NetworkPolicy") != "NetworkPolicy":
            continue
        meta = mapping(policy, "metadata")
        policy_ns = meta.get("namespace") or ""
        if policy_ns and namespace and policy_ns != namespace:
            continue
        if governs_ingress(policy) and selector_matches(
            mapping(policy, "spec").get("podSelector"), pod_labels
        ):
            return str(meta.get("name", ""))
    return None


def no_network_policy_selects(pod: PodView) -> Sequence[Violation]:
    policies = pod.network_policies
    if policies is None:
        return ()
    workload = pod.workload
    if covering_policy(workload.pod_labels, workload.namespace, policies) is not None:
        return ()
    namespace = workload.namespace or "default"
    return (
        (
            f'no NetworkPolicy in namespace "{namespace}" selects the pods of '
            f"{workload.kind} {workload.name!r} for ingress",
            ".".join((*workload.pod_path[:-1], "metadata", "labels"))
            if workload.kind != "Pod"
            else "metadata.labels",
            "manual",
            "",
        ),
    )
