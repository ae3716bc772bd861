"""Write strategic-merge patches back into YAML text, changing nothing else.

Remediation only fills absent fields, so a fix is a set of insertions: new keys appended to an
existing mapping at its own indentation, after its last line. The text of the file is edited at
the positions libyaml reports for each node, so comments, key order, quoting, blank lines,
indentation and every untouched document stay byte for byte as they were. The few places that
cannot take a plain insertion are rewritten locally: an empty or null value (`securityContext:
{}`, `securityContext:`) becomes a block, and a non-empty flow collection (`{a: 1}`) is
rewritten as one JSON flow node.

`fix_text` then re-reads the result and checks that every document equals what
`remediation.apply_patch` gives for it; anything else raises `FixError`, and nothing is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kube_baseline.cli import decode, manifests
from kube_baseline.engine.remediation import MERGE_BY_NAME, merge

_NULL = "tag:yaml.org,2002:null"
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")

Key = tuple[int, tuple[int, ...]]


class FixError(manifests.InputError):
    """A planned fix that cannot be written into the file's text (nothing is written)."""


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: str
    depth: int  # deeper edits at the same position come first


@dataclass(frozen=True, slots=True)
class _Style:
    step: int  # indentation of a nested mapping
    seq_offset: int  # column of "- " relative to the key that holds the sequence
    newline: str


def fix_text(
    text: str,
    path: str,
    patches: Mapping[Key, dict[str, Any]],
    expected: Mapping[Key, dict[str, Any]],
) -> str:
    """Apply `patches` (by document index and List item path) to the YAML `text`.

    `expected` holds, for the same keys, the object the patch must produce
    (`remediation.apply_patch(obj, patch)`); the new text is verified against it.
    """
    if not patches:
        return text
    if path.endswith(".json"):
        return _fix_json(text, path, expected)
    newline = "\r\n" if "\r\n" in text else "\n"
    original = text
    if text and not text.endswith(("\n", "\r")):
        text += newline  # new lines may go at the very end
    roots = _compose_all(text, path)
    edits: list[_Edit] = []
    for (doc, items), patch in patches.items():
        where = manifests.source_of(path, doc, items)
        if doc >= len(roots) or roots[doc] is None:
            raise FixError(where, "no such document")
        root = roots[doc]
        assert root is not None
        style = _style_of(root, newline)
        node: Node = root
        for i in items:
            members = _get(node, "items")
            if not isinstance(members, SequenceNode) or i >= len(members.value):
                raise FixError(where, "no such List item")
            node = members.value[i]
        _merge(text, node, patch, style, edits, where, depth=0)
    new_text = _splice(text, edits, path)
    _verify(original, new_text, path, expected)
    return new_text


# --------------------------------------------------------------------------- reading nodes


def _compose_all(text: str, path: str) -> list[Node | None]:
    loader = decode._Loader(text)
    roots: list[Node | None] = []
    try:
        while loader.check_node():
            roots.append(loader.get_node())
    except Exception as err:  # already parsed once; only a changed file can get here
        raise FixError(path, f"cannot re-read for fixing: {err}") from None
    finally:
        loader.dispose()
    return roots


def _get(node: Node, key: str) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def _style_of(root: Node, newline: str) -> _Style:
    step = 0
    seq_offset = -1
    stack: list[Node] = [root]
    while stack and (step == 0 or seq_offset < 0):
        node = stack.pop()
        if not isinstance(node, MappingNode) or node.flow_style:
            if isinstance(node, SequenceNode) and not node.flow_style:
                stack.extend(node.value)
            continue
        for key, value in node.value:
            below = value.start_mark.line > key.start_mark.line
            block = not getattr(value, "flow_style", True) and bool(value.value)
            if isinstance(value, MappingNode) and block and below and step == 0:
                step = value.start_mark.column - key.start_mark.column
            if isinstance(value, SequenceNode) and block and below and seq_offset < 0:
                seq_offset = value.start_mark.column - key.start_mark.column
            stack.append(value)
    return _Style(step if step > 0 else 2, seq_offset if seq_offset >= 0 else 0, newline)


def _content_end(node: Node) -> int:
    """Index just past the last character of the node's own content (not trailing comments)."""
    while True:
        if isinstance(node, ScalarNode) or getattr(node, "flow_style", False) or not node.value:
            return int(node.end_mark.index)
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last


def _is_null(node: Node) -> bool:
    if not isinstance(node, ScalarNode):
        return False
    if node.tag == _NULL:
        return True
    return node.tag == manifests.PLAIN_TAG and manifests.plain_value(node.value) is None


def _is_empty_flow(node: Node) -> bool:
    return isinstance(node, MappingNode | SequenceNode) and bool(node.flow_style) and not node.value


# --------------------------------------------------------------------------- planning edits


def _merge(
    text: str, node: Node, patch: dict[str, Any], style: _Style, edits: list[_Edit], where: str, depth: int
) -> None:
    if not isinstance(node, MappingNode):
        raise FixError(where, f"line {node.start_mark.line + 1}: expected a mapping to patch")
    if node.flow_style:
        _rewrite_flow(text, node, patch, edits, where, depth)
        return
    existing: dict[str, tuple[Node, Node]] = {}
    for k, v in node.value:
        if isinstance(k, ScalarNode):
            existing[k.value] = (k, v)
    new: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith("$"):
            raise FixError(where, f"patch directive {key} is not supported")
        if key not in existing:
            new[key] = value
            continue
        key_node, value_node = existing[key]
        col = key_node.start_mark.column
        if _is_null(value_node) or _is_empty_flow(value_node):
            # `key:`, `key: null` or `key: {}`: the value becomes a block under the key.
            lines = _render_value(value, col, style)
            start = value_node.start_mark.index
            if lines.startswith(style.newline):  # a block: no trailing space after the colon
                while start > 0 and text[start - 1] == " ":
                    start -= 1
            edits.append(_Edit(start, value_node.end_mark.index, lines, depth))
        elif isinstance(value, dict) and isinstance(value_node, MappingNode):
            _merge(text, value_node, value, style, edits, where, depth + 1)
        elif isinstance(value, list) and key in MERGE_BY_NAME and isinstance(value_node, SequenceNode):
            _merge_named(text, value_node, value, style, edits, where, depth + 1)
        elif isinstance(value, list) and _appends_to(value_node, value):
            # A list the patch replaces whole but only extends (a tier's tolerations): the new
            # items go after the existing ones.
            pos = _line_after(text, _content_end(value_node))
            block = _render_sequence(value[len(value_node.value) :], value_node.start_mark.column, style)
            edits.append(_Edit(pos, pos, style.newline.join(block) + style.newline, depth))
        elif isinstance(value_node, ScalarNode) and _same_scalar(value_node, value):
            continue
        else:
            raise FixError(
                where,
                f"line {value_node.start_mark.line + 1}: the patch would change the existing value of {key}",
            )
    if new:
        col = node.start_mark.column
        pos = _line_after(text, _content_end(node))
        block = _render_mapping(new, col, style)
        prefix = style.newline if pos > 0 and text[pos - 1] not in "\r\n" else ""
        edits.append(_Edit(pos, pos, prefix + style.newline.join(block) + style.newline, depth))


def _merge_named(
    text: str,
    node: SequenceNode,
    items: list[Any],
    style: _Style,
    edits: list[_Edit],
    where: str,
    depth: int,
) -> None:
    if node.flow_style:
        raise FixError(
            where, f"line {node.start_mark.line + 1}: cannot patch a flow-style list of containers"
        )
    by_name: dict[str, Node] = {}
    for item in node.value:
        name = _get(item, "name")
        if isinstance(name, ScalarNode):
            by_name[name.value] = item
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise FixError(where, "patch list element without a name")
        target = by_name.get(item["name"])
        if target is None:
            raise FixError(where, f"no element named {item['name']} to patch")
        _merge(text, target, item, style, edits, where, depth + 1)


def _rewrite_flow(
    text: str, node: MappingNode, patch: dict[str, Any], edits: list[_Edit], where: str, depth: int
) -> None:
    merged = merge(_value(node), patch)
    edits.append(_Edit(node.start_mark.index, node.end_mark.index, _flow(merged), depth))


def _appends_to(node: Node, value: list[Any]) -> bool:
    """`node` is a non-empty block sequence whose items are the first items of `value`."""
    if not isinstance(node, SequenceNode) or node.flow_style or not node.value:
        return False
    current = _value(node)
    return isinstance(current, list) and len(value) > len(current) and value[: len(current)] == current


def _same_scalar(node: ScalarNode, value: Any) -> bool:
    return not isinstance(value, dict | list) and bool(_value(node) == value)


def _value(node: Node) -> Any:
    """What a node of the file means, typed as kubectl types it (cli.decode)."""
    loader = decode._Loader("")
    try:
        return decode._Builder(loader).build(node)
    finally:
        loader.dispose()


def _line_after(text: str, index: int) -> int:
    """Where a new line goes after the content ending at `index`: the start of the next line."""
    if index > 0 and text[index - 1] == "\n":
        return index
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


# --------------------------------------------------------------------------- rendering


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        return _flow(value)
    s = str(value)
    if _PLAIN.match(s) and _resolves_to_str(s):
        return s
    return json.dumps(s)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


_YAML11 = yaml.resolver.Resolver()


def _resolves_to_str(s: str) -> bool:
    """A string under kubectl's typing and under YAML 1.1 (PyYAML), so it may be left unquoted."""
    if manifests.plain_value(s).__class__ is not str:
        return False
    tag: str = _YAML11.resolve(yaml.ScalarNode, s, (True, False))  # type: ignore[no-untyped-call]
    return tag == "tag:yaml.org,2002:str"


def _render_mapping(mapping: dict[str, Any], col: int, style: _Style) -> list[str]:
    pad = " " * col
    lines: list[str] = []
    for key, value in mapping.items():
        head = f"{pad}{_scalar(key)}:"
        if isinstance(value, dict) and value:
            lines.append(head)
            lines.extend(_render_mapping(value, col + style.step, style))
        elif isinstance(value, list) and value:
            lines.append(head)
            lines.extend(_render_sequence(value, col + style.seq_offset, style))
        else:
            lines.append(f"{head} {_scalar(value)}")
    return lines


def _render_sequence(items: list[Any], col: int, style: _Style) -> list[str]:
    pad = " " * col
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            block = _render_mapping(item, col + 2, style)
            block[0] = pad + "- " + block[0][col + 2 :]
            lines.extend(block)
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _render_value(value: Any, key_col: int, style: _Style) -> str:
    """A value that replaces `null`/`{}` after `key:`: a block on the following lines."""
    if isinstance(value, dict) and value:
        lines = _render_mapping(value, key_col + style.step, style)
    elif isinstance(value, list) and value:
        lines = _render_sequence(value, key_col + style.seq_offset, style)
    else:
        return _scalar(value)
    return style.newline + style.newline.join(lines)


# --------------------------------------------------------------------------- applying


def _splice(text: str, edits: list[_Edit], path: str) -> str:
    ordered = sorted(enumerate(edits), key=lambda p: (p[1].start, -p[1].depth, p[0]))
    out: list[str] = []
    pos = 0
    for _, edit in ordered:
        if edit.start < pos:
            raise FixError(path, "overlapping edits")
        out.append(text[pos : edit.start])
        out.append(edit.text)
        pos = edit.end
    out.append(text[pos:])
    return "".join(out)


def _fix_json(text: str, path: str, expected: Mapping[Key, dict[str, Any]]) -> str:
    """JSON has no comments to keep: the document is written again, indented like the original."""
    want = _expected_documents(text, path, expected)
    indent = 2
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(stripped) < len(line):
            indent = len(line) - len(stripped)
            break
    return json.dumps(want[0], indent=indent, ensure_ascii=False) + "\n"


def _expected_documents(text: str, path: str, expected: Mapping[Key, dict[str, Any]]) -> list[Any]:
    want = [doc.data for doc in manifests.parse_documents(text, path)]
    for (doc, items), obj in expected.items():
        if not items:
            want[doc] = obj
            continue
        holder = want[doc]
        for i in items[:-1]:
            holder = holder["items"][i]
        holder["items"][items[-1]] = obj
    return want


def _verify(text: str, new_text: str, path: str, expected: Mapping[Key, dict[str, Any]]) -> None:
    """The new text must hold the same documents, with exactly the expected objects changed."""
    want = _expected_documents(text, path, expected)
    try:
        got = [doc.data for doc in manifests.parse_documents(new_text, path)]
    except manifests.InputError as err:
        raise FixError(err.where, f"the fixed text would not parse ({err.message})") from None
    if len(got) != len(want):
        raise FixError(path, "the fixed text would change the number of documents")
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            raise FixError(
                manifests.source_of(path, index), "could not write the fix without changing other content"
            )
