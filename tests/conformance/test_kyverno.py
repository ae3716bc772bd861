"""Conformance with the Kyverno policy library's CLI test verdicts (kyverno/index.tsv).

Each validate row whose policy has an equivalent among our checks is compared: Kyverno `fail`
must be at least one finding of the mapped checks, `pass` none. `skip` rows (rule not applicable)
are not compared. Deliberate differences are listed in DIFFERENCES with the reason; the test
fails on any other disagreement, and on a listed difference that no longer occurs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from conformance_support import Ours, Predicate, Tally, assert_agreement, objects, shared_testdata

from kube_baseline.engine.models import PSS_BASELINE_CHECKS, PSS_RESTRICTED_CHECKS, Finding

KYVERNO = shared_testdata() / "kyverno"

pytestmark = pytest.mark.skipif(
    not (KYVERNO / "index.tsv").is_file(), reason=f"third-party test data not found at {KYVERNO}"
)


def _field_end(*suffixes: str) -> Predicate:
    def predicate(finding: Finding) -> bool:
        return finding.field.endswith(suffixes)

    return predicate


def _message_has(*words: str) -> Predicate:
    def predicate(finding: Finding) -> bool:
        return any(word in finding.message for word in words)

    return predicate


BASELINE_PSS = PSS_BASELINE_CHECKS
RESTRICTED_PSS = PSS_BASELINE_CHECKS + PSS_RESTRICTED_CHECKS

# (policy, rule) -> our equivalent. Rule "" = the policy as a whole (ValidatingPolicy rows).
MAPPED: dict[tuple[str, str], Ours] = {
    ("disallow-capabilities", "adding-capabilities"): Ours(("capabilities_baseline",), "baseline"),
    ("disallow-capabilities", ""): Ours(("capabilities_baseline",), "baseline"),
    ("disallow-host-namespaces", "host-namespaces"): Ours(("hostNamespaces",), "baseline"),
    ("disallow-host-namespaces", ""): Ours(("hostNamespaces",), "baseline"),
    ("disallow-host-path", "host-path"): Ours(("hostPathVolumes",), "baseline"),
    ("disallow-host-path", ""): Ours(("hostPathVolumes",), "baseline"),
    ("disallow-host-ports", "host-ports-none"): Ours(("hostPorts",), "baseline"),
    ("disallow-host-ports", ""): Ours(("hostPorts",), "baseline"),
    ("disallow-host-process", "host-process-containers"): Ours(("windowsHostProcess",), "baseline"),
    ("disallow-host-process", ""): Ours(("windowsHostProcess",), "baseline"),
    ("disallow-privileged-containers", "privileged-containers"): Ours(("privileged",), "baseline"),
    ("disallow-privileged-containers", ""): Ours(("privileged",), "baseline"),
    ("disallow-proc-mount", "check-proc-mount"): Ours(("procMount",), "baseline"),
    ("disallow-proc-mount", ""): Ours(("procMount",), "baseline"),
    ("disallow-selinux", "selinux-type"): Ours(("seLinuxOptions",), "baseline", _message_has("type")),
    ("disallow-selinux", "selinux-user-role"): Ours(
        ("seLinuxOptions",), "baseline", _message_has("user may not", "role may not")
    ),
    ("disallow-selinux", ""): Ours(("seLinuxOptions",), "baseline"),
    ("restrict-apparmor-profiles", "app-armor"): Ours(("appArmorProfile",), "baseline"),
    ("restrict-apparmor-profiles", ""): Ours(("appArmorProfile",), "baseline"),
    ("restrict-seccomp", "check-seccomp"): Ours(("seccompProfile_baseline",), "baseline"),
    ("restrict-seccomp", ""): Ours(("seccompProfile_baseline",), "baseline"),
    ("restrict-sysctls", "check-sysctls"): Ours(("sysctls",), "baseline"),
    ("restrict-sysctls", ""): Ours(("sysctls",), "baseline"),
    ("podsecurity-subrule-baseline", "baseline"): Ours(BASELINE_PSS, "baseline"),
    ("podsecurity-subrule-restricted", "restricted"): Ours(RESTRICTED_PSS),
    ("disallow-capabilities-strict", "adding-capabilities-strict"): Ours(
        ("capabilities_restricted",), predicate=_field_end(".add")
    ),
    ("adding-capabilities-strict", ""): Ours(("capabilities_restricted",), predicate=_field_end(".add")),
    ("disallow-capabilities-strict", "require-drop-all"): Ours(
        ("capabilities_restricted",), predicate=_field_end(".drop")
    ),
    ("disallow-capabilities-strict", ""): Ours(("capabilities_restricted",), predicate=_field_end(".drop")),
    ("drop-all-capabilities", "require-drop-all"): Ours(
        ("capabilities_restricted",), predicate=_field_end(".drop")
    ),
    ("drop-all-capabilities", ""): Ours(("capabilities_restricted",), predicate=_field_end(".drop")),
    ("disallow-privilege-escalation", "privilege-escalation"): Ours(("allowPrivilegeEscalation",)),
    ("disallow-privilege-escalation", ""): Ours(("allowPrivilegeEscalation",)),
    ("require-run-as-non-root-user", "run-as-non-root-user"): Ours(("runAsUser",)),
    ("require-run-as-non-root-user", ""): Ours(("runAsUser",)),
    ("require-run-as-nonroot", "run-as-non-root"): Ours(("runAsNonRoot",)),
    ("require-run-as-nonroot", ""): Ours(("runAsNonRoot",)),
    ("restrict-seccomp-strict", "check-seccomp-strict"): Ours(("seccompProfile_restricted",)),
    ("restrict-seccomp-strict", ""): Ours(("seccompProfile_restricted",)),
    ("restrict-volume-types", "restricted-volumes"): Ours(("restrictedVolumes",)),
    ("restrict-volume-types", ""): Ours(("restrictedVolumes",)),
    ("disallow-latest-tag", "require-image-tag"): Ours(("imagePinned",), predicate=_message_has("no tag")),
    ("disallow-latest-tag", "validate-image-tag"): Ours(("imagePinned",), predicate=_message_has('"latest"')),
    ("disallow-latest-tag", "require-and-validate-image-tag"): Ours(("imagePinned",)),
    ("disallow-latest-tag", ""): Ours(("imagePinned",)),
    ("require-labels", "check-for-labels"): Ours(
        ("requiredLabels",), required_labels=("app.kubernetes.io/name",)
    ),
    ("require-labels", ""): Ours(("requiredLabels",), required_labels=("app.kubernetes.io/name",)),
    # Kyverno requires cpu and memory requests and a memory limit (no cpu limit).
    ("require-requests-limits", "validate-resources"): Ours(
        ("resourceRequests", "resourceLimits"),
        predicate=_field_end("requests.cpu", "requests.memory", "limits.memory"),
    ),
    ("require-requests-limits", ""): Ours(
        ("resourceRequests", "resourceLimits"),
        predicate=_field_end("requests.cpu", "requests.memory", "limits.memory"),
    ),
    ("require-cpu-limits", "check-cpu-limits"): Ours(("resourceLimits",), predicate=_field_end("limits.cpu")),
    ("require-ro-rootfs", "validate-readOnlyRootFilesystem"): Ours(("readOnlyRootFilesystem",)),
    ("require-ro-rootfs", ""): Ours(("readOnlyRootFilesystem",)),
    ("restrict-automount-sa-token", "validate-automountServiceAccountToken"): Ours(
        ("automountServiceAccountToken",)
    ),
}

# Deliberate differences: (policy, kind/name) -> why we disagree with Kyverno's verdict.
# None so far: every compared row agrees (the Kyverno pod-security library follows PSA).
DIFFERENCES: dict[tuple[str, str], str] = {}


def _rule(row: dict[str, str]) -> str:
    rule = row["rule"]
    for prefix in ("autogen-cronjob-", "autogen-"):
        if rule.startswith(prefix):
            return rule[len(prefix) :]
    return rule


def rows() -> Iterator[dict[str, str]]:
    with (KYVERNO / "index.tsv").open(newline="") as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def compare() -> tuple[Tally, dict[tuple[str, str], str]]:
    tally = Tally("kyverno")
    disagreements: dict[tuple[str, str], str] = {}
    for row in rows():
        if row["rule_type"] != "validate":
            continue
        ours = MAPPED.get((row["policy"], _rule(row)))
        if ours is None:
            continue
        expected = row["expected_result"]
        if expected not in ("pass", "fail"):
            tally.skipped += 1
            continue
        docs = objects(KYVERNO / row["resource_file"])
        matching = [
            o
            for o in docs
            if o.get("kind") == row["resource_kind"]
            and (o.get("metadata") or {}).get("name") == row["resource_name"]
        ]
        verdict = ours.fails(matching[0]) if matching else None
        if verdict is None:
            tally.skipped += 1
            continue
        agree = verdict == (expected == "fail")
        tally.add(f"{row['policy']}/{_rule(row) or '*'}", agree)
        if not agree:
            key = (row["policy"], f"{row['resource_kind']}/{row['resource_name']}")
            disagreements[key] = (
                f"kyverno {expected}, ours {'fail' if verdict else 'pass'} ({row['category']})"
            )
    return tally, disagreements


# Measured: 2721/2721 rows agree (100%); 2 skip rows are not compared.
AGREEMENT_FLOOR = 1.0


def test_kyverno_agreement() -> None:
    tally, disagreements = compare()
    assert_agreement(tally, disagreements, DIFFERENCES, floor=AGREEMENT_FLOOR, minimum=1000)
