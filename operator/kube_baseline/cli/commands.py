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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any, TextIO

import yaml
from pydantic import ValidationError

from kube_baseline.cli import apitypes, manifests, output, yamlfix
from kube_baseline.cli.manifests import InputError, Manifest
from kube_baseline.cli.scope import Scope, namespace_info
from kube_baseline.engine.checks import CHECKS, Policy, audit, policy_from_spec
from kube_baseline.engine.desired import NamespaceInfo
from kube_baseline.engine.models import (
    API_VERSION,
    EXTRA_CHECKS,
    KIND,
    Labels,
    Remediation,
    SecurityBaselineSpec,
    parse_spec,
)
from kube_baseline.engine.remediation import apply_patch
from kube_baseline.engine.remediation import plan as plan_remediation
from kube_baseline.engine.workloads import Workload, controller_owner, workload_of

RISK_CLASSES = ("safe", "guarded")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

_DUMPER: Any = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper


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


@dataclass(frozen=True)
class Input:
    path: str
    text: str
    objects: list[Manifest]


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


def _network_policies(objects: Sequence[Manifest], default_namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The input's NetworkPolicies by the namespace they would land in."""
    found: dict[str, list[dict[str, Any]]] = {}
    for m in objects:
        if m.obj.get("kind") == "NetworkPolicy" and m.api_version.startswith("networking.k8s.io/"):
            found.setdefault(m.namespace or default_namespace, []).append(m.obj)
    return found


def _namespaces(objects: Sequence[Manifest]) -> list[NamespaceInfo]:
    return [
        info
        for m in objects
        if m.obj.get("kind") == "Namespace" and m.api_version == "v1"
        for info in (namespace_info(m.obj),)
        if info is not None
    ]


@dataclass(frozen=True)
class World:
    """What evaluation reads: the objects, and the namespaces and NetworkPolicies around them."""

    objects: list[Manifest]
    namespaces: list[NamespaceInfo]
    network_policies: dict[str, list[dict[str, Any]]]

    @classmethod
    def of_files(cls, inputs: Sequence[Input], settings: Settings) -> World:
        objects = [m for i in inputs for m in i.objects]
        return cls(objects, _namespaces(objects), _network_policies(objects, settings.default_namespace))


def scope_of(world: World, settings: Settings) -> Scope:
    return Scope(
        settings.spec, settings.policy, settings.remediation, world.namespaces, settings.namespace_rules
    )


def type_problems(m: Manifest, workload: Workload | None) -> list[str]:
    """Fields the API server would refuse for their type (cli.apitypes), as "SOURCE: KIND NAME: ..."."""
    found: list[str] = []
    apitypes.problems(m.obj.get("metadata"), apitypes.METADATA, "metadata", found)
    if workload is not None:
        prefix = ".".join(workload.pod_path)
        apitypes.problems(workload.pod_spec, apitypes.POD_SPEC, prefix, found)
        if workload.kind != "Pod":
            where = ".".join((*workload.pod_path[:-1], "metadata"))
            apitypes.problems(workload.pod_metadata, apitypes.METADATA, where, found)
    return [f"{m.source}: {m.kind} {m.name}: {problem}" for problem in found]


def placed(workload: Workload, default_namespace: str) -> Workload:
    """The workload in the namespace it lands in (metadata.namespace, else the default)."""
    return workload if workload.namespace else replace(workload, namespace=default_namespace)


def evaluate(
    world: World, settings: Settings, progress: Callable[[str], None] | None = None
) -> tuple[list[output.ObjectResult], list[str]]:
    """Audit every object: results in input order, and objects that could not be checked."""
    scope = scope_of(world, settings)
    policies = world.network_policies
    policy, now = settings.policy, settings.now
    results: list[output.ObjectResult] = []
    errors: list[str] = []
    for n, m in enumerate(world.objects, 1):
        if progress is not None and n % 500 == 0:
            progress(f"evaluated {n} of {len(world.objects)} objects")
        found_workload = workload_of(m.obj)
        problems = type_problems(m, found_workload)
        if problems:
            errors.extend(problems)
            continue
        if found_workload is None:
            results.append(output.ObjectResult(m, skipped="not a workload"))
            continue
        workload = placed(found_workload, settings.default_namespace)
        why = scope.why_not_governed(workload.namespace)
        if why:
            results.append(output.ObjectResult(m, skipped=why))
            continue
        try:
            found = audit(workload, policy, now=now, network_policies=policies.get(workload.namespace, []))
        except Exception as err:  # malformed object the engine could not read: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be checked ({type(err).__name__}: {err})")
            continue
        results.append(output.ObjectResult(m, found.findings, len(found.exempted)))
    return results, errors


def _dump(obj: dict[str, Any]) -> str:
    return str(yaml.dump(obj, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120))


def plan_all(
    world: World, results: Sequence[output.ObjectResult], settings: Settings, with_diff: bool
) -> tuple[list[output.PlanResult], list[str]]:
    """A remediation plan for every object with findings."""
    scope = scope_of(world, settings)
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
        elif not scope.remediated(workload.namespace or settings.default_namespace):
            note = f"namespace {workload.namespace} is not selected by spec.remediation.namespaceSelector"
        if note:
            plans.append(output.PlanResult(m, {}, (), r.findings, note=note, label=r.label))
            continue
        try:
            planned = plan_remediation(workload, r.findings, settings.remediation, settings.labels)
            after = apply_patch(m.obj, planned.patch) if planned.patch else m.obj
        except Exception as err:  # malformed object: bad input, no traceback
            errors.append(f"{m.source}: {m.kind} {m.name}: cannot be planned ({type(err).__name__}: {err})")
            continue
        result = output.PlanResult(m, planned.patch, planned.changes, planned.unfixed, label=r.label)
        if with_diff and planned.patch:
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
        if getattr(args, "server_dry_run", False):
            raise UsageError("--server-dry-run needs --cluster")
        if not args.paths:
            raise UsageError("no PATH given (use - to read standard input, or --cluster)")
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
    world = World.of_files(inputs, settings)
    if not errors and not world.objects:
        errors = [
            f"{', '.join(args.paths)}: no Kubernetes objects in the input "
            "(did the command that produced it fail, e.g. `helm template`?)"
        ]
    results: list[output.ObjectResult] = []
    if not errors:
        results, errors = evaluate(world, settings)
    if errors:
        return _fail(command, errors, io.stderr)

    colour = output.use_colour(args.color, io.stdout)
    if command == "check":
        return report_check(args, results, io.stdout, colour)
    plans, errors = plan_all(world, results, settings, with_diff=command == "plan")
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


def report_check(
    args: argparse.Namespace, results: list[output.ObjectResult], out: TextIO, colour: bool
) -> int:
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

    to_stdin = any(i.path == manifests.STDIN for i in inputs)
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
    fixed = [(i.path, by_path[i.path]) for i in inputs if by_path.get(i.path)]
    report = io.stderr if to_stdin else io.stdout
    output.write_fix_text(fixed, plans, report, colour and not to_stdin)
    return EXIT_FINDINGS if any(p.unfixed for p in plans) else EXIT_OK


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
