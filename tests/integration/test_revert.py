"""`kube-baseline revert` against the real API server: the fix is written as the operator writes it
(a strategic-merge patch under the field manager kube-baseline), so managedFields are the API
server's own; revert must remove exactly those fields, and refuse where another manager wrote
inside them since."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
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


def revert(
    kube: Any, capsys: pytest.CaptureFixture[str], *args: str, kubectl: Path | None = None
) -> tuple[int, str]:
    kubectl = kubectl or kube.bin_dir / "kubectl"
    code = main(["revert", *args, f"--kubectl={kubectl}", f"--kubeconfig={kube.kubeconfig}"])
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


def interleaving_kubectl(kube: Any, tmp_path: Path, *between: str) -> Path:
    """A kubectl that runs `kubectl BETWEEN` once, just before the first patch it is asked for:
    another writer on the real API server between revert's read and its write."""
    real = shlex.quote(str(kube.bin_dir / "kubectl"))
    marker = shlex.quote(str(tmp_path / "interleaved"))
    config = shlex.quote(f"--kubeconfig={kube.kubeconfig}")
    script = tmp_path / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e {marker} ] && printf "%s\\n" "$@" | grep -qx patch; then\n'
        f"  touch {marker}\n"
        f"  {real} {config} {' '.join(shlex.quote(a) for a in between)} >/dev/null || exit 99\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_revert_reads_again_when_the_workload_moved_on(
    kube: Any, namespace: Any, capsys: Any, tmp_path: Path
) -> None:
    """A write outside kube-baseline's fields (here an annotation; on a live cluster usually the
    controller's status) between the read and the guarded patch: read again, revert."""
    ns = namespace()
    create(kube, deployment("web", ns))
    before = template(kube, ns, "web")
    fix(kube, ns, "web")
    kubectl = interleaving_kubectl(kube, tmp_path, "annotate", "deployment", "web", "-n", ns, "touched=yes")
    code, out = revert(kube, capsys, "deployment/web", "-n", ns, "--yes", kubectl=kubectl)
    assert code == 0, out
    assert "changed while reverting; read it again (attempt 2)" in out
    assert "1 workload reverted; 0 refused" in out
    after = get(kube, "deployment", "-n", ns, "web")
    assert after["metadata"]["annotations"]["touched"] == "yes"  # the other write is kept
    assert after["spec"]["template"] == before


def test_revert_refuses_when_our_field_changed_meanwhile(
    kube: Any, namespace: Any, capsys: Any, tmp_path: Path
) -> None:
    """The other writer changes a field kube-baseline set: the second read sees it, and refuses."""
    ns = namespace()
    create(kube, deployment("web", ns))
    fix(kube, ns, "web")
    theirs = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": True}}]
                }
            }
        }
    }
    kubectl = interleaving_kubectl(
        kube,
        tmp_path,
        "patch",
        "deployment",
        "web",
        "-n",
        ns,
        "--type=strategic",
        "--field-manager=someone",
        "-p",
        json.dumps(theirs),
    )
    before_race = get(kube, "deployment", "-n", ns, "web")
    code, out = revert(kube, capsys, "deployment/web", "-n", ns, "--yes", kubectl=kubectl)
    assert code == 1, out
    assert "refused Deployment" in out and "someone" in out, out
    after = get(kube, "deployment", "-n", ns, "web")
    spec = after["spec"]["template"]["spec"]
    assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is True  # theirs
    assert spec["securityContext"] == before_race["spec"]["template"]["spec"]["securityContext"]  # ours kept


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
