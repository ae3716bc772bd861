"""Find and read Kubernetes manifests for the offline CLI.

Paths become input files (directories are walked for *.yaml, *.yml and *.json; `-` is standard
input), files become YAML documents, documents become objects (`*List` kinds are unrolled item
by item). Every problem is an `InputError` naming the place: `PATH`, `PATH#DOC` or
`PATH#DOC/ITEM`, where DOC is the 0-based index of the document in the file, counting every
document the YAML stream holds (empty ones too), and ITEM the 0-based index in `items` of a
`*List` (one more `/ITEM` per nested list).

Parsing uses libyaml (PyYAML's `CSafeLoader` parser and composer, pure-Python `SafeLoader` when
the binding is missing) with a lean constructor: plain strings, maps and lists are built
directly, every other tag goes through PyYAML's `SafeConstructor`, so the data equal what
`yaml.load_all(text, CSafeLoader)` returns. Aliases are expanded as copies and counted against
the size limit, so an alias bomb is reported instead of exhausting memory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Limits: a Kubernetes object is nowhere near them; beyond them the input is refused cleanly.
MAX_FILE_BYTES = 128 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 1_000_000

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"

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


@dataclass(frozen=True, slots=True)
class Manifest:
    """One Kubernetes object of the input and where it came from."""

    path: str
    doc: int
    items: tuple[int, ...]
    line: int
    obj: dict[str, Any]

    @property
    def source(self) -> str:
        return source_of(self.path, self.doc, self.items)

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            return ""
        return str(meta.get("name") or meta.get("generateName") or "")


def source_of(path: str, doc: int, items: tuple[int, ...] = ()) -> str:
    return f"{path}#{doc}" + "".join(f"/{i}" for i in items)


# --------------------------------------------------------------------------- paths


def expand_paths(args: Sequence[str]) -> list[str]:
    """Files as given, directories walked recursively for manifests (sorted), `-` kept."""
    out: list[str] = []
    seen: set[str] = set()
    for arg in args:
        if arg == STDIN:
            if STDIN not in seen:
                seen.add(STDIN)
                out.append(STDIN)
            continue
        if os.path.isdir(arg):
            found = list(_walk(arg))
        elif os.path.exists(arg):
            found = [arg]
        else:
            raise InputError(arg, "no such file or directory")
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def _walk(top: str) -> Iterator[str]:
    def fail(err: OSError) -> None:
        raise InputError(err.filename or top, f"cannot read directory: {err.strerror or err}")

    for root, dirs, files in os.walk(top, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield os.path.join(root, name)


def read_text(path: str, stdin: IO[bytes] | None = None) -> str:
    """The file's text (UTF-8, a BOM is dropped); `-` reads standard input."""
    try:
        if path == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            raw = stream.read(MAX_FILE_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(path, f"larger than the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text (byte {err.start})") from None


# --------------------------------------------------------------------------- documents


_IMPLICIT: dict[str, list[tuple[str, Any]]] = dict(_BaseLoader.yaml_implicit_resolvers)
_SCALARS: dict[str, Any] = {
    tag: fn
    for tag, fn in yaml.SafeLoader.yaml_constructors.items()
    if tag
    in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
        "tag:yaml.org,2002:binary",
    )
}
# Plain scalars repeat a lot in manifests (keys above all): remember how each resolved.
_RESOLVED: dict[str, str] = {}
_RESOLVED_MAX = 1 << 16


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's parser and composer with PyYAML's safe constructor for the rare tags.

    `resolve` gives the same tags as PyYAML's resolver (no path resolvers are registered for
    the safe loader), faster: it remembers plain scalars and skips the path bookkeeping.
    """

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                tag = _RESOLVED.get(value)
                return tag if tag is not None else plain_tag(value)
            return _STR
        return _MAP if kind is MappingNode else _SEQ


def plain_tag(value: str) -> str:
    """The tag YAML 1.1 (PyYAML's safe loader) gives an unquoted scalar."""
    tag = _STR
    for candidate, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            tag = candidate
            break
    if len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[value] = tag
    return tag


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
            if tag == _STR:
                return node.value
            scalar = _SCALARS.get(tag)
            if scalar is not None:
                return scalar(self.loader, node)
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
                    key = self.build(key_node, deeper)
                    try:
                        hash(key)
                    except TypeError:
                        raise _LimitError(
                            f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar"
                        ) from None
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

    def _other(self, node: Node) -> Any:
        # !!set, !!omap, !!pairs and unknown tags: PyYAML decides (and refuses unknown tags).
        return self.loader.construct_object(node, deep=True)


class _LimitError(Exception):
    pass


def parse_yaml(text: str, path: str) -> list[Document]:
    """Every document of a YAML stream, as `yaml.load_all(text, CSafeLoader)` would build it."""
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


def parse_json(text: str, path: str) -> list[Document]:
    """A .json file is one document."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            source_of(path, 0), f"line {err.lineno}, column {err.colno}: not valid JSON: {err.msg}"
        ) from None
    except RecursionError:
        raise InputError(source_of(path, 0), f"nested deeper than {MAX_DEPTH} levels") from None
    problem = _check_limits(data)
    if problem:
        raise InputError(source_of(path, 0), problem)
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


# --------------------------------------------------------------------------- objects


def objects_of(path: str, doc: Document) -> list[Manifest]:
    """The Kubernetes objects of one document: none when it is empty, the items of a `*List`."""
    if doc.data is None:
        return []
    out: list[Manifest] = []
    _collect(path, doc.index, (), doc.line, doc.data, out)
    return out


def _collect(
    path: str, index: int, items: tuple[int, ...], line: int, data: Any, out: list[Manifest]
) -> None:
    where = source_of(path, index, items)
    if not isinstance(data, dict):
        raise InputError(where, f"not a Kubernetes object (a {_type_name(data)}, not a mapping)")
    missing = [
        key for key in ("apiVersion", "kind") if not isinstance(data.get(key), str) or not data.get(key)
    ]
    if missing:
        raise InputError(where, f"not a Kubernetes object (no {' and no '.join(missing)})")
    kind = data["kind"]
    if kind.endswith("List") and "items" in data:
        members = data["items"]
        if members is None:
            return
        if not isinstance(members, list):
            raise InputError(where, f"{kind}: items must be a list")
        for i, member in enumerate(members):
            _collect(path, index, (*items, i), line, member, out)
        return
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InputError(where, f"{kind}: metadata must be a mapping")
    out.append(Manifest(path, index, items, line, data))


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def load(path: str, stdin: IO[bytes] | None = None) -> tuple[str, list[Manifest]]:
    """Read, parse and unroll one input: its text and its objects."""
    text = read_text(path, stdin)
    docs = parse_documents(text, path)
    objects: list[Manifest] = []
    for doc in docs:
        objects.extend(objects_of(path, doc))
    return text, objects
