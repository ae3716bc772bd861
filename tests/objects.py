"""Test helper shared by the unit and conformance tests: the objects of a parsed YAML document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def iter_objects(doc: Any) -> Iterator[dict[str, Any]]:
    """Yield the object, or each item of a `*List` kind (recursively, in order).

    Anything that is not a mapping (None from an empty YAML document, a scalar, a list) yields
    nothing.
    """
    stack: list[Any] = [doc]
    while stack:
        current = stack.pop()
        if not isinstance(current, dict):
            continue
        kind = current.get("kind")
        items = current.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            stack.extend(reversed(items))
        else:
            yield current
