"""`ReadModel`: what the operator knows of the cluster, changed only through its methods.

Live views of Kopf's indexes (baselines, namespaces, NetworkPolicies), the workload store the
operator's own watches fill (one packed audit view per workload), and the parsed baselines.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from kube_baseline.engine.desired import Baseline, NamespaceInfo, build_baseline
from kube_baseline.engine.workloads import Workload, pack_view, unpack_view, workload_at

# The Kopf index ids: the wiring registers the indexes under these names and Kopf passes their
# live views to handlers as keyword arguments of the same names.
IDX_BASELINES = "kb_baselines"
IDX_NAMESPACES = "kb_namespaces"
IDX_NETPOLS = "kb_networkpolicies"
INDEXES = (IDX_BASELINES, IDX_NAMESPACES, IDX_NETPOLS)
WorkloadKey = tuple[str, str, str]  # kind, namespace, name


class ReadModel:
    """The gathered state: Kopf's index views, the workload store and the parsed baselines."""

    def __init__(self) -> None:
        self._indexes: dict[str, Any] = {}
        self.bound = asyncio.Event()  # the index views are known (Kopf populates them first)
        # namespace -> key -> packed audit view (engine.workloads.pack_view: a fortieth of the
        # memory of the dicts, unpacked in microseconds)
        self._workloads: dict[str, dict[WorkloadKey, bytes]] = defaultdict(dict)
        self._parsed: dict[str, tuple[tuple[str, int], Baseline | str]] = {}
        self._selector_labels: dict[str, tuple[tuple[str, str], ...]] = {}
        # Whether the report API is served (None: not checked yet); see report_writer.
        self.reports_served: bool | None = None

    def note_reports_served(self, served: bool) -> bool:
        """Record whether the report API is served; True if that changed."""
        changed = self.reports_served != served
        self.reports_served = served
        return changed

    def bind(self, views: Mapping[str, Any]) -> None:
        """Keep the index views Kopf passes to handlers (they are live; all are populated by now)."""
        if not self.bound.is_set():
            self._indexes.update({name: views[name] for name in INDEXES if name in views})
            self.bound.set()

    def _values(self, index_name: str, key: Any) -> list[Any]:
        index = self._indexes.get(index_name)
        if index is None or key not in index:
            return []
        return list(index[key])

    # --- baselines ---

    def baseline_bodies(self) -> list[Mapping[str, Any]]:
        index = self._indexes.get(IDX_BASELINES) or {}
        return [body for name in list(index) for body in index[name]]

    def baseline_body(self, name: str) -> Mapping[str, Any] | None:
        for body in self._values(IDX_BASELINES, name):
            return body  # type: ignore[no-any-return]
        return None

    def parse(self, body: Mapping[str, Any]) -> Baseline | str:
        """The parsed baseline, or the validation error as text; cached by uid and generation."""
        meta = body.get("metadata") or {}
        name, tag = str(meta.get("name")), (str(meta.get("uid")), int(meta.get("generation") or 0))
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == tag:
            return cached[1]
        result: Baseline | str
        try:
            result = build_baseline(body)
        except ValidationError as exc:
            result = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        self._parsed[name] = (tag, result)
        return result

    def baselines(self) -> list[Baseline]:
        """Every valid baseline, in name order."""
        found = [self.parse(b) for b in self.baseline_bodies()]
        return sorted((b for b in found if isinstance(b, Baseline)), key=lambda b: b.name)

    def was_parsed(self, name: str) -> bool:
        return name in self._parsed

    def forget_parsed(self, name: str) -> None:
        self._parsed.pop(name, None)

    # --- namespaces and NetworkPolicies ---

    def namespace(self, name: str) -> NamespaceInfo:
        for info in self._values(IDX_NAMESPACES, name):
            return info  # type: ignore[no-any-return]
        return NamespaceInfo(name=name, labels={})

    def has_namespace(self, name: str) -> bool:
        return name in (self._indexes.get(IDX_NAMESPACES) or {})

    def namespace_names(self) -> list[str]:
        return sorted(self._indexes.get(IDX_NAMESPACES) or ())

    def namespaces(self) -> list[NamespaceInfo]:
        return [self.namespace(name) for name in self.namespace_names()]

    def selector_labels_changed(self, ns: NamespaceInfo) -> bool:
        """Record the labels selectors see on `ns`; True if they differ from the last ones recorded."""
        labels = tuple(sorted(ns.selector_labels.items()))
        previous = self._selector_labels.get(ns.name)
        self._selector_labels[ns.name] = labels
        return previous is not None and previous != labels

    def network_policies(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(IDX_NETPOLS, namespace)

    # --- workloads ---

    def store_workload(self, key: WorkloadKey, view: dict[str, Any] | None) -> None:
        """Keep (or, with None, drop) a workload's audit view."""
        if view is None:
            self._workloads.get(key[1], {}).pop(key, None)
        else:
            self._workloads[key[1]][key] = pack_view(view)

    def stored_keys(self, kind: str) -> Iterator[WorkloadKey]:
        for by_key in list(self._workloads.values()):
            yield from [k for k in by_key if k[0] == kind]

    def workload_keys(self, namespace: str | None = None) -> list[WorkloadKey]:
        if namespace is not None:
            return list(self._workloads.get(namespace, {}))
        return [key for by_key in list(self._workloads.values()) for key in list(by_key)]

    def workload(self, key: WorkloadKey) -> Workload | None:
        """The stored workload (its audit view), or None if it is not stored."""
        packed = self._workloads.get(key[1], {}).get(key)
        return None if packed is None else workload_at(unpack_view(packed), key[0])

    def workload_present(self, key: WorkloadKey) -> bool:
        return key in self._workloads.get(key[1], {})
