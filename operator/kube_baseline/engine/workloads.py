"""Find the pod spec inside any workload kind, and the path to it.

Pure: plain dicts (API objects, as parsed from YAML or JSON) in, plain data out.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POD_PATH: tuple[str, ...] = ("spec",)
TEMPLATE_POD_PATH: tuple[str, ...] = ("spec", "template", "spec")
CRONJOB_POD_PATH: tuple[str, ...] = ("spec", "jobTemplate", "spec", "template", "spec")


@dataclass(frozen=True, slots=True)
class Kind:
    """What the operator, the CLI and the API client know of one workload kind."""

    name: str
    api_prefix: str  # where the API server serves it, e.g. /apis/apps/v1
    plural: str
    pod_path: tuple[str, ...]  # from the object to its pod spec
    # Its pod template may be patched (Pods and Jobs have immutable pod specs).
    patchable: bool
    # As a controller it owns other workloads, which are attributed to it (not evaluated alone).
    controller: bool
    # A change of its pod template rolls its pods (a rollout to follow; engine.rollout).
    rolls: bool = False


# The one table of workload kinds, in the order the operator starts its watches.
KINDS: Mapping[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "Deployment",
            "/apis/apps/v1",
            "deployments",
            TEMPLATE_POD_PATH,
            patchable=True,
            controller=True,
            rolls=True,
        ),
        Kind(
            "StatefulSet",
            "/apis/apps/v1",
            "statefulsets",
            TEMPLATE_POD_PATH,
            patchable=True,
            controller=True,
            rolls=True,
        ),
        Kind(
            "DaemonSet",
            "/apis/apps/v1",
            "daemonsets",
            TEMPLATE_POD_PATH,
            patchable=True,
            controller=True,
            rolls=True,
        ),
        Kind(
            "ReplicaSet", "/apis/apps/v1", "replicasets", TEMPLATE_POD_PATH, patchable=True, controller=True
        ),
        Kind(
            "ReplicationController",
            "/api/v1",
            "replicationcontrollers",
            TEMPLATE_POD_PATH,
            patchable=True,
            controller=True,
        ),
        Kind("CronJob", "/apis/batch/v1", "cronjobs", CRONJOB_POD_PATH, patchable=True, controller=True),
        Kind("Job", "/apis/batch/v1", "jobs", TEMPLATE_POD_PATH, patchable=False, controller=True),
        Kind("Pod", "/api/v1", "pods", POD_PATH, patchable=False, controller=False),
    )
}
WORKLOAD_KINDS: frozenset[str] = frozenset(KINDS)

# API groups the workload kinds live in (core is ""; extensions served old Deployments etc.).
_WORKLOAD_GROUPS = frozenset({"", "apps", "batch", "extensions"})

_EMPTY: dict[str, Any] = {}


def _group(api_version: Any) -> str | None:
    if api_version is None:
        return ""
    if not isinstance(api_version, str):
        return None
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload object and where its pod spec sits."""

    obj: dict[str, Any]
    kind: str
    namespace: str
    name: str
    pod_spec: dict[str, Any]
    pod_path: tuple[str, ...]

    @property
    def metadata(self) -> dict[str, Any]:
        """The object's own metadata (never the pod template's)."""
        meta = self.obj.get("metadata")
        return meta if isinstance(meta, dict) else _EMPTY

    @property
    def pod_metadata(self) -> dict[str, Any]:
        """The pod's metadata: the template's metadata, or the Pod's own."""
        if self.kind == "Pod":
            return self.metadata
        node: Any = self.obj
        for key in self.pod_path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        meta = node.get("metadata") if isinstance(node, dict) else None
        return meta if isinstance(meta, dict) else _EMPTY

    @property
    def pod_labels(self) -> dict[str, Any]:
        """Labels the pods get: the template's labels, or the Pod's own labels."""
        labels = self.pod_metadata.get("labels")
        return labels if isinstance(labels, dict) else _EMPTY

    @property
    def labels(self) -> dict[str, Any]:
        """The workload's own metadata.labels."""
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else _EMPTY


def workload_of(obj: Any) -> Workload | None:
    """The workload view of an API object, or None for other kinds or objects without a pod spec."""
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    found = KINDS.get(kind) if isinstance(kind, str) else None
    if found is None or _group(obj.get("apiVersion")) not in _WORKLOAD_GROUPS:
        return None
    return _at(obj, found)


def workload_at(obj: dict[str, Any], kind: str) -> Workload | None:
    """The workload view of an object already known to be of `kind` (a stored audit view)."""
    return _at(obj, KINDS[kind])


def _at(obj: dict[str, Any], kind: Kind) -> Workload | None:
    node: Any = obj
    for key in kind.pod_path:
        node = node.get(key)
        if not isinstance(node, dict):
            return None
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = _EMPTY
    namespace = meta.get("namespace")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        name = meta.get("generateName")
    return Workload(
        obj=obj,
        kind=kind.name,
        namespace=namespace if isinstance(namespace, str) else "",
        name=name if isinstance(name, str) else "",
        pod_spec=node,
        pod_path=kind.pod_path,
    )


def controller_owner(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference marked `controller: true`, if any."""
    meta = obj.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


# The pod spec's container lists, in the order Pod Security Admission visits them. Each is merged
# by the `name` of its elements in a strategic-merge patch.
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Pod template annotations that set a container's AppArmor profile (before the securityContext field).
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

# What `checks.audit` and `remediation.plan` read: the operator keeps only this much of each
# workload in memory. tests/unit/test_audit_view.py proves audit and plan see no difference.
_POD_SPEC_FIELDS = (
    "securityContext",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "os",
    "volumes",
    "automountServiceAccountToken",
    "nodeSelector",
    "tolerations",
    "runtimeClassName",
)
_CONTAINER_FIELDS = (
    "name",
    "image",
    "securityContext",
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
)
_OBJECT_METADATA_FIELDS = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation")


def _metadata_view(meta: Any, *, identity: bool) -> dict[str, Any]:
    if not isinstance(meta, dict):
        return {}
    view = {k: meta[k] for k in _OBJECT_METADATA_FIELDS if identity and k in meta}
    if isinstance(labels := meta.get("labels"), dict):
        view["labels"] = labels
    if identity and isinstance(owners := meta.get("ownerReferences"), list):
        view["ownerReferences"] = owners
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        kept = {k: v for k, v in annotations.items() if k.startswith(APPARMOR_ANNOTATION_PREFIX)}
        if kept:
            view["annotations"] = kept
    return view


def _pod_spec_view(pod: dict[str, Any]) -> dict[str, Any]:
    view = {k: pod[k] for k in _POD_SPEC_FIELDS if k in pod}
    for key in CONTAINER_LISTS:
        containers = pod.get(key)
        if isinstance(containers, list):
            view[key] = [
                {k: c[k] for k in _CONTAINER_FIELDS if k in c} if isinstance(c, dict) else c
                for c in containers
            ]
    return view


def audit_view(workload: Workload) -> dict[str, Any]:
    """The workload's object reduced to what audit and remediation planning read.

    Env, args, volume mounts, most annotations (such as kubectl's last-applied configuration)
    and status are dropped; the identity, labels, owners and every security-relevant field stay.
    Shares leaf values with the original (no deep copy).
    """
    obj = workload.obj
    view: dict[str, Any] = {"apiVersion": obj.get("apiVersion"), "kind": workload.kind}
    view["metadata"] = _metadata_view(obj.get("metadata"), identity=True)
    if workload.kind == "Pod":
        view["spec"] = _pod_spec_view(workload.pod_spec)
        return view
    # Rebuild the path down to the pod template, keeping the template's labels and annotations.
    node = view
    source: Any = obj
    for key in workload.pod_path[:-2]:
        source = source.get(key)
        node[key] = {}
        node = node[key]
    template = source.get(workload.pod_path[-2])
    node[workload.pod_path[-2]] = {
        "metadata": _metadata_view(template.get("metadata"), identity=False),
        "spec": _pod_spec_view(workload.pod_spec),
    }
    return view


# The operator keeps an audit view of every workload. Packed as compact JSON compressed against
# this preset (the keys and values such views repeat, drawn from the fields above), one takes
# about a quarter of its JSON size; packing and unpacking cost about 12 µs together.
_PACK_PRESET = json.dumps(
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "",
            "namespace": "",
            "uid": "",
            "resourceVersion": "",
            "generation": 1,
            "labels": {"app.kubernetes.io/name": "", "app": "", "tier": ""},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "", "name": "", "uid": "", "controller": True}
            ],
            "managedFields": [{"manager": "kube-baseline"}, {"manager": "kubectl"}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {}, "annotations": {APPARMOR_ANNOTATION_PREFIX: "runtime/default"}},
                "spec": {
                    "hostNetwork": False,
                    "hostPID": False,
                    "hostIPC": False,
                    "hostUsers": False,
                    "automountServiceAccountToken": False,
                    "volumes": [{"name": "", "hostPath": {"path": ""}, "emptyDir": {}}],
                    "initContainers": [],
                    "containers": [
                        {
                            "name": "app",
                            "image": "",
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                "privileged": False,
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                },
            }
        },
    },
    separators=(",", ":"),
).encode()


def pack_view(view: dict[str, Any]) -> bytes:
    """An audit view as compact JSON, compressed (see `_PACK_PRESET`)."""
    packer = zlib.compressobj(1, zdict=_PACK_PRESET)
    return packer.compress(json.dumps(view, separators=(",", ":")).encode()) + packer.flush()


def unpack_view(packed: bytes) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(zlib.decompressobj(zdict=_PACK_PRESET).decompress(packed))
    return view
