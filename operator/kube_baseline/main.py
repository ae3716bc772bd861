"""The `kube-baseline` command: `check`, `plan` and `fix` (cli), `run` starts the operator (controller)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from kube_baseline.cli import admission as admission_cli
from kube_baseline.cli import commands as cli
from kube_baseline.cli import preview, report, revert
from kube_baseline.cli.args import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write("kube-baseline: error: a COMMAND is required (check, plan, fix, run)\n")
        return 2
    try:
        if args.command == "run":
            from kube_baseline.controller import handlers

            return handlers.run_operator(
                dry_run=args.dry_run,
                log_format=args.log_format,
                verbose=args.verbose,
                namespaces=list(args.namespaces),
                standalone=args.standalone,
                peering=args.peering,
                liveness=args.liveness,
                metrics_port=args.metrics_port,
                report_format=args.report_format,
            )
        if args.command == "admission":
            return admission_cli.run(args)
        if args.command == "revert":
            return revert.run(args)
        if args.command == "report":
            return report.run(args)
        if getattr(args, "cluster", False):
            return preview.run(args)
        return cli.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`kube-baseline check ... | head`): stop quietly, without a
        # second error when Python flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
