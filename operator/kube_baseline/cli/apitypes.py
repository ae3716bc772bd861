"""The types the API server requires of the fields the checks read, checked before evaluating.

kubectl sends what the YAML means (cli.goyaml); the API server then decodes it into typed Go
structs and refuses an object whose field has the wrong JSON type (`privileged: "yes please"`,
`runAsUser: 1.5`, a label value `true`). Guessing what such a value means would be a CI-gate
bypass either way, so the CLI refuses it as the API server would: bad input, naming the field.
Only the fields the checks and remediation read are described; others are left to the API server.
A string that still holds `{{ ... }}` where the API server would refuse it is an unrendered
template, and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BOOL, INT32, INT64, STR, STR_MAP = "boolean", "int32", "int64", "string", "map of strings"
Schema = str | Mapping[str, "Schema"] | list["Schema"]

_INT_RANGE = {INT32: (-(1 << 31), (1 << 31) - 1), INT64: (-(1 << 63), (1 << 63) - 1)}

_SE_LINUX = {"user": STR, "role": STR, "type": STR, "level": STR}
_SECCOMP = {"type": STR, "localhostProfile": STR}
_WINDOWS = {"hostProcess": BOOL, "runAsUserName": STR}
_CONTAINER_SC: Schema = {
    "privileged": BOOL,
    "allowPrivilegeEscalation": BOOL,
    "runAsNonRoot": BOOL,
    "readOnlyRootFilesystem": BOOL,
    "runAsUser": INT64,
    "runAsGroup": INT64,
    "procMount": STR,
    "capabilities": {"add": [STR], "drop": [STR]},
    "seccompProfile": _SECCOMP,
    "appArmorProfile": _SECCOMP,
    "seLinuxOptions": _SE_LINUX,
    "windowsOptions": _WINDOWS,
}
_HANDLER = {"httpGet": {"host": STR}, "tcpSocket": {"host": STR}}
_CONTAINER: Schema = {
    "name": STR,
    "image": STR,
    "securityContext": _CONTAINER_SC,
    "ports": [{"containerPort": INT32, "hostPort": INT32, "hostIP": STR, "protocol": STR}],
    "livenessProbe": _HANDLER,
    "readinessProbe": _HANDLER,
    "startupProbe": _HANDLER,
    "lifecycle": {"postStart": _HANDLER, "preStop": _HANDLER},
}
POD_SPEC: Schema = {
    "hostNetwork": BOOL,
    "hostPID": BOOL,
    "hostIPC": BOOL,
    "hostUsers": BOOL,
    "automountServiceAccountToken": BOOL,
    "securityContext": {
        "runAsNonRoot": BOOL,
        "runAsUser": INT64,
        "runAsGroup": INT64,
        "fsGroup": INT64,
        "supplementalGroups": [INT64],
        "sysctls": [{"name": STR, "value": STR}],
        "seccompProfile": _SECCOMP,
        "appArmorProfile": _SECCOMP,
        "seLinuxOptions": _SE_LINUX,
        "windowsOptions": _WINDOWS,
    },
    "containers": [_CONTAINER],
    "initContainers": [_CONTAINER],
    "ephemeralContainers": [_CONTAINER],
    "volumes": [{"name": STR, "hostPath": {"path": STR, "type": STR}}],
}
METADATA: Schema = {"name": STR, "namespace": STR, "labels": STR_MAP, "annotations": STR_MAP}
# Where a template hole would be refused (names are DNS names; images cannot hold spaces).
_NAME_LIKE = frozenset({"name", "namespace", "image"})


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _template_hint(value: Any) -> str:
    if isinstance(value, str) and "{{" in value and "}}" in value:
        return " (an unrendered template? render it first, e.g. `helm template`)"
    return ""


def _item_name(item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) and name else str(index)


def problems(value: Any, schema: Schema, path: str, out: list[str]) -> None:
    """Append "FIELD: problem" for every value of the wrong type (null means absent, as in the API)."""
    if value is None:
        return
    if isinstance(schema, str):
        _scalar(value, schema, path, out)
    elif isinstance(schema, list):
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got a {_type_of(value)}{_template_hint(value)}")
            return
        for i, item in enumerate(value):
            problems(item, schema[0], f"{path}[{_item_name(item, i)}]", out)
    else:
        if not isinstance(value, dict):
            out.append(f"{path}: expected a mapping, got a {_type_of(value)}{_template_hint(value)}")
            return
        for key, found in value.items():
            sub = schema.get(key)
            if sub is None or found is None:
                continue
            if sub is STR and found.__class__ is str:  # the common case, inline
                if key in _NAME_LIKE and "{{" in found:
                    problems_of_template(found, f"{path}.{key}", out)
                continue
            problems(found, sub, f"{path}.{key}" if path else key, out)


def problems_of_template(value: str, path: str, out: list[str]) -> None:
    if _template_hint(value):
        out.append(f"{path}: {value!r} is not a valid value{_template_hint(value)}")


def _scalar(value: Any, kind: str, path: str, out: list[str]) -> None:
    if kind == STR_MAP:
        if not isinstance(value, dict):
            out.append(f"{path}: expected a {STR_MAP}, got a {_type_of(value)}{_template_hint(value)}")
            return
        for k, v in value.items():
            if not isinstance(v, str):
                out.append(f"{path}.{k}: expected a string, got the {_type_of(v)} {_show(v)} (quote it)")
        return
    if kind == BOOL:
        ok = isinstance(value, bool)
    elif kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not low <= value <= high:
            out.append(f"{path}: {value} is out of range for an {kind}")
            return
    else:
        ok = isinstance(value, str)
    if not ok:
        want = "an integer" if kind in _INT_RANGE else f"a {kind}"
        got = f"{_type_of(value)} {_show(value)}{_template_hint(value)}"
        out.append(f"{path}: expected {want}, got the {got}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    return "value"
