"""The `kube-baseline` command: `check`, `plan` and `fix` run offline; `run` starts the operator."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from kube_baseline import __version__
from kube_baseline.cli import commands as cli
from kube_baseline.cli import report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kube-baseline",
        description="Harden Kubernetes workload configuration: check, plan and fix manifests offline, "
        "or run the operator.",
    )
    parser.add_argument("--version", action="version", version=f"kube-baseline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in cli.COMMANDS:
        p = sub.add_parser(
            command,
            help=cli.HELP[command],
            description=cli.HELP[command],
            epilog=cli.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cli.add_arguments(p, command)
    report.add_parser(sub)
    run = sub.add_parser("run", help="Run the operator against the cluster of the current kubeconfig.")
    run.add_argument("--dry-run", action="store_true", help="audit and report, never write to workloads")
    run.add_argument("--log-format", choices=("json", "text"), default="text", help="log line format")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        metavar="NAMESPACE",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    run.add_argument(
        "--liveness",
        metavar="URL",
        help="serve Kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8081,
        metavar="PORT",
        help="serve Prometheus /metrics and /healthz (fails when watches went stale) here; 0: off",
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="run without peering (a single instance)")
    peering.add_argument("--peering", metavar="NAME", help="the peering object to coordinate instances with")
    return parser


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
            )
        return report.run(args) if args.command == "report" else cli.run(args)
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
