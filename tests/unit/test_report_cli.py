"""`kube-baseline report`: the audit report from manifests (HTML, Markdown, JSON).

The HTML is parsed (stdlib HTMLParser) for its structure, every drifted workload and the absence of
any external asset; when a Chromium is installed (Debian package `chromium`), it is rendered
headless and its console must stay free of errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_baseline.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WORKLOADS = FIXTURES / "workloads"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def baseline_file(tmp_path: Path) -> Path:
    body = {
        "apiVersion": "kube-baseline.io/v1alpha1",
        "kind": "SecurityBaseline",
        "metadata": {"name": "audit-q3"},
        "spec": {
            "profile": "restricted",
            "exemptions": [
                {
                    "workload": "Deployment/web",
                    "checks": ["runAsNonRoot"],
                    "reason": "vendor image <runs as root>",
                    "owner": "team-shop",
                    "expires": "2030-01-01T00:00:00Z",
                },
                {"namespace": "legacy", "reason": "retired soon", "expires": "2020-01-01T00:00:00Z"},
            ],
        },
    }
    path = tmp_path / "baseline.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def manifests_dir(tmp_path: Path) -> Path:
    """Workloads in two namespaces: drifted ones, a compliant one, one the operator remediated."""
    out = tmp_path / "manifests"
    out.mkdir()
    compliant_container = {
        "name": "app",
        "image": "nginx:1.25",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }

    def dep(name: str, ns: str, containers: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, **meta},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": containers,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    },
                },
            },
        }

    docs = [
        dep("web", "shop", [{"name": "app", "image": "nginx:1.25"}]),
        dep(
            "priv<script>", "shop", [{"name": "app", "image": "x:1", "securityContext": {"privileged": True}}]
        ),
        dep("ok", "shop", [compliant_container]),
        dep(
            "fixed",
            "pay",
            [compliant_container],
            managedFields=[{"manager": "kube-baseline", "operation": "Apply"}],
        ),
        dep("api", "pay", [{"name": "app", "image": "x:1"}]),
    ]
    (out / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return out


class Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.summaries: list[str] = []
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key == "id" and value:
                self.ids.append(value)
            if key in ("src", "href", "xlink:href", "action", "poster", "data") and value:
                self.urls.append(value)
        self._in_summary = tag == "summary"

    def handle_data(self, data: str) -> None:
        if self._in_summary:
            self.summaries.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "summary":
            self._in_summary = False


def test_html_report_structure_every_drifted_workload_and_no_external_asset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, dirs = baseline_file(tmp_path), manifests_dir(tmp_path)
    code, html, err = run(capsys, "-f", str(base), str(dirs), "-o", "html")
    assert code == 0, err
    _, data_text, _ = run(capsys, "-f", str(base), str(dirs), "-o", "json")
    data = json.loads(data_text)
    parser = Structure()
    parser.feed(html)
    assert html.startswith("<!DOCTYPE html>") and parser.tags[0] == "html"
    assert {"evidence", "namespaces", "checks", "drifted", "remediation", "exemptions"} <= set(parser.ids)
    assert parser.tags.count("svg") == 2  # compliance by namespace, failing workloads by check
    assert parser.urls == [] and "script" not in parser.tags and "link" not in parser.tags
    assert not re.search(r"https?://|url\(|@import", html)
    # Every drifted workload (and only those) has its section, with its findings.
    drifted = {(d["kind"], d["namespace"], d["name"]) for d in data["drifted"]}
    assert drifted == {
        ("Deployment", "shop", "web"),
        ("Deployment", "shop", "priv<script>"),
        ("Deployment", "pay", "api"),
    }
    headings = {s.strip() for s in parser.summaries}
    for kind, ns, name in drifted:
        assert f"{kind} {ns}/{name}" in headings
    assert "<script>" not in html and "priv&lt;script&gt;" in html  # names are escaped
    # Evidence: the baseline file's hash, its name, the tool version.
    assert hashlib.sha256(base.read_bytes()).hexdigest() in html
    assert "audit-q3" in html and "kube-baseline 0.1.0" in html
    # Exemptions with owner and expiry; the expired one is marked.
    assert "team-shop" in html and "2030-01-01T00:00:00Z" in html and "expired" in html
    # Remediated (managedFields) and what remediation would fill now.
    assert data["remediated"] == [
        {"namespace": "pay", "kind": "Deployment", "name": "fixed", "source": f"{dirs}/all.yaml#3"}
    ]
    assert any("allowPrivilegeEscalation" in f for r in data["remediable"] for f in r["fields"])
    # Check references: PSS, CIS, NSA for a restricted check.
    ape = next(c for c in data["checks"] if c["id"] == "allowPrivilegeEscalation")
    assert (
        ape["cis"] == ["5.2.6"] and ape["pss"].startswith("Restricted") and ape["failingWorkloads"] == 3
    )  # web, priv, api
    assert "5.2.6" in html


def test_json_counts_agree_with_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, dirs = baseline_file(tmp_path), manifests_dir(tmp_path)
    _, report_text, _ = run(capsys, "-f", str(base), str(dirs), "-o", "json")
    report = json.loads(report_text)
    main(["check", "-f", str(base), str(dirs), "-o", "json"])
    check = json.loads(capsys.readouterr().out)
    failed = [o for o in check["objects"] if o.get("findings")]
    assert report["summary"]["drifted"] == len(failed) == len(report["drifted"])
    assert report["summary"]["workloads"] == 5
    assert sum(n["compliant"] + n["drifted"] for n in report["namespaces"]) == 5
    assert (
        report["header"]["baseline"]["specSha256"]
        == hashlib.sha256(
            json.dumps(report["header"]["baseline"]["spec"], sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )


def test_markdown_report_lists_drift_and_exemptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, md, _ = run(capsys, "-f", str(baseline_file(tmp_path)), str(manifests_dir(tmp_path)), "-o", "md")
    assert code == 0
    assert "### Deployment shop/web" in md and "### Deployment pay/api" in md
    assert "| * | Deployment/web | runAsNonRoot | team-shop | 2030-01-01T00:00:00Z |" in md


def test_bad_input_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    code, out, err = run(capsys, "--profile", "restricted", str(bad))
    assert code == 2 and out == "" and "bad.yaml" in err
    invalid = tmp_path / "baseline.yaml"
    invalid.write_text(
        "apiVersion: kube-baseline.io/v1alpha1\nkind: SecurityBaseline\nspec: {profile: strict}\n"
    )
    code, out, err = run(capsys, "-f", str(invalid), str(manifests_dir(tmp_path)))
    assert code == 2 and out == "" and "spec.profile" in err
    assert run(capsys)[0] == 2  # no PATH


def _browser() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_html_report_renders_in_a_headless_browser_without_console_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if _browser() is None:
        message = "no headless Chromium installed (make browser; Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # the project installs it (make test runs hack/browser)
        pytest.skip(message)
    _, html, _ = run(capsys, "-f", str(baseline_file(tmp_path)), str(manifests_dir(tmp_path)), "-o", "html")
    page = tmp_path / "report.html"
    page.write_text(html)
    browser = _browser()
    assert browser
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Deployment shop/web" in result.stdout and "<svg" in result.stdout  # it rendered the DOM
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
