"""The durable record of what the operator changed: one JSON line per write, on stdout.

Events expire (one hour by default); a log pipeline keeps these lines. Every write the operator
makes to an object it does not own outright (workloads, namespace labels) and to the objects it
creates (NetworkPolicies, reports) is logged by `record`, whatever `--log-format` says, on
the logger `kube_baseline.writes`. Status patches of SecurityBaselines and Events are not logged:
they are the operator's own bookkeeping. The line's fields are documented in README.md.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

LOGGER_NAME = "kube_baseline.writes"
logger = logging.getLogger(LOGGER_NAME)


class _Raw(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is when a line is logged (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure() -> None:
    """Send the write log to stdout as bare JSON lines (not through the operator's log format)."""
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout(sys.stdout)
        handler.setFormatter(_Raw())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def record(
    verb: str,
    kind: str,
    namespace: str,
    name: str,
    *,
    baselines: Iterable[str] = (),
    fields: Iterable[str] = (),
    resource_version: str = "",
) -> None:
    """Log one write: `verb` is patch|create|replace|delete|apply."""
    if not logger.isEnabledFor(logging.INFO):
        return
    line = {
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "logger": LOGGER_NAME,
        "action": verb,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "baselines": sorted(set(baselines)),
        "fields": sorted(set(fields)),
    }
    if resource_version:
        line["resourceVersion"] = resource_version
    logger.info(json.dumps(line, separators=(",", ":")))
