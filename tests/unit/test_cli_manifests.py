"""The CLI's reading and writing of YAML: the fast loader, and text-preserving fixes.

The loader gives what `yaml.load_all(text, CSafeLoader)` gives wherever YAML 1.1 and kubectl agree
(the fixtures and real-world manifests; where they differ, kubectl wins: test_cli_kubectl_typing.py,
which replaced the PyYAML property test of plain scalars); the fixer must
insert the patch and change nothing else (checked by exact expected texts), on real-world
manifests too (../shared/testdata, skipped when absent).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_baseline.cli import manifests, yamlfix
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _testdata() -> Path | None:
    env = os.environ.get("KUBE_BASELINE_TESTDATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "testdata")
    for c in candidates:
        if (c / "realworld").is_dir():
            return c / "realworld"
    return None


REALWORLD = _testdata()


def _reference(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_Loader))


# --------------------------------------------------------------------------- loader


@pytest.mark.parametrize(
    "path", sorted(p for p in FIXTURES.rglob("*.yaml") if p.parent.name != "bad"), ids=str
)
def test_loader_equals_csafeloader_on_fixtures(path: Path) -> None:
    text = path.read_text()
    assert [d.data for d in manifests.parse_yaml(text, str(path))] == _reference(text)


def test_loader_equals_csafeloader_on_realworld() -> None:
    if REALWORLD is None:
        pytest.skip("shared/testdata/realworld not found (set KUBE_BASELINE_TESTDATA)")
    files = sorted(REALWORLD.rglob("*.y*ml"))
    assert files
    for path in files:
        text = path.read_text()
        # kubectl ends a document with a line break even when the file does not (a final `|`
        # block keeps it): the reference is given the same input.
        reference = _reference(text if text.endswith("\n") else text + "\n")
        assert [d.data for d in manifests.parse_yaml(text, str(path))] == reference, path


def test_merge_keys_and_aliases_match_pyyaml() -> None:
    text = "base: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  b: 3\nlist: [*b, *b]\n"
    assert [d.data for d in manifests.parse_yaml(text, "x")] == _reference(text)


def test_document_lines_and_indices() -> None:
    text = "# head\n---\napiVersion: v1\nkind: A\n---\n---\napiVersion: v1\nkind: B\n"
    docs = manifests.parse_yaml(text, "x")
    assert [(d.index, d.line, d.data is None) for d in docs] == [(0, 3, False), (1, 6, True), (2, 7, False)]
    objects = [m for d in docs for m in manifests.objects_of("x", d)]
    assert [m.source for m in objects] == ["x#0", "x#2"]


def test_nested_list_sources() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMapList\n  items:\n  - {apiVersion: v1, kind: ConfigMap}\n"
        "  - {apiVersion: v1, kind: ConfigMap}\n"
        "- {apiVersion: v1, kind: Secret}\n"
    )
    docs = manifests.parse_yaml(text, "f.yaml")
    assert [m.source for m in manifests.objects_of("f.yaml", docs[0])] == [
        "f.yaml#0/0/0",
        "f.yaml#0/0/1",
        "f.yaml#0/1",
    ]


# --------------------------------------------------------------------------- fixer

POD_PATCH = {
    "spec": {
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": False}}],
    }
}


@pytest.mark.parametrize(
    ("name", "before", "patch", "after"),
    [
        (
            "k8s style: dash at the key's column",
            "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x  # pinned\n",
            POD_PATCH,
            "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x  # pinned\n"
            "    securityContext:\n      allowPrivilegeEscalation: false\n"
            "  securityContext:\n    runAsNonRoot: true\n",
        ),
        (
            "four-space indentation, indented dashes",
            "kind: Pod\nspec:\n    containers:\n        -   name: a\n            image: x\n",
            POD_PATCH,
            "kind: Pod\nspec:\n    containers:\n        -   name: a\n            image: x\n"
            "            securityContext:\n                allowPrivilegeEscalation: false\n"
            "    securityContext:\n        runAsNonRoot: true\n",
        ),
        (
            "null and empty flow values become blocks",
            "kind: Pod\nspec:\n  securityContext:\n  containers:\n  - name: a\n    securityContext: {}\n",
            POD_PATCH,
            "kind: Pod\nspec:\n  securityContext:\n    runAsNonRoot: true\n  containers:\n  - name: a\n"
            "    securityContext:\n      allowPrivilegeEscalation: false\n",
        ),
        (
            "non-empty flow mapping is rewritten in flow style",
            "kind: Pod\nspec:\n  securityContext: {runAsUser: 1000}\n"
            "  containers:\n  - {name: a, image: x}\n",
            POD_PATCH,
            "kind: Pod\nspec:\n  securityContext: {runAsUser: 1000, runAsNonRoot: true}\n"
            "  containers:\n  - {name: a, image: x, securityContext: {allowPrivilegeEscalation: false}}\n",
        ),
        (
            "no newline at the end of the file",
            "kind: Pod\nspec:\n  containers:\n  - name: a",
            POD_PATCH,
            "kind: Pod\nspec:\n  containers:\n  - name: a\n"
            "    securityContext:\n      allowPrivilegeEscalation: false\n"
            "  securityContext:\n    runAsNonRoot: true\n",
        ),
        (
            "CRLF line endings",
            "kind: Pod\r\nspec:\r\n  containers:\r\n  - name: a\r\n",
            POD_PATCH,
            "kind: Pod\r\nspec:\r\n  containers:\r\n  - name: a\r\n    securityContext:\r\n"
            "      allowPrivilegeEscalation: false\r\n  securityContext:\r\n    runAsNonRoot: true\r\n",
        ),
        (
            "a block scalar as the last value, comments after it",
            "kind: Pod\nmetadata:\n  annotations:\n    note: |\n      line\n\n"
            "# about spec\nspec:\n  containers:\n  - name: a\n",
            {"metadata": {"labels": {"team": "x"}}},
            "kind: Pod\nmetadata:\n  annotations:\n    note: |\n      line\n\n  labels:\n    team: x\n"
            "# about spec\nspec:\n  containers:\n  - name: a\n",
        ),
        (
            "strings that need quotes",
            "kind: Pod\nmetadata:\n  name: p\n",
            {"metadata": {"labels": {"a": "yes", "b": "1.0", "c": "x: y", "d": "plain-value"}}},
            "kind: Pod\nmetadata:\n  name: p\n  labels:\n"
            '    a: "yes"\n    b: "1.0"\n    c: "x: y"\n    d: plain-value\n',
        ),
    ],
)
def test_fix_text_exact(name: str, before: str, patch: dict[str, Any], after: str) -> None:
    docs = manifests.parse_yaml(before, "f.yaml")
    expected = {(0, ()): apply_patch(docs[0].data, patch)}
    got = yamlfix.fix_text(before, "f.yaml", {(0, ()): patch}, expected)
    assert got == after, name
    assert _reference(got)[0] == expected[(0, ())]


def test_fix_text_patches_list_items_and_leaves_other_documents() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}  # keep\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
        "- apiVersion: v1\n  kind: Pod\n  spec:\n    containers:\n    - name: a\n"
    )
    docs = manifests.parse_yaml(text, "f.yaml")
    pod = docs[1].data["items"][1]
    expected = {(1, (1,)): apply_patch(pod, POD_PATCH)}
    got = yamlfix.fix_text(text, "f.yaml", {(1, (1,)): POD_PATCH}, expected)
    assert got.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}  # keep\n---\n")
    assert got.endswith(
        "    - name: a\n      securityContext:\n        allowPrivilegeEscalation: false\n"
        "    securityContext:\n      runAsNonRoot: true\n"
    )


def test_fix_text_refuses_to_overwrite() -> None:
    text = "kind: Pod\nspec:\n  securityContext:\n    runAsNonRoot: false\n"
    patch = {"spec": {"securityContext": {"runAsNonRoot": True}}}
    with pytest.raises(yamlfix.FixError, match="would change the existing value"):
        yamlfix.fix_text(text, "f.yaml", {(0, ()): patch}, {(0, ()): {}})


def test_fix_text_verifies_the_result() -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - name: a\n"
    with pytest.raises(yamlfix.FixError, match="could not write the fix"):
        yamlfix.fix_text(text, "f.yaml", {(0, ()): POD_PATCH}, {(0, ()): {"kind": "Pod"}})


def test_fix_realworld_only_inserts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fixing real manifests (restricted, safe+guarded) only adds lines, except `{}`/null values."""
    if REALWORLD is None:
        pytest.skip("shared/testdata/realworld not found (set KUBE_BASELINE_TESTDATA)")
    work = tmp_path / "realworld"
    shutil.copytree(REALWORLD, work)
    before = {p: p.read_text() for p in work.rglob("*.y*ml")}
    code = main(["fix", "--profile", "restricted", "--risk", "safe,guarded", str(work)])
    _, err = capsys.readouterr()
    assert code in (0, 1), err
    changed = 0
    for path, old in before.items():
        new = path.read_text()
        if new == old:
            continue
        changed += 1
        removed = [
            line
            for line in difflib.ndiff(old.splitlines(), new.splitlines())
            if line.startswith("- ") and not line.rstrip().endswith(("{}", ":", "null", "[]"))
        ]
        assert removed == [], path
    assert changed > 0
    # Re-check: nothing fixable is left.
    assert main(["fix", "--profile", "restricted", "--risk", "safe,guarded", str(work)]) in (0, 1)
    capsys.readouterr()
    assert {p: p.read_text() for p in work.rglob("*.y*ml")} != before
