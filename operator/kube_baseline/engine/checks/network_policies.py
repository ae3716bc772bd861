"""NetworkPolicy coverage: is a workload's pod selected by an ingress NetworkPolicy?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kube_baseline.engine.checks.pod import PodView, Violation, mapping
from kube_baseline.engine.models import selector_matches


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
