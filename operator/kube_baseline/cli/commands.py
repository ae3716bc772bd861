"""The file commands: `kube-baseline check | plan | fix` over manifest files (--cluster: cli.preview).

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
the input is taken to match (cli.scope). An object without `metadata.namespace` lands in
`default`, or the namespace of `-n`, as with `kubectl apply`; networkPolicyCoverage matches it
with the NetworkPolicies of that namespace in the input (none: a finding).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TextIO

from kube_baseline.cli import manifests, output, plan_output, yamlfix
from kube_baseline.cli.evaluation import Input, World, evaluate, plan_all
from kube_baseline.cli.manifests import InputError
from kube_baseline.cli.settings import Settings, UsageError, load_baseline, settings_of
from kube_baseline.engine.checks import CHECKS
from kube_baseline.engine.remediation import apply_patch

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

__all__ = [
    "Input",
    "Settings",
    "UsageError",
    "World",
    "bad_settings",
    "evaluate",
    "load_baseline",
    "plan_all",
    "run",
    "settings_of",
]


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
    except (UsageError, InputError) as err:
        return bad_settings(command, err, io.stderr)

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
            json.dump(plan_output.plan_json(plans), io.stdout, indent=2, default=str)
            io.stdout.write("\n")
        else:
            plan_output.write_plan_text(plans, io.stdout, colour)
        return EXIT_FINDINGS if any(p.patch for p in plans) else EXIT_OK
    return _fix(inputs, plans, io, colour)


def bad_settings(command: str, err: UsageError | InputError, stderr: TextIO) -> int:
    """Report a bad command line (UsageError) or a bad input such as `-f BASELINE.yaml`
    (InputError) of `command`, the one way every command does; returns the exit code."""
    detail = f"error: {err}" if isinstance(err, UsageError) else str(err)
    stderr.write(f"kube-baseline {command}: {detail}\n")
    return EXIT_BAD_INPUT


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


def _fix(inputs: Sequence[Input], plans: Sequence[plan_output.PlanResult], io: Streams, colour: bool) -> int:
    by_path: dict[str, list[plan_output.PlanResult]] = {}
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
    plan_output.write_fix_text(fixed, plans, report, colour and not to_stdin)
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
