"""Pure helpers of kube_baseline.controller.cluster (its HTTP is tested against the API server)."""

from __future__ import annotations

import json

from kube_baseline.controller.cluster import resource_version_of


def test_resource_version_of_reads_the_objects_own_not_a_label_or_an_annotation() -> None:
    body = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "8a3c",
            "resourceVersion": "123",
            "labels": {"resourceVersion": "999"},
            "annotations": {"note": '{"resourceVersion":"5"}'},
        },
        "spec": {"template": {"metadata": {"resourceVersion": "7"}}},
    }
    assert resource_version_of(json.dumps(body, separators=(",", ":")).encode()) == "123"
    # Not as the API server encodes it (spaces): decoded in full instead.
    assert resource_version_of(json.dumps(body).encode()) == "123"
    assert resource_version_of(b'{"kind":"Status","metadata":{}}') == ""
