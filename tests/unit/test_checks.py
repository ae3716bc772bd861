"""Table-driven tests of every check over the named fixtures: pass and fail cases, container
kinds (init, ephemeral), pod-level versus container-level resolution, Windows pods and
user-namespaced pods (hostUsers: false), following Pod Security Admission at Kubernetes 1.35."""

from __future__ import annotations

import pytest
from engine_fixtures import EXTRA, fixture_names, policy, verdicts, workload

from kube_baseline.engine.checks import CHECKS, Check, audit
from kube_baseline.engine.models import EXTRA_CHECKS, PSS_BASELINE_CHECKS, PSS_RESTRICTED_CHECKS

M, G, S = "manual", "guarded", "safe"

# (fixture, check, profile, expected sorted (container, class) pairs)
CASES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    # hostNamespaces
    ("host-namespaces", "hostNamespaces", "baseline", [("", M)] * 3),
    ("host-namespaces-false", "hostNamespaces", "baseline", []),
    ("windows-hostprocess", "hostNamespaces", "baseline", [("", M)]),
    # privileged: containers, ephemeral containers, CronJob templates
    ("privileged-container", "privileged", "baseline", [("app", M)]),
    ("ephemeral-container", "privileged", "baseline", [("debugger", M)]),
    ("cronjob", "privileged", "baseline", [("report", M)]),
    ("unhardened", "privileged", "baseline", []),
    # capabilities_baseline (init containers count)
    ("capabilities-added", "capabilities_baseline", "baseline", [("app", M), ("setup", M)]),
    ("unhardened", "capabilities_baseline", "baseline", []),
    # hostPathVolumes
    ("hostpath-volume", "hostPathVolumes", "baseline", [("", M)]),
    ("unhardened", "hostPathVolumes", "baseline", []),
    # hostPorts: hostPort 0 is allowed
    ("host-port", "hostPorts", "baseline", [("proxy", M)]),
    ("unhardened", "hostPorts", "baseline", []),
    # hostProbesAndHostLifecycle: empty host is allowed
    ("probe-host", "hostProbesAndHostLifecycle", "baseline", [("app", M), ("app", M)]),
    ("unhardened", "hostProbesAndHostLifecycle", "baseline", []),
    # appArmorProfile: pod field, container field, legacy annotation
    ("apparmor-unconfined", "appArmorProfile", "baseline", [("", M), ("bad", M), ("legacy", M)]),
    ("unhardened", "appArmorProfile", "baseline", []),
    # seLinuxOptions: container_engine_t allowed since 1.31; user/role forbidden
    ("selinux-options", "seLinuxOptions", "baseline", [("", M), ("custom-user", M)]),
    ("unhardened", "seLinuxOptions", "baseline", []),
    # procMount (baseline) is relaxed for hostUsers: false; procMount_restricted is not
    ("procmount-unmasked", "procMount", "baseline", [("app", M)]),
    ("user-namespace", "procMount", "baseline", []),
    ("procmount-unmasked", "procMount_restricted", "restricted", [("app", M)]),
    ("user-namespace", "procMount_restricted", "restricted", [("app", M)]),
    ("unhardened", "procMount_restricted", "restricted", []),
    # seccompProfile_baseline: only explicit Unconfined fails; unset passes
    ("seccomp-unconfined", "seccompProfile_baseline", "baseline", [("", M)]),
    ("seccomp-container-override", "seccompProfile_baseline", "baseline", [("unconfined", M)]),
    ("unhardened", "seccompProfile_baseline", "baseline", []),
    # sysctls: the 1.35 allowed set (tcp_notsent_lowat only from 1.37)
    ("sysctls", "sysctls", "baseline", [("", M), ("", M)]),
    ("unhardened", "sysctls", "baseline", []),
    # windowsHostProcess
    ("windows-hostprocess", "windowsHostProcess", "baseline", [("", M), ("agent", M)]),
    ("windows-pod", "windowsHostProcess", "baseline", []),
    # restrictedVolumes: hostPath and nfs fail; a volume with no source is an emptyDir
    ("hostpath-volume", "restrictedVolumes", "restricted", [("", M), ("", M)]),
    ("unhardened", "restrictedVolumes", "restricted", []),
    # allowPrivilegeEscalation: unset is safe to fix unless the API would reject the fix
    (
        "escalation-blocked",
        "allowPrivilegeEscalation",
        "restricted",
        [("explicit-true", M), ("fixable", S), ("privileged", M), ("sysadmin", M)],
    ),
    ("unhardened", "allowPrivilegeEscalation", "restricted", [("app", S), ("init", S), ("sidecar", S)]),
    ("ephemeral-container", "allowPrivilegeEscalation", "restricted", [("debugger", M)]),
    ("windows-pod", "allowPrivilegeEscalation", "restricted", []),
    # runAsNonRoot: pod true + container unset passes; container false fails; pod false fails
    ("pod-level-nonroot", "runAsNonRoot", "restricted", [("overrides", M)]),
    ("container-level-nonroot", "runAsNonRoot", "restricted", [("unset", G)]),
    ("pod-runasnonroot-false", "runAsNonRoot", "restricted", [("", M)]),
    ("unhardened", "runAsNonRoot", "restricted", [("app", G), ("init", G), ("sidecar", G)]),
    ("run-as-root-uid", "runAsNonRoot", "restricted", [("inherits", M), ("root", M)]),
    ("user-namespace", "runAsNonRoot", "restricted", []),
    ("windows-pod", "runAsNonRoot", "restricted", [("app", G)]),
    # runAsUser: only an explicit 0 fails; relaxed for hostUsers: false
    ("run-as-root-uid", "runAsUser", "restricted", [("root", M)]),
    ("user-namespace", "runAsUser", "restricted", []),
    ("unhardened", "runAsUser", "restricted", []),
    # seccompProfile_restricted: container level overrides pod level; every container covered
    ("seccomp-container-override", "seccompProfile_restricted", "restricted", [("unconfined", M)]),
    ("seccomp-containers-only", "seccompProfile_restricted", "restricted", [("uncovered", S)]),
    ("seccomp-unconfined", "seccompProfile_restricted", "restricted", [("", M)]),
    ("unhardened", "seccompProfile_restricted", "restricted", [("app", S), ("init", S), ("sidecar", S)]),
    ("windows-pod", "seccompProfile_restricted", "restricted", []),
    # capabilities_restricted: drop must include ALL; add only NET_BIND_SERVICE
    (
        "capabilities-added",
        "capabilities_restricted",
        "restricted",
        [("app", G), ("app", M), ("default-set", M), ("drops-some", M), ("setup", G), ("setup", M)],
    ),
    ("windows-pod", "capabilities_restricted", "restricted", []),
    # extras
    ("readonly-rootfs", "readOnlyRootFilesystem", "restricted", [("unset", G), ("writable", M)]),
    ("windows-pod", "readOnlyRootFilesystem", "restricted", []),
    ("readonly-rootfs", "automountServiceAccountToken", "restricted", [("", M)]),
    ("unhardened", "automountServiceAccountToken", "restricted", [("", G)]),
    ("resources-partial", "resourceRequests", "baseline", [("memory-only", M)]),
    (
        "resources-partial",
        "resourceLimits",
        "baseline",
        [("memory-only", M), ("requests-only", M), ("requests-only", M)],
    ),
    ("images", "imagePinned", "baseline", [("latest", M), ("registry-port", M), ("untagged", M)]),
    ("cronjob", "imagePinned", "baseline", [("report", M)]),
]

# Every check that a fixture passes (the compliant fixture passes them all).
PASSING = [(check, "compliant-restricted") for check in CHECKS if check not in ("requiredLabels",)]


@pytest.mark.parametrize(
    ("name", "check", "profile", "expected"), CASES, ids=[f"{c[1]}:{c[0]}" for c in CASES]
)
def test_check_verdicts(name: str, check: str, profile: str, expected: list[tuple[str, str]]) -> None:
    assert verdicts(name, check, profile) == expected


def test_every_check_has_a_failing_case() -> None:
    failing = {check for _, check, _, expected in CASES if expected}
    own_modules = {"requiredLabels", "networkPolicyCoverage", "tierPlacement", "tierCoTenancy"}
    assert failing >= set(CHECKS) - own_modules


@pytest.mark.parametrize(("check", "name"), PASSING)
def test_compliant_fixture_passes(check: str, name: str) -> None:
    profile = "baseline" if CHECKS[check].level == "baseline" else "restricted"
    assert verdicts(name, check, profile) == []


def test_compliant_fixture_is_clean_under_everything() -> None:
    result = audit(workload("compliant-restricted"), policy("restricted", EXTRA), network_policies=[{}])
    assert result.findings == ()


def test_windows_pod_restricted_only_needs_run_as_non_root() -> None:
    result = audit(workload("windows-pod"), policy("restricted"))
    assert [(f.check, f.container) for f in result.findings] == [("runAsNonRoot", "app")]


def test_user_namespace_pod_restricted() -> None:
    result = audit(workload("user-namespace"), policy("restricted"))
    assert [(f.check, f.container) for f in result.findings] == [("procMount_restricted", "app")]


def test_catalogue_ids_and_levels_match_the_models() -> None:
    assert tuple(CHECKS) == PSS_BASELINE_CHECKS + PSS_RESTRICTED_CHECKS + EXTRA_CHECKS
    for check in CHECKS.values():
        expected = (
            "baseline"
            if check.id in PSS_BASELINE_CHECKS
            else "restricted"
            if check.id in PSS_RESTRICTED_CHECKS
            else "extra"
        )
        assert check.level == expected, check.id
        assert check.title and check.references.nsa
        assert bool(check.references.pss) == (check.level != "extra"), check.id
        assert check.fix in ("safe", "guarded", "manual")


# Filled by engine.tiers.placement_patch (tests/unit/test_engine_tiers.py), not by a row's fixer:
# a tier's placement is a nodeSelector map, whole tolerations and a runtime class taken from the
# tier, recorded per key and per toleration so that an undo removes only what was added.
FILLED_BY_TIER_PLACEMENT = frozenset({"tierPlacement"})


@pytest.mark.parametrize(
    "check",
    [c for c in CHECKS.values() if c.fix != "manual" and c.id not in FILLED_BY_TIER_PLACEMENT],
    ids=lambda c: c.id,
)
def test_a_fixable_check_has_a_fixer(check: Check) -> None:
    """Remediation fixes a finding through its catalogue row's fixer: a safe or guarded check
    without one would be promised in its fix class and never filled."""
    assert check.fixer is not None


def test_only_tier_placement_is_filled_outside_the_rows() -> None:
    assert {
        c.id for c in CHECKS.values() if c.fix != "manual" and c.fixer is None
    } == FILLED_BY_TIER_PLACEMENT


@pytest.mark.parametrize("check", [c for c in CHECKS.values() if c.fix == "manual"], ids=lambda c: c.id)
def test_a_manual_check_has_no_fixer(check: Check) -> None:
    """Manual findings are never filled in, so a fixer on a manual check would be dead code."""
    assert check.fixer is None


@pytest.mark.parametrize("name", fixture_names())
def test_findings_name_their_container_and_field(name: str) -> None:
    if name == "deployment-list":
        return
    wl = workload(name)
    prefix = ".".join(wl.pod_path)
    result = audit(wl, policy("restricted", [c for c in EXTRA if c != "networkPolicyCoverage"]))
    for finding in result.findings:
        assert finding.field.startswith((prefix + ".", "metadata.", "spec.template.metadata.")), finding
        if finding.container and not finding.field.endswith("]"):
            assert f'"{finding.container}"' in finding.message, finding
            assert f"[{finding.container}]" in finding.field or finding.field.endswith(
                ("securityContext.runAsNonRoot", "securityContext.seccompProfile")
            ), finding


def test_message_and_field_of_an_unset_allow_privilege_escalation() -> None:
    result = audit(workload("unhardened"), policy("restricted"))
    (finding,) = [
        f for f in result.findings if f.check == "allowPrivilegeEscalation" and f.container == "init"
    ]
    assert finding.field == "spec.template.spec.initContainers[init].securityContext.allowPrivilegeEscalation"
    assert (
        finding.message == 'container "init" must set securityContext.allowPrivilegeEscalation=false (unset)'
    )
    assert (finding.severity, finding.level, finding.remediation) == ("medium", "restricted", "safe")


def test_cronjob_fields_point_into_the_job_template() -> None:
    result = audit(workload("cronjob"), policy("baseline"))
    (finding,) = result.findings
    assert (
        finding.field == "spec.jobTemplate.spec.template.spec.containers[report].securityContext.privileged"
    )
