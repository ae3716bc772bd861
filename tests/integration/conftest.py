"""Fixtures shared by the integration tests (the cluster fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operator_helpers import SCOPE, unique


@pytest.fixture
def scope(kube: Any) -> Iterator[str]:
    """A label value unique to the test; baselines that select only it (label SCOPE) are
    deleted after the test."""
    value = unique("s")
    yield value
    kube.kubectl(
        "delete", "securitybaselines", "-l", f"{SCOPE}={value}", "--ignore-not-found", "--wait=false"
    )
