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

One module per part:
- governance.py: `Baseline`, `NamespaceInfo`, governs / remediates / protects.
- workload.py: `decide_workload` and the predicates on a workload.
- network_policies.py: the desired NetworkPolicies and the actions to get there.
- namespace_labels.py: the namespace label patch and its record.

Namespace selectors are matched against the namespace's labels *without* the labels a baseline
added (`NamespaceInfo.selector_labels`), so a label the operator adds can never change whether
the operator adds it (no add/remove loop). Import from here: `from kube_baseline.engine.desired
import X`.
"""

from kube_baseline.engine.desired.governance import (
    ADDED_LABELS_ANNOTATION,
    BASELINE_LABEL,
    OVERLAP_RULE,
    Baseline,
    NamespaceInfo,
    build_baseline,
    build_namespace_info,
    governs,
    parse_added_labels,
    protects,
    remediates,
    why_not_governed,
)
from kube_baseline.engine.desired.namespace_labels import (
    PSA_PREFIX,
    build_namespace_patch,
    desired_namespace_labels,
)
from kube_baseline.engine.desired.network_policies import (
    DNS_PEER,
    DNS_PORTS,
    NetworkPolicyActions,
    build_network_policy,
    build_tier_network_policy,
    desired_network_policies,
    is_managed_network_policy,
    network_policy_name,
    owner_reference,
    plan_network_policies,
    tier_network_policy_name,
)
from kube_baseline.engine.desired.workload import (
    Decision,
    decide_workload,
    describe_changes,
    is_attributed_to_controller,
    is_patchable,
    is_remediated,
    merge_patches,
)

__all__ = [
    "ADDED_LABELS_ANNOTATION",
    "BASELINE_LABEL",
    "DNS_PEER",
    "DNS_PORTS",
    "OVERLAP_RULE",
    "PSA_PREFIX",
    "Baseline",
    "Decision",
    "NamespaceInfo",
    "NetworkPolicyActions",
    "build_baseline",
    "build_namespace_info",
    "build_namespace_patch",
    "build_network_policy",
    "build_tier_network_policy",
    "decide_workload",
    "describe_changes",
    "desired_namespace_labels",
    "desired_network_policies",
    "governs",
    "is_attributed_to_controller",
    "is_managed_network_policy",
    "is_patchable",
    "is_remediated",
    "merge_patches",
    "network_policy_name",
    "owner_reference",
    "parse_added_labels",
    "plan_network_policies",
    "protects",
    "remediates",
    "tier_network_policy_name",
    "why_not_governed",
]
