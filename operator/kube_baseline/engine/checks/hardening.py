"""securityContext and token hardening beyond the Pod Security Standards, with their fixers."""

from __future__ import annotations

from collections.abc import Sequence

from kube_baseline.engine.checks.fixes import Fixes, absent
from kube_baseline.engine.checks.pod import PodView, Violation, explicit
from kube_baseline.engine.checks.pss_baseline import NONE
from kube_baseline.engine.models import Finding


def root_filesystem_writable(pod: PodView) -> Sequence[Violation]:
    """readOnlyRootFilesystem is a Linux-only field: Windows pods are not checked."""
    if pod.windows:
        return NONE
    out: list[Violation] = []
    for c in pod.containers:
        if v := c.sc_must_be("readOnlyRootFilesystem", True, "guarded"):
            out.append(v)
    return out


def fill_read_only_root_filesystem(finding: Finding, fixes: Fixes) -> bool:
    """readOnlyRootFilesystem=true on the container."""
    c = fixes.container_of(finding)
    if fixes.view.windows or c is None or not absent(c.sc, "readOnlyRootFilesystem"):
        return False
    fixes.fill_container(c, "readOnlyRootFilesystem", True, finding)
    return True


def service_account_token_mounted(pod: PodView) -> Sequence[Violation]:
    value = pod.spec.get("automountServiceAccountToken")
    if value is False:
        return NONE
    text, key = "pod must set automountServiceAccountToken=false", "automountServiceAccountToken"
    if value is None:
        return (pod.violation(f"{text} (unset)", key, "guarded"),)
    return (pod.violation(f"{text} (set to {explicit(value)})", key),)


def fill_automount_service_account_token(finding: Finding, fixes: Fixes) -> bool:
    """automountServiceAccountToken=false on the pod."""
    if not absent(fixes.view.spec, "automountServiceAccountToken"):
        return False
    fixes.fill_pod("automountServiceAccountToken", False, finding)
    return True
