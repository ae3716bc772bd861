"""The generated CRD is a structural schema that says what the pydantic models say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import gen_crd
from kube_baseline.engine.models import SecurityBaselineSpec, SecurityBaselineStatus

CRD = gen_crd.build_crd()
VERSION = CRD["spec"]["versions"][0]
ROOT = VERSION["schema"]["openAPIV3Schema"]
SPEC = ROOT["properties"]["spec"]
STATUS = ROOT["properties"]["status"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("default", "enum") or key.startswith("x-kubernetes-"):
                continue
            if key == "properties":
                for name, sub in value.items():
                    yield from walk(sub, f"{path}.{name}")
            else:
                yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, path)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does, for objects and arrays of objects."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = apply_defaults(sub, sub["default"])
            elif name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def test_names_scope_and_subresources() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "securitybaselines.kube-baseline.io"
    assert spec["group"] == "kube-baseline.io"
    assert spec["scope"] == "Cluster"
    assert spec["names"] == {
        "kind": "SecurityBaseline",
        "listKind": "SecurityBaselineList",
        "plural": "securitybaselines",
        "singular": "securitybaseline",
        "shortNames": ["baseline", "baselines", "sb"],
    }
    assert VERSION["name"] == "v1alpha1" and VERSION["served"] and VERSION["storage"]
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns == {
        "Mode": ".spec.mode",
        "Profile": ".spec.profile",
        "Namespaces": ".status.summary.namespaces",
        "Workloads": ".status.summary.workloads",
        "Drifted": ".status.summary.drifted",
        "Remediated": ".status.summary.remediated",
        "RolledBack": ".status.rollouts.rolledBack",
        "Compliant": '.status.conditions[?(@.type=="Compliant")].status',
        "Age": ".metadata.creationTimestamp",
    }


@pytest.mark.parametrize("forbidden", ["$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "const"])
def test_schema_is_structural(forbidden: str) -> None:
    offenders = [path for path, node in walk(ROOT) if forbidden in node]
    assert offenders == []


def schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (properties, array items, map values), not the keywords around them."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from schemas(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schemas(node["additionalProperties"], f"{path}{{}}")


def test_every_node_has_a_type_and_no_closed_objects() -> None:
    untyped = [
        path
        for path, node in schemas(ROOT)
        if not node.get("type") and not node.get("x-kubernetes-int-or-string")
    ]
    closed = [path for path, node in walk(ROOT) if node.get("additionalProperties") is False]
    assert untyped == [] and closed == []


def test_spec_properties_match_the_model() -> None:
    wire = {f.alias or n for n, f in SecurityBaselineSpec.model_fields.items()}
    assert set(SPEC["properties"]) == wire


def test_server_defaults_equal_the_model_defaults() -> None:
    """Defaulting an empty spec with the CRD gives what pydantic gives for an empty spec."""
    defaulted = apply_defaults(SPEC, SPEC["default"])
    assert defaulted == SecurityBaselineSpec().model_dump(by_alias=True, mode="json")


def test_exemption_item_defaults_equal_the_model_defaults() -> None:
    spec = {"exemptions": [{"reason": "legacy", "namespace": "ns1"}]}
    expected = SecurityBaselineSpec.model_validate(spec).model_dump(by_alias=True, mode="json")
    for optional in ("expires", "owner"):  # None is not stored by the API server
        del expected["exemptions"][0][optional]
    assert apply_defaults(SPEC, spec)["exemptions"] == expected["exemptions"] != spec["exemptions"]


def test_optional_datetime_is_flattened() -> None:
    expires = SPEC["properties"]["exemptions"]["items"]["properties"]["expires"]
    assert expires == {
        "type": "string",
        "format": "date-time",
        "description": "After this time the exemption no longer applies.",
    }


def test_cel_rules_survive_generation() -> None:
    rules = [rule["rule"] for _, node in walk(ROOT) for rule in node.get("x-kubernetes-validations", [])]
    assert any("localhostProfile" in r for r in rules)
    assert any("defaultDenyEgress" in r for r in rules)
    assert any("size(self.checks)" in r for r in rules)


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = STATUS["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]
    wire = {f.alias or n for n, f in SecurityBaselineStatus.model_fields.items()}
    assert set(STATUS["properties"]) == wire


def test_render_is_yaml_of_the_crd() -> None:
    text = gen_crd.render()
    assert text.startswith("# GENERATED")
    assert yaml.safe_load(text) == CRD
