"""kubectl's own manifest decoding (hack/kubectl-decode, Go), for differential tests.

Built once per source version into the control plane's binary cache; tests skip when Go or the
modules are not available.
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

SOURCE = Path(__file__).resolve().parents[2] / "hack" / "kubectl-decode"
CACHE = Path(os.environ.get("KUBE_BASELINE_CACHE", Path.home() / ".cache" / "kube-baseline"))


@functools.cache
def binary() -> str | None:
    if shutil.which("go") is None:
        return None
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((SOURCE / name).read_bytes())
    target = CACHE / f"kubectl-decode-{digest.hexdigest()[:16]}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
        tmp = target.with_suffix(".tmp")
        done = subprocess.run(
            ["go", "build", "-o", str(tmp), "."], cwd=SOURCE, env=env, capture_output=True, timeout=600
        )
        if done.returncode != 0:
            return None
        tmp.replace(target)
    return str(target)


def require() -> str:
    found = binary()
    if found is None:
        pytest.skip("hack/kubectl-decode cannot be built (no Go toolchain or modules)")
    return found


def decode(text: str | bytes) -> list[dict[str, Any]]:
    """One {"ok": object} or {"error": message} per document, as kubectl decodes the stream."""
    data = text.encode() if isinstance(text, str) else text
    done = subprocess.run([require()], input=data, capture_output=True, timeout=60, check=True)
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line]
