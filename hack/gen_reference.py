#!/usr/bin/env python3
"""Print the SecurityBaseline spec reference (Markdown), generated from the CRD schema.

`make docs` writes it to docs/securitybaseline-reference.md; tests/unit/test_reference_is_current.py
fails when that file is stale. The schema is the one hack/gen_crd.py builds from the pydantic
models, so the reference, the CRD and the code cannot disagree.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from gen_crd import model_schema
from kube_baseline.engine.models import API_VERSION, KIND, SecurityBaselineSpec

HEADER = f"""# SecurityBaseline reference

Generated from the pydantic models by `make docs`; do not edit by hand.

`{KIND}` (`{API_VERSION}`) is cluster-scoped. Every field is optional and has the default shown.
Rules marked *rule* are CEL validations: the API server rejects a baseline that breaks them, with
the message shown.

| field | type | default | meaning |
|---|---|---|---|
"""


def type_of(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if "enum" in node:
        return " \\| ".join(f"`{v}`" if v else '`""`' for v in node["enum"])
    if kind == "array":
        return f"list of {type_of(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of {type_of(node['additionalProperties'])}"
    if node.get("format") == "date-time":
        return "timestamp (RFC 3339)"
    return str(kind)


def constraints(node: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(f"*rule:* {rule['message']}")
    return "; ".join(parts)


def rows(node: dict[str, Any], path: str) -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        default = json.dumps(child["default"]) if "default" in child and child.get("type") != "object" else ""
        meaning = " ".join(filter(None, [child.get("description", ""), constraints(child)]))
        yield f"| `{field}` | {type_of(child)} | {f'`{default}`' if default else ''} | {meaning} |"
        target = child.get("items", child) if child.get("type") == "array" else child
        yield from rows(target, f"{field}[]" if child.get("type") == "array" else field)


def main() -> int:
    schema = model_schema(SecurityBaselineSpec)
    rules = constraints({"x-kubernetes-validations": schema.get("x-kubernetes-validations", [])})
    out = HEADER + "\n".join(rows(schema, "spec")) + "\n"
    if rules:
        out += f"\nWhole-spec rules: {rules}\n"
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
