"""Odd but legal inputs, and inputs that must be refused (issue 11): one regression test per bug,
then fuzzing of malformed and mutated manifests (no traceback, exit 0, 1 or 2 only)."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kube_baseline.engine.models import EXTRA_CHECKS
from kube_baseline.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli"
PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "a", "image": "busybox:1.36", "securityContext": {"privileged": True}}]},
}


def run(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old_stdin = __import__("sys").stdin
        __import__("sys").stdin = io.TextIOWrapper(io.BytesIO(stdin))
        try:
            code = main(list(args))
        finally:
            __import__("sys").stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def test_json_with_a_lone_surrogate_is_read_as_kubectl_reads_it(tmp_path: Path) -> None:
    obj = json.dumps(PRIVILEGED_POD).replace('"name": "p"', '"name": "p\\ud800x"')
    code, out, err = run("check", write(tmp_path, "pod.json", obj))
    assert (code, err) == (1, "")
    assert "Pod p\ufffdx" in out


def test_typed_list_items_take_their_kind_from_the_list(tmp_path: Path) -> None:
    item = {k: v for k, v in PRIVILEGED_POD.items() if k not in ("apiVersion", "kind")}
    text = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [item, dict(item)]})
    code, out, err = run("check", "-o", "json", write(tmp_path, "list.json", text))
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert [(o["source"].rsplit("#", 1)[1], o["kind"], o["apiVersion"]) for o in report["objects"]] == [
        ("0/0", "Pod", "v1"),
        ("0/1", "Pod", "v1"),
    ]
    assert report["summary"]["failed"] == 2


def test_bom_at_the_start_of_a_later_document(tmp_path: Path) -> None:
    a = yaml.safe_dump(PRIVILEGED_POD).encode()
    b = b"\xef\xbb\xbf" + yaml.safe_dump({**PRIVILEGED_POD, "metadata": {"name": "q"}}).encode()
    code, out, err = run("check", "-o", "json", write(tmp_path, "ab.yaml", a + b"---\n" + b))
    assert (code, err) == (1, "")
    assert [o["name"] for o in json.loads(out)["objects"]] == ["p", "q"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("name", "{{ .Release.Name }}-web"),
        ("image", "{{ .Values.image.repository }}:{{ .Values.image.tag }}"),
    ],
)
def test_quoted_helm_template_is_bad_input_with_a_hint(tmp_path: Path, where: str, value: str) -> None:
    pod = json.loads(json.dumps(PRIVILEGED_POD))
    if where == "name":
        pod["metadata"]["name"] = value
    else:
        pod["spec"]["containers"][0]["image"] = value
    code, out, err = run("check", write(tmp_path, "t.yaml", yaml.safe_dump(pod)))
    assert (code, out) == (2, "")
    assert "t.yaml#0: Pod" in err and "unrendered template" in err and "helm template" in err


@pytest.mark.parametrize("text", [b"", b"\n", b"# only a comment\n", b"---\n---\n"])
def test_empty_input_is_bad_input_with_a_hint(text: bytes) -> None:
    code, out, err = run("check", "-", stdin=text)
    assert (code, out) == (2, "")
    assert "no Kubernetes objects in the input" in err and "helm template" in err


# --------------------------------------------------------------------------- networkPolicyCoverage


def _np(namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "deny"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def _coverage(tmp_path: Path, *docs: dict[str, Any], args: tuple[str, ...] = ()) -> list[str]:
    path = write(tmp_path, "in.yaml", yaml.safe_dump_all([PRIVILEGED_POD, *docs]))
    code, out, err = run(
        "check", "-o", "json", "--extra", "networkPolicyCoverage", "--disable", "privileged", *args, path
    )
    assert err == "" and code in (0, 1)
    return [f["message"] for o in json.loads(out)["objects"] for f in o["findings"]]


def test_namespaceless_workload_is_covered_by_a_policy_in_default(tmp_path: Path) -> None:
    assert _coverage(tmp_path, _np("default")) == []
    assert _coverage(tmp_path, _np(None)) == []


def test_namespace_option_places_namespaceless_objects(tmp_path: Path) -> None:
    assert _coverage(tmp_path, _np("default"), args=("-n", "team")) == [
        "no NetworkPolicy in namespace \"team\" selects the pods of Pod 'p' for ingress"
    ]
    assert _coverage(tmp_path, _np("team"), args=("-n", "team")) == []


def test_no_policy_in_the_input_is_a_finding(tmp_path: Path) -> None:
    assert _coverage(tmp_path) == [
        "no NetworkPolicy in namespace \"default\" selects the pods of Pod 'p' for ingress"
    ]


# --------------------------------------------------------------------------- text output


@pytest.mark.parametrize("bad", ["\n1 object checked, no findings, 0 skipped\n", "\x1b[2J", "\u202e", "\r"])
def test_control_characters_in_names_are_escaped(tmp_path: Path, bad: str) -> None:
    pod = json.loads(json.dumps(PRIVILEGED_POD))
    pod["metadata"]["name"] = f"p{bad}q"
    code, out, _ = run("check", write(tmp_path, "p.json", json.dumps(pod)))
    assert code == 1
    controls = [ch for ch in bad if not ch.isprintable() and ch != "\n"]
    assert not any(ch in out for ch in controls)
    lines = out.splitlines()
    assert [ln for ln in lines if ln[:1].isdigit()] == [lines[-1]], out
    code, out, _ = run("plan", "--profile", "restricted", write(tmp_path, "p.json", json.dumps(pod)))
    assert not any(ch in out for ch in controls)
    assert not any(ln.startswith("1 object checked") for ln in out.splitlines())


# --------------------------------------------------------------------------- fuzzing

SEEDS = [p.read_text() for p in sorted(FIXTURES.glob("*.yaml"))]
JSON_SEEDS = [p.read_text() for p in sorted(FIXTURES.glob("*.json"))]
NOISE = [
    *":-{}[],#&*!|>'\"%@`?\n\t ~yYn0.e\ufeff\x00\\",
    *("{{", "}}", "---\n", "  ", "\ud800", "\\ud800", "\\u001b"),
]
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    "",
    "y",
    "{{ x }}",
    [],
    {},
    [None],
    {"a": 1},
    "\x1b[1m",
]


def _mutate_text(text: str, rnd: random.Random) -> str:
    chars = list(text)
    for _ in range(rnd.randint(1, 6)):
        pos = rnd.randrange(len(chars) + 1)
        op = rnd.random()
        if op < 0.4:
            chars[pos:pos] = list(rnd.choice(NOISE))
        elif op < 0.7 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif chars:
            chars[min(pos, len(chars) - 1)] = rnd.choice(NOISE)
    return "".join(chars)


def _mutate_data(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict) and value:
        key = rnd.choice(list(value))
        copy = dict(value)
        copy[key] = _mutate_data(value[key], rnd) if rnd.random() < 0.7 else rnd.choice(VALUES)
        return copy
    if isinstance(value, list) and value:
        i = rnd.randrange(len(value))
        copy = list(value)
        copy[i] = _mutate_data(value[i], rnd) if rnd.random() < 0.7 else rnd.choice(VALUES)
        return copy
    return rnd.choice(VALUES)


def _assert_clean_exit(tmp_path: Path, name: str, text: str, *args: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    for command in (["check", "-o", "json"], ["check"], ["plan", "--risk", "safe,guarded"]):
        code, _, err = run(*command, *args, str(path))
        assert code in (0, 1, 2), (code, text)
        assert "Traceback" not in err


EXTRA = [a for c in EXTRA_CHECKS for a in ("--extra", c)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.sampled_from(SEEDS + JSON_SEEDS))
def test_fuzz_mutated_text(tmp_path: Path, rnd: random.Random, seed: str) -> None:
    name = "m.json" if seed.lstrip().startswith("{") else "m.yaml"
    _assert_clean_exit(tmp_path, name, _mutate_text(seed, rnd), "--profile", "restricted", *EXTRA)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.sampled_from(SEEDS))
def test_fuzz_mutated_objects(tmp_path: Path, rnd: random.Random, seed: str) -> None:
    docs = [d for d in yaml.safe_load_all(seed) if d is not None]
    mutated = [_mutate_data(d, rnd) if rnd.random() < 0.8 else d for d in docs]
    as_json = rnd.random() < 0.5 and len(mutated) == 1
    text = json.dumps(mutated[0], default=str) if as_json else yaml.safe_dump_all(mutated)
    _assert_clean_exit(tmp_path, "m.json" if as_json else "m.yaml", text, "--profile", "restricted", *EXTRA)
