"""Pure: the rollout a fix caused, judged from the workload's status and its new pods, and the
patch that undoes exactly what kube-baseline set.

The verdict follows `kubectl rollout status` (generation observed first, then
ProgressDeadlineExceeded, then the updated/available counts), with the new pods' container
states as the faster signal. The new pods are those whose spec carries every pod-template field
the fix set: fixes only fill absent fields, so the old pods lack them.

The undo is computed from the managedFields of our field manager: a field is removed only if
kube-baseline still owns it alone (another manager writing it since takes or shares ownership)
and, when the values the fix set are known, still holds that value. A map kube-baseline created
(a container's securityContext, a seccompProfile) is removed whole when nothing else is in it,
so the template returns to what it was and a Deployment goes back to its previous ReplicaSet.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kube_baseline.engine.checks.pod import CONTAINER_LISTS
from kube_baseline.engine.models import Rollout
from kube_baseline.engine.workloads import KINDS, audit_view, workload_of

Verdict = Literal["Progressing", "Succeeded", "Failed", "Unverified"]
# A step of a field path: a map key, or ("name", value) for an item of a list merged by name.
Step = str | tuple[str, str]
Path = tuple[Step, ...]

_TEMPLATE_PREFIX = "spec.template."
# A workload whose status no controller ever wrote is Unverified after this long (seconds):
# a cluster without that controller (or one stopped) would otherwise hold a slot till the deadline.
NO_CONTROLLER_GRACE = 30.0
_TOKEN = re.compile(r"([^.\[\]]+)(?:\[([^\]]*)\])?\.?")


@dataclass(frozen=True, slots=True)
class RolloutState:
    verdict: Verdict
    reason: str = ""  # the signal seen (for Failed and Unverified)


# --- field paths -----------------------------------------------------------------------------


def parse_field(text: str) -> Path:
    """`spec.template.spec.containers[app].securityContext.runAsNonRoot` -> steps;
    `metadata.labels[team]` -> ("metadata", "labels", "team")."""
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"not a field path: {text!r}")
        name, key = match.group(1), match.group(2)
        steps.append(name)
        if key is not None:
            steps.append(("name", key) if name in CONTAINER_LISTS else key)
        pos = match.end()
    return tuple(steps)


def format_field(path: Path) -> str:
    """The inverse of `parse_field`."""
    out = ""
    for i, step in enumerate(path):
        if isinstance(step, tuple):
            out += f"[{step[1]}]"
        elif i and path[i - 1] in ("labels", "annotations"):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + step
    return out


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value at `path`, or `_MISSING`."""
    node = obj
    for step in path:
        if isinstance(step, tuple):
            if not isinstance(node, list):
                return _MISSING
            node = next((i for i in node if isinstance(i, Mapping) and i.get(step[0]) == step[1]), _MISSING)
        elif isinstance(node, Mapping) and step in node:
            node = node[step]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


# --- which pods are new, and the verdict -------------------------------------------------------


def pod_fields(changes: Mapping[str, Any]) -> dict[Path, Any]:
    """The fix's fields inside the pod template, as paths in a Pod (`spec....`)."""
    return {
        parse_field(name[len(_TEMPLATE_PREFIX) :]): value
        for name, value in changes.items()
        if name.startswith(_TEMPLATE_PREFIX)
    }


def causes_rollout(kind: str, changes: Mapping[str, Any]) -> bool:
    """Whether a fix restarts pods: a rolling kind and a field in its pod template."""
    found = KINDS.get(kind)  # (asked for every fix: the names are only looked at, not parsed)
    return found is not None and found.rolls and any(name.startswith(_TEMPLATE_PREFIX) for name in changes)


def new_pods(pods: Iterable[Mapping[str, Any]], changes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The pods created from the fixed template (not being deleted)."""
    wanted = pod_fields(changes)
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and all(value_at(p, path) == value for path, value in wanted.items())
    ]


def pod_failure(pods: Iterable[Mapping[str, Any]], settings: Rollout) -> str:
    """The first failing signal among the new pods' containers, or ""."""
    reasons = set(settings.waiting_reasons)
    for pod in pods:
        status = pod.get("status") or {}
        name = (pod.get("metadata") or {}).get("name", "")
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or ():
                waiting = ((cs.get("state") or {}).get("waiting")) or {}
                if waiting.get("reason") in reasons:
                    return f"{waiting['reason']} in pod {name} container {cs.get('name')}"
                if int(cs.get("restartCount") or 0) >= settings.restart_threshold:
                    return f"{cs.get('restartCount')} restarts in pod {name} container {cs.get('name')}"
    return ""


def signal_of(reason: str) -> str:
    """A bounded name for the signal behind a failure reason (a metrics label): the waiting
    reason or condition reason it starts with, "Restarts", or "Other"."""
    first, _, rest = reason.partition(" ")
    if rest.startswith("restarts"):
        return "Restarts"
    return first if first.isalpha() and first[:1].isupper() else "Other"


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for c in status.get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return {}


def _not_verifiable(kind: str, spec: Mapping[str, Any]) -> str:
    if kind in ("Deployment", "StatefulSet") and spec.get("replicas", 1) == 0:
        return "replicas is 0: no pods to verify"
    if kind == "Deployment" and spec.get("paused"):
        return "the Deployment is paused"
    if kind in ("StatefulSet", "DaemonSet") and (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return "updateStrategy OnDelete: pods change only when deleted"
    return ""


def _controller_progress(kind: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """Why the controller's rollout is not complete, in kubectl's order; "" when complete."""
    if kind == "Deployment":
        replicas = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        if updated < replicas:
            return f"{updated} of {replicas} replicas updated"
        if int(status.get("replicas") or 0) > updated:
            return "old replicas are pending termination"
        if int(status.get("availableReplicas") or 0) < updated:
            return f"{status.get('availableReplicas') or 0} of {updated} updated replicas available"
        return ""
    if kind == "StatefulSet":
        replicas = int(spec.get("replicas", 1))
        if int(status.get("readyReplicas") or 0) < replicas:
            return f"{status.get('readyReplicas') or 0} of {replicas} replicas ready"
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        partition = int(rolling.get("partition") or 0)
        if partition:
            if int(status.get("updatedReplicas") or 0) < replicas - partition:
                return "partitioned rollout in progress"
            return ""
        if status.get("updateRevision") != status.get("currentRevision"):
            return "pods are being updated to the new revision"
        return ""
    desired = int(status.get("desiredNumberScheduled") or 0)  # DaemonSet
    if int(status.get("updatedNumberScheduled") or 0) < desired:
        return f"{status.get('updatedNumberScheduled') or 0} of {desired} pods updated"
    if int(status.get("numberAvailable") or 0) < desired:
        return f"{status.get('numberAvailable') or 0} of {desired} updated pods available"
    return ""


def rollout_state(
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    changes: Mapping[str, Any],
    settings: Rollout,
    *,
    elapsed: float,
) -> RolloutState:
    """The state of the rollout a fix (`changes`: field -> value set) caused, `elapsed` seconds
    after the patch; `pods` are the pods matching the workload's selector."""
    kind = str(obj.get("kind"))
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if why := _not_verifiable(kind, spec):
        return RolloutState("Unverified", why)
    past_deadline = elapsed >= settings.deadline_seconds
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if "observedGeneration" not in status and elapsed >= min(settings.deadline_seconds, NO_CONTROLLER_GRACE):
        return RolloutState("Unverified", "no controller has ever observed this workload")
    if "observedGeneration" not in status or int(status["observedGeneration"]) < generation:
        if past_deadline:
            why = f"no controller observed the change in {settings.deadline_seconds}s"
            return RolloutState("Unverified", why)
        return RolloutState("Progressing", "waiting for the controller to observe the change")
    fresh = new_pods(pods, changes)
    if failed := pod_failure(fresh, settings):
        return RolloutState("Failed", failed)
    if kind == "Deployment":
        progressing = _condition(status, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState("Failed", "ProgressDeadlineExceeded")
        failure = _condition(status, "ReplicaFailure")
        if failure.get("status") == "True" and failure.get("reason") == "FailedCreate":
            return RolloutState("Failed", f"FailedCreate: {failure.get('message', '')}"[:300])
    if kind == "DaemonSet" and int(status.get("desiredNumberScheduled") or 0) == 0:
        return RolloutState("Unverified", "no node runs this DaemonSet")
    waiting = _controller_progress(kind, spec, status)
    if not waiting:
        return RolloutState("Succeeded")
    if past_deadline:
        if fresh:
            return RolloutState("Failed", f"not available after {settings.deadline_seconds}s: {waiting}")
        return RolloutState("Unverified", f"no new pod after {settings.deadline_seconds}s: {waiting}")
    return RolloutState("Progressing", waiting)


def rollout_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What following a rollout needs of a workload (identity, generation, the spec without its
    pod template, the status): the rollout guard keeps this of each workload in flight, as the
    watch delivers it, instead of reading it again."""
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "resourceVersion")
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta},
        "spec": {k: v for k, v in (obj.get("spec") or {}).items() if k != "template"},
        "status": obj.get("status") or {},
    }


def template_hash(obj: Mapping[str, Any]) -> str:
    """A short hash of the audited part of the pod template (the same from a full object or the
    stored audit view): the no-loop record compares it to tell a template changed for another
    reason from the one a fix was rolled back on."""
    workload = workload_of(dict(obj))
    if workload is None:
        return ""
    node: Any = audit_view(workload)
    for key in workload.pod_path[:-1]:
        node = node.get(key) or {}
    text = json.dumps(node, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- undo ----------------------------------------------------------------------------------


def _walk_fields(node: Mapping[str, Any], prefix: Path) -> Iterable[tuple[Path, bool]]:
    """(path, is_leaf) for each field of a fieldsV1 tree; a node with "." means the manager
    owns the map itself (it created it), reported as (path, False) with a "." step."""
    for key, sub in node.items():
        if key == ".":
            yield (*prefix, "."), False
            continue
        if key.startswith("f:"):
            step: Step = key[2:]
        elif key.startswith("k:"):
            try:
                parsed = json.loads(key[2:])
            except ValueError:
                continue
            if not isinstance(parsed, dict) or set(parsed) != {"name"}:
                continue
            step = ("name", str(parsed["name"]))
        else:
            continue  # v: (set values) and i: (indexes) are never ours
        path = (*prefix, step)
        if isinstance(sub, Mapping) and sub:
            yield from _walk_fields(sub, path)
        else:
            yield path, True


def owned_fields(managed_fields: Iterable[Mapping[str, Any]], manager: str) -> tuple[set[Path], set[Path]]:
    """(leaves, created maps) the manager owns through Update operations."""
    leaves: set[Path] = set()
    created: set[Path] = set()
    for entry in managed_fields:
        if entry.get("manager") != manager or entry.get("subresource"):
            continue
        for path, leaf in _walk_fields(entry.get("fieldsV1") or {}, ()):
            if leaf:
                leaves.add(path)
            else:
                created.add(path[:-1])
    return leaves, created


def _others(managed_fields: Iterable[Mapping[str, Any]], manager: str) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for entry in managed_fields:
        if entry.get("manager") == manager or entry.get("subresource"):
            continue
        for path, leaf in _walk_fields(entry.get("fieldsV1") or {}, ()):
            if leaf:
                found.setdefault(path, str(entry.get("manager")))
    return found


@dataclass(frozen=True)
class Undo:
    patch: dict[str, Any]  # strategic-merge patch from the object root; {} when nothing to remove
    removed: tuple[str, ...]  # the fields it removes
    # field -> why it is left alone (changed or co-owned by someone else since)
    kept: dict[str, str] = field(default_factory=dict)


def _set_null(patch: dict[str, Any], path: Path) -> None:
    node: Any = patch
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(step, tuple):
            continue  # handled with the list name below
        nxt = path[i + 1] if not last else None
        if last:
            node[step] = None
        elif isinstance(nxt, tuple):
            items = node.setdefault(step, [])
            item = next((x for x in items if x.get(nxt[0]) == nxt[1]), None)
            if item is None:
                item = {nxt[0]: nxt[1]}
                items.append(item)
            node = item
        else:
            node = node.setdefault(step, {})


def undo_patch(obj: Mapping[str, Any], manager: str, expected: Mapping[str, Any] | None = None) -> Undo:
    """The patch removing what `manager` set on `obj` and nothing else (see the module doc).
    With `expected` (field -> value a fix set), only those fields, and only where the value is
    still that value; without it, every field the manager owns in the labels or pod template."""
    managed = [m for m in (obj.get("metadata") or {}).get("managedFields") or () if isinstance(m, Mapping)]
    leaves, created = owned_fields(managed, manager)
    others = _others(managed, manager)
    kept: dict[str, str] = {}
    removable: set[Path] = set()
    if expected is not None:
        for name, value in expected.items():
            path = parse_field(name)
            current = value_at(obj, path)
            owned = path in leaves or any(leaf[: len(path)] == path for leaf in leaves)
            if current is _MISSING:
                continue
            if current != value:
                kept[name] = f"changed since (now {json.dumps(current)})"
            elif not owned:
                kept[name] = "no longer owned by kube-baseline"
            elif path in others or any(o[: len(path)] == path for o in others):
                kept[name] = "also set by " + (others.get(path) or "another manager")
            else:
                removable.add(path)
    else:
        for path in leaves:
            if path[:2] not in (("metadata", "labels"), ("spec", "template"), ("spec", "jobTemplate")):
                continue
            if value_at(obj, path) is _MISSING:
                continue
            inside = [o for o in others if o[: len(path)] == path]
            if inside:
                kept[format_field(inside[0])] = f"set by {others[inside[0]]} inside a field kube-baseline set"
            else:
                removable.add(path)
        # A map we created that now holds a field another manager set: someone changed it since.
        for path, who in others.items():
            if any(path[: len(c)] == c for c in created) and value_at(obj, path) is not _MISSING:
                kept[format_field(path)] = f"set by {who} inside a field kube-baseline created"
    # Collapse: a created map whose every current key is being removed goes whole.
    targets = set(removable)
    for parent in sorted(created, key=len, reverse=True):
        current = value_at(obj, parent)
        if not isinstance(current, Mapping) or not current:
            continue
        children = {(*parent, k) for k in current}
        covered = {c for c in children if c in targets or any(t[: len(c)] == c for t in targets)}
        if covered == children and not any(o[: len(parent)] == parent for o in others):
            targets = {t for t in targets if t[: len(parent)] != parent} | {parent}
    patch: dict[str, Any] = {}
    for path in sorted(targets, key=lambda p: [str(s) for s in p]):
        _set_null(patch, path)
    removed = tuple(sorted(format_field(p) for p in removable))
    return Undo(patch=patch, removed=removed, kept=kept)
