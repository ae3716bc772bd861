"""crds/securitybaselines.yaml must equal what hack/gen_crd.py generates from engine/models/ (`make crds`)."""

from __future__ import annotations

from pathlib import Path

import gen_crd

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "securitybaselines.yaml"


def test_crd_file_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == gen_crd.render(), "crds/ is stale: run `make crds`"
