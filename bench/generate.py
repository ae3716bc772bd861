"""Deterministic (seeded) generator of a mixed manifest set for the CLI benchmark."""

from __future__ import annotations

import os
import random
from typing import Any

import yaml

WORKLOAD_WEIGHTS = (
    ("Deployment", 30),
    ("StatefulSet", 8),
    ("DaemonSet", 6),
    ("Job", 6),
    ("CronJob", 6),
    ("Pod", 8),
    ("Service", 20),
    ("ConfigMap", 16),
)


def _container(rng: random.Random, name: str, hardened: bool) -> dict[str, Any]:
    tag = rng.choice(["1.25.3", "latest", "v2.1.0", f"sha256:{rng.getrandbits(256):064x}", ""])
    image = f"registry.example.com/team-{rng.randint(1, 40)}/{name}"
    if tag.startswith("sha256:"):
        image += "@" + tag
    elif tag:
        image += ":" + tag
    c: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": rng.choice(["IfNotPresent", "Always"]),
        "ports": [{"name": "http", "containerPort": rng.choice([80, 8080, 8443, 9090]), "protocol": "TCP"}],
        "env": [
            {"name": f"ENV_{i}", "value": f"value-{rng.randint(0, 10**6)}"} for i in range(rng.randint(2, 8))
        ]
        + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "tmp", "mountPath": "/tmp"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "livenessProbe": {"tcpSocket": {"port": "http"}, "failureThreshold": 3},
    }
    if rng.random() < 0.7:
        c["resources"] = {
            "requests": {
                "cpu": f"{rng.choice([50, 100, 250])}m",
                "memory": f"{rng.choice([64, 128, 256])}Mi",
            },
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    if hardened:
        c["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    elif rng.random() < 0.3:
        c["securityContext"] = rng.choice(
            [{"privileged": True}, {"runAsUser": 0}, {"capabilities": {"add": ["NET_ADMIN"]}}, {}]
        )
    return c


def _pod_spec(rng: random.Random, app: str, kind: str) -> dict[str, Any]:
    hardened = rng.random() < 0.25
    spec: dict[str, Any] = {
        "serviceAccountName": app,
        "containers": [
            _container(rng, f"{app}-{i}" if i else app, hardened) for i in range(rng.randint(1, 3))
        ],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{app}-config"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if rng.random() < 0.3:
        spec["initContainers"] = [_container(rng, "init", hardened)]
    if kind == "DaemonSet" and rng.random() < 0.5:
        spec["hostNetwork"] = True
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}})
    if kind in ("Job", "CronJob", "Pod"):
        spec["restartPolicy"] = "Never" if kind != "Pod" else "Always"
    if hardened:
        spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        spec["automountServiceAccountToken"] = False
    if rng.random() < 0.5:
        spec["nodeSelector"] = {"kubernetes.io/os": "linux"}
    if rng.random() < 0.3:
        spec["tolerations"] = [
            {"key": "dedicated", "operator": "Equal", "value": app, "effect": "NoSchedule"}
        ]
    return spec


def make_object(rng: random.Random, kind: str, n: int) -> dict[str, Any]:
    app = f"app-{n:05d}"
    ns = f"team-{n % 100:02d}"
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": f"system-{n % 17}"}
    if rng.random() < 0.5:
        labels["team"] = ns
    meta: dict[str, Any] = {"name": app, "namespace": ns, "labels": labels}
    if rng.random() < 0.4:
        meta["annotations"] = {"example.com/owner": f"owner-{rng.randint(1, 99)}@example.com"}
    if kind == "Service":
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"port": 80, "targetPort": "http"}],
            },
        }
    if kind == "ConfigMap":
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {f"key{i}": f"setting-{rng.randint(0, 10**9)}" for i in range(rng.randint(3, 12))},
        }
    template = {"metadata": {"labels": dict(labels)}, "spec": _pod_spec(rng, app, kind)}
    selector = {"matchLabels": {"app.kubernetes.io/name": app}}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
    if kind == "Deployment":
        spec: dict[str, Any] = {"replicas": rng.randint(1, 5), "selector": selector, "template": template}
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "StatefulSet":
        spec = {
            "serviceName": app,
            "replicas": 3,
            "selector": selector,
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        }
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "DaemonSet":
        spec = {"selector": selector, "template": template}
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "Job":
        spec = {"backoffLimit": 3, "template": template}
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "CronJob":
        spec = {
            "schedule": "*/15 * * * *",
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": template}},
        }
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": spec}
    raise ValueError(kind)


def generate(out_dir: str, objects: int = 10_000, files: int = 100, seed: int = 20260101) -> list[str]:
    """Write `objects` manifests of mixed kinds into `files` multi-document YAML files."""
    rng = random.Random(seed)
    kinds = [k for k, _ in WORKLOAD_WEIGHTS]
    weights = [w for _, w in WORKLOAD_WEIGHTS]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    per_file = -(-objects // files)
    n = 0
    for f in range(files):
        docs = []
        while len(docs) < per_file and n < objects:
            docs.append(make_object(rng, rng.choices(kinds, weights)[0], n))
            n += 1
        if not docs:
            break
        path = os.path.join(out_dir, f"manifests-{f:03d}.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"# generated by bench/generate.py (seed {seed})\n")
            yaml.safe_dump_all(docs, fh, sort_keys=False, explicit_start=True, width=120)
        paths.append(path)
    return paths
