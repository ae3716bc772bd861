"""What a fixer reads and what it fills in.

A fixer is the `fixer` of a catalogue row (checks/__init__.py): given one finding of its check
(whose risk class the baseline allows) and a `Fixes`, it records the fill-only edits that fix
the finding and says whether it could. `remediation.plan` turns the recorded edits into one
strategic-merge patch. Fixers never overwrite: each fills a field only where it is absent, and
the first edit recorded for a field wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kube_baseline.engine.checks.pod import Container, PodView
from kube_baseline.engine.models import Finding, RiskClass, SecurityContextDefaults

__all__ = ["Edit", "Fixer", "Fixes", "absent"]

# One field to fill: (value, check id, risk class).
Edit = tuple[Any, str, RiskClass]


def absent(parent: Mapping[str, Any], key: str) -> bool:
    return parent.get(key) is None


class Fixes:
    """A fixer's inputs (the pod, the baseline's fill values) and the edits it records."""

    def __init__(
        self, view: PodView, settings: SecurityContextDefaults, label_defaults: Mapping[str, str]
    ) -> None:
        self.view = view
        self.settings = settings
        self.label_defaults = label_defaults
        self.labels: dict[str, Edit] = {}  # workload label key -> edit
        self.pod: dict[str, Edit] = {}  # pod spec field -> edit
        self.pod_sc: dict[str, Edit] = {}  # pod securityContext field -> edit
        # (list name, container name) -> securityContext field -> edit
        self.containers: dict[tuple[str, str], dict[str, Edit]] = {}
        # The field path is unique per container; a missing name cannot be keyed in a patch.
        self._named: dict[str, Container] = {}
        for c in view.containers:
            if isinstance(c.raw.get("name"), str) and c.raw.get("name"):
                self._named.setdefault(c.field, c)

    def container_of(self, finding: Finding) -> Container | None:
        """The named container whose fields the finding points into."""
        if not finding.container:
            return None
        for c in self.view.containers:
            if c.name == finding.container and finding.field.startswith(c.field + "."):
                return self._named.get(c.field)
        return None

    def fill_container(self, c: Container, key: str, value: Any, finding: Finding) -> None:
        edits = self.containers.setdefault((c.list_name, c.name), {})
        edits.setdefault(key, (value, finding.check, finding.remediation))

    def fill_pod(self, key: str, value: Any, finding: Finding) -> None:
        self.pod.setdefault(key, (value, finding.check, finding.remediation))

    def fill_pod_sc(self, key: str, value: Any, finding: Finding) -> None:
        self.pod_sc.setdefault(key, (value, finding.check, finding.remediation))

    def fill_label(self, key: str, value: str, finding: Finding) -> None:
        self.labels.setdefault(key, (value, finding.check, finding.remediation))


# Records the edits that fix one finding; False when it cannot be fixed by filling.
Fixer = Callable[[Finding, Fixes], bool]
