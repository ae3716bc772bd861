"""Helpers for the admission policy tests: wrapping a pod spec as a Pod, a Deployment or a
CronJob, dry-run creation against the real API server, and random pod specs."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from kubernetes import client

KINDS = ("Pod", "Deployment", "CronJob")


def wrap(
    kind: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The pod spec (and pod annotations) inside a fresh object of `kind`."""
    spec = copy.deepcopy(spec)
    annotations = dict(annotations or {})
    meta: dict[str, Any] = {"name": name, "labels": {"app": name, **(labels or {})}}
    pod_meta: dict[str, Any] = {"labels": {"app": name}}
    if annotations:
        pod_meta["annotations"] = annotations
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**meta, **pod_meta, "labels": meta["labels"]},
            "spec": spec,
        }
    if kind == "Deployment":
        spec.pop("restartPolicy", None)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": pod_meta, "spec": spec},
            },
        }
    if kind == "CronJob":
        spec["restartPolicy"] = "Never"
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": {"metadata": pod_meta, "spec": spec}}},
            },
        }
    raise ValueError(kind)


def create(
    api: client.ApiClient, namespace: str, obj: dict[str, Any], *, dry_run: bool = True
) -> tuple[bool, str, list[str]]:
    """(admitted, refusal message, warnings) for creating `obj` in `namespace`."""
    kind = obj["kind"]
    path = {
        "Pod": f"/api/v1/namespaces/{namespace}/pods",
        "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "CronJob": f"/apis/batch/v1/namespaces/{namespace}/cronjobs",
    }[kind]
    url = api.configuration.host + path + ("?dryRun=All" if dry_run else "")
    response = api.call_api(
        "POST",
        url,
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=obj,
    )
    response.read()
    if response.status >= 300:
        try:
            message = json.loads(response.data).get("message", "")
        except (TypeError, ValueError):
            message = str(response.data)
        return False, f"{response.status}: {message}", []
    warnings = response.getheaders().get("Warning")
    return True, "", [warnings] if warnings else []


# --- random pod specs ---------------------------------------------------------------------

_IMAGES = [
    "nginx",
    "nginx:latest",
    "nginx:1.27",
    "registry:5000/team/app",
    "app@sha256:" + "a" * 64,
    "r.io/a:b:",
]


def _maybe(rng: random.Random, p: float = 0.3) -> bool:
    return rng.random() < p


def _container_sc(rng: random.Random) -> dict[str, Any]:
    sc: dict[str, Any] = {}
    if _maybe(rng, 0.1):
        sc["privileged"] = rng.choice([True, False])
    if _maybe(rng, 0.5):
        sc["allowPrivilegeEscalation"] = rng.choice([True, False])
    if _maybe(rng):
        sc["runAsNonRoot"] = rng.choice([True, False])
    if _maybe(rng):
        sc["runAsUser"] = rng.choice([0, 1000])
    if _maybe(rng):
        sc["readOnlyRootFilesystem"] = rng.choice([True, False])
    if _maybe(rng, 0.5):
        caps: dict[str, Any] = {}
        if _maybe(rng, 0.6):
            caps["drop"] = rng.sample(["ALL", "NET_RAW"], rng.randint(0, 2))
        if _maybe(rng, 0.5):
            caps["add"] = rng.sample(["NET_BIND_SERVICE", "CHOWN", "NET_RAW", "SYS_ADMIN"], rng.randint(0, 2))
        sc["capabilities"] = caps
    if _maybe(rng):
        sc["seccompProfile"] = rng.choice(
            [
                {"type": "RuntimeDefault"},
                {"type": "Unconfined"},
                {"type": "Localhost", "localhostProfile": "p.json"},
            ]
        )
    if _maybe(rng, 0.1):
        sc["procMount"] = rng.choice(["Default", "Unmasked"])
    if _maybe(rng, 0.1):
        sc["seLinuxOptions"] = rng.choice(
            [{"type": "container_t"}, {"type": "spc_t"}, {"user": "u"}, {"role": "r"}]
        )
    if _maybe(rng, 0.1):
        sc["appArmorProfile"] = rng.choice([{"type": "RuntimeDefault"}, {"type": "Unconfined"}])
    return sc


def _container(rng: random.Random, name: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": rng.choice(_IMAGES)}
    sc = _container_sc(rng)
    if sc:
        c["securityContext"] = sc
    if _maybe(rng, 0.2):
        c["ports"] = [{"containerPort": 8080, **({"hostPort": 8080} if _maybe(rng, 0.5) else {})}]
    if _maybe(rng, 0.1):
        c["livenessProbe"] = {"httpGet": {"port": 8080, **({"host": "10.0.0.1"} if _maybe(rng, 0.5) else {})}}
    if _maybe(rng, 0.1):
        c["lifecycle"] = {"preStop": {"tcpSocket": {"port": 80, "host": "evil"}}}
    if _maybe(rng, 0.4):
        res: dict[str, Any] = {}
        for section in ("requests", "limits"):
            if _maybe(rng, 0.6):
                res[section] = {k: v for k, v in (("cpu", "100m"), ("memory", "64Mi")) if _maybe(rng, 0.7)}
        c["resources"] = res
    return c


def random_pod(rng: random.Random) -> tuple[dict[str, Any], dict[str, str]]:
    """A random pod spec and pod annotations touching every check's fields."""
    spec: dict[str, Any] = {"containers": [_container(rng, f"c{i}") for i in range(rng.randint(1, 2))]}
    if _maybe(rng, 0.2):
        spec["initContainers"] = [_container(rng, "init")]
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if _maybe(rng, 0.07):
            spec[key] = rng.choice([True, False])
    if _maybe(rng, 0.08):
        spec["hostUsers"] = False
    if _maybe(rng, 0.05):
        spec["os"] = {"name": "windows"}
    if _maybe(rng, 0.3):
        spec["automountServiceAccountToken"] = rng.choice([True, False])
    psc: dict[str, Any] = {}
    if _maybe(rng):
        psc["runAsNonRoot"] = rng.choice([True, False])
    if _maybe(rng, 0.2):
        psc["runAsUser"] = rng.choice([0, 1000])
    if _maybe(rng, 0.4):
        psc["seccompProfile"] = rng.choice([{"type": "RuntimeDefault"}, {"type": "Unconfined"}])
    if _maybe(rng, 0.1):
        psc["sysctls"] = [{"name": rng.choice(["net.ipv4.tcp_syncookies", "kernel.msgmax"]), "value": "1"}]
    if _maybe(rng, 0.05):
        psc["seLinuxOptions"] = {"type": rng.choice(["container_t", "spc_t"])}
    if _maybe(rng, 0.05):
        psc["windowsOptions"] = {"hostProcess": True}
    if psc:
        spec["securityContext"] = psc
    if _maybe(rng, 0.3):
        spec["volumes"] = [
            rng.choice(
                [
                    {"name": "v", "emptyDir": {}},
                    {"name": "v", "hostPath": {"path": "/tmp"}},
                    {"name": "v", "nfs": {"server": "nfs", "path": "/"}},
                    {"name": "v", "configMap": {"name": "cm"}},
                ]
            )
        ]
    annotations: dict[str, str] = {}
    if _maybe(rng, 0.1):
        annotations["container.apparmor.security.beta.kubernetes.io/c0"] = rng.choice(
            ["runtime/default", "unconfined", "localhost/p"]
        )
    return spec, annotations
