"""YAML typing as kubectl does it (issue 11): table tests, the CLI regressions, and a differential
test against kubectl's own decoder (hack/kubectl-decode: apimachinery's YAMLOrJSONDecoder)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubectl_decode import decode, require

from kube_baseline.cli import manifests
from kube_baseline.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli"

# What go-yaml v2 + the JSON trip make of an unquoted value (facts of kubectl 1.35).
KUBECTL_SCALARS: list[tuple[str, Any]] = [
    ("y", True),
    ("Y", True),
    ("yes", True),
    ("Yes", True),
    ("YES", True),
    ("on", True),
    ("ON", True),
    ("n", False),
    ("N", False),
    ("no", False),
    ("Off", False),
    ("yEs", "yEs"),
    ("0.0", 0),
    ("0e0", 0),
    ("0o0", 0),
    ("1e3", 1000),
    ("017", 15),
    ("08", 8),
    ("0x1F", 31),
    ("1_000", 1000),
    ("1.5", 1.5),
    (".5", 0.5),
    ("1e400", "1e400"),
    ("12:30:00", "12:30:00"),
    ("2024-01-02", "2024-01-02"),
    ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
    ("~", None),
    ("Null", None),
    ("=", "="),
]


def _parse_one(value: str) -> Any:
    [doc] = manifests.parse_yaml(f"k: {value}\n", "x")
    return doc.data["k"]


@pytest.mark.parametrize(("text", "want"), KUBECTL_SCALARS)
def test_plain_scalar_means_what_it_means_to_kubectl(text: str, want: Any) -> None:
    got = _parse_one(text)
    assert (type(got), got) == (type(want), want)


def test_keys_become_json_strings() -> None:
    [doc] = manifests.parse_yaml("y: 1\n1: 2\n1.5: 3\n1e6: 4\n0x10: 5\n", "x")
    assert doc.data == {"true": 1, "1": 2, "1.5": 3, "1e+06": 4, "16": 5}


@pytest.mark.parametrize("text", ["k: .nan\n", "k: -.inf\n", "? ~\n: 1\n"])
def test_values_json_cannot_carry_are_bad_input(text: str) -> None:
    with pytest.raises(manifests.InputError, match="x#0"):
        manifests.parse_yaml(text, "x")


# --------------------------------------------------------------------------- the CLI regressions

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: apps}}
spec:
  securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
  - name: app
    image: busybox:1.36
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
      {field}
"""


def check(capsys: pytest.CaptureFixture[str], tmp_path: Path, field: str, *args: str) -> tuple[int, Any, str]:
    path = tmp_path / "pod.yaml"
    path.write_text(POD.format(field=field))
    code = main(["check", "-o", "json", *args, str(path)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else None, err


@pytest.mark.parametrize(
    ("field", "check_id"),
    [
        ("privileged: y", "privileged"),
        ("privileged: Yes", "privileged"),
        ("runAsUser: 0.0", "runAsUser"),
        ("runAsUser: 0e0", "runAsUser"),
        ("runAsUser: 0o0", "runAsUser"),
    ],
)
def test_yaml_spellings_of_unsafe_values_are_found(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, field: str, check_id: str
) -> None:
    code, report, _ = check(capsys, tmp_path, field, "--profile", "restricted")
    assert code == 1
    assert {f["check"] for f in report["objects"][0]["findings"]} == {check_id}


def test_host_network_y_is_found(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(
        POD.format(field="readOnlyRootFilesystem: true").replace(
            "  securityContext: {", "  hostNetwork: Y\n  securityContext: {", 1
        )
    )
    code = main(["check", "-o", "json", str(path)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {f["check"] for f in report["objects"][0]["findings"]} == {"hostNamespaces"}


def test_allow_privilege_escalation_n_is_false(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(
        POD.format(field="runAsUser: 1000").replace(
            "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: n"
        )
    )
    assert main(["check", "--profile", "restricted", str(path)]) == 0


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            'privileged: "yes please"',
            "securityContext.privileged: expected a boolean, got the string 'yes please'",
        ),
        (
            "privileged: 1",
            "spec.containers[app].securityContext.privileged: expected a boolean, got the integer 1",
        ),
        (
            "runAsUser: 1.5",
            "spec.containers[app].securityContext.runAsUser: expected an integer, got the number 1.5",
        ),
        (
            "runAsUser: '0'",
            "spec.containers[app].securityContext.runAsUser: expected an integer, got the string '0'",
        ),
        (
            'privileged: "{{ .Values.privileged }}"',
            "got the string '{{ .Values.privileged }}' (an unrendered template?",
        ),
        (
            "capabilities: {add: [NET_ADMIN, on]}",
            "capabilities.add[1]: expected a string, got the boolean true",
        ),
    ],
)
def test_a_value_the_api_server_would_refuse_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, field: str, message: str
) -> None:
    code, report, err = check(
        capsys,
        tmp_path,
        field.replace(
            "capabilities: {add: [NET_ADMIN, on]}",
            "procMount: Default\n      capabilities: {add: [NET_ADMIN, on]}",
        ),
    )
    assert (code, report) == (2, None)
    assert "pod.yaml#0: Pod p: " in err and message in err, err


def test_label_value_must_be_a_string(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {enabled: yes}\n")
    assert main(["check", str(path)]) == 2
    assert (
        "d.yaml#0: ConfigMap c: metadata.labels.enabled: expected a string, got the boolean true"
        in capsys.readouterr().err
    )


# --------------------------------------------------------------------------- differential

YAML_SPECIALS = [s for s, _ in KUBECTL_SCALARS] + [
    "0x",
    "0b2",
    "-0b101",
    "+.inf",
    ".NaN",
    "0_1",
    "1__0",
    "._5",
    ".5_0",
    "1e-400",
    "+1",
    "-0",
    "0.",
    "1.e3",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "true",
    "TRUE",
    "tRUE",
    "<<",
    "",
]
SCALAR = st.one_of(st.sampled_from(YAML_SPECIALS), st.text(alphabet="abny019.:-_+~eExob ", max_size=8))


def _canonical(value: Any) -> Any:
    """Compare numbers by value (JSON has one number type), everything else by type and value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", float(value) if not (isinstance(value, float) and math.isnan(value)) else "nan")
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return [_canonical(v) for v in value]


def _plain_ok(v: str) -> bool:
    """Writable as an unquoted value after `key: ` (no indicator, no comment, no nested mapping)."""
    if v == "":
        return True
    if v.strip() != v or ": " in v or " #" in v or v.endswith(":"):
        return False
    if v[0] in "-?:":
        return len(v) > 1 and v[1] != " "
    return v[0] not in ",[]{}#&*!|>'\"%@`"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SCALAR, min_size=1, max_size=12))
def test_plain_scalars_agree_with_kubectl(values: list[str]) -> None:
    require()
    lines = [f"k{i}: {v}" for i, v in enumerate(values) if _plain_ok(v)]
    if not lines:
        return
    text = "\n".join(lines) + "\n"
    [theirs] = decode(text)
    try:
        ours = [d.data for d in manifests.parse_yaml(text, "x")]
    except manifests.InputError:
        assert "error" in theirs or any(json.dumps(theirs).count(s) for s in ("nan", "inf")), (text, theirs)
        return
    assert "ok" in theirs, (text, theirs)
    assert _canonical(ours[0]) == _canonical(theirs["ok"]), text


def _fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.yaml") if p.parent.name != "bad")


def test_fixtures_decode_as_kubectl_decodes_them() -> None:
    require()
    for path in _fixture_files():
        text = path.read_text()
        ours = [d.data for d in manifests.parse_yaml(text, str(path)) if d.data is not None]
        theirs = [d["ok"] for d in decode(text) if d.get("ok") is not None]
        assert _canonical(ours) == _canonical(theirs), path


def test_bom_at_a_later_document_is_dropped_as_kubectl_does() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        "---\n\ufeffapiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"
    )
    ours = [d.data for d in manifests.parse_yaml(text, "x")]
    assert [o["metadata"]["name"] for o in ours] == ["a", "b"]
    assert [d["ok"] for d in decode(text)] == ours


def test_realworld_decodes_as_kubectl_decodes_it() -> None:
    from test_cli_manifests import REALWORLD

    if REALWORLD is None:
        pytest.skip("shared/testdata/realworld not found (set KUBE_BASELINE_TESTDATA)")
    require()
    for path in sorted(REALWORLD.rglob("*.y*ml")):
        text = path.read_text()
        theirs = decode(text)
        if any("error" in d for d in theirs):
            continue
        ours = [d.data for d in manifests.parse_yaml(text, str(path)) if d.data is not None]
        assert _canonical(ours) == _canonical([d["ok"] for d in theirs if d["ok"] is not None]), path
