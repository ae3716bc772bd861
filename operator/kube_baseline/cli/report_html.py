"""The HTML audit report: one self-contained file (inline CSS and SVG, no script, no external
asset or URL), rendered from the plain data `report.gather` builds. Every value is escaped."""

from __future__ import annotations

import json
from html import escape
from typing import Any

SEVERITY_COLOURS = {"critical": "#8b0000", "high": "#d62728", "medium": "#ff7f0e", "low": "#bcbd22"}
GREEN, RED, GREY = "#2ca02c", "#d62728", "#999999"
BAR_HEIGHT, LABEL_WIDTH, CHART_WIDTH = 22, 230, 760

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e5e5e5;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f5f5f7}code{font-size:.85rem;background:#f5f5f7;padding:0 .2rem;border-radius:3px}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{flex:1;min-width:120px;border-radius:8px;padding:.8rem 1rem;background:#f5f5f7}
.card b{display:block;font-size:1.8rem}.ok{color:#2ca02c}.bad{color:#d62728}
.sev{display:inline-block;padding:0 .45rem;border-radius:9px;color:#fff;font-size:.8rem}
details{margin:.4rem 0;border:1px solid #e5e5e5;border-radius:6px;padding:.3rem .7rem}
summary{cursor:pointer;font-weight:600}.muted{color:#666}pre{white-space:pre-wrap;font-size:.8rem;
background:#f5f5f7;padding:.6rem;border-radius:6px}svg text{font-size:12px;fill:#1d1d1f}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _severity(sev: str) -> str:
    return f'<span class="sev" style="background:{SEVERITY_COLOURS.get(sev, GREY)}">{_e(sev)}</span>'


def bar_chart(title: str, rows: list[tuple[str, list[tuple[float, str, str]]]]) -> str:
    """Horizontal (stacked) bars as inline SVG: rows of (label, [(value, colour, legend)])."""
    top = max((sum(v for v, _, _ in parts) for _, parts in rows), default=0) or 1
    scale = (CHART_WIDTH - LABEL_WIDTH - 60) / top
    height = BAR_HEIGHT * len(rows) + 10
    out = [
        f'<svg role="img" aria-label="{_e(title)}" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}">',
        f"<title>{_e(title)}</title>",
    ]
    for i, (label, parts) in enumerate(rows):
        y = i * BAR_HEIGHT + 4
        out.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + 14}" text-anchor="end">{_e(label[:34])}</text>')
        x = float(LABEL_WIDTH)
        for value, colour, legend in parts:
            if value <= 0:
                continue
            width = value * scale
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT - 6}" fill="{colour}">'
                f"<title>{_e(label)}: {value:g} {_e(legend)}</title></rect>"
            )
            x += width
        total = sum(v for v, _, _ in parts)
        out.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{total:g}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table; cells are HTML already (escaped by the caller)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _evidence(h: dict[str, Any]) -> str:
    b = h["baseline"]
    rows = [
        ["Generated", _e(h["generated"])],
        ["Evaluated at (exemption expiry)", _e(h["evaluatedAt"])],
        ["Source", _e(f"{h['source']}: {', '.join(h['inputs'])}")],
        ["Tool", _e(h["tool"])],
        ["Baseline", _e(b["name"]) + (f' <span class="muted">({_e(b["file"])})</span>' if b["file"] else "")],
        ["Baseline file SHA-256", f"<code>{_e(b['fileSha256'] or '(none)')}</code>"],
        ["Effective spec SHA-256", f"<code>{_e(b['specSha256'])}</code>"],
    ]
    spec = json.dumps(b["spec"], indent=2, sort_keys=True)
    return (
        _table(["Evidence", ""], rows)
        + f"<details><summary>Effective baseline spec</summary><pre>{_e(spec)}</pre></details>"
    )


def _cards(s: dict[str, Any]) -> str:
    share = f"{100 * s['compliant'] / s['workloads']:.0f}%" if s["workloads"] else "n/a"
    cards = [
        ("Workloads", s["workloads"], ""),
        ("Compliant", f"{s['compliant']} ({share})", "ok"),
        ("Drifted", s["drifted"], "bad" if s["drifted"] else "ok"),
        ("Remediated", s["remediated"], ""),
        ("Exempted findings", s["exempted"], ""),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><span class="muted">{_e(t)}</span><b class="{c}">{_e(v)}</b></div>'
            for t, v, c in cards
        )
        + "</div>"
    )


def _drifted(items: list[dict[str, Any]]) -> str:
    if not items:
        return "<p>No workload drifted.</p>"
    out = []
    for d in items:
        rows = [
            [
                _e(f["check"]),
                _severity(f["severity"]),
                f"<code>{_e(f['field'])}</code>",
                _e(f["remediation"]),
                _e(f["message"]),
            ]
            for f in d["findings"]
        ]
        exempted = f' <span class="muted">({d["exempted"]} exempted)</span>' if d["exempted"] else ""
        out.append(
            f'<details class="workload" open><summary>{_e(d["kind"])} {_e(d["namespace"])}/{_e(d["name"])}'
            f' <span class="muted">{len(d["findings"])} findings</span>{exempted}</summary>'
            f'<p class="muted">{_e(d["source"])}</p>'
            + _table(["Check", "Severity", "Field", "Fix class", "Message"], rows)
            + "</details>"
        )
    return "".join(out)


def render(data: dict[str, Any]) -> str:
    h, s = data["header"], data["summary"]
    ns_chart = bar_chart(
        "Compliance by namespace",
        [
            (n["namespace"], [(n["compliant"], GREEN, "compliant"), (n["drifted"], RED, "drifted")])
            for n in data["namespaces"]
        ],
    )
    check_rows = [c for c in data["checks"] if c["failingWorkloads"]] or data["checks"][:0]
    check_chart = bar_chart(
        "Failing workloads by check",
        [
            (c["id"], [(c["failingWorkloads"], SEVERITY_COLOURS.get(c["severity"], GREY), c["severity"])])
            for c in check_rows
        ],
    )
    checks = _table(
        ["Check", "Severity", "Level", "Failing", "PSS", "CIS", "NSA/CISA", "Fix class"],
        [
            [
                f'<b>{_e(c["id"])}</b><br><span class="muted">{_e(c["title"])}</span>',
                _severity(c["severity"]),
                _e(c["level"]),
                _e(c["failingWorkloads"]),
                _e(c["pss"] or "-"),
                _e(", ".join(c["cis"]) or "-"),
                _e(c["nsa"]),
                _e(c["remediation"]),
            ]
            for c in data["checks"]
        ],
    )
    remediated = "".join(
        f"<li>{_e(r['kind'])} {_e(r['namespace'])}/{_e(r['name'])}</li>" for r in data["remediated"]
    )
    remediable = "".join(
        f"<li>{_e(r['label'])}: {', '.join(f'<code>{_e(x)}</code>' for x in r['fields'])}</li>"
        for r in data["remediable"]
    )
    exemptions = (
        _table(
            ["Namespace", "Workload", "Checks", "Owner", "Expires", "Reason"],
            [
                [
                    _e(e["namespace"]),
                    _e(e["workload"]),
                    _e(", ".join(e["checks"])),
                    _e(e["owner"]),
                    _e(e["expires"] or "never") + (' <b class="bad">expired</b>' if e["expired"] else ""),
                    _e(e["reason"]),
                ]
                for e in data["exemptions"]
            ],
        )
        if data["exemptions"]
        else "<p>No exemptions.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(h["title"])}</title><style>{CSS}</style></head>
<body>
<h1>{_e(h["title"])}</h1>
<p class="muted">{_e(h["tool"])} &middot; generated {_e(h["generated"])}
 &middot; baseline {_e(h["baseline"]["name"])}</p>
{_cards(s)}
<h2 id="evidence">Evidence</h2>
{_evidence(h)}
<h2 id="namespaces">Compliance by namespace</h2>
{ns_chart if data["namespaces"] else "<p>No workloads.</p>"}
<h2 id="checks">Checks</h2>
{check_chart if check_rows else "<p>No check failed.</p>"}
{checks}
<h2 id="drifted">Drifted workloads</h2>
{_drifted(data["drifted"])}
<h2 id="remediation">Remediation</h2>
<h3>Remediated by the operator</h3><ul>{remediated or "<li>none</li>"}</ul>
<h3>Remediation would fill now</h3><ul>{remediable or "<li>nothing</li>"}</ul>
<h3>Undone</h3><p>None recorded in the input (the operator's write log records undos).</p>
<h2 id="exemptions">Exemptions</h2>
{exemptions}
</body></html>
"""
