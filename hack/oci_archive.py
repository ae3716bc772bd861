#!/usr/bin/env python3
"""Make an OCI image archive loadable by Docker, Podman and containerd (kind) alike.

    python3 hack/oci_archive.py IN.tar OUT.tar IMAGE_REF

IN is what `podman save --format oci-archive` writes: an OCI image layout (oci-layout,
index.json, blobs/sha256/...). OUT holds the same files, plus

- a Docker `manifest.json` that points at the same blobs (the file `docker load` reads; Docker
  25 and later write archives with both, which is what this reproduces), and
- the image name on the index entry both as `org.opencontainers.image.ref.name` and as
  `io.containerd.image.name` (what `ctr images import`, and so `kind load image-archive`, reads).

Nothing is recompressed: the blobs are copied byte for byte. Standard library only.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from typing import Any

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


def blob_path(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def convert(src: str, dst: str, ref: str) -> dict[str, Any]:
    with tarfile.open(src) as tin:
        index = json.load(tin.extractfile("index.json"))  # type: ignore[arg-type]
        entries = [d for d in index["manifests"] if d.get("mediaType") in MANIFEST_TYPES]
        if len(entries) != 1:
            raise SystemExit(f"{src}: expected one image manifest in index.json, found {len(entries)}")
        entry = entries[0]
        manifest = json.load(tin.extractfile(blob_path(entry["digest"])))  # type: ignore[arg-type]
        entry.setdefault("annotations", {}).update(
            {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref}
        )
        docker_manifest = [
            {
                "Config": blob_path(manifest["config"]["digest"]),
                "RepoTags": [ref],
                "Layers": [blob_path(layer["digest"]) for layer in manifest["layers"]],
            }
        ]
        with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
            for member in tin.getmembers():
                if member.name in ("index.json", "manifest.json"):
                    continue
                tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
            for name, doc in (("index.json", index), ("manifest.json", docker_manifest)):
                data = json.dumps(doc, separators=(",", ":")).encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tout.addfile(info, io.BytesIO(data))
    return docker_manifest[0]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    convert(*argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
