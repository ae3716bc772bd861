"""Render CLI results: text for people, JSON (a contract), SARIF 2.1.0 and JUnit XML for CI.

The JSON shape is a contract, exactly:

    {"objects": [{"source": "PATH#DOC", "apiVersion", "kind", "namespace", "name",
                  "findings": [{"check", "severity", "level", "message", "field", "remediation"}]}],
     "summary": {"objects", "failed", "findings", "skipped"}}

Objects that were not checked (not a workload, or in a namespace the baseline does not govern)
are listed with no findings and counted as skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from kube_baseline import __version__
from kube_baseline.cli.manifests import STDIN, Manifest
from kube_baseline.engine.checks import Check
from kube_baseline.engine.models import Finding

PSS_URL = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# SARIF result level and GitHub code scanning's numeric security-severity, by our severity.
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# Characters a terminal would act on (or that reorder or break lines): escaped in text output, so an
# object name cannot forge a line or colour of the report.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """Text safe to print: control and bidi characters written as escapes (\\x1b, \\u202e)."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# XML 1.0 cannot carry most control characters, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """One object of the input and what `check` found: findings, or why it was skipped."""

    manifest: Manifest
    findings: tuple[Finding, ...] = ()
    exempted: int = 0
    skipped: str = ""  # why it was not checked; "" when it was

    @property
    def label(self) -> str:
        m = self.manifest
        name = f"{m.namespace}/{m.name}" if m.namespace else m.name or "(no name)"
        return f"{m.kind} {name}"


@dataclass(slots=True)
class Summary:
    objects: int = 0
    failed: int = 0
    findings: int = 0
    skipped: int = 0
    exempted: int = 0


def summarize(results: Sequence[ObjectResult]) -> Summary:
    s = Summary(objects=len(results))
    for r in results:
        if r.skipped:
            s.skipped += 1
        if r.findings:
            s.failed += 1
            s.findings += len(r.findings)
        s.exempted += r.exempted
    return s


# --------------------------------------------------------------------------- colour


@dataclass(frozen=True, slots=True)
class Palette:
    enabled: bool

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text


_SEVERITY_COLOUR = {"critical": "1;31", "high": "31", "medium": "33", "low": "36"}


def use_colour(choice: str, stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """`always`/`never`, or for `auto`: a terminal, NO_COLOR unset or empty, TERM not dumb."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# --------------------------------------------------------------------------- check: text


def write_text(results: Sequence[ObjectResult], out: TextIO, colour: bool, verbose: bool = False) -> None:
    """Failed objects grouped with their findings (most severe first), then the summary line."""
    c = Palette(colour)
    for r in results:
        if not r.findings:
            if verbose:
                state = clean(f"skipped: {r.skipped}" if r.skipped else "pass")
                out.write(f"{c(clean(r.manifest.source), '1')}  {clean(r.label)}  {c(state, '2')}\n")
            continue
        out.write(f"{c(clean(r.manifest.source), '1')}  {c(clean(r.label), '1')}\n")
        for f in sorted(r.findings, key=lambda f: _SEVERITY_ORDER.get(f.severity, 9)):
            sev = c(f"{f.severity:<8}", _SEVERITY_COLOUR.get(f.severity, "0"))
            out.write(f"  {sev} {f.check:<28} {clean(f.message)}\n")
            out.write(f"  {'':<8} {'':<28} {c(clean(f'{f.field}  [fix: {f.remediation}]'), '2')}\n")
        out.write("\n")
    s = summarize(results)
    parts = [f"{s.objects} object{'s' if s.objects != 1 else ''} checked"]
    if s.failed:
        parts.append(
            c(f"{s.failed} failed with {s.findings} finding{'s' if s.findings != 1 else ''}", "1;31")
        )
    else:
        parts.append(c("no findings", "1;32"))
    parts.append(f"{s.skipped} skipped")
    if s.exempted:
        parts.append(f"{s.exempted} finding{'s' if s.exempted != 1 else ''} exempted")
    out.write(", ".join(parts) + "\n")


# --------------------------------------------------------------------------- check: JSON


def finding_dict(f: Finding) -> dict[str, str]:
    return {
        "check": f.check,
        "severity": f.severity,
        "level": f.level,
        "message": f.message,
        "field": f.field,
        "remediation": f.remediation,
    }


def identity(m: Manifest) -> dict[str, Any]:
    """Where an object comes from and what it is: the first keys of every JSON object entry."""
    return {
        "source": m.source,
        "apiVersion": m.api_version,
        "kind": m.kind,
        "namespace": m.namespace,
        "name": m.name,
    }


def json_report(results: Sequence[ObjectResult]) -> dict[str, Any]:
    objects = []
    for r in results:
        m = r.manifest
        objects.append(
            {
                **identity(m),
                "findings": [finding_dict(f) for f in r.findings],
            }
        )
    s = summarize(results)
    return {
        "objects": objects,
        "summary": {"objects": s.objects, "failed": s.failed, "findings": s.findings, "skipped": s.skipped},
    }


def write_json(results: Sequence[ObjectResult], out: TextIO) -> None:
    """One object per line: readable, diffable, and written by the C encoder (indent= is not)."""
    report = json_report(results)
    out.write('{"objects": [')
    sep = "\n"
    for obj in report["objects"]:
        out.write(sep)
        out.write(json.dumps(obj, ensure_ascii=False))
        sep = ",\n"
    out.write('\n],\n"summary": ')
    out.write(json.dumps(report["summary"]))
    out.write("}\n")


# --------------------------------------------------------------------------- check: SARIF


def _rule(check: Check) -> dict[str, Any]:
    refs = check.references
    lines = [f"{check.title}.", "", f"Level: {check.level}. Severity: {check.severity}."]
    if refs.pss:
        lines.append(f"Pod Security Standards: {refs.pss}.")
    if refs.cis:
        lines.append(f"CIS Kubernetes Benchmark: {', '.join(refs.cis)}.")
    if refs.nsa:
        lines.append(f"{refs.nsa}.")
    fixes = {
        "safe": "kube-baseline can fill the missing field (risk class safe).",
        "guarded": "kube-baseline can fill the missing field (risk class guarded: may break an image).",
        "manual": "Needs a manual change.",
    }
    lines.append(f"Remediation: {fixes.get(check.fix, check.fix)} An explicit value is never overwritten.")
    rule: dict[str, Any] = {
        "id": check.id,
        "name": check.id,
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": " ".join(lines[2:])},
        "help": {"text": "\n".join(lines)},
        "defaultConfiguration": {"level": _SARIF_LEVEL.get(check.severity, "warning")},
        "properties": {
            "tags": ["security", "kubernetes", check.level],
            "security-severity": _SECURITY_SEVERITY.get(check.severity, "5.0"),
            "precision": "very-high",
        },
    }
    if check.level in ("baseline", "restricted"):
        rule["helpUri"] = PSS_URL
    return rule


def _uri(path: str) -> str:
    if path == STDIN:
        return "stdin"
    return path.replace(os.sep, "/").removeprefix("./")


def sarif_report(results: Sequence[ObjectResult], checks: Mapping[str, Check]) -> dict[str, Any]:
    rules = [_rule(check) for check in checks.values()]
    index = {check_id: i for i, check_id in enumerate(checks)}
    sarif_results: list[dict[str, Any]] = []
    for r in results:
        m = r.manifest
        for f in r.findings:
            fingerprint = hashlib.sha256(
                "\x00".join((m.path, m.kind, m.namespace, m.name, f.check, f.field)).encode()
            ).hexdigest()[:32]
            location: dict[str, Any] = {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(m.path)},
                    "region": {"startLine": max(m.line, 1)},
                },
                "logicalLocations": [
                    {"fullyQualifiedName": f"{r.label}: {f.field}", "kind": "object"},
                ],
            }
            result: dict[str, Any] = {
                "ruleId": f.check,
                "level": _SARIF_LEVEL.get(f.severity, "warning"),
                "message": {"text": f"{r.label}: {f.message}"},
                "locations": [location],
                "partialFingerprints": {"kubeBaselineFinding/v1": fingerprint},
                "properties": {
                    "source": m.source,
                    "field": f.field,
                    "remediation": f.remediation,
                    "severity": f.severity,
                },
            }
            if f.check in index:
                result["ruleIndex"] = index[f.check]
            sarif_results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kube-baseline",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "results": sarif_results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def write_sarif(results: Sequence[ObjectResult], checks: Mapping[str, Check], out: TextIO) -> None:
    json.dump(sarif_report(results, checks), out, indent=2)
    out.write("\n")


# --------------------------------------------------------------------------- check: JUnit


def _x(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def junit_report(results: Sequence[ObjectResult]) -> ET.Element:
    """A testsuite of one testcase per object; a failure element per finding; skipped objects."""
    s = summarize(results)
    attrs = {
        "tests": str(s.objects),
        "failures": str(s.failed),
        "errors": "0",
        "skipped": str(s.skipped),
    }
    root = ET.Element("testsuites", {"name": "kube-baseline", **attrs})
    suite = ET.SubElement(root, "testsuite", {"name": "kube-baseline check", **attrs})
    for r in results:
        m = r.manifest
        case = ET.SubElement(suite, "testcase", {"classname": _x(m.source), "name": _x(r.label)})
        if r.skipped:
            ET.SubElement(case, "skipped", {"message": _x(r.skipped)})
        for f in r.findings:
            failure = ET.SubElement(
                case,
                "failure",
                {"type": f.check, "message": _x(f"[{f.severity}] {f.check}: {f.message}")},
            )
            failure.text = _x(
                f"{f.message}\nfield: {f.field}\nseverity: {f.severity}\nfix: {f.remediation}\n"
            )
    return root


def write_junit(results: Sequence[ObjectResult], out: TextIO) -> None:
    root = junit_report(results)
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
