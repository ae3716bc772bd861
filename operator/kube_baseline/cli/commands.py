"""The offline checker: `kube-baseline check | plan | fix` over manifest files.

The same engine as the operator, over files instead of a cluster: the same policy
(`--profile`, `--extra`, `--disable`, or a SecurityBaseline manifest with `-f`), the same
findings, the same remediation plans.

Exit codes: 0 clean (check), nothing to change (plan), nothing left to fix (fix); 1 findings
(check), changes planned (plan), findings the fix could not remove (fix); 2 bad input or usage.
Bad input never gives a partial result: every input is read and checked first, and `fix` writes
nothing unless every file parsed, planned and re-verified.

Offline namespace rules (documented in the CLI help): without `-f`, every object given is checked.
With `-f BASELINE.yaml`, system namespaces and `spec.namespaces.exclude` are not governed; a label
selector is evaluated against the labels of Namespace objects in the input (plus
`kubernetes.io/metadata.name`, as the API server adds), and a namespace with no Namespace object in
the input is taken to match. An object without `metadata.namespace` is governed.
networkPolicyCoverage, when enabled, runs only if the input holds NetworkPolicy objects.
Sensitivity tiers (`spec.tiers`): a namespace's tier is read from its Namespace object in the
input; a namespace without one belongs to no tier (tierPlacement is not evaluated there).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, TextIO

import yaml
from pydantic import ValidationError

from kube_baseline.cli import manifests, output, yamlfix
from kube_baseline.cli.manifests import InputError, Manifest
from kube_baseline.engine.checks import CHECKS, Policy, audit, policy_from_spec
from kube_baseline.engine.desired import merge_patches
from kube_baseline.engine.models import (
    API_VERSION,
    EXTRA_CHECKS,
    KIND,
    SYSTEM_NAMESPACES,
    Labels,
    LabelSelector,
    Remediation,
    SecurityBaselineSpec,
    Tier,
    parse_spec,
)
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.remediation import plan as plan_remediation
from kube_baseline.engine.tiers import placement_patch, tier_of, tier_policies
from kube_baseline.engine.workloads import controller_owner, workload_of

COMMANDS = ("check", "plan", "fix")
CHECK_FORMATS = ("text", "json", "sarif", "junit")
PLAN_FORMATS = ("text", "json")
RISK_CLASSES = ("safe", "guarded")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

_DUMPER: Any = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper

HELP = {
    "check": "Check manifests against a baseline; exit 0 clean, 1 findings, 2 bad input or usage.",
    "plan": "Show the patch and diff remediation would apply; exit 0 nothing to change, 1 changes, "
    "2 bad input.",
    "fix": "Write the fixes into the files, keeping comments and layout; exit 0 nothing left, 1 findings "
    "remain, 2 bad input (nothing written).",
}

EPILOG = """\
PATH is a file, a directory (searched recursively for *.yaml, *.yml, *.json) or - for standard
input. Objects are named PATH#DOC (DOC = 0-based document index in the file) and PATH#DOC/ITEM for
the items of a *List (0-based). Without -f, every object given is checked against the profile
(default baseline, like a SecurityBaseline), whatever its namespace. With -f, the manifest's
profile, checks, labels, exemptions (expiry against --now, default the current time), namespaces and
remediation settings apply as in the cluster: system namespaces (kube-system, kube-public,
kube-node-lease, kube-baseline) and excluded ones are skipped, and namespace label selectors are
matched against Namespace objects found in the input, and a namespace not found there is taken to
match.
"""


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


@dataclass(frozen=True)
class Input:
    path: str
    text: str
    objects: list[Manifest]


# --------------------------------------------------------------------------- arguments


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of `check`, `plan` and `fix` (main builds the subcommand parsers)."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help="file, directory, or - for standard input")
    policy = parser.add_argument_group("policy (either --profile/--extra/--disable or -f)")
    policy.add_argument(
        "--profile",
        choices=("baseline", "restricted"),
        help="Pod Security Standards level (default: baseline)",
    )
    policy.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="ID",
        help=f"also run this extra check (repeatable): {', '.join(EXTRA_CHECKS)}",
    )
    policy.add_argument("--disable", action="append", default=[], metavar="ID", help="do not run this check")
    policy.add_argument(
        "-f",
        "--baseline",
        metavar="BASELINE.yaml",
        help="a SecurityBaseline manifest to take the policy from",
    )
    policy.add_argument(
        "--now",
        metavar="TIME",
        help="evaluate exemption expiry at this ISO 8601 time (default: the current time)",
    )
    if command in ("plan", "fix"):
        parser.add_argument(
            "--risk",
            metavar="CLASSES",
            help="risk classes to fix, comma-separated: safe,guarded (default: the baseline's, else safe)",
        )
    if command == "check":
        parser.add_argument("-o", "--output", choices=CHECK_FORMATS, default="text", help="output format")
    elif command == "plan":
        parser.add_argument("-o", "--output", choices=PLAN_FORMATS, default="text", help="output format")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (auto: on a terminal unless NO_COLOR is set)",
    )
    if command == "check":
        parser.add_argument(
            "-v", "--verbose", action="store_true", help="also list objects that pass or are skipped"
        )


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
    try:
        return parse_spec(spec)
    except ValidationError as err:
        lines = [f"{_field_path(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise InputError(
            path, "\n".join(lines) if len(lines) == 1 else "\n  ".join(["invalid", *lines])
        ) from None


def settings_of(args: argparse.Namespace, stdin: IO[bytes] | None) -> Settings:
    now = _parse_now(args.now)
    if args.baseline:
        if args.profile or args.extra or args.disable:
            raise UsageError("-f/--baseline cannot be combined with --profile, --extra or --disable")
        spec = load_baseline(args.baseline, stdin)
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
    return Settings(spec, policy, remediation, spec.labels, now, namespace_rules=bool(args.baseline))


# --------------------------------------------------------------------------- reading


def read_inputs(paths: Sequence[str], stdin: IO[bytes] | None) -> tuple[list[Input], list[str]]:
    """Every input, and every problem found (all files are read, so all problems are reported)."""
    errors: list[str] = []
    try:
        files = manifests.expand_paths(paths)
    except InputError as err:
        return [], [str(err)]
    inputs: list[Input] = []
    for path in files:
        try:
            text, objects = manifests.load(path, stdin)
        except InputError as err:
            errors.append(str(err))
            continue
        inputs.append(Input(path, text, objects))
    return inputs, errors


# --------------------------------------------------------------------------- evaluating


class _Scope:
    """Which namespaces a baseline governs and remediates, from what the input tells."""

    def __init__(
        self, spec: SecurityBaselineSpec, objects: Sequence[Manifest], namespace_rules: bool
    ) -> None:
        self.spec = spec
        self.namespace_rules = namespace_rules
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.network_policies: dict[str, list[dict[str, Any]]] | None = None
        for m in objects:
            kind = m.obj.get("kind")
            if kind == "Namespace" and m.api_version == "v1" and m.name:
                labels = (m.obj.get("metadata") or {}).get("labels")
                found = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
                found.setdefault("kubernetes.io/metadata.name", m.name)
                self.ns_labels[m.name] = found
            elif kind == "NetworkPolicy" and m.api_version.startswith("networking.k8s.io/"):
                if self.network_policies is None:
                    self.network_policies = {}
                self.network_policies.setdefault(m.namespace, []).append(m.obj)
        self._governed: dict[str, str] = {}
        self.excluded = set(SYSTEM_NAMESPACES) | set(spec.namespaces.exclude)

    def why_not_governed(self, namespace: str) -> str:
        """ "" when the namespace is governed, else why not."""
        cached = self._governed.get(namespace)
        if cached is None:
            cached = self._why_not(namespace)
            self._governed[namespace] = cached
        return cached

    def _why_not(self, namespace: str) -> str:
        if not self.namespace_rules:
            return ""
        if namespace in SYSTEM_NAMESPACES:
            return f"namespace {namespace} is a system namespace"
        if namespace in self.excluded:
            return f"namespace {namespace} is excluded by the baseline"
        if not self._matches(self.spec.namespaces.selector, namespace):
            return f"namespace {namespace} does not match the baseline's namespace selector"
        return ""

    def remediated(self, namespace: str, remediation: Remediation) -> bool:
        return self._matches(remediation.namespace_selector, namespace)

    def _matches(self, selector: LabelSelector, namespace: str) -> bool:
        if not selector.match_labels and not selector.match_expressions:
            return True
        labels = self.ns_labels.get(namespace)
        return True if labels is None else selector.matches(labels)

    def tier_for(self, namespace: str) -> Tier | None:
        """The namespace's tier, from its Namespace object in the input (None without one)."""
        labels = self.ns_labels.get(namespace)
        if not self.spec.tiers or labels is None:
            return None
        return tier_of(self.spec.tiers, labels)

    def policies_for(self, namespace: str) -> list[dict[str, Any]] | None:
        if self.network_policies is None:
            return None
        return self.network_policies.get(namespace, [])


def evaluate(inputs: Sequence[Input], settings: Settings) -> tuple[list[output.ObjectResult], list[str]]:
    """Audit every object of the input: results in input order, and objects that could not be checked."""
    objects = [m for i in inputs for m in i.objects]
    scope = _Scope(settings.spec, objects, settings.namespace_rules)
    policy, now = settings.policy, settings.now
    by_tier = tier_policies(settings.spec) if settings.namespace_rules else {}
    results: list[output.ObjectResult] = []
    errors: list[str] = []
    for m in objects:
        workload = workload_of(m.obj)
        if workload is None:
            results.append(output.ObjectResult(m, skipped="not a workload"))
            continue
        why = scope.why_not_governed(workload.namespace)
        if why:
            results.append(output.ObjectResult(m, skipped=why))
            continue
        try:
            tier = scope.tier_for(workload.namespace)
            found = audit(
                workload,
                by_tier.get(tier.name, policy) if tier is not None else policy,
                now=now,
                network_policies=scope.policies_for(workload.namespace),
                tier=tier,
            )
        except Exception as err:  # malformed object the engine could not read: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be checked ({type(err).__name__}: {err})")
            continue
        results.append(output.ObjectResult(m, found.findings, len(found.exempted)))
    return results, errors


def _dump(obj: dict[str, Any]) -> str:
    return str(yaml.dump(obj, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120))


def plan_all(
    inputs: Sequence[Input], results: Sequence[output.ObjectResult], settings: Settings, with_diff: bool
) -> tuple[list[output.PlanResult], list[str]]:
    """A remediation plan for every object with findings."""
    scope = _Scope(settings.spec, [m for i in inputs for m in i.objects], settings.namespace_rules)
    plans: list[output.PlanResult] = []
    errors: list[str] = []
    for r in results:
        if not r.findings:
            continue
        m = r.manifest
        workload = workload_of(m.obj)
        if workload is None:  # pragma: no cover - results with findings are workloads
            continue
        note = ""
        owner = controller_owner(m.obj)
        if owner is not None:
            note = f"owned by {owner.get('kind')} {owner.get('name')}: fix that controller instead"
        elif not scope.remediated(workload.namespace, settings.remediation):
            note = f"namespace {workload.namespace} is not selected by spec.remediation.namespaceSelector"
        if note:
            plans.append(output.PlanResult(m, {}, (), r.findings, note=note, label=r.label))
            continue
        try:
            planned = plan_remediation(workload, r.findings, settings.remediation, settings.labels)
            tier = scope.tier_for(workload.namespace)
            fill, filled = placement_patch(workload, tier, r.findings, settings.remediation)
            patch = merge_patches(planned.patch, fill)
            after = apply_patch(m.obj, patch) if patch else m.obj
        except Exception as err:  # malformed object: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be planned ({type(err).__name__}: {err})")
            continue
        changes = tuple(
            output.PlannedChange(c.field, c.value, c.check, c.risk) for c in (*planned.changes, *filled)
        )
        # The fill covers every guarded tierPlacement finding (each is an absent field).
        unfixed = tuple(
            f
            for f in planned.unfixed
            if not (fill and f.check == "tierPlacement" and f.remediation == "guarded")
        )
        result = output.PlanResult(m, patch, changes, unfixed, label=r.label)
        if with_diff and patch:
            result.diff = "".join(
                difflib.unified_diff(
                    _dump(m.obj).splitlines(keepends=True),
                    _dump(after).splitlines(keepends=True),
                    fromfile=f"{m.source} (before)",
                    tofile=f"{m.source} (after)",
                )
            )
        plans.append(result)
    return plans, errors


# --------------------------------------------------------------------------- commands


@dataclass
class Streams:
    stdin: IO[bytes] | None
    stdout: TextIO
    stderr: TextIO


def run(args: argparse.Namespace, streams: Streams | None = None) -> int:
    """Run `check`, `plan` or `fix` with parsed arguments; returns the exit code."""
    io = streams or Streams(None, sys.stdout, sys.stderr)
    command: str = args.command
    try:
        if not args.paths:
            raise UsageError("no PATH given (use - to read standard input)")
        if args.baseline == manifests.STDIN and manifests.STDIN in args.paths:
            raise UsageError("standard input cannot hold both the baseline and the manifests")
        settings = settings_of(args, io.stdin)
    except UsageError as err:
        io.stderr.write(f"kube-baseline {command}: error: {err}\n")
        return EXIT_BAD_INPUT
    except InputError as err:
        io.stderr.write(f"kube-baseline {command}: {err}\n")
        return EXIT_BAD_INPUT

    inputs, errors = read_inputs(args.paths, io.stdin)
    results: list[output.ObjectResult] = []
    if not errors:
        results, errors = evaluate(inputs, settings)
    if errors:
        return _fail(command, errors, io.stderr)

    colour = output.use_colour(args.color, io.stdout)
    if command == "check":
        return _check(args, results, io.stdout, colour)
    plans, errors = plan_all(inputs, results, settings, with_diff=command == "plan")
    if errors:
        return _fail(command, errors, io.stderr)
    if command == "plan":
        if args.output == "json":
            json.dump(output.plan_json(plans), io.stdout, indent=2, default=str)
            io.stdout.write("\n")
        else:
            output.write_plan_text(plans, io.stdout, colour)
        return EXIT_FINDINGS if any(p.patch for p in plans) else EXIT_OK
    return _fix(inputs, plans, io, colour)


def _fail(command: str, errors: Sequence[str], stderr: TextIO) -> int:
    for line in errors:
        stderr.write(f"kube-baseline {command}: {line}\n")
    if command == "fix":
        stderr.write("kube-baseline fix: nothing was written\n")
    return EXIT_BAD_INPUT


def _check(args: argparse.Namespace, results: list[output.ObjectResult], out: TextIO, colour: bool) -> int:
    if args.output == "json":
        output.write_json(results, out)
    elif args.output == "sarif":
        output.write_sarif(results, CHECKS, out)
    elif args.output == "junit":
        output.write_junit(results, out)
    else:
        output.write_text(results, out, colour, verbose=args.verbose)
    return EXIT_FINDINGS if any(r.findings for r in results) else EXIT_OK


def _fix(inputs: Sequence[Input], plans: Sequence[output.PlanResult], io: Streams, colour: bool) -> int:
    by_path: dict[str, list[output.PlanResult]] = {}
    for p in plans:
        if p.patch:
            by_path.setdefault(p.manifest.path, []).append(p)
    # Everything is computed and verified before the first byte is written.
    new_texts: dict[str, str] = {}
    errors: list[str] = []
    for item in inputs:
        planned = by_path.get(item.path)
        if not planned:
            continue
        patches = {(p.manifest.doc, p.manifest.items): p.patch for p in planned}
        expected = {(p.manifest.doc, p.manifest.items): apply_patch(p.manifest.obj, p.patch) for p in planned}
        try:
            new_texts[item.path] = yamlfix.fix_text(item.text, item.path, patches, expected)
        except yamlfix.FixError as err:
            errors.append(str(err))
    for path in new_texts:
        if path != manifests.STDIN:
            problem = _unwritable(path)
            if problem:
                errors.append(f"{path}: {problem}")
    if errors:
        return _fail("fix", errors, io.stderr)

    report = io.stderr if any(i.path == manifests.STDIN for i in inputs) else io.stdout
    c = output.Palette(colour and report is io.stdout)
    for item in inputs:
        if item.path == manifests.STDIN:
            io.stdout.write(new_texts.get(item.path, item.text))
            continue
        if item.path in new_texts:
            try:
                write_atomic(item.path, new_texts[item.path])
            except OSError as err:
                io.stderr.write(f"kube-baseline fix: {item.path}: cannot write: {err.strerror or err}\n")
                return EXIT_BAD_INPUT
    remaining = 0
    for p in plans:
        remaining += len(p.unfixed)
    fixed_objects = 0
    total_changes = 0
    for item in inputs:
        planned = by_path.get(item.path, [])
        if not planned:
            continue
        n = sum(len(p.changes) for p in planned)
        fixed_objects += len(planned)
        total_changes += n
        target = "standard output" if item.path == manifests.STDIN else item.path
        report.write(
            f"{c('fixed', '1;32')} {target}: {_count(len(planned), 'object')}, {_count(n, 'change')}\n"
        )
        for p in planned:
            report.write(f"  {p.manifest.source}  {p.label}\n")
            for change in p.changes:
                report.write(
                    f"    {change.field} = {_short(change.value)}  ({change.check}, {change.risk})\n"
                )
    report.write(
        f"{_count(fixed_objects, 'object')} fixed with {_count(total_changes, 'change')}; "
        f"{_count(remaining, 'finding')} left (manual, or a risk class not applied)\n"
    )
    return EXIT_FINDINGS if remaining else EXIT_OK


def _short(value: Any) -> str:
    return json.dumps(value, default=str)


def _unwritable(path: str) -> str:
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    if not os.access(target, os.W_OK):
        return "cannot write: permission denied"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot write: directory {directory} is not writable (needed for an atomic replace)"
    return ""


def write_atomic(path: str, text: str) -> None:
    """Replace the file's content in one step (temporary file + rename), keeping its mode."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    mode = stat.S_IMODE(os.stat(target).st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
