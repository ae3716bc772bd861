"""The deploy path that test_deploy_rbac and test_image share: `manifests/` applied with kubectl
(the CRD, the operator's namespace, ServiceAccount and RBAC), and the scenario both run as that
ServiceAccount: a labelled namespace with a plain Deployment, and a baseline remediating it."""

from __future__ import annotations

import contextlib
import re
import socket
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from operator_helpers import ROOT, SCOPE, baseline, create, deployment, exists

MANIFESTS = ROOT / "manifests"
NAMESPACE = SA_NAME = "kube-baseline"
SA = f"system:serviceaccount:{NAMESPACE}:{SA_NAME}"
CRD = "customresourcedefinition/securitybaselines.kube-baseline.io"
FORBIDDEN = re.compile(r"\b403\b|forbidden", re.IGNORECASE)


@contextlib.contextmanager
def manifests_applied(kube: Any, *, remove: Sequence[str] = ()) -> Iterator[str]:
    """`kubectl apply -k manifests/` and the CRD established; yields kubectl's output. Afterwards
    deletes the objects of the `remove` files of manifests/, then the CRD if it was not there."""
    crd_existed = exists(kube, CRD)
    applied = str(kube.kubectl("apply", "-k", str(MANIFESTS)).stdout)
    try:
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", CRD)
        yield applied
    finally:
        if remove:
            args = [a for f in remove for a in ("-f", str(MANIFESTS / f))]
            kube.kubectl("delete", *args, "--ignore-not-found", "--wait=false")
        if not crd_existed:
            kube.kubectl("delete", CRD, "--ignore-not-found", "--timeout=60s")


def remediated_namespace(
    kube: Any, namespace: Callable[[], str], scope: str, name: str, workload: str, **spec: Any
) -> str:
    """A new namespace labelled `SCOPE=scope` and env=dev holding the plain Deployment `workload`,
    and the baseline `name` (labelled `SCOPE=scope`) remediating it: restricted, safe fixes where
    env=dev, plus `spec`. Returns the namespace."""
    dev = namespace()
    kube.kubectl("label", "namespace", dev, f"{SCOPE}={scope}", "env=dev")
    create(kube, deployment(workload, dev))
    body = baseline(
        name,
        mode="remediate",
        profile="restricted",
        namespaces={"selector": {"matchLabels": {SCOPE: scope}}},
        remediation={"namespaceSelector": {"matchLabels": {"env": "dev"}}, "riskClasses": ["safe"]},
        **spec,
    )
    body["metadata"]["labels"] = {SCOPE: scope}
    create(kube, body)
    return dev


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False
