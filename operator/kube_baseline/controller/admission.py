"""Applies the admission policies rendered from each SecurityBaseline (engine.admission), keeps
them as rendered, and removes them with their baseline.

- Server-side apply under field manager kube-baseline, forced (the objects are ours), with an
  ownerReference to the baseline (garbage-collected with it) and the managed-by label; the
  objects of a baseline that are no longer rendered are deleted, and so is everything of a
  deleted baseline (explicitly, also where no garbage collector runs).
- `observe` is called for every event on a generated object: an edit or a deletion by someone
  else is put back by applying again (an apply that changes nothing writes nothing, so this
  settles at once). The API server's type-checking warnings on the CEL are read from the
  policies' status and reported.
- Expired exemptions are not rendered: a timer regenerates the policies when the next one expires.
- Mutation (spec.admission.mutation: Safe) only where discovery shows MutatingAdmissionPolicy
  served; otherwise the report says why and nothing else changes. Where it is served, the
  generated MutatingAdmissionPolicies and bindings are watched here (list-and-watch through the
  client) and put back like the validating ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kube_baseline.controller.cluster import ApiError, Cluster
from kube_baseline.engine.admission.condition import AdmissionReport, admission_condition, typecheck_warnings
from kube_baseline.engine.admission.mutating import mutation_blocked_by, render_mutation
from kube_baseline.engine.admission.validating import BASELINE_LABEL, label_value, render_validation
from kube_baseline.engine.models import FIELD_MANAGER, MANAGED_BY_LABEL, Condition, parse_spec

logger = logging.getLogger("kube_baseline")

_ADMISSION = "/apis/admissionregistration.k8s.io"
MAP_VERSIONS = ("v1", "v1beta1")
DISCOVERY_SECONDS = 60.0  # MutatingAdmissionPolicy: GA in 1.36, beta (off by default) in 1.35
# kind -> (API path prefix, plural)
PATHS: dict[str, tuple[str, str]] = {
    "ValidatingAdmissionPolicy": (f"{_ADMISSION}/v1", "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": (f"{_ADMISSION}/v1", "validatingadmissionpolicybindings"),
}
MUTATING_KINDS = ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
_MUTATING_PLURALS = {"MutatingAdmissionPolicy": "mutatingadmissionpolicies",
                     "MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings"}  # fmt: skip


def _path(kind: str, name: str = "", version: str = "") -> str:
    """The API path of a generated kind (MutatingAdmissionPolicy*: at `version`)."""
    if kind in PATHS:
        prefix, plural = PATHS[kind]
    else:
        prefix, plural = f"{_ADMISSION}/{version}", _MUTATING_PLURALS[kind]
    return f"{prefix}/{plural}/{name}" if name else f"{prefix}/{plural}"


def owner_of(obj: Mapping[str, Any]) -> str:
    """The baseline a generated object belongs to (its ownerReference, else its label)."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == "SecurityBaseline":
            return str(ref.get("name", ""))
    return str((meta.get("labels") or {}).get(BASELINE_LABEL, ""))


def edited_by_others(obj: Mapping[str, Any]) -> bool:
    """Whether a manager other than ours owns fields of the object (status writers aside)."""
    return any(
        m.get("manager") != FIELD_MANAGER and not m.get("subresource")
        for m in (obj.get("metadata") or {}).get("managedFields") or ()
    )


class AdmissionSync:
    def __init__(self, cluster: Cluster, on_report: Callable[[str], None]):
        self.cluster = cluster
        self.on_report = on_report  # called with the baseline name when its report changed
        self.reports: dict[str, AdmissionReport] = {}
        self._bodies: dict[str, Mapping[str, Any]] = {}
        self._applied: dict[str, str] = {}  # baseline -> fingerprint of what was last applied
        self._rendered: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # baseline -> objects
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._discovered: tuple[float, str] | None = None  # (when, MutatingAdmissionPolicy version)
        self._watching_mutating = ""  # the MutatingAdmissionPolicy version watched, once served

    def condition(self, name: str, previous: Any, *, generation: int, now: str) -> Condition | None:
        report = self.reports.get(name)
        if report is None:
            return None
        return admission_condition(report, previous or [], generation=generation, now=now)

    async def _map_version(self) -> str:
        for version in MAP_VERSIONS:
            if await self.cluster.serves(
                f"admissionregistration.k8s.io/{version}", "mutatingadmissionpolicies"
            ):
                return version
        return ""

    async def sync(self, body: Mapping[str, Any], *, force: bool = False) -> None:
        """Render the baseline's policies and apply them (unless the same rendering was applied
        already and `force` is off); delete the ones no longer rendered; report."""
        meta = body.get("metadata") or {}
        name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
        try:
            spec = parse_spec(dict(body.get("spec") or {}))
        except ValidationError:
            return  # the Ready condition says the spec is invalid
        self._bodies[name] = body
        async with self._locks.setdefault(name, asyncio.Lock()):
            now = datetime.now(UTC)
            rendered = render_validation(name, uid, spec, now=now)
            objects = list(rendered.objects)
            mutation_note = ""
            map_version = ""
            if spec.admission.mutation == "Safe":
                map_version = await self._map_version()
                blocked = mutation_blocked_by(spec)
                if not map_version:
                    mutation_note = (
                        "mutation not in place: the API server does not serve MutatingAdmissionPolicy "
                        "(admissionregistration.k8s.io/v1 or v1beta1; in 1.35 it needs the "
                        "MutatingAdmissionPolicy feature gate and runtime-config)"
                    )
                elif blocked:
                    mutation_note = f"mutation not in place: {blocked}"
                else:
                    api_version = f"admissionregistration.k8s.io/{map_version}"
                    objects.extend({**o, "apiVersion": api_version} for o in render_mutation(name, uid, spec))
            else:  # still served? then stale MutatingAdmissionPolicies are looked for and deleted
                map_version = await self._map_version()
            if map_version:
                self._watch_mutating(map_version)
            fingerprint = hashlib.sha256(
                json.dumps([objects, mutation_note], sort_keys=True).encode()
            ).hexdigest()
            if not force and self._applied.get(name) == fingerprint:
                return
            self._rendered[name] = {(o["kind"], o["metadata"]["name"]): o for o in objects}
            report = AdmissionReport(
                validation=spec.admission.validation,
                mutation=spec.admission.mutation,
                unenforced=rendered.unenforced,
                mutation_note=mutation_note,
                next_expiry=rendered.next_expiry,
            )
            warnings: list[str] = []
            try:
                for obj in objects:
                    stored = await self._apply(obj)
                    warnings.extend(typecheck_warnings(stored))
                await self._delete_stale(
                    name, {(o["kind"], o["metadata"]["name"]) for o in objects}, map_version
                )
            except (ApiError, OSError, ValueError) as exc:
                logger.warning("Applying the admission policies of SecurityBaseline %s failed: %s", name, exc)
                self._applied.pop(name, None)
                report = replace(report, error=f"applying the admission policies failed: {exc}"[:2000])
            else:
                self._applied[name] = fingerprint
                policies = sum(1 for o in objects if not o["kind"].endswith("Binding"))
                mutating = sum(1 for o in objects if o["kind"] == "MutatingAdmissionPolicy")
                report = replace(report, policies=policies, mutating=mutating, warnings=tuple(warnings))
            self._schedule(name, rendered.next_expiry, now)
            if self.reports.get(name) != report:
                self.reports[name] = report
                self.on_report(name)

    async def _apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, name = obj["kind"], obj["metadata"]["name"]
        path = _path(kind, name, obj["apiVersion"].rsplit("/", 1)[-1])
        try:
            return await self.cluster.apply(path, obj, kind)
        except ApiError as exc:
            if exc.status != 422:
                raise
        # Invalid once merged with what another manager owns (say, Warn added to our Deny in
        # the set list validationActions): put the whole object back, then apply.
        await self._put_back(obj)
        return await self.cluster.apply(path, obj, kind)

    async def _put_back(self, obj: dict[str, Any]) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        api = obj["apiVersion"].rsplit("/", 1)[-1]
        listed = await self.cluster.read(_path(kind, version=api), {"fieldSelector": f"metadata.name={name}"})
        for current in (listed or {}).get("items") or ():
            version = (current.get("metadata") or {}).get("resourceVersion")
            body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
            await self.cluster.replace(_path(kind, name, api), body, kind)

    async def _ours(self, name: str, map_version: str) -> list[tuple[str, str, str]]:
        """(kind, name, version) of the generated objects labelled with this baseline."""
        selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{BASELINE_LABEL}={label_value(name)}"
        kinds = [(k, "") for k in PATHS] + ([(k, map_version) for k in MUTATING_KINDS] if map_version else [])
        found = []
        for kind, version in kinds:
            listed = await self.cluster.read(_path(kind, version=version), {"labelSelector": selector})
            for item in (listed or {}).get("items") or ():
                if owner_of(item) == name:
                    found.append((kind, str(item["metadata"]["name"]), version))
        return found

    async def _delete_stale(self, name: str, keep: set[tuple[str, str]], map_version: str) -> None:
        for kind, obj_name, version in await self._ours(name, map_version):
            if (kind, obj_name) not in keep:
                await self.cluster.delete(_path(kind, obj_name, version), kind)

    async def remove(self, name: str) -> None:
        """The baseline is gone: delete everything generated from it."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            if (timer := self._timers.pop(name, None)) is not None:
                timer.cancel()
            self._bodies.pop(name, None)
            self._applied.pop(name, None)
            self._rendered.pop(name, None)
            self.reports.pop(name, None)
            await self._delete_stale(name, set(), await self._map_version())
        self._locks.pop(name, None)

    async def observe(self, obj: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> None:
        """An event on a generated object: put it back as rendered (or delete it if its
        baseline is gone), and pick up the API server's type-checking warnings."""
        if baseline is None:
            kind, obj_name = str(obj.get("kind", "")), str((obj.get("metadata") or {}).get("name", ""))
            if kind in PATHS and obj_name:
                with contextlib.suppress(ApiError):
                    await self.cluster.delete(_path(kind, obj_name), kind)
            return
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind", "")), str(meta.get("name", "")))
        ours = self._rendered.get(owner_of(obj), {}).get(key)
        if ours is not None and edited_by_others(obj):
            # Apply alone would keep what the other manager owns: put the whole object back.
            await self._put_back(ours)
        await self.sync(baseline, force=True)

    def _watch_mutating(self, version: str) -> None:
        """Watch the generated MutatingAdmissionPolicies and bindings, as Kopf watches the
        validating ones: here, because they are served only where a feature gate (1.35) or the
        release (1.36) says so, which discovery tells once a baseline asks for them."""
        if self._watching_mutating == version:
            return
        self._watching_mutating = version
        for kind in MUTATING_KINDS:
            task = asyncio.get_running_loop().create_task(self._follow_mutating(kind, version))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _follow_mutating(self, kind: str, version: str) -> None:
        path, api_version = _path(kind, version=version), f"admissionregistration.k8s.io/{version}"
        async for what, obj in self.cluster.watch_path(path, kind, api_version):
            if self._watching_mutating != version:
                return  # another version is served now (an upgrade): its own watch took over
            if what not in ("ADDED", "MODIFIED", "DELETED"):
                continue  # the (re)list: sync applies what is rendered anyway
            labels = (obj.get("metadata") or {}).get("labels") or {}
            baseline = self._bodies.get(owner_of(obj))
            if labels.get(MANAGED_BY_LABEL) != FIELD_MANAGER or baseline is None:
                continue  # not ours, or its baseline is gone (remove() deletes what is left)
            obj = {**obj, "kind": kind, "apiVersion": api_version}
            try:
                await self.observe(obj, baseline)  # edited: put back; deleted: applied again
            except Exception:  # one failed put-back must not end the watch
                logger.exception("Putting back %s %s failed", kind, (obj.get("metadata") or {}).get("name"))

    def stop(self) -> None:
        """The operator stops: no more timers, watches or put-backs."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        self._watching_mutating = ""

    def _schedule(self, name: str, at: datetime | None, now: datetime) -> None:
        if (timer := self._timers.pop(name, None)) is not None:
            timer.cancel()
        if at is None:
            return
        delay = max((at - now).total_seconds(), 0.0) + 1.0
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay, self._resync, name)

    def _resync(self, name: str) -> None:
        body = self._bodies.get(name)
        if body is not None:
            task = asyncio.get_running_loop().create_task(self.sync(body, force=True))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
