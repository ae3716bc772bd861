"""Helpers for the SecurityBaseline API and operator tests against the real local API server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kopf.testing import KopfRunner

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "securitybaselines.yaml"
T = TypeVar("T")


# The label that ties a test's namespaces to its baselines (see the `scope` fixture).
SCOPE = "kube-baseline.io/test-scope"


def wait_for(
    fn: Callable[[], T], *, timeout: float = 30, interval: float = 0.2, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def install_crd(kube: Any) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/securitybaselines.kube-baseline.io"
    )


def get(kube: Any, *args: str) -> dict[str, Any]:
    return json.loads(kube.kubectl("get", *args, "--show-managed-fields", "-o", "json").stdout)  # type: ignore[no-any-return]


def exists(kube: Any, *args: str) -> bool:
    return kube.kubectl("get", *args, "--ignore-not-found", "-o", "name", check=True).stdout.strip() != ""


def create(kube: Any, obj: dict[str, Any], *extra: str) -> None:
    kube.kubectl("create", *extra, "-f", "-", input=json.dumps(obj))


def metrics(kube: Any) -> dict[tuple[str, str, str, str], float]:
    """apiserver_request_total summed by (verb, resource, subresource, code)."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    totals: dict[tuple[str, str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        key = (
            labels.get("verb", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("code", ""),
        )
        totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def writes(
    kube: Any,
    resource: str,
    verbs: tuple[str, ...] = ("PATCH", "UPDATE", "APPLY", "POST", "CREATE"),
    *,
    successful: bool = False,
) -> int:
    """Write requests the API server counted for a resource (with `successful`, only 2xx ones:
    a request cut off by a killed client is counted too, with an error code, and changes nothing)."""
    m = metrics(kube)
    return int(
        sum(
            v
            for (verb, res, sub, code), v in m.items()
            if res == resource and verb in verbs and sub == "" and (not successful or code.startswith("2"))
        )
    )


def managers(obj: dict[str, Any]) -> set[str]:
    return {m.get("manager", "") for m in obj["metadata"].get("managedFields") or ()}


# What Kubernetes' own controllers write onto a Deployment by themselves (status, the revision
# annotation) whenever they sync it: not a write by us or by the user.
CONTROLLER_MANAGERS = {"kube-controller-manager"}
CONTROLLER_ANNOTATIONS = {"deployment.kubernetes.io/revision"}


def written(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything about `obj` that a write other than a built-in controller's would change: spec,
    generation, labels, annotations, and each other manager's managedFields entry (its time moves
    on every write it makes). Compare this, not resourceVersion, where the controllers run (the full
    profile), since a Deployment controller's status sync moves resourceVersion at any moment."""
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "generation": meta.get("generation"),
        "labels": meta.get("labels") or {},
        "annotations": {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in CONTROLLER_ANNOTATIONS
        },
        "managedFields": [
            m
            for m in meta.get("managedFields") or ()
            if m.get("subresource") != "status" and m.get("manager") not in CONTROLLER_MANAGERS
        ],
    }


def deployment(
    name: str, namespace: str, containers: list[dict[str, Any]] | None = None, **pod: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": "app", "image": "nginx:1.25"}], **pod},
            },
        },
    }


COMPLIANT_CONTAINER = {
    "name": "app",
    "image": "nginx:1.25",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
    },
}


def compliant_deployment(name: str, namespace: str) -> dict[str, Any]:
    return deployment(
        name, namespace, [COMPLIANT_CONTAINER], securityContext={"seccompProfile": {"type": "RuntimeDefault"}}
    )


def baseline(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kube-baseline.io/v1alpha1",
        "kind": "SecurityBaseline",
        "metadata": {"name": name},
        "spec": spec,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def operator(kube: Any, *, dry_run: bool = False, timeout: float = 60) -> Iterator[KopfRunner]:
    """The operator in-process (KopfRunner), cluster-wide and standalone."""
    env = {
        "KUBECONFIG": kube.kubeconfig,
        "KUBE_BASELINE_DRY_RUN": "1" if dry_run else "0",
        "KUBE_BASELINE_STATUS_INTERVAL": "0.5",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with KopfRunner(
            ["run", "--all-namespaces", "--standalone", "-m", "kube_baseline.controller.handlers"],
            timeout=timeout,
        ) as runner:
            time.sleep(2)  # watches open and indexes fill
            yield runner
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert runner.exception is None or isinstance(runner.exception, SystemExit), runner.output


def spawn_operator(kube: Any, log: Path, **env_vars: str) -> subprocess.Popen[bytes]:
    """The operator as a separate process (so it can be killed with SIGKILL)."""
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "KUBE_BASELINE_STATUS_INTERVAL": "0.5", **env_vars}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")])
    code = (
        "import sys; from kube_baseline.controller.handlers import run_operator; "
        "from kube_baseline.controller.store import options_from_env; "
        "o = options_from_env(); "
        "sys.exit(run_operator(dry_run=False, log_format='plain', verbose=False, namespaces=[], "
        "standalone=True, peering=None, write_concurrency=o.write_concurrency))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
