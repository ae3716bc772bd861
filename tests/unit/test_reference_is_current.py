"""docs/securitybaseline-reference.md is generated from the models; it must not go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reference_matches_the_models() -> None:
    generated = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_reference.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (ROOT / "docs" / "securitybaseline-reference.md").read_text()
    assert generated == committed, "docs/ is stale: run `make docs` and commit the result"


def test_reference_lists_every_top_level_field() -> None:
    text = (ROOT / "docs" / "securitybaseline-reference.md").read_text()
    for field in (
        "mode",
        "profile",
        "namespaces",
        "checks",
        "remediation",
        "networkPolicies",
        "labels",
        "exemptions",
    ):
        assert f"| `spec.{field}` |" in text
