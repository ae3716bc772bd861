"""The CLI's policy settings: a SecurityBaseline file (-f) or --profile/--extra/--disable, --now, --risk."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from pydantic import ValidationError

from kube_baseline.cli import manifests
from kube_baseline.cli.manifests import InputError
from kube_baseline.engine.checks import CHECKS, Policy, policy_from_spec
from kube_baseline.engine.models import (
    API_VERSION,
    EXTRA_CHECKS,
    KIND,
    Labels,
    Remediation,
    SecurityBaselineSpec,
    parse_spec,
)

RISK_CLASSES = ("safe", "guarded")


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    spec: SecurityBaselineSpec
    policy: Policy
    remediation: Remediation
    labels: Labels
    now: datetime
    # With -f the baseline's namespace rules apply (system namespaces are never governed); with
    # --profile every object given is checked, whatever its namespace.
    namespace_rules: bool = False
    # Where an object without metadata.namespace lands (kubectl's default, or -n).
    default_namespace: str = "default"
    baseline_name: str = "cli"  # metadata.name of -f (names the NetworkPolicy it would create)


# --------------------------------------------------------------------------- settings


def _parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now: not an ISO 8601 time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parse_risk(value: str) -> list[str]:
    classes = [part.strip() for part in value.split(",") if part.strip()]
    bad = [c for c in classes if c not in RISK_CLASSES]
    if bad or not classes:
        raise UsageError(f"--risk: expected a comma-separated list of safe, guarded; got {value!r}")
    return list(dict.fromkeys(classes))


def _field_path(loc: Sequence[int | str]) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def load_baseline(path: str, stdin: IO[bytes] | None = None) -> SecurityBaselineSpec:
    """The spec of the SecurityBaseline manifest at `path` (validated as the API server would)."""
    return load_named_baseline(path, stdin)[1]


def load_named_baseline(path: str, stdin: IO[bytes] | None = None) -> tuple[str, SecurityBaselineSpec]:
    """The name and spec of the SecurityBaseline manifest at `path`."""
    text = manifests.read_text(path, stdin)
    docs = [d for d in manifests.parse_documents(text, path) if d.data is not None]
    if len(docs) != 1:
        raise InputError(path, f"expected exactly one SecurityBaseline document, found {len(docs)} documents")
    doc = docs[0]
    where = manifests.source_of(path, doc.index)
    data = doc.data
    if not isinstance(data, dict) or data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        raise InputError(where, f"not a SecurityBaseline (expected apiVersion {API_VERSION}, kind {KIND})")
    spec = data.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise InputError(path, "spec: Input should be a valid dictionary")
    meta = data.get("metadata")
    name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
    try:
        return name, parse_spec(spec)
    except ValidationError as err:
        lines = [f"{_field_path(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise InputError(
            path, "\n".join(lines) if len(lines) == 1 else "\n  ".join(["invalid", *lines])
        ) from None


def settings_of(args: argparse.Namespace, stdin: IO[bytes] | None) -> Settings:
    now = _parse_now(args.now)
    name = ""
    if args.baseline:
        if args.profile or args.extra or args.disable:
            raise UsageError("-f/--baseline cannot be combined with --profile, --extra or --disable")
        name, spec = load_named_baseline(args.baseline, stdin)
    else:
        unknown = [c for c in args.disable if c not in CHECKS]
        if unknown:
            raise UsageError(f"--disable: unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})")
        not_extra = [c for c in args.extra if c not in EXTRA_CHECKS]
        if not_extra:
            raise UsageError(
                f"--extra: {not_extra[0]!r} is not an extra check (extra: {', '.join(EXTRA_CHECKS)})"
            )
        spec = parse_spec(
            {"profile": args.profile or "baseline", "checks": {"extra": args.extra, "disabled": args.disable}}
        )
    risk = getattr(args, "risk", None)
    remediation = spec.remediation
    if risk:
        remediation = Remediation.model_validate(
            {
                "namespaceSelector": spec.remediation.namespace_selector,
                "riskClasses": _parse_risk(risk),
                "securityContext": spec.remediation.security_context,
            }
        )
    try:
        policy = policy_from_spec(spec)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return Settings(
        spec,
        policy,
        remediation,
        spec.labels,
        now,
        namespace_rules=bool(args.baseline),
        default_namespace=getattr(args, "namespace", None) or "default",
        baseline_name=name or "cli",
    )
