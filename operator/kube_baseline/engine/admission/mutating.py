"""A SecurityBaseline -> MutatingAdmissionPolicies and bindings (pure): on CREATE of a workload
or a bare Pod in a remediating namespace, fill the absent safe-class fields exactly as
remediation would (engine.remediation: same values, never overwrite), so a new workload is born
compliant and the operator writes nothing to it.

- Only CREATE: mutating Pods on UPDATE makes existing Pods un-updatable, and a template mutated
  on every update would fight GitOps diffs.
- Only safe-class fields: allowPrivilegeEscalation=false per container (not where the API
  server would refuse it: privileged or SYS_ADMIN), a pod-level seccompProfile (the baseline's
  remediation.securityContext) when neither the pod nor some container has one, and required
  labels that have a default in labels.workloadDefaults. Never guarded fields (runAsNonRoot
  needs the image's user, which an admission policy cannot see).
- JSONPatch `add` only, guarded by "absent", so applying twice equals applying once.
- failurePolicy Ignore: a broken mutation never blocks a write (the validating policy and the
  operator still judge the object).
"""

from __future__ import annotations

from typing import Any, Final

from kube_baseline.engine.admission.cel import lit
from kube_baseline.engine.admission.validating import (
    GROUPS,
    NOT_CONTROLLED,
    Group,
    binding_selector,
    metadata_for,
    object_name,
)
from kube_baseline.engine.checks import policy_from_spec
from kube_baseline.engine.models import SecurityBaselineSpec

__all__ = ["MAP_API_VERSION", "mutation_blocked_by", "render_mutation"]

MAP_API_VERSION: Final = "admissionregistration.k8s.io/v1beta1"
_ESCALATION_CAPS: Final = lit(("SYS_ADMIN", "CAP_SYS_ADMIN"))


def mutation_blocked_by(spec: SecurityBaselineSpec) -> str:
    """Why no mutation is generated although spec.admission.mutation is Safe ('' if it is)."""
    if spec.mode != "remediate":
        return "mutation needs mode remediate (it fills what remediation would)"
    if "safe" not in spec.remediation.risk_classes:
        return "mutation needs the safe risk class in remediation.riskClasses"
    return ""


def _pointer(dotted: str) -> str:
    return "/" + dotted.replace(".", "/")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _patches(group: Group, spec: SecurityBaselineSpec) -> str:
    policy = policy_from_spec(spec)
    enabled = policy.enabled
    s = "variables.spec"
    base = _pointer(group.spec_path)
    parts: list[str] = []
    linux = f"{s}.?os.?name.orValue('') != 'windows'"
    if "allowPrivilegeEscalation" in enabled:
        for name in ("initContainers", "containers"):
            absent = (
                "!c.?securityContext.?allowPrivilegeEscalation.hasValue() && "
                "!c.?securityContext.?privileged.orValue(false) && "
                f"!c.?securityContext.?capabilities.?add.orValue([]).exists(a, a in {_ESCALATION_CAPS})"
            )
            at = f"{lit(base + '/' + name + '/')} + string(i) + '/securityContext'"
            op = (
                f"has(c.securityContext) ? JSONPatch{{op: 'add', path: {at} + '/allowPrivilegeEscalation', "
                f"value: false}} : JSONPatch{{op: 'add', path: {at}, "
                "value: {'allowPrivilegeEscalation': false}}"
            )
            parts.append(f"({linux} ? {s}.?{name}.orValue([]).transformList(i, c, {absent}, {op}) : [])")
    if "seccompProfile_restricted" in enabled:
        settings = spec.remediation.security_context
        profile = f"{{'type': {lit(settings.seccomp_profile)}"
        if settings.seccomp_profile == "Localhost":
            profile += f", 'localhostProfile': {lit(settings.localhost_profile)}"
        profile += "}"
        lists = f"({s}.?initContainers.orValue([]) + {s}.containers)"
        needed = (
            f"{linux} && !{s}.?securityContext.?seccompProfile.hasValue() && "
            f"{lists}.exists(c, !c.?securityContext.?seccompProfile.hasValue())"
        )
        at = lit(base + "/securityContext")
        op = (
            f"has({s}.securityContext) ? "
            f"[JSONPatch{{op: 'add', path: {at} + '/seccompProfile', value: {profile}}}] : "
            f"[JSONPatch{{op: 'add', path: {at}, value: {{'seccompProfile': {profile}}}}}]"
        )
        parts.append(f"({needed} ? ({op}) : [])")
    defaults = {k: v for k, v in spec.labels.workload_defaults.items() if k in policy.required_labels}
    if "requiredLabels" in enabled and defaults:
        whole = "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in sorted(defaults.items())) + "}"
        each = " + ".join(
            f"({lit(k)} in object.metadata.labels ? [] : [JSONPatch{{op: 'add', "
            f"path: {lit('/metadata/labels/' + _escape(k))}, value: {lit(v)}}}])"
            for k, v in sorted(defaults.items())
        )
        parts.append(
            f"(has(object.metadata.labels) ? ({each}) : "
            f"[JSONPatch{{op: 'add', path: '/metadata/labels', value: {whole}}}])"
        )
    return " + ".join(parts) if parts else "[]"


def render_mutation(baseline: str, uid: str, spec: SecurityBaselineSpec) -> tuple[dict[str, Any], ...]:
    """The MutatingAdmissionPolicies and bindings for mutation Safe (() when Off or blocked),
    bound to the governed namespaces that remediation also selects."""
    if spec.admission.mutation != "Safe" or mutation_blocked_by(spec):
        return ()
    selector = binding_selector(spec, spec.remediation.namespace_selector)
    objects: list[dict[str, Any]] = []
    for group in GROUPS:
        name = object_name(baseline, f"mutate-{group.name}")
        rules = [
            {"apiGroups": [g], "apiVersions": [v], "resources": [r for r in resources if "/" not in r],
             "operations": ["CREATE"]}
            for g, v, resources in group.rules
        ]  # fmt: skip
        objects.append(
            {
                "apiVersion": MAP_API_VERSION,
                "kind": "MutatingAdmissionPolicy",
                "metadata": metadata_for(baseline, uid, name),
                "spec": {
                    "failurePolicy": "Ignore",
                    "reinvocationPolicy": "Never",
                    "matchConstraints": {"resourceRules": rules},
                    "matchConditions": [{"name": "not-controlled", "expression": NOT_CONTROLLED}],
                    "variables": [{"name": "spec", "expression": f"object.{group.spec_path}"}],
                    "mutations": [
                        {"patchType": "JSONPatch", "jsonPatch": {"expression": _patches(group, spec)}}
                    ],
                },
            }
        )
        objects.append(
            {
                "apiVersion": MAP_API_VERSION,
                "kind": "MutatingAdmissionPolicyBinding",
                "metadata": metadata_for(baseline, uid, name),
                "spec": {"policyName": name, "matchResources": {"namespaceSelector": selector}},
            }
        )
    return tuple(objects)
