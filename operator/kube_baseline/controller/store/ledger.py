"""`WriteLedger`: what the operator concluded and wrote, changed only through its methods.

Verdicts per baseline, which statuses are due, the last status written, the resourceVersions
its own writes produced, and the reports written or failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from kube_baseline.controller.store.read_model import WorkloadKey
from kube_baseline.engine.status import Verdict


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class WriteLedger:
    """What the operator concluded and wrote."""

    def __init__(self) -> None:
        # baseline name -> workload key -> verdict
        self._verdicts: dict[str, dict[WorkloadKey, Verdict]] = defaultdict(dict)
        self._due: set[str] = set()  # baselines whose status may have changed
        self._last_status: dict[str, dict[str, Any]] = {}
        # workload key -> resourceVersion our last patch produced (older bodies are stale echoes)
        self._written_rv: dict[WorkloadKey, int] = {}
        # (what, namespace, name) -> resourceVersion the index showed when we wrote ("" = absent):
        # while the index still shows it, our write's echo has not arrived and it is not repeated.
        self._acted: dict[tuple[str, str, str], str] = {}
        # workload key -> digest of the report content last written (report_writer), and
        # the error of its last failed report write.
        self._report_hashes: dict[WorkloadKey, str] = {}
        self._report_errors: dict[WorkloadKey, str] = {}

    # --- verdicts and due statuses ---

    def record_verdicts(self, key: WorkloadKey, verdicts: Mapping[str, Verdict]) -> None:
        """The workload's verdict under each baseline governing it; the others forget it."""
        for name, verdict in verdicts.items():
            if self._verdicts[name].get(key) != verdict:
                self._verdicts[name][key] = verdict
                self._due.add(name)
        for name, by_key in self._verdicts.items():
            if name not in verdicts and by_key.pop(key, None) is not None:
                self._due.add(name)

    def verdicts(self, baseline: str) -> list[Verdict]:
        return list(self._verdicts.get(baseline, {}).values())

    def governed(self, baseline: str) -> int:
        """How many workloads have a verdict under the baseline (without copying them)."""
        return len(self._verdicts.get(baseline, {}))

    def verdict(self, baseline: str, key: WorkloadKey) -> Verdict | None:
        return self._verdicts.get(baseline, {}).get(key)

    def has_verdicts(self, baseline: str) -> bool:
        return baseline in self._verdicts

    def forget_workload(self, key: WorkloadKey) -> None:
        self.record_verdicts(key, {})
        self._written_rv.pop(key, None)
        self._report_hashes.pop(key, None)  # the report goes with the workload (ownerReference)
        self._report_errors.pop(key, None)

    def forget_baseline(self, name: str) -> None:
        self._verdicts.pop(name, None)
        self._last_status.pop(name, None)

    def keep_baselines(self, names: Iterable[str]) -> None:
        """Forget every baseline not named; mark the named ones due."""
        known = set(names)
        for name in [n for n in self._verdicts if n not in known]:
            self.forget_baseline(name)
        self._due.update(known)

    def mark_due(self, *names: str) -> None:
        self._due.update(names)

    def take_due(self, *, excluding: Iterable[str] = ()) -> list[str]:
        """Remove and return the due baselines, in name order, except those named in `excluding`."""
        names = sorted(self._due.difference(excluding))
        self._due.difference_update(names)
        return names

    # --- statuses ---

    def last_status(self, name: str) -> dict[str, Any] | None:
        return self._last_status.get(name)

    def status_written(self, name: str, status: dict[str, Any]) -> None:
        self._last_status[name] = status

    # --- our own writes ---

    def wrote_workload(self, key: WorkloadKey, resource_version: int) -> None:
        self._written_rv[key] = resource_version

    def is_stale_echo(self, key: WorkloadKey, body: Mapping[str, Any]) -> bool:
        """`body` is older than what our own last patch of it produced (its echo will come)."""
        return resource_version(body) < self._written_rv.get(key, 0)

    def already_acted(self, key: tuple[str, str, str], seen_rv: str) -> bool:
        """True if we wrote `key` while the index showed `seen_rv` and it still does; else record it."""
        if self._acted.get(key) == seen_rv:
            return True
        self._acted[key] = seen_rv
        return False

    # --- Per-workload reports ---

    def report_hash(self, key: WorkloadKey) -> str | None:
        return self._report_hashes.get(key)

    def report_written(self, key: WorkloadKey, digest: str | None) -> None:
        """A report with content `digest` is stored for `key` (None: none is)."""
        if digest is None:
            self._report_hashes.pop(key, None)
        else:
            self._report_hashes[key] = digest
        if self._report_errors.pop(key, None) is not None:
            self.mark_due(*self._baselines_of(key))

    def forget_report_hashes(self) -> None:
        self._report_hashes.clear()

    def report_failed(self, key: WorkloadKey, error: str) -> None:
        if self._report_errors.get(key) != error:
            self._report_errors[key] = error
            self.mark_due(*self._baselines_of(key))

    def report_errors(self, baseline: str) -> list[str]:
        """The errors of the failed report writes of workloads this baseline governs."""
        governed = self._verdicts.get(baseline, {})
        return [error for key, error in self._report_errors.items() if key in governed]

    def _baselines_of(self, key: WorkloadKey) -> list[str]:
        return [name for name, by_key in self._verdicts.items() if key in by_key]
