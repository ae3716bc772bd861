"""Conformance with Fairwinds Polaris's check fixtures (polaris/index.tsv).

For each Polaris security/resources/image check with an equivalent among ours: a `failure*`
file must give at least one finding of the mapped checks over its objects, a `success*` file
none. A `mutated*` file is Polaris's fix of the matching failure; where our remediation applies
(fill absent fields only) the fixed object must equal it. Deliberate differences are listed in
DIFFERENCES with the reason; any other disagreement fails the test, and so does a listed
difference that no longer occurs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import pytest
from conformance_support import Ours, Predicate, Tally, assert_agreement, documents, objects, shared_testdata

from kube_baseline.engine.checks import audit
from kube_baseline.engine.models import Finding, Labels, Remediation
from kube_baseline.engine.remediation import apply_patch, plan
from kube_baseline.engine.workloads import workload_of

POLARIS = shared_testdata() / "polaris"

pytestmark = pytest.mark.skipif(
    not (POLARIS / "index.tsv").is_file(), reason=f"third-party test data not found at {POLARIS}"
)


def _field_end(*suffixes: str) -> Predicate:
    def predicate(finding: Finding) -> bool:
        return finding.field.endswith(suffixes)

    return predicate


MAPPED: dict[str, Ours] = {
    "automountServiceAccountToken": Ours(("automountServiceAccountToken",)),
    "cpuLimitsMissing": Ours(("resourceLimits",), predicate=_field_end("limits.cpu")),
    "cpuRequestsMissing": Ours(("resourceRequests",), predicate=_field_end("requests.cpu")),
    "memoryLimitsMissing": Ours(("resourceLimits",), predicate=_field_end("limits.memory")),
    "memoryRequestsMissing": Ours(("resourceRequests",), predicate=_field_end("requests.memory")),
    "dangerousCapabilities": Ours(("capabilities_baseline",), "baseline"),
    "insecureCapabilities": Ours(("capabilities_restricted",), predicate=_field_end(".drop")),
    "hostIPCSet": Ours(("hostNamespaces",), "baseline", _field_end(".hostIPC")),
    "hostPIDSet": Ours(("hostNamespaces",), "baseline", _field_end(".hostPID")),
    "hostNetworkSet": Ours(("hostNamespaces",), "baseline", _field_end(".hostNetwork")),
    "hostPathSet": Ours(("hostPathVolumes",), "baseline"),
    "hostPortSet": Ours(("hostPorts",), "baseline"),
    "hostProcess": Ours(("windowsHostProcess",), "baseline"),
    "notReadOnlyRootFilesystem": Ours(("readOnlyRootFilesystem",)),
    "privilegeEscalationAllowed": Ours(("allowPrivilegeEscalation",)),
    "procMount": Ours(("procMount",), "baseline"),
    "runAsPrivileged": Ours(("privileged",), "baseline"),
    "runAsRootAllowed": Ours(("runAsNonRoot",)),
    "tagNotSpecified": Ours(("imagePinned",)),
    "missingNetworkPolicy": Ours(("networkPolicyCoverage",)),
}

# Deliberate differences: file path (relative to polaris/) -> why we disagree.
_NO_INVENTED_RESOURCES = (
    "Polaris fills placeholder resource values; we never invent requests or limits (manual: a "
    "LimitRange or the owner decides)"
)
_NEVER_OVERWRITE = "Polaris rewrites an explicit value; we never overwrite one (explicit = manual, reported)"
_DROP_ALL_LITERAL = (
    'PSA capabilities_restricted requires the literal "ALL" in capabilities.drop; dropping each '
    "default capability by name (or writing All) does not satisfy it"
)
_INGRESS_COVERAGE = (
    "networkPolicyCoverage asks whether an ingress NetworkPolicy selects the pod (a policy with no "
    "ingress rules is a default deny, which covers it); Polaris also requires egress in policyTypes "
    "and rules for both directions"
)
DIFFERENCES: dict[str, str] = {
    "test/checks/automountServiceAccountToken/success.serviceaccount.yaml": (
        "Polaris consults the ServiceAccount's automountServiceAccountToken; we require the pod spec "
        "to say false, so the workload is safe whichever ServiceAccount it runs as"
    ),
    "test/checks/insecureCapabilities/success.yaml": _DROP_ALL_LITERAL,
    "test/checks/insecureCapabilities/success.case.yaml": _DROP_ALL_LITERAL,
    "test/checks/insecureCapabilities/success.pod.yaml": _DROP_ALL_LITERAL,
    "test/checks/insecureCapabilities/success.all.yaml": _DROP_ALL_LITERAL,
    "test/checks/missingNetworkPolicy/failure.netpol_missing_egress_in_policytypes.yaml": _INGRESS_COVERAGE,
    "test/checks/missingNetworkPolicy/failure.netpol_missing_egress_rules.yaml": _INGRESS_COVERAGE,
    "test/checks/missingNetworkPolicy/failure.netpol_missing_ingress_rules.yaml": _INGRESS_COVERAGE,
    "test/checks/cpuLimitsMissing/mutated.yaml": _NO_INVENTED_RESOURCES,
    "test/checks/cpuRequestsMissing/mutated.yaml": _NO_INVENTED_RESOURCES,
    "test/checks/memoryLimitsMissing/mutated.yaml": _NO_INVENTED_RESOURCES,
    "test/checks/memoryLimitsMissing/mutated.cpu.yaml": _NO_INVENTED_RESOURCES,
    "test/checks/memoryRequestsMissing/mutated.yaml": _NO_INVENTED_RESOURCES,
    "test/checks/dangerousCapabilities/mutated.yaml": _NEVER_OVERWRITE + " (removes an added capability)",
    "test/checks/hostIPCSet/mutated.yaml": _NEVER_OVERWRITE + " (removes hostIPC: true)",
    "test/checks/hostNetworkSet/mutated.yaml": _NEVER_OVERWRITE + " (removes hostNetwork: true)",
    "test/checks/hostPIDSet/mutated.yaml": _NEVER_OVERWRITE + " (removes hostPID: true)",
    "test/checks/hostPortSet/mutated.yaml": _NEVER_OVERWRITE + " (removes a hostPort)",
    "test/checks/insecureCapabilities/mutated.add.yaml": _NEVER_OVERWRITE + " (replaces capabilities.add)",
    "test/checks/insecureCapabilities/mutated.drop-most.yaml": _NEVER_OVERWRITE
    + " (replaces capabilities.drop)",
    "test/checks/runAsRootAllowed/mutated.yaml": _NEVER_OVERWRITE + " (runAsNonRoot: false -> true)",
}

FIX_ALL = Remediation(risk_classes=["safe", "guarded"])


def rows() -> Iterator[dict[str, str]]:
    with (POLARIS / "index.tsv").open(newline="") as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def _verdict(ours: Ours, path: str) -> bool | None:
    objs = objects(POLARIS / path)
    policies = [o for o in objs if o.get("kind") == "NetworkPolicy"]
    verdicts = [ours.fails(o, policies if "networkPolicyCoverage" in ours.checks else None) for o in objs]
    known = [v for v in verdicts if v is not None]
    return any(known) if known else None


def _fixed(ours: Ours, path: str) -> list[Any]:
    """The failure file's objects after our remediation of the mapped checks' findings."""
    out = []
    for obj in objects(POLARIS / path):
        wl = workload_of(obj)
        if wl is None:
            out.append(obj)
            continue
        findings = [
            f for f in audit(wl, ours.policy()).findings if f.check in ours.checks and ours.predicate(f)
        ]
        out.append(apply_patch(obj, plan(wl, findings, FIX_ALL, Labels()).patch))
    return out


def compare() -> tuple[Tally, dict[str, str]]:
    tally = Tally("polaris")
    disagreements: dict[str, str] = {}
    for row in rows():
        ours = MAPPED.get(row["check"])
        if row["suite"] != "check" or ours is None:
            continue
        path, expected = row["path"], row["expected"]
        if expected in ("pass", "fail"):
            verdict = _verdict(ours, path)
            if verdict is None:
                tally.skipped += 1
                continue
            agree = verdict == (expected == "fail")
            tally.add(f"{row['check']} (verdicts)", agree)
            if not agree:
                disagreements[path] = f"polaris {expected}, ours {'fail' if verdict else 'pass'}"
        elif expected == "mutated":
            wanted = [
                o for doc in documents(POLARIS / path) for o in ([doc] if isinstance(doc, dict) else [])
            ]
            agree = _fixed(ours, row["mutation_source"]) == wanted
            tally.add(f"{row['check']} (mutated)", agree)
            if not agree:
                disagreements[path] = "our remediation gives a different object"
        else:
            tally.skipped += 1
    return tally, disagreements


# Measured: 69/90 (76.7%); every disagreement is one of DIFFERENCES.
AGREEMENT_FLOOR = 0.76


def test_polaris_agreement() -> None:
    tally, disagreements = compare()
    assert_agreement(tally, disagreements, DIFFERENCES, floor=AGREEMENT_FLOOR, minimum=50)
