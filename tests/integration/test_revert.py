"""`kube-baseline revert` against the real API server: the fix is written as the operator writes it
(a strategic-merge patch under the field manager kube-baseline), so managedFields are the API
server's own; revert must remove exactly those fields, and refuse where another manager wrote
inside them since."""

from __future__ import annotations

import json
from typing import Any

import pytest
from operator_helpers import create, deployment, get, written

from kube_baseline.engine.rollout import owned_fields
from kube_baseline.main import main

pytestmark = pytest.mark.integration

FIX = {
    "spec": {
        "template": {
            "spec": {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": False}}],
            }
        }
    }
}


def fix(kube: Any, ns: str, name: str, manager: str = "kube-baseline") -> None:
    kube.kubectl(
        "patch",
        "deployment",
        name,
        "-n",
        ns,
        "--type=strategic",
        f"--field-manager={manager}",
        "-p",
        json.dumps(FIX),
    )


def revert(kube: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["revert", *args, f"--kubectl={kube.bin_dir / 'kubectl'}", f"--kubeconfig={kube.kubeconfig}"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def template(kube: Any, ns: str, name: str) -> dict[str, Any]:
    return get(kube, "deployment", "-n", ns, name)["spec"]["template"]  # type: ignore[no-any-return]


def test_revert_dry_run_then_yes_restores_the_template(kube: Any, namespace: Any, capsys: Any) -> None:
    ns = namespace()
    create(kube, deployment("web", ns))
    create(kube, deployment("other", ns))
    before = template(kube, ns, "web")
    fix(kube, ns, "web")
    fixed = get(kube, "deployment", "-n", ns, "web")
    code, out = revert(kube, capsys, "deployment/web", "-n", ns)
    assert code == 0, out
    assert "would revert Deployment" in out and "runAsNonRoot: true" in out
    assert "securityContext.allowPrivilegeEscalation: false" in out
    assert written(get(kube, "deployment", "-n", ns, "web")) == written(fixed)  # dry run: nothing written
    code, out = revert(kube, capsys, "-n", ns, "--yes")
    assert code == 0, out
    assert "1 workload reverted; 0 refused" in out  # `other` was never touched by kube-baseline
    assert template(kube, ns, "web") == before
    managed = get(kube, "deployment", "-n", ns, "web")["metadata"]["managedFields"]
    assert owned_fields(managed, "kube-baseline") == (set(), set())  # the server agrees: none left
    code, out = revert(kube, capsys, "-n", ns)
    assert code == 0 and "0 workloads would revert" in out, out


@pytest.mark.parametrize(
    "theirs",
    [
        # A field inside the securityContext kube-baseline created for the container.
        {"readOnlyRootFilesystem": True},
        # The very field kube-baseline set, changed to another value.
        {"allowPrivilegeEscalation": True},
    ],
)
def test_revert_refuses_where_another_manager_changed_a_field(
    kube: Any, namespace: Any, capsys: Any, theirs: dict[str, Any]
) -> None:
    ns = namespace()
    create(kube, deployment("web", ns))
    fix(kube, ns, "web")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "securityContext": theirs}]}}}}
    kube.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        ns,
        "--type=strategic",
        "--field-manager=someone",
        "-p",
        json.dumps(patch),
    )
    before = written(get(kube, "deployment", "-n", ns, "web"))
    code, out = revert(kube, capsys, "deployment/web", "-n", ns, "--yes")
    assert code == 1, out
    assert "refused Deployment" in out and "someone" in out, out
    assert written(get(kube, "deployment", "-n", ns, "web")) == before  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ("deployment/web",),  # no namespace
        ("pod/web", "-n", "default"),  # not a kind kube-baseline patches
        (),  # no target
        ("-n", "x", "--baseline", "y"),
    ],
)
def test_revert_bad_input_exits_2(kube: Any, capsys: Any, args: tuple[str, ...]) -> None:
    code, out = revert(kube, capsys, *args)
    assert code == 2 and "error" in out, out
