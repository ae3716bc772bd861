"""Benchmark `kube-baseline check` against the YAML parse floor and checkov, in one run.

    python bench/cli_bench.py [--objects 10000] [--files 100] [--repeat 3] [--checkov-objects 1000]

Generates a seeded mixed manifest set under bench/out/data, then times, each as its own process
pinned to one core (`taskset -c 0` when available), median of --repeat runs, wall time including
interpreter start-up:

  floor      PyYAML CSafeLoader `load_all` over every file (the target's denominator)
  rapidyaml  rapidyaml (PyPI) parse + JSON emit + json.loads per document, if bench/out/ryml-venv
             exists (information only: different YAML semantics, see bench/README.md)
  check      `kube-baseline check -o json DIR` (output to /dev/null)
  checkov    `checkov --framework kubernetes -d DIR --quiet --compact -o json` from
             bench/out/checkov-venv, on the first --checkov-objects objects, extrapolated
             linearly to the full set (labelled as such)

Prints the figures and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

FLOOR_SCRIPT = """
import sys, yaml
n = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
        n += 1
print(n)
"""

RYML_SCRIPT = """
import sys, json, ryml
n = 0
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        tree = ryml.parse_in_arena(fh.read())
    root = tree.root_id()
    child = tree.first_child(root) if tree.is_stream(root) else root
    while child != ryml.NONE:
        json.loads(ryml.emit_json_malloc(tree, child))
        n += 1
        child = tree.next_sibling(child) if tree.is_stream(root) else ryml.NONE
print(n)
"""


@dataclass
class Timing:
    name: str
    runs: list[float]
    rss_mb: float
    note: str = ""
    cpu: list[float] | None = None  # user + system CPU seconds per run (robust on a busy machine)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu or [0.0])


def _pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def _time(cmd: list[str], *, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, float, float]:
    """Wall time, peak RSS (MiB) and CPU time (user + system) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if code not in ok_codes:
        raise SystemExit(f"{' '.join(cmd[:6])} ... exited {code}: {err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _measure(
    name: str, cmd: list[str], repeat: int, ok_codes: tuple[int, ...] = (0,), note: str = ""
) -> Timing:
    runs: list[float] = []
    cpu: list[float] = []
    rss = 0.0
    for _ in range(repeat):
        elapsed, peak, used = _time(_pin() + cmd, ok_codes=ok_codes)
        runs.append(elapsed)
        cpu.append(used)
        rss = max(rss, peak)
        print(f"  {name}: {elapsed:.3f} s ({used:.3f} s CPU)", flush=True)
    return Timing(name, runs, rss, note, cpu)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120).stdout.strip()
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkov-objects", type=int, default=1000, help="0 skips checkov")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    data = OUT / "data"
    if data.exists():
        shutil.rmtree(data)
    files = generate.generate(str(data), objects=args.objects, files=args.files)
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    print(f"Generated {args.objects} objects in {len(files)} files ({size_mb:.1f} MB) under {data}")

    py = sys.executable
    kb = str(Path(py).parent / "kube-baseline")
    if not Path(kb).exists():
        raise SystemExit(f"{kb} not found: run `make venv` first")
    timings: dict[str, Timing] = {}
    timings["floor"] = _measure("floor (CSafeLoader load_all)", [py, "-c", FLOOR_SCRIPT, *files], args.repeat)
    ryml_py = OUT / "ryml-venv" / "bin" / "python"
    if ryml_py.exists():
        timings["rapidyaml"] = _measure("rapidyaml", [str(ryml_py), "-c", RYML_SCRIPT, *files], args.repeat)
    timings["check"] = _measure(
        "kube-baseline check -o json", [kb, "check", "-o", "json", str(data)], args.repeat, ok_codes=(0, 1)
    )

    checkov_bin = OUT / "checkov-venv" / "bin" / "checkov"
    checkov_n = 0
    if args.checkov_objects and checkov_bin.exists():
        per_file = -(-args.objects // len(files))
        subset_files = max(1, args.checkov_objects // per_file)
        checkov_n = subset_files * per_file
        subset = OUT / "checkov-subset"
        if subset.exists():
            shutil.rmtree(subset)
        subset.mkdir()
        for f in files[:subset_files]:
            shutil.copy(f, subset)
        cmd = [
            str(checkov_bin),
            "--framework",
            "kubernetes",
            "-d",
            str(subset),
            "--quiet",
            "--compact",
            "-o",
            "json",
        ]
        timings["checkov"] = _measure(
            f"checkov on {checkov_n} objects", cmd, args.repeat, ok_codes=(0, 1), note=f"{checkov_n} objects"
        )
        timings["check-subset"] = _measure(
            f"kube-baseline check on {checkov_n} objects",
            [kb, "check", "-o", "json", str(subset)],
            args.repeat,
            ok_codes=(0, 1),
        )

    n = args.objects
    floor, check = timings["floor"].median, timings["check"].median
    lines = [
        "# CLI benchmark results",
        "",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, every process pinned to one core "
        f"({'taskset -c 0' if _pin() else 'not pinned'}). "
        f"Python {platform.python_version()}.",
        "",
        f"Input: {n} generated objects of mixed kinds (Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod,"
        f" Service, ConfigMap) in {len(files)} multi-document files, {size_mb:.1f} MB, seed fixed"
        " (`bench/generate.py`).",
        "",
        f"Times are wall-clock medians of {args.repeat} runs, each a fresh process "
        "(start-up and imports included).",
        "",
        "| what | median (s) | runs (s) | objects/s | median CPU (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for key, t in timings.items():
        count = checkov_n if key in ("checkov", "check-subset") else n
        runs = ", ".join(f"{r:.2f}" for r in t.runs)
        label = {
            "floor": "parse floor: PyYAML CSafeLoader `load_all`",
            "rapidyaml": "rapidyaml parse + JSON emit + `json.loads` (information only)",
            "check": "`kube-baseline check -o json`",
            "checkov": f"checkov `--framework kubernetes` ({count} objects)",
            "check-subset": f"`kube-baseline check -o json` ({count} objects)",
        }[key]
        rate = count / t.median
        lines.append(
            f"| {label} | {t.median:.2f} | {runs} | {rate:,.0f} | {t.cpu_median:.2f} | {t.rss_mb:.0f} |"
        )
    lines += ["", "Ratios:", ""]
    lines.append(f"- check / parse floor (CSafeLoader): **{check / floor:.2f}x** (target <= 1.5x)")
    cpu_ratio = timings["check"].cpu_median / timings["floor"].cpu_median
    lines.append(
        f"- the same in CPU time (user + system; what to read when other work shares the core): "
        f"{cpu_ratio:.2f}x"
    )
    if "rapidyaml" in timings:
        lines.append(f"- check / rapidyaml: {check / timings['rapidyaml'].median:.2f}x (information only)")
    if "checkov" in timings:
        per_obj_checkov = timings["checkov"].median / checkov_n
        extrapolated = per_obj_checkov * n
        lines.append(
            f"- checkov, extrapolated linearly from {checkov_n} to {n} objects: {extrapolated:.0f} s; "
            f"checkov / check = **{extrapolated / check:.0f}x** (target >= 10x)"
        )
        lines.append(
            f"- same {checkov_n} objects, both measured: checkov / check = "
            f"{timings['checkov'].median / timings['check-subset'].median:.0f}x"
        )
    lines += [
        "",
        "Versions: "
        + "; ".join(
            v
            for v in (
                _version([kb, "--version"]),
                "PyYAML "
                + _version(
                    [py, "-c", "import yaml; print(yaml.__version__, 'libyaml', yaml.__with_libyaml__)"]
                ),
                ("checkov " + _version([str(checkov_bin), "--version"])) if checkov_bin.exists() else "",
                ("rapidyaml " + _version([str(ryml_py), "-c", "import ryml; print(ryml.__version__)"]))
                if ryml_py.exists()
                else "",
            )
            if v
        ),
        "",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    Path(args.results).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
