"""The offline CLI: exit codes, the JSON contract, bad input, SARIF/JUnit, plan and fix.

Most tests call `main([...])` in-process; one runs the installed console script.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kube_baseline.cli import manifests
from kube_baseline.engine.checks import CHECKS
from kube_baseline.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli"
BASELINES = FIXTURES / "baselines"
BAD = FIXTURES / "bad"


def fx(name: str) -> str:
    return str(FIXTURES / name)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "check", "-o", "json", *args)
    assert err == ""
    return code, json.loads(out)


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("name", "args", "code"),
    [
        ("clean at restricted", ["check", "--profile", "restricted", fx("clean.yaml")], 0),
        ("findings at baseline", ["check", fx("findings.yaml")], 1),
        ("unknown kind is skipped, not an error", ["check", fx("unknown-kind.yaml")], 0),
        ("List item with an added capability", ["check", fx("list.yaml")], 1),
        ("JSON file", ["check", fx("deployment.json")], 1),
        (
            "directory, recursively (bad/ and baselines/ hold no workload)",
            ["check", str(FIXTURES / "baselines")],
            0,
        ),
        ("no PATH is a usage error", ["check"], 2),
        ("no command is a usage error", [], 2),
        ("unknown option is a usage error", ["check", "--nope", fx("clean.yaml")], 2),
        ("unknown output format", ["check", "-o", "xml", fx("clean.yaml")], 2),
        ("--extra with a PSS check id", ["check", "--extra", "privileged", fx("clean.yaml")], 2),
        ("--disable unknown id", ["check", "--disable", "nope", fx("clean.yaml")], 2),
        (
            "-f with --profile",
            ["check", "-f", str(BASELINES / "restricted.yaml"), "--profile", "baseline", "x"],
            2,
        ),
        ("bad --now", ["check", "--now", "yesterday", fx("clean.yaml")], 2),
        ("bad --risk", ["plan", "--risk", "safe,yolo", fx("clean.yaml")], 2),
        ("plan with nothing to change", ["plan", "--profile", "restricted", fx("clean.yaml")], 0),
        ("plan with changes", ["plan", "--profile", "restricted", fx("findings.yaml")], 1),
        ("--version", ["--version"], 0),
    ],
)
def test_exit_codes(capsys: pytest.CaptureFixture[str], name: str, args: list[str], code: int) -> None:
    got, _, err = run(capsys, *args)
    assert got == code, name
    assert "Traceback" not in err


def test_disabled_check_is_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(
        capsys, "--disable", "privileged", "--disable", "hostNamespaces", fx("findings.yaml")
    )
    assert code == 0
    assert report["summary"]["findings"] == 0


def test_extra_check_is_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(
        capsys, "--profile", "restricted", "--extra", "readOnlyRootFilesystem", fx("clean.yaml")
    )
    assert code == 1
    checks = {f["check"] for o in report["objects"] for f in o["findings"]}
    assert checks == {"readOnlyRootFilesystem"}


# --------------------------------------------------------------------------- the JSON contract

OBJECT_KEYS = {"source", "apiVersion", "kind", "namespace", "name", "findings"}
FINDING_KEYS = {"check", "severity", "level", "message", "field", "remediation"}


def test_json_contract_exact_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, fx("findings.yaml"), fx("list.yaml"))
    assert code == 1
    assert set(report) == {"objects", "summary"}
    assert set(report["summary"]) == {"objects", "failed", "findings", "skipped"}
    for obj in report["objects"]:
        assert set(obj) == OBJECT_KEYS
        for finding in obj["findings"]:
            assert set(finding) == FINDING_KEYS
            assert finding["remediation"] in {"safe", "guarded", "manual"}
            assert finding["severity"] in {"low", "medium", "high", "critical"}
            assert finding["level"] in {"baseline", "restricted", "extra"}
    sources = [o["source"] for o in report["objects"]]
    path, lst = fx("findings.yaml"), fx("list.yaml")
    assert sources == [f"{path}#0", f"{path}#1", f"{path}#2", f"{lst}#0/0", f"{lst}#0/1"]
    web = report["objects"][0]
    assert (web["apiVersion"], web["kind"], web["namespace"], web["name"]) == (
        "apps/v1",
        "Deployment",
        "shop",
        "web",
    )
    assert sorted(f["check"] for f in web["findings"]) == ["hostNamespaces", "privileged"]
    privileged = next(f for f in web["findings"] if f["check"] == "privileged")
    assert privileged["field"] == "spec.template.spec.containers[web].securityContext.privileged"
    assert privileged["remediation"] == "manual"
    # ConfigMap and Service: listed with no findings, counted as skipped.
    assert report["summary"] == {"objects": 5, "failed": 2, "findings": 3, "skipped": 2}


def test_exemption_applies_until_it_expires(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = str(BASELINES / "exempt.yaml")
    code, before = run_json(capsys, "-f", baseline, "--now", "2029-12-31T00:00:00Z", fx("findings.yaml"))
    assert (code, before["summary"]["findings"]) == (0, 0)
    code, after = run_json(capsys, "-f", baseline, "--now", "2030-01-02T00:00:00Z", fx("findings.yaml"))
    assert (code, after["summary"]["findings"]) == (1, 2)


def test_namespace_selection_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "-f", str(BASELINES / "namespaces.yaml"), fx("namespaces.yaml"))
    assert code == 1
    failed = {o["name"] for o in report["objects"] if o["findings"]}
    # prod matches the selector; dev does not; sandbox is excluded; kube-system is a system
    # namespace; "unknown" has no Namespace object in the input and is taken to match.
    assert failed == {"a", "e"}
    assert report["summary"] == {"objects": 7, "failed": 2, "findings": 2, "skipped": 5}


# --------------------------------------------------------------------------- bad input


def _deep(tmp: Path) -> str:
    depth = manifests.MAX_DEPTH + 5
    body = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "leaf: 1\n"
    p = tmp / "deep.yaml"
    p.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata:\n" + _indent(body, 2))
    return str(p)


def _indent(text: str, n: int) -> str:
    return "".join(" " * n + line + "\n" for line in text.splitlines())


def _flow_deep(tmp: Path) -> str:
    p = tmp / "flow.yaml"
    p.write_text("---\na: 1\n---\n" + "[" * 5000 + "]" * 5000 + "\n")
    return str(p)


def _alias_bomb(tmp: Path) -> str:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: bomb}",
        "a0: &a0 [x, x, x, x, x, x, x, x, x, x]",
    ]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    p = tmp / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _not_utf8(tmp: Path) -> str:
    p = tmp / "latin1.yaml"
    p.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    return str(p)


def _dangling(tmp: Path) -> str:
    d = tmp / "dir"
    d.mkdir()
    (d / "gone.yaml").symlink_to(tmp / "missing.yaml")
    return str(d)


def _unknown_tag(tmp: Path) -> str:
    p = tmp / "tag.yaml"
    p.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndata: !vault abc\n")
    return str(p)


def _bad_json(tmp: Path) -> str:
    p = tmp / "bad.json"
    p.write_text('{"apiVersion": "v1", "kind": }')
    return str(p)


def _list_item_without_kind(tmp: Path) -> str:
    p = tmp / "list.yaml"
    p.write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n- metadata: {name: x}\n")
    return str(p)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (
            "not YAML",
            lambda t: str(BAD / "not-yaml.yaml"),
            "not-yaml.yaml#0: line 6, column 1: not valid YAML",
        ),
        (
            "YAML list, not an object",
            lambda t: str(BAD / "not-object.yaml"),
            "not-object.yaml#0: not a Kubernetes object",
        ),
        (
            "no apiVersion/kind in document 1",
            lambda t: str(BAD / "no-kind.yaml"),
            "no-kind.yaml#1: not a Kubernetes object (no apiVersion and no kind)",
        ),
        ("missing path", lambda t: str(t / "nope.yaml"), "nope.yaml: no such file or directory"),
        ("unreadable file in a directory", _dangling, "gone.yaml: cannot read"),
        ("deeply nested block document", _deep, "deep.yaml#0: nested deeper than"),
        ("deeply nested flow document", _flow_deep, "flow.yaml#1: line 4, column 1001: nested too deeply"),
        ("alias bomb", _alias_bomb, "bomb.yaml#0: more than 1000000 nodes"),
        ("not UTF-8", _not_utf8, "latin1.yaml: not UTF-8 text"),
        ("unknown tag", _unknown_tag, "tag.yaml#0: line 4, column 7: not valid YAML"),
        ("bad JSON", _bad_json, "bad.json#0: line 1, column 30: not valid JSON"),
        ("List item without kind", _list_item_without_kind, "list.yaml#0/1: not a Kubernetes object"),
    ],
)
def test_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, make: Any, message: str
) -> None:
    path = make(tmp_path)
    for command in ("check", "plan", "fix"):
        code, out, err = run(capsys, command, path)
        assert code == 2, (name, command)
        assert message in err, (name, err)
        assert "Traceback" not in err
        assert out == ""


def test_huge_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "MAX_FILE_BYTES", 1024)
    p = tmp_path / "big.yaml"
    p.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n" + "  k: " + "x" * 2000 + "\n"
    )
    code, _, err = run(capsys, "check", str(p))
    assert code == 2
    assert "big.yaml: larger than the" in err


def test_all_bad_inputs_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", str(BAD))
    assert code == 2
    assert len(err.strip().splitlines()) == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "invalid risk class",
            None,
            "invalid.yaml: spec.remediation.riskClasses[0]: Input should be 'safe' or 'guarded'",
        ),
        (
            "wrong kind",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "#0: not a SecurityBaseline",
        ),
        (
            "unknown field",
            "apiVersion: kube-baseline.io/v1alpha1\nkind: SecurityBaseline\nspec: {profiles: x}\n",
            "spec.profiles: Extra inputs are not permitted",
        ),
        (
            "bad exemption check",
            "apiVersion: kube-baseline.io/v1alpha1\nkind: SecurityBaseline\n"
            "spec:\n  exemptions: [{reason: r, checks: [nope]}]\n",
            "spec.exemptions[0].checks[0]: Input should be",
        ),
        (
            "two documents",
            "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\n",
            "expected exactly one SecurityBaseline",
        ),
    ],
)
def test_bad_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    if content is None:
        path = str(BASELINES / "invalid.yaml")
    else:
        path = str(tmp_path / "baseline.yaml")
        Path(path).write_text(content)
    code, out, err = run(capsys, "check", "-f", path, fx("clean.yaml"))
    assert code == 2, name
    assert message in err, err
    assert "Traceback" not in err
    assert out == ""


def test_baseline_message_names_file_and_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "-f", str(BASELINES / "invalid.yaml"), fx("clean.yaml"))
    assert code == 2
    assert err.strip().endswith(
        f"{BASELINES / 'invalid.yaml'}: spec.remediation.riskClasses[0]: Input should be 'safe' or 'guarded'"
    )


# --------------------------------------------------------------------------- text, SARIF, JUnit


def test_text_groups_by_object_and_ends_with_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", fx("findings.yaml"))
    assert code == 1
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith(f"{fx('findings.yaml')}#0  Deployment shop/web")
    assert lines[-1] == "3 objects checked, 1 failed with 2 findings, 1 skipped"
    assert "\x1b[" not in out  # not a terminal


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [(["--color", "always"], {}, True), (["--color", "never"], {}, False), ([], {"NO_COLOR": "1"}, False)],
)
def test_colour(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    coloured: bool,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _, out, _ = run(capsys, "check", *args, fx("findings.yaml"))
    assert ("\x1b[" in out) is coloured


def test_sarif_is_valid_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "-o", "sarif", fx("findings.yaml"), fx("list.yaml"))
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run0 = sarif["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CHECKS)
    assert all(r["shortDescription"]["text"] and r["help"]["text"] for r in rules)
    results = run0["results"]
    assert len(results) == 3
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].endswith((".yaml",))
        assert loc["region"]["startLine"] >= 1
    lines = {r["ruleId"]: r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
    assert lines["privileged"] == 1  # first document starts on line 1
    assert lines["capabilities_baseline"] == 1  # a List item: the List document's line


def test_junit_is_well_formed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "-o", "junit", fx("findings.yaml"), fx("list.yaml"))
    assert code == 1
    root = ET.fromstring(out.encode())
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 5
    assert sum(len(c.findall("failure")) for c in cases) == 3
    assert sum(len(c.findall("skipped")) for c in cases) == 2
    assert suite.get("failures") == "2" and suite.get("tests") == "5"


# --------------------------------------------------------------------------- stdin


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_check_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, Path(fx("findings.yaml")).read_bytes())
    code, report = run_json(capsys, "-")
    assert code == 1
    assert [o["source"] for o in report["objects"]] == ["-#0", "-#1", "-#2"]


def test_fix_stdin_writes_yaml_to_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = Path(fx("commented.yaml")).read_text()
    _stdin(monkeypatch, original.encode())
    code, out, err = run(capsys, "fix", "--profile", "restricted", "--risk", "safe,guarded", "-")
    assert code == 0
    assert "fixed standard output" in err
    # The same text fix writes into a file.
    copy = tmp_path / "copy.yaml"
    copy.write_text(original)
    assert run(capsys, "fix", "--profile", "restricted", "--risk", "safe,guarded", str(copy))[0] == 0
    assert out == copy.read_text() != original


# --------------------------------------------------------------------------- plan


def test_plan_json_patch_applies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "-o", "json", "--profile", "restricted", fx("findings.yaml"))
    assert code == 1
    plans = json.loads(out)
    cron = next(o for o in plans["objects"] if o["kind"] == "CronJob")
    pod = cron["patch"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"] == [{"name": "report", "securityContext": {"allowPrivilegeEscalation": False}}]
    # Only safe fixes by default; runAsNonRoot/capabilities stay unfixed (guarded).
    assert {f["check"] for f in cron["unfixed"]} == {"runAsNonRoot", "capabilities_restricted"}


def test_plan_text_shows_diff(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "--profile", "restricted", "--color", "never", fx("findings.yaml"))
    assert code == 1
    assert "    +              allowPrivilegeEscalation: false" in out.splitlines()
    assert (
        out.rstrip().splitlines()[-1] == "2 objects to change, 3 changes, 7 findings not fixed by this plan"
    )


# --------------------------------------------------------------------------- fix


def _only_insertions(before: str, after: str) -> bool:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return not any(line.startswith("- ") for line in diff) and any(line.startswith("+ ") for line in diff)


def test_fix_keeps_comments_and_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "commented.yaml"
    shutil.copy(fx("commented.yaml"), target)
    before = target.read_text()
    code, out, _ = run(capsys, "fix", "--profile", "restricted", "--risk", "safe,guarded", str(target))
    assert code == 0, out
    after = target.read_text()
    added = [
        line[2:] for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line.startswith("+ ")
    ]
    removed = [
        line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line.startswith("- ")
    ]
    # `securityContext: {}` of the proxy is the one line rewritten (it becomes a block).
    assert removed == ["-         securityContext: {}"]
    assert "        securityContext:" in added
    assert "      securityContext:" in added  # pod level, at the pod spec's indentation
    assert "          allowPrivilegeEscalation: false" in added
    for comment in (
        "# Keep this header.",
        "# the public name",
        "# pinned",
        "# Trailing comment of the document.",
        "# untouched",
        "# A sidecar with its own settings.",
    ):
        assert comment in after
    assert "args: ['--port', \"8080\"]" in after
    assert f"fixed {target}: 1 object, " in out


def test_fix_then_check_is_clean_for_applied_classes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("commented.yaml", "findings.yaml", "list.yaml", "deployment.json"):
        shutil.copy(fx(name), tmp_path / name)
    settings = [
        "--profile",
        "restricted",
        "--extra",
        "readOnlyRootFilesystem",
        "--extra",
        "automountServiceAccountToken",
    ]
    code, _, err = run(capsys, "fix", *settings, "--risk", "safe,guarded", str(tmp_path))
    assert code in (0, 1), err
    code, report = run_json(capsys, *settings, str(tmp_path))
    left = {f["remediation"] for o in report["objects"] for f in o["findings"]}
    assert left <= {"manual"}
    # Idempotent: a second fix changes nothing.
    snapshot = {p.name: p.read_text() for p in tmp_path.iterdir()}
    run(capsys, "fix", *settings, "--risk", "safe,guarded", str(tmp_path))
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == snapshot


def test_fix_is_all_or_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "a-good.yaml"
    shutil.copy(fx("findings.yaml"), good)
    shutil.copy(BAD / "not-yaml.yaml", tmp_path / "b-bad.yaml")
    before = good.read_bytes()
    code, _, err = run(capsys, "fix", "--profile", "restricted", str(tmp_path))
    assert code == 2
    assert "b-bad.yaml#0" in err and "nothing was written" in err
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-good.yaml", "b-bad.yaml"]  # no temp files left


def test_fix_keeps_file_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "f.yaml"
    shutil.copy(fx("findings.yaml"), target)
    os.chmod(target, 0o640)
    code, _, _ = run(capsys, "fix", "--profile", "restricted", str(target))
    assert code == 1  # manual findings (privileged, hostNetwork) remain
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "allowPrivilegeEscalation: false" in target.read_text()


def test_fix_with_nothing_to_do_leaves_file_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "clean.yaml"
    shutil.copy(fx("clean.yaml"), target)
    mtime = target.stat().st_mtime_ns
    code, out, _ = run(capsys, "fix", "--profile", "restricted", str(target))
    assert code == 0
    assert target.stat().st_mtime_ns == mtime
    assert "0 objects fixed" in out


# --------------------------------------------------------------------------- console script


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "kube-baseline"
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    done = subprocess.run(
        [str(script), "check", "-o", "json", "-"],
        input=Path(fx("findings.yaml")).read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["summary"]["findings"] == 2
    bad = subprocess.run(
        [str(script), "check", str(BAD / "not-yaml.yaml")], capture_output=True, timeout=60, check=False
    )
    assert bad.returncode == 2
    assert b"Traceback" not in bad.stderr and b"not-yaml.yaml#0" in bad.stderr


# --------------------------------------------------------------------------- run (the operator)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run"],
            {
                "dry_run": False,
                "log_format": "text",
                "verbose": False,
                "namespaces": [],
                "standalone": False,
                "peering": None,
                "liveness": None,
                "metrics_port": 8081,
                "report_format": "policyreport",
            },
        ),
        (
            [
                "run",
                "--dry-run",
                "--log-format",
                "json",
                "-v",
                "-n",
                "a",
                "--namespace",
                "b",
                "--peering",
                "p",
                "--liveness",
                "http://127.0.0.1:8080/healthz",
                "--metrics-port",
                "0",
                "--report-format",
                "openreports",
            ],
            {
                "dry_run": True,
                "log_format": "json",
                "verbose": True,
                "namespaces": ["a", "b"],
                "standalone": False,
                "peering": "p",
                "liveness": "http://127.0.0.1:8080/healthz",
                "metrics_port": 0,
                "report_format": "openreports",
            },
        ),
        (
            ["run", "--standalone"],
            {
                "dry_run": False,
                "log_format": "text",
                "verbose": False,
                "namespaces": [],
                "standalone": True,
                "peering": None,
                "liveness": None,
                "metrics_port": 8081,
                "report_format": "policyreport",
            },
        ),
    ],
)
def test_run_passes_options_to_the_operator(
    monkeypatch: pytest.MonkeyPatch, args: list[str], expected: dict[str, Any]
) -> None:
    from kube_baseline.controller import handlers

    calls: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> int:
        calls.append(kwargs)
        return 7

    monkeypatch.setattr(handlers, "run_operator", fake)
    assert main(args) == 7
    assert calls == [expected]


def test_run_rejects_standalone_with_peering(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "--standalone", "--peering", "p")
    assert code == 2
    assert "not allowed with argument" in err
