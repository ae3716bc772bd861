"""Conformance tests: print the agreement rate per source at the end of the run."""

from __future__ import annotations

import pytest
from conformance_support import REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("kube-baseline conformance (agreement with third-party verdicts)")
    for tally in REPORTS:
        for line in tally.lines():
            terminalreporter.write_line(line)
