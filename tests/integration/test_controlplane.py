"""The local control plane behaves like a real API server: CRDs and watches, strategic-merge
and server-side-apply patches, printer columns through kubectl, ServiceAccount tokens and
RBAC, stamped versions, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

GROUP = "controlplane-test.kube-baseline.io"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
VERSIONS_ENV = Path(__file__).resolve().parents[2] / "hack" / "controlplane" / "versions.env"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Colour", "type": "string", "jsonPath": ".spec.colour"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "colour": {"type": "string", "enum": ["red", "blue"]},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def api(kube: Any) -> Iterator[client.ApiClient]:
    with kube.api() as api:
        yield api


@pytest.fixture(scope="module")
def widget_crd(api: client.ApiClient) -> Iterator[str]:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(CRD_NAME)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, what="the CRD to be Established")
    yield CRD_NAME
    ext.delete_custom_resource_definition(CRD_NAME)


def widget(name: str, size: int, colour: str = "red") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, "colour": colour},
    }


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "registry.k8s.io/pause:3.10"},
                        {"name": "sidecar", "image": "registry.k8s.io/pause:3.10"},
                    ]
                },
            },
        },
    }


def test_kubectl_version_is_stamped(kube: Any) -> None:
    out = json.loads(kube.kubectl("version", "-o", "json").stdout)
    client_version = out["clientVersion"]["gitVersion"]
    server_version = out["serverVersion"]["gitVersion"]
    assert client_version.startswith("v1.")
    assert server_version.startswith("v1.")
    if kube.profile != "existing":
        pinned = next(
            line.split("=", 1)[1]
            for line in VERSIONS_ENV.read_text().splitlines()
            if line.startswith("K8S_VERSION=")
        )
        assert client_version == server_version == pinned
        assert out["serverVersion"]["gitTreeState"] == "clean"


def test_custom_object_create_watch_and_validate(
    api: client.ApiClient, widget_crd: str, namespace: Callable[..., str]
) -> None:
    ns = namespace()
    objs = client.CustomObjectsApi(api)
    rv = objs.list_namespaced_custom_object(GROUP, "v1", ns, PLURAL)["metadata"]["resourceVersion"]

    objs.create_namespaced_custom_object(GROUP, "v1", ns, PLURAL, widget("w1", 3))
    objs.patch_namespaced_custom_object(
        GROUP, "v1", ns, PLURAL, "w1", {"spec": {"size": 4}}, _content_type="application/merge-patch+json"
    )
    objs.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        ns,
        PLURAL,
        "w1",
        {"status": {"seen": True}},
        _content_type="application/merge-patch+json",
    )

    events = []
    for event in watch.Watch().stream(
        objs.list_namespaced_custom_object, GROUP, "v1", ns, PLURAL, resource_version=rv, timeout_seconds=10
    ):
        events.append((event["type"], event["object"]["spec"]["size"], event["object"].get("status")))
        if len(events) == 3:
            break
    assert events == [("ADDED", 3, None), ("MODIFIED", 4, None), ("MODIFIED", 4, {"seen": True})]

    # The schema is enforced by the server.
    with pytest.raises(ApiException) as err:
        objs.create_namespaced_custom_object(GROUP, "v1", ns, PLURAL, widget("bad", 0, "green"))
    assert err.value.status == 422
    assert "spec.size" in str(err.value.body) and "spec.colour" in str(err.value.body)


def test_printer_columns_through_kubectl(
    kube: Any, api: client.ApiClient, widget_crd: str, namespace: Callable[..., str]
) -> None:
    ns = namespace()
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, "v1", ns, PLURAL, widget("small", 2, "blue"))
    objs.create_namespaced_custom_object(GROUP, "v1", ns, PLURAL, widget("big", 40, "red"))

    lines = kube.kubectl("get", PLURAL, "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "COLOUR"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows == {"small": ["2", "blue"], "big": ["40", "red"]}
    # The short name works too, through discovery.
    assert "small" in kube.kubectl("get", "wdg", "-n", ns, "-o", "name").stdout


def test_deployment_strategic_merge_patch(api: client.ApiClient, namespace: Callable[..., str]) -> None:
    ns = namespace()
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("web"))

    patch = {
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": False}}],
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", ns, patch, _content_type=SMP)

    spec = apps.read_namespaced_deployment("web", ns).spec.template.spec
    containers = {c.name: c for c in spec.containers}
    # Merged by container name: both containers and the image survive (a JSON merge patch
    # would have replaced the whole list).
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"].image == "registry.k8s.io/pause:3.10"
    assert containers["app"].security_context.allow_privilege_escalation is False
    assert containers["sidecar"].security_context is None
    assert spec.security_context.seccomp_profile.type == "RuntimeDefault"


def test_deployment_server_side_apply(
    kube: Any, api: client.ApiClient, namespace: Callable[..., str]
) -> None:
    ns = namespace()
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("api"))

    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True},
                        }
                    ]
                }
            }
        },
    }
    apps.patch_namespaced_deployment(
        "api", ns, applied, field_manager="kb-test", force=True, _content_type=APPLY
    )
    dep = apps.read_namespaced_deployment("api", ns)
    containers = {c.name: c for c in dep.spec.template.spec.containers}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"].image == "registry.k8s.io/pause:3.10"
    assert containers["app"].security_context.run_as_non_root is True
    managers = {(m.manager, m.operation) for m in dep.metadata.managed_fields}
    assert ("kb-test", "Apply") in managers

    # Applying again without the field gives up ownership and removes it.
    del applied["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    apps.patch_namespaced_deployment("api", ns, applied, field_manager="kb-test", _content_type=APPLY)
    app = next(
        c for c in apps.read_namespaced_deployment("api", ns).spec.template.spec.containers if c.name == "app"
    )
    assert app.security_context.read_only_root_filesystem is None
    assert app.security_context.run_as_non_root is True

    # kubectl sees the same field manager.
    out = kube.kubectl("get", "deployment", "api", "-n", ns, "--show-managed-fields", "-o", "json").stdout
    assert "kb-test" in {m["manager"] for m in json.loads(out)["metadata"]["managedFields"]}


def test_service_account_token_and_rbac(
    kube: Any, api: client.ApiClient, namespace: Callable[..., str]
) -> None:
    ns = namespace()
    sa_kubeconfig = kube.service_account_kubeconfig(ns, "reader")

    def can_i(verb: str, resource: str) -> str:
        res = kube.kubectl(
            "--kubeconfig", sa_kubeconfig, "auth", "can-i", verb, resource, "-n", ns, check=False
        )
        return res.stdout.strip()

    assert can_i("list", "configmaps") == "no"
    denied = kube.kubectl("--kubeconfig", sa_kubeconfig, "get", "configmaps", "-n", ns, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr

    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    wait_for(lambda: can_i("list", "configmaps") == "yes", what="the RoleBinding to apply")
    assert can_i("delete", "configmaps") == "no"
    whoami = kube.kubectl("--kubeconfig", sa_kubeconfig, "auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"


def test_metrics_endpoint(kube: Any) -> None:
    metrics = kube.kubectl("get", "--raw", "/metrics").stdout
    assert "apiserver_request_total" in metrics
    assert "apiserver_flowcontrol_" in metrics  # API Priority and Fairness is on


# --- starting and stopping: hack/localcluster.py against the real binaries -------------------
#
# Each test starts its own cluster from a bin dir of wrapper scripts around the real binaries
# (no `kube` fixture), so a test can change how one component starts.

COMPONENT_FILES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwok-stages.yaml",
)


def wrapper_bin_dir(tmp_path: Path, wrap: dict[str, str]) -> Path:
    """A bin dir linking to the built binaries, except that each ``wrap[name]`` is a bash
    script running ``exec <that text> /real/<name> "$@"``."""
    from hack.localcluster import ClusterError, find_bin_dir

    try:
        real = find_bin_dir()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in COMPONENT_FILES:
        if name in wrap:
            script = bin_dir / name
            script.write_text(f'#!/bin/bash\nexec {wrap[name]} {real / name} "$@"\n')
            script.chmod(0o755)
        else:
            (bin_dir / name).symlink_to(real / name)
    return bin_dir


def gone(pid: int, start_time: int) -> bool:
    from hack.localcluster import _start_time

    return _start_time(pid) != start_time


def test_liveness_does_not_depend_on_argv(tmp_path: Path) -> None:
    """Regression: liveness was "PID exists and /proc/PID/cmdline starts with the binary's
    path". Right after a spawn the new program's argv is not set up yet and cmdline reads
    empty, so under load a starting component was reported as "exited during startup", and
    the cleanup, using the same test, skipped it and left it running without a state file.
    Here argv[0] never matches (the components run as `exec -a renamed ...`), which makes
    that condition permanent: start, status from another handle (as `hack/cluster status`
    does from a new process) and stop must all still work."""
    from hack.localcluster import LocalCluster

    bin_dir = wrapper_bin_dir(tmp_path, {"etcd": "-a etcd-renamed", "kube-apiserver": "-a apiserver-renamed"})
    state = tmp_path / "cluster"
    cluster = LocalCluster(state, "api", bin_dir=bin_dir)
    try:
        cluster.up()
        procs = [(p.pid, p.start_time) for p in cluster.procs]
        assert Path(f"/proc/{procs[0][0]}/cmdline").read_bytes().startswith(b"etcd-renamed\0")
        other = LocalCluster(state)
        assert other.status()["state"] == "running"
        other.down()
    finally:
        cluster.down()
    assert all(gone(pid, start) for pid, start in procs)
    assert not Path(cluster.etcd_data).exists()
    assert not (state / "cluster.json").exists()
    assert LocalCluster(state).status()["state"] == "stopped"


@pytest.mark.parametrize(
    ("profile", "component", "check"),
    [
        ("api", "kube-apiserver", "kube-apiserver ready (/readyz)"),
        ("full", "kube-scheduler", "kube-scheduler healthy (/healthz)"),
    ],
)
def test_failed_up_names_the_check_and_stops_everything(
    tmp_path: Path, profile: str, component: str, check: str
) -> None:
    """A component that exits during start-up (here: an unknown flag): `up` raises an error
    naming the check, the exit code and the log, and stops everything it had started."""
    from hack.localcluster import ClusterError, LocalCluster

    bin_dir = wrapper_bin_dir(tmp_path, {component: "-a bad-flag-wrapper"})
    (bin_dir / component).write_text((bin_dir / component).read_text().replace('"$@"', '--no-such-flag "$@"'))
    state = tmp_path / "cluster"
    cluster = LocalCluster(state, profile, bin_dir=bin_dir)
    started: list[tuple[str, int, int]] = []
    spawn = cluster._spawn

    def recording_spawn(name: str, args: list[str]) -> Any:
        proc = spawn(name, args)
        started.append((name, proc.pid, proc.start_time))
        return proc

    cluster._spawn = recording_spawn  # type: ignore[method-assign]
    try:
        with pytest.raises(ClusterError) as err:
            cluster.up()
    finally:
        cluster.down()
    msg = str(err.value)
    assert f"startup check failed: {check}: {component} exited with code 1" in msg
    assert "unknown flag: --no-such-flag" in msg
    names = [name for name, _, _ in started]
    assert names[0] == "etcd" and names[-1] == component
    assert [name for name, pid, start in started if not gone(pid, start)] == []
    assert not (state / "cluster.json").exists()
    assert not Path(cluster.etcd_data).exists()
    assert (state / "logs" / f"{component}.log").exists()  # kept for the error message
