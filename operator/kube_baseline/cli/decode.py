"""Parse a manifest file's text into documents, typed as kubectl types them.

YAML: libyaml's parser and composer (PyYAML's `CSafeLoader`; pure-Python `SafeLoader` when the
binding is missing) with a lean constructor: plain scalars mean what they mean to kubectl
(cli.goyaml), strings, maps and lists are built directly, and the rare explicit tags (!!binary,
!!set, unknown ones: refused) go through PyYAML's `SafeConstructor`. Aliases are expanded as copies
and counted against the size limit, so an alias bomb is reported instead of exhausting memory.
JSON: one document, numbers and strings as Go's decoder leaves them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kube_baseline.cli import goyaml

# Limits: a Kubernetes object is nowhere near them; beyond them the input is refused cleanly.
MAX_DEPTH = 100
MAX_NODES = 1_000_000

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"

_BaseLoader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


class InputError(Exception):
    """Input that cannot be used: unreadable, not YAML, not a Kubernetes object, over a limit."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file: its 0-based index, first line (1-based) and data."""

    index: int
    line: int
    data: Any


def source_of(path: str, doc: int, items: tuple[int, ...] = ()) -> str:
    return f"{path}#{doc}" + "".join(f"/{i}" for i in items)


# Explicit tags whose value go-yaml resolves like a plain scalar (then checks the type).
_RESOLVED_TAGS = {
    "tag:yaml.org,2002:null": (type(None),),
    "tag:yaml.org,2002:bool": (bool,),
    "tag:yaml.org,2002:int": (int,),
    "tag:yaml.org,2002:float": (int, float),
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
PLAIN_TAG = "tag:kube-baseline.io,2026:plain"  # an unquoted scalar that is not a string
_PLAIN = PLAIN_TAG
# Plain scalars repeat a lot in manifests (keys above all): remember what each means.
_RESOLVED: dict[str, Any] = {}
_UNSEEN = object()
_RESOLVED_MAX = 1 << 16


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's parser and composer, with kubectl's typing of scalars (cli.goyaml).

    `resolve` tags a plain scalar as a string or as `_PLAIN` (its value is in `_RESOLVED`),
    skipping PyYAML's YAML 1.1 resolvers and the path bookkeeping.
    """

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                meaning = _RESOLVED.get(value, _UNSEEN)
                if meaning is _UNSEEN:
                    meaning = plain_value(value)
                if meaning.__class__ is str:
                    return _MERGE if value == "<<" else _STR
                return _PLAIN
            return _STR
        return _MAP if kind is MappingNode else _SEQ


def plain_value(text: str) -> Any:
    """What an unquoted scalar means to kubectl (before the JSON trip of floats)."""
    try:
        return _RESOLVED[text]
    except KeyError:
        pass
    value = goyaml.plain(text)
    if len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[text] = value
    return value


def _scalar(node: ScalarNode) -> Any:
    """A non-string scalar's value; a float as the API server receives it."""
    tag = node.tag
    if tag == _PLAIN:
        value = plain_value(node.value)
    elif tag == _TIMESTAMP:
        return node.value  # go-yaml hands timestamps to kubectl as strings
    else:
        value = plain_value(node.value)
        if value.__class__ not in _RESOLVED_TAGS[tag]:
            short = tag.rsplit(":", 1)[-1]
            raise _LimitError(f"line {node.start_mark.line + 1}: cannot decode {node.value!r} as a !!{short}")
        if tag.endswith(":float") and value.__class__ is int:
            value = float(value)
    if value.__class__ is float:
        try:
            return goyaml.through_json(value)
        except goyaml.NotJSONError as err:
            raise _LimitError(f"line {node.start_mark.line + 1}: {node.value}: {err}") from None
    return value


class _Builder:
    """Turns composed nodes into Python data, with depth and size limits."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.budget = MAX_NODES

    def build(self, node: Node, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _LimitError(f"nested deeper than {MAX_DEPTH} levels")
        cls = node.__class__
        if cls is ScalarNode:
            self.budget -= 1
            tag = node.tag
            if tag in (_STR, _MERGE):  # `<<` is a string except as a key
                return node.value
            if tag in (_PLAIN, _TIMESTAMP) or tag in _RESOLVED_TAGS:
                return _scalar(node)  # type: ignore[arg-type]
            return self.loader.construct_object(node, deep=True)
        if cls is MappingNode:
            if node.tag != _MAP:
                return self._other(node)
            pairs = node.value
            for key_node, _ in pairs:
                if key_node.tag == _MERGE:
                    self.loader.flatten_mapping(node)
                    pairs = node.value
                    break
            self.budget -= 2 * len(pairs) + 1
            if self.budget < 0:
                raise _LimitError(f"more than {MAX_NODES} nodes (aliases count each time they are used)")
            out: dict[Any, Any] = {}
            deeper = depth + 1
            for key_node, value_node in pairs:
                if key_node.__class__ is ScalarNode and key_node.tag == _STR:
                    key = key_node.value
                else:
                    key = self._key(key_node, deeper)
                if value_node.__class__ is ScalarNode and value_node.tag == _STR:
                    out[key] = value_node.value
                else:
                    out[key] = self.build(value_node, deeper)
            return out
        if cls is SequenceNode:
            if node.tag != _SEQ:
                return self._other(node)
            items = node.value
            self.budget -= len(items) + 1
            if self.budget < 0:
                raise _LimitError(f"more than {MAX_NODES} nodes (aliases count each time they are used)")
            deeper = depth + 1
            return [
                item.value if item.__class__ is ScalarNode and item.tag == _STR else self.build(item, deeper)
                for item in items
            ]
        return self._other(node)  # pragma: no cover - composer yields only the three kinds

    def _key(self, node: Node, depth: int) -> str:
        """A map key as JSON has it: a string (sigs.k8s.io/yaml converts scalar keys)."""
        if node.__class__ is ScalarNode and node.tag == _PLAIN:
            raw = plain_value(node.value)  # not the JSON trip: 1.0 as a key is "1"
        else:
            raw = self.build(node, depth)
        try:
            return goyaml.key(raw)
        except goyaml.NotJSONError as err:
            raise _LimitError(f"line {node.start_mark.line + 1}: {err}") from None

    def _other(self, node: Node) -> Any:
        # !!set, !!omap, !!pairs and unknown tags: PyYAML decides (and refuses unknown tags).
        return self.loader.construct_object(node, deep=True)


class _LimitError(Exception):
    pass


_BOM_AFTER_SEPARATOR = re.compile("^(---[ \t]*(?:#[^\n]*)?\r?\n)\ufeff", re.MULTILINE)


def parse_yaml(text: str, path: str) -> list[Document]:
    """Every document of a YAML stream, typed as kubectl types it (cli.goyaml).

    kubectl splits the stream on `---` lines and decodes each document on its own, so a
    byte-order mark at the start of a later document (`cat a.yaml b.yaml`) is dropped too.
    """
    if "\ufeff" in text:
        text = _BOM_AFTER_SEPARATOR.sub(r"\1", text)
    if text and not text.endswith("\n"):
        text += "\n"  # kubectl's reader ends every document with a line break (a final `|` keeps it)
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        while True:
            index = len(docs)
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                if node is None:  # pragma: no cover - check_node said there is one
                    break
                builder = _Builder(loader)
                data = builder.build(node)
            except _LimitError as err:
                raise InputError(source_of(path, index), str(err)) from None
            except yaml.MarkedYAMLError as err:
                raise InputError(source_of(path, index), _yaml_message(err)) from None
            except yaml.YAMLError as err:
                raise InputError(source_of(path, index), f"not valid YAML: {err}") from None
            except RecursionError:
                raise InputError(source_of(path, index), f"nested deeper than {MAX_DEPTH} levels") from None
            except (ValueError, TypeError, OverflowError) as err:
                # Raised by PyYAML's constructors for values they cannot build.
                raise InputError(source_of(path, index), f"not valid YAML: {err}") from None
            docs.append(Document(index, node.start_mark.line + 1, data))
    finally:
        loader.dispose()
    return docs


def _yaml_message(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = err.problem or err.context or "invalid"
    if "maximum nesting depth" in problem:
        return f"{where}nested too deeply"
    return f"{where}not valid YAML: {problem}"


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (Kubernetes cannot read it)")


def _json_float(text: str) -> int | float:
    return goyaml.through_json(float(text))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates (escaped in JSON) become U+FFFD, as Go's JSON decoder makes them."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def parse_json(text: str, path: str) -> list[Document]:
    """A .json file is one document, with numbers as the API server decodes them."""
    try:
        data = json.loads(text, parse_float=_json_float, parse_constant=_json_constant)
    except json.JSONDecodeError as err:
        raise InputError(
            source_of(path, 0), f"line {err.lineno}, column {err.colno}: not valid JSON: {err.msg}"
        ) from None
    except RecursionError:
        raise InputError(source_of(path, 0), f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, goyaml.NotJSONError) as err:
        raise InputError(source_of(path, 0), f"not valid JSON: {err}") from None
    problem = _check_limits(data)
    if problem:
        raise InputError(source_of(path, 0), problem)
    if _SURROGATE_ESCAPE.search(text):
        data = _replace_surrogates(data)
    return [Document(0, 1, data)]


def _check_limits(data: Any) -> str:
    stack: list[tuple[Any, int]] = [(data, 0)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            nodes += len(value)
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        if nodes > MAX_NODES:
            return f"more than {MAX_NODES} nodes"
    return ""


def parse_documents(text: str, path: str) -> list[Document]:
    if path.endswith(".json"):
        return parse_json(text, path)
    return parse_yaml(text, path)
