"""The `kube-baseline` command line: every sub-command's arguments, in one place.

main.py parses with `build_parser()` and dispatches: `run` to the operator, the others to
`cli.commands.run`.
"""

from __future__ import annotations

import argparse

from kube_baseline import __version__
from kube_baseline.cli import admission, report, revert
from kube_baseline.engine.models import EXTRA_CHECKS
from kube_baseline.engine.reports import POLICY_REPORT, REPORT_APIS

COMMANDS = ("check", "plan", "fix")
CHECK_FORMATS = ("text", "json", "sarif", "junit")
PLAN_FORMATS = ("text", "json")

HELP = {
    "check": "Check manifests (or the live workloads of a cluster, --cluster) against a baseline; "
    "exit 0 clean, 1 findings, 2 bad input or usage.",
    "plan": "Show the patch and diff remediation would apply (to manifests, or with --cluster to the "
    "live objects); exit 0 nothing to change, 1 changes, 2 bad input.",
    "fix": "Write the fixes into the files, keeping comments and layout; exit 0 nothing left, 1 findings "
    "remain, 2 bad input (nothing written).",
}

EPILOG = """\
PATH is a file, a directory (searched recursively for *.yaml, *.yml, *.json) or - for standard
input. Objects are named PATH#DOC (DOC = 0-based document index in the file) and PATH#DOC/ITEM for
the items of a *List (0-based). YAML is read as kubectl reads it (y/n/yes/no/on/off are booleans,
0.0 is the integer 0 where an integer is expected); a value of the wrong type is bad input. An
object without metadata.namespace is placed in the namespace of -n (default: "default"), as
`kubectl apply` would. Without -f, every object given is checked against the profile (default
baseline, like a SecurityBaseline), whatever its namespace. With -f, the manifest's profile,
checks, labels, exemptions (expiry against --now, default the current time), namespaces and
remediation settings apply as in the cluster: system namespaces (kube-system, kube-public,
kube-node-lease, kube-baseline) and excluded ones are skipped, and namespace label selectors are
matched against Namespace objects found in the input, and a namespace not found there is taken to
match.

--cluster reads the live objects of the current kubeconfig instead of files (read-only: list and
get only, plus, for plan --server-dry-run, PATCH and CREATE with dryRun=All, which the API server
never persists). Needs get/list on the workload kinds, namespaces and NetworkPolicies.
"""


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of `check`, `plan` and `fix`."""
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
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="files: the namespace of objects without metadata.namespace (default: default); "
        "--cluster: read only this namespace (default: all)",
    )
    if command in ("check", "plan", "report"):
        source = parser.add_argument_group("cluster (read-only preview)")
        source.add_argument(
            "--cluster",
            action="store_true",
            help="read the live workloads of the current kubeconfig instead of PATHs",
        )
        source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG)")
        source.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
        source.add_argument(
            "--progress",
            choices=("auto", "always", "never"),
            default="auto",
            help="progress on standard error (auto: when it is a terminal)",
        )
    if command == "plan":
        source.add_argument(
            "--server-dry-run",
            action="store_true",
            help="with --cluster: send each patch with dryRun=All so the API server (and its admission) "
            "confirms it would be accepted; nothing is written",
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


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The options of `run` (the operator)."""
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
    run.add_argument(
        "--report-format",
        choices=sorted(REPORT_APIS),
        default=POLICY_REPORT.format,
        help="what per-workload reports (spec.reports) are written as: wgpolicyk8s.io PolicyReports "
        "or openreports.io Reports (default: %(default)s)",
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="run without peering (a single instance)")
    peering.add_argument("--peering", metavar="NAME", help="the peering object to coordinate instances with")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kube-baseline",
        description="Harden Kubernetes workload configuration: check, plan and fix manifests offline, "
        "preview a baseline against a cluster, or run the operator.",
    )
    parser.add_argument("--version", action="version", version=f"kube-baseline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(
            command,
            help=HELP[command],
            description=HELP[command],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p, command)
    admission.add_arguments(sub.add_parser("admission", help=admission.HELP, description=admission.HELP))
    audit_report = sub.add_parser("report", help=report.HELP, description=report.HELP, epilog=EPILOG)
    add_arguments(audit_report, "report")
    report.add_options(audit_report)
    revert.add_parser(sub)
    run = sub.add_parser("run", help="Run the operator against the cluster of the current kubeconfig.")
    add_run_arguments(run)
    return parser
