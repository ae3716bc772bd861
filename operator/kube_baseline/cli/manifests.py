"""Find and read Kubernetes manifests for the offline CLI.

Paths become input files (directories are walked for *.yaml, *.yml and *.json; `-` is standard
input), files become YAML documents, documents become objects (`*List` kinds are unrolled item
by item). Every problem is an `InputError` naming the place: `PATH`, `PATH#DOC` or
`PATH#DOC/ITEM`, where DOC is the 0-based index of the document in the file, counting every
document the YAML stream holds (empty ones too), and ITEM the 0-based index in `items` of a
`*List` (one more `/ITEM` per nested list).

Parsing (YAML typed as kubectl types it, JSON, limits) is cli.decode.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from kube_baseline.cli.decode import (
    MAX_DEPTH,
    MAX_NODES,
    PLAIN_TAG,
    Document,
    InputError,
    parse_documents,
    parse_json,
    parse_yaml,
    plain_value,
    source_of,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "PLAIN_TAG",
    "STDIN",
    "Document",
    "InputError",
    "Manifest",
    "expand_paths",
    "load",
    "objects_of",
    "parse_documents",
    "parse_json",
    "parse_yaml",
    "plain_value",
    "read_text",
    "source_of",
]

MAX_FILE_BYTES = 128 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


@dataclass(frozen=True, slots=True)
class Manifest:
    """One Kubernetes object of the input and where it came from."""

    path: str
    doc: int
    items: tuple[int, ...]
    line: int
    obj: dict[str, Any]
    origin: str = ""  # set for objects read from a cluster: KIND/NAMESPACE/NAME

    @property
    def source(self) -> str:
        return self.origin or source_of(self.path, self.doc, self.items)

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


# --------------------------------------------------------------------------- objects


def objects_of(path: str, doc: Document) -> list[Manifest]:
    """The Kubernetes objects of one document: none when it is empty, the items of a `*List`."""
    if doc.data is None:
        return []
    out: list[Manifest] = []
    _collect(path, doc.index, (), doc.line, doc.data, out)
    return out


def _collect(
    path: str,
    index: int,
    items: tuple[int, ...],
    line: int,
    data: Any,
    out: list[Manifest],
    implied: tuple[str, str] | None = None,
) -> None:
    where = source_of(path, index, items)
    if not isinstance(data, dict):
        raise InputError(where, f"not a Kubernetes object (a {_type_name(data)}, not a mapping)")
    if implied is not None and not (data.get("apiVersion") and data.get("kind")):
        # An item of a typed list (DeploymentList...) as the API returns it: kubectl takes the
        # apiVersion and kind from the list.
        data = {"apiVersion": implied[0], "kind": implied[1], **data}
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
        item_type = None if kind == "List" else (data["apiVersion"], kind.removesuffix("List"))
        for i, member in enumerate(members):
            _collect(path, index, (*items, i), line, member, out, item_type)
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
