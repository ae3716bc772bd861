"""Upstream Go code as test oracles: kubectl's manifest decoding (hack/kubectl-decode) and Pod
Security Admission's checks (hack/psa-verdicts).

Each tool is built once per source version into the control plane's binary cache (from the Go
module cache or proxy, as the control plane is); tests skip when Go or the modules are missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HACK = Path(__file__).resolve().parents[2] / "hack"
CACHE = Path(os.environ.get("KUBE_BASELINE_CACHE", Path.home() / ".cache" / "kube-baseline"))


@functools.cache
def binary(tool: str = "kubectl-decode") -> str | None:
    if shutil.which("go") is None:
        return None
    source = HACK / tool
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((source / name).read_bytes())
    target = CACHE / f"{tool}-{digest.hexdigest()[:16]}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
        tmp = target.with_suffix(".tmp")
        done = subprocess.run(
            ["go", "build", "-o", str(tmp), "."], cwd=source, env=env, capture_output=True, timeout=600
        )
        if done.returncode != 0:
            return None
        tmp.replace(target)
    return str(target)


def require(tool: str = "kubectl-decode") -> str:
    found = binary(tool)
    if found is None:
        why = f"hack/{tool} cannot be built (no Go toolchain or modules)"
        if os.environ.get("CI"):  # CI has Go and the module proxy: an oracle that will not build is a failure
            pytest.fail(why)
        pytest.skip(why)
    return found


def decode(text: str | bytes) -> list[dict[str, Any]]:
    """One {"ok": object} or {"error": message} per document, as kubectl decodes the stream."""
    data = text.encode() if isinstance(text, str) else text
    done = subprocess.run([require()], input=data, capture_output=True, timeout=60, check=True)
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line]


def psa_verdicts(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream PSA's verdict per check (latest version) for each {"metadata", "spec"} pod."""
    data = "".join(json.dumps(p) + "\n" for p in pods).encode()
    done = subprocess.run([require("psa-verdicts")], input=data, capture_output=True, timeout=120, check=True)
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line]
