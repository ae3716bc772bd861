#!/usr/bin/env python3
"""Print the SecurityBaseline CustomResourceDefinition, generated from the pydantic models.

`make crds` writes it to crds/securitybaselines.yaml; tests/unit/test_crd_is_current.py fails
when that file is stale. Pydantic's JSON schema is turned into a structural CRD schema:
`$defs`/`$ref` inlined, titles dropped, `anyOf: [X, null]` flattened into X,
`additionalProperties: false` dropped (the API server prunes unknown fields instead), and
`default_factory` values emitted as defaults (nested models in full: the API server validates
CEL rules against a default as written, without applying the nested defaults first).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from kube_baseline.engine.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    SecurityBaselineSpec,
    SecurityBaselineStatus,
)

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {"name": "Profile", "type": "string", "jsonPath": ".spec.profile"},
    {"name": "Namespaces", "type": "integer", "jsonPath": ".status.summary.namespaces"},
    {"name": "Workloads", "type": "integer", "jsonPath": ".status.summary.workloads"},
    {"name": "Drifted", "type": "integer", "jsonPath": ".status.summary.drifted"},
    {"name": "Remediated", "type": "integer", "jsonPath": ".status.summary.remediated"},
    {"name": "RolledBack", "type": "integer", "jsonPath": ".status.rollouts.rolledBack"},
    {
        "name": "Compliant",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Compliant")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Keys of a JSON schema that have no place in a structural CRD schema.
_DROPPED_KEYS = frozenset({"title", "examples", "$schema"})


class _WithFactoryDefaults(GenerateJsonSchema):
    """Emit defaults for fields that use `default_factory` (pydantic leaves them out)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        inner = dict(self.generate_inner(schema["schema"]))
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):  # in full: the server checks CEL rules against defaults as written
            inner["default"] = value.model_dump(by_alias=True, mode="json", exclude_none=True)
        else:
            inner["default"] = to_jsonable_python(value)
        return inner


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema (wire names), as a structural CRD schema."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)
    defs = raw.pop("$defs", {})
    return structural(raw, defs)


def structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
        target.update(node)  # siblings of $ref (description, default) win
        node = target
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [branch for branch in any_of if branch.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"unions are not supported in the CRD schema: {any_of}")
        del node["anyOf"]
        merged = dict(non_null[0])
        merged.update(node)
        node = merged
        if node.get("default", ...) is None:
            del node["default"]
        if "$ref" in node:  # an optional model: `X | None` is anyOf [{$ref: X}, null]
            return structural(node, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "default" or key.startswith("x-kubernetes-"):
            out[key] = value
        else:
            out[key] = structural(value, defs)
    return out


def build_crd() -> dict[str, Any]:
    spec = model_schema(SecurityBaselineSpec)
    spec["default"] = SecurityBaselineSpec().model_dump(by_alias=True, mode="json", exclude_none=True)
    status = model_schema(SecurityBaselineStatus)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = sorted({*conditions["items"].get("required", []), "type"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kube-baseline"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                f"{KIND} ({API_VERSION}) says what a hardened workload is for a set of "
                                "namespaces; the kube-baseline operator audits and remediates them."
                            ),
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = (
    "# GENERATED by hack/gen_crd.py from operator/kube_baseline/engine/models/ (`make crds`). Do not edit.\n"
)


def render() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=110)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
