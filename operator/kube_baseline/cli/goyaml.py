"""What a YAML scalar means to kubectl: go-yaml v2 typing, then the trip through JSON.

kubectl (and every client built on client-go) reads manifests with k8s.io/apimachinery's
YAMLOrJSONDecoder: each document goes through sigs.k8s.io/yaml, which decodes it with go-yaml v2
and converts the result to JSON, and the API server then decodes that JSON into typed fields.
The rules that follow from it, which differ from PyYAML's YAML 1.1 resolver:

- Booleans: y Y yes Yes YES true True TRUE on On ON, and n N no No NO false False FALSE off Off
  OFF. Nothing else (`yEs` is a string).
- Null: the empty scalar, ~ null Null NULL.
- Integers: Go's base-0 syntax after removing underscores: 0x1F, 0o17, 0b101, 017 (octal), and
  up to 2^64-1. `08` is not an octal number, so it is the float 8.
- Floats: `^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (so 0e0 and 1e3 are numbers),
  .inf/.nan spelled as go-yaml knows them; a float that overflows is a string.
- Timestamps, sexagesimal numbers (12:30) and `=` stay strings.
- JSON carries numbers without a type: a float with an integral value (0.0, 0e0, 1e3) reaches
  the API server as an integer, so it is one here too. NaN and infinities cannot be sent.
- Map keys become strings: true/false, the integer's digits, a float formatted as Go does.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

_BOOL = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULL = frozenset(("", "~", "null", "Null", "NULL"))
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_NUMERIC_START = frozenset("+-0123456789")
_GO_INT = re.compile(r"([-+]?)(?:0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|(0[0-7]*)|([1-9][0-9]*))")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# Go's ParseFloat on a scalar starting with ".": underscores allowed between digits.
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+(?:_[0-9]+)*)?")
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


class NotJSONError(ValueError):
    """A value kubectl could not turn into JSON (NaN, an infinity, a null or too large map key)."""


def _go_int(plain: str) -> int | None:
    """Go's strconv.ParseInt(s, 0, 64), then ParseUint(s, 0, 64); None when neither parses."""
    m = _GO_INT.fullmatch(plain)
    if m is None:
        return None
    sign, hexa, octal, binary, zero_octal, decimal = m.groups()
    if hexa is not None:
        value = int(hexa, 16)
    elif octal is not None:
        value = int(octal, 8)
    elif binary is not None:
        value = int(binary, 2)
    elif zero_octal is not None:
        value = int(zero_octal, 8)
    else:
        value = int(decimal)
    if sign == "-":
        value = -value
    if _INT64_MIN <= value <= _INT64_MAX:
        return value
    if not sign and value <= _UINT64_MAX:
        return value
    return None


def _go_float(text: str) -> float | None:
    value = float(text)
    return None if math.isinf(value) else value  # Go: ErrRange, so not a float


def through_json(value: float) -> int | float:
    """The number the API server decodes from Go's JSON encoding of this float."""
    if math.isnan(value) or math.isinf(value):
        raise NotJSONError(f"{value} cannot be sent as JSON")
    if value.is_integer() and _INT64_MIN <= value <= _INT64_MAX:
        return int(value)
    return value


def plain(text: str) -> Any:
    """The value of an unquoted scalar as kubectl sends it (floats still unconverted: see through_json)."""
    if text in _BOOL:
        return _BOOL[text]
    if text in _NULL:
        return None
    special = _SPECIAL_FLOATS.get(text)
    if special is not None:
        return special
    first = text[0]
    if first == ".":
        return _go_float(text.replace("_", "")) if _DOT_FLOAT.fullmatch(text) else text
    if first not in _NUMERIC_START:
        return text
    stripped = text.replace("_", "")
    number = _go_int(stripped)
    if number is not None:
        return number
    if _YAML_FLOAT.fullmatch(stripped):
        f = _go_float(stripped)
        if f is not None:
            return f
    if stripped.startswith("0b"):  # only reached when ParseInt overflowed
        try:
            big = int(stripped[2:], 2)
        except ValueError:
            return text
        return big if big <= _UINT64_MAX else text
    return text


def _go_float32_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    f32 = struct.unpack("f", struct.pack("f", value))[0]
    if f32 == 0:
        return "-0" if math.copysign(1.0, f32) < 0 else "0"
    for digits in range(1, 10):
        text = f"{f32:.{digits - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == f32:
            break
    mantissa, exp_text = text.split("e")
    exp = int(exp_text)
    if exp < -4 or exp >= 6:  # Go's shortest 'g' switches to %e at precision 6
        sign = "-" if exp < 0 else "+"
        return f"{mantissa}e{sign}{abs(exp):02d}"
    return f"{float(text):.{max(digits - 1 - exp, 0)}f}"


def key(value: Any) -> str:
    """A map key as sigs.k8s.io/yaml turns it into a JSON object key."""
    if value.__class__ is str:
        return str(value)
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        if value > _INT64_MAX:
            raise NotJSONError(f"map key {value} is out of range")
        return str(value)
    if isinstance(value, float):
        return _go_float32_g(value)
    if value is None:
        raise NotJSONError("a map key cannot be null")
    raise NotJSONError(f"a map key cannot be a {type(value).__name__}")
