"""The operator image, run the way the kubelet would run manifests/deployment.yaml.

`hack/image build` builds the image from the Dockerfile (cached: seconds when nothing changed),
with docker or podman. The container then gets what a kubelet gives the operator's Pod: the
Deployment's own securityContext (its UID and GID, a read-only root filesystem, every capability
dropped, no new privileges), its volumes, its resource limits and its args; the ServiceAccount's
token (from the TokenRequest API), the cluster CA and the namespace mounted at
/var/run/secrets/kubernetes.io/serviceaccount; and KUBERNETES_SERVICE_HOST/PORT pointing at the
API server (host network: the local API server listens on 127.0.0.1, which its serving
certificate names). The RBAC is that of manifests/ (`kubectl apply -k manifests/`).

A Pod also gets the `kubernetes` Service: cluster DNS resolves kubernetes.default.svc and
kube-proxy forwards its port 443 to the API server. Kopf's in-cluster login (which the operator
uses) goes to https://kubernetes.default.svc and ignores KUBERNETES_SERVICE_HOST/PORT, so the test
stands in for both: the name resolves to 127.0.0.1 in the container (--add-host) and a forwarder
on 127.0.0.1:443 plays kube-proxy. A second test, an expected failure, runs without them: that is
the operator change still to make (log in at KUBERNETES_SERVICE_HOST/PORT, as client-go does).

It must log in in-cluster style, remediate a weak Deployment in a dev namespace, answer its
liveness endpoint, and stop cleanly on SIGTERM: the manifests, the image and the in-cluster login
agree. Skipped, saying why, only where there is no container engine; in CI (CI=true) a missing
engine is a failure, since `make test` installs one there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_helpers import (
    FORBIDDEN,
    MANIFESTS,
    NAMESPACE,
    SA_NAME,
    free_port,
    healthy,
    manifests_applied,
    remediated_namespace,
)
from operator_helpers import ROOT, exists, get, managers, unique, wait_for

T = TypeVar("T")

pytestmark = [pytest.mark.integration, pytest.mark.image]

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# What the test knows how to give the container; a field outside these means the mapping below
# (and this test) must learn it first.
POD_FIELDS = {
    "serviceAccountName",
    "automountServiceAccountToken",
    "securityContext",
    "containers",
    "volumes",
}
CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "args", "ports", "livenessProbe", "readinessProbe",
    "resources", "securityContext", "volumeMounts",
}  # fmt: skip


@dataclass
class Engine:
    cmd: list[str]  # e.g. ["podman", "--runtime", "runc"]
    flags: list[str]  # what build and run need with it here (network, ulimits)

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*self.cmd, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(
                f"{shlex.join([*self.cmd, *args])} exited {res.returncode}:\n{res.stderr}{res.stdout}"
            )
        return res


@pytest.fixture(scope="module")
def engine() -> Engine:
    res = subprocess.run(
        [str(ROOT / "hack" / "image"), "engine"], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        reason = (
            f"the operator image cannot be built or run here: {res.stderr.strip()}. Install podman "
            "and runc (Debian/Ubuntu: apt-get install podman runc mmdebstrap) or start Docker; "
            "README, 'The operator image'"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (in CI, `make test` installs them: hack/image tools)", pytrace=False)
        pytest.skip(reason)
    lines = res.stdout.splitlines()
    return Engine(shlex.split(lines[0]), shlex.split(lines[1]) if len(lines) > 1 else [])


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    """The image of this tree: `hack/image build` (cached) prints its name and size."""
    t0 = time.monotonic()
    res = subprocess.run(
        [str(ROOT / "hack" / "image"), "build"], capture_output=True, text=True, timeout=1200, check=False
    )
    assert res.returncode == 0, f"hack/image build failed:\n{res.stderr[-4000:]}"
    built = re.search(r"built (\S+) in .*", res.stderr)
    assert built, res.stderr
    print(f"\n[image] {built.group(0)} (test saw {time.monotonic() - t0:.0f}s)")
    return built.group(1)


def ensure_namespace_usable(kube: Any) -> None:
    """A module that deployed manifests/ before may have deleted the operator's namespace. With
    controllers (full profile, kind) it goes away; the api profile runs no namespace controller,
    so it would stay Terminating for ever: finalize it as that controller would."""
    if not exists(kube, "namespace", NAMESPACE):
        return
    ns = get(kube, "namespace", NAMESPACE)
    if not ns["metadata"].get("deletionTimestamp"):
        return
    if kube.profile != "api":
        wait_for(lambda: not exists(kube, "namespace", NAMESPACE), timeout=120, what="namespace gone")
        return
    ns["spec"]["finalizers"] = []
    ns["metadata"].pop("managedFields", None)
    kube.kubectl(
        "replace", "--raw", f"/api/v1/namespaces/{NAMESPACE}/finalize", "-f", "-", input=json.dumps(ns)
    )
    wait_for(lambda: not exists(kube, "namespace", NAMESPACE), what="namespace finalized")


@pytest.fixture(scope="module")
def deployed(kube: Any) -> Iterator[dict[str, Any]]:
    """`kubectl apply -k manifests/`: the CRD, namespace, ServiceAccount and RBAC the container
    runs with. Yields the Deployment as kustomize renders it (with the image manifests/ sets).
    The namespace-scoped objects stay (deleting the namespace would leave it Terminating on the
    api profile); the CRD goes if it was not there."""
    ensure_namespace_usable(kube)
    with manifests_applied(kube):
        rendered = yaml.safe_load_all(kube.kubectl("kustomize", str(MANIFESTS)).stdout)
        yield next(d for d in rendered if d and d["kind"] == "Deployment")


class ServiceForwarder:
    """127.0.0.1:443 -> the API server: what kube-proxy does for the `kubernetes` Service."""

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 443)) -> None:
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.server.settimeout(0.5)
        self.stopping = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="service-forwarder", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopping.set()
        self.server.close()
        self.thread.join(timeout=5)
        for s in self.sockets:
            s.close()


@pytest.fixture
def kubernetes_service(kube: Any) -> Iterator[list[str]]:
    """The `kubernetes` Service as a Pod sees it (DNS name and port 443); yields the `run` flags
    that resolve the name in the container."""
    server = urlsplit(kube.server)
    assert server.hostname and server.port
    try:
        forwarder = ServiceForwarder((server.hostname, server.port))
    except OSError as exc:
        pytest.skip(
            f"cannot listen on 127.0.0.1:443 to stand in for the kubernetes Service ({exc}); "
            "run the test as root, or where port 443 is free"
        )
    try:
        yield ["--add-host", "kubernetes.default.svc:127.0.0.1"]
    finally:
        forwarder.close()


def quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def quantity_cpus(q: str) -> str:
    return str(int(q[:-1]) / 1000) if q.endswith("m") else q


def kubelet_flags(dep: dict[str, Any], engine: Engine, sa_dir: Path) -> tuple[list[str], list[str], str]:
    """`run` flags that give the container what the kubelet would give the Deployment's Pod,
    the container args (liveness moved to a free port: the host network is shared) and the
    liveness URL to probe from here."""
    pod = dep["spec"]["template"]["spec"]
    assert set(pod) <= POD_FIELDS, f"teach this test the pod fields {set(pod) - POD_FIELDS}"
    [ctr] = pod["containers"]
    assert set(ctr) <= CONTAINER_FIELDS, f"teach this test the container fields {set(ctr) - CONTAINER_FIELDS}"
    psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    sc = {**psc, **csc}  # container-level settings win, as in Kubernetes
    assert sc.get("runAsNonRoot") is True and sc.get("runAsUser"), sc
    assert sc.get("seccompProfile", {"type": "RuntimeDefault"})["type"] == "RuntimeDefault"  # engine default
    flags = [*engine.flags, "--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
    if sc.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
        if engine.cmd[0].endswith("podman"):
            flags.append("--read-only-tmpfs=false")  # podman adds writable /tmp, /run; a kubelet does not
    for cap in sc.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    for cap in sc.get("capabilities", {}).get("add", []):
        flags += ["--cap-add", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    limits = ctr.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", str(quantity_bytes(limits["memory"]))]
    if "cpu" in limits:
        flags += ["--cpus", quantity_cpus(limits["cpu"])]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in ctr.get("volumeMounts", []):
        vol = volumes[mount["name"]]
        assert set(vol) == {"name", "emptyDir"}, f"teach this test the volume {vol}"
        # An emptyDir is a fresh, empty, world-writable directory, private to the Pod.
        size = vol["emptyDir"].get("sizeLimit")
        opts = f"rw,mode=1777{f',size={quantity_bytes(size)}' if size else ''}"
        flags += ["--tmpfs", f"{mount['mountPath']}:{opts}"]
    if pod.get("automountServiceAccountToken", True):
        flags += ["--volume", f"{sa_dir}:{SA_MOUNT}:ro"]
    args, liveness = [], ""
    for arg in ctr.get("args", []):
        if arg.startswith("--liveness="):
            url = urlsplit(arg.split("=", 1)[1])
            port = free_port()
            arg = f"--liveness={url.scheme}://{url.hostname}:{port}{url.path}"
            liveness = f"{url.scheme}://127.0.0.1:{port}{ctr['livenessProbe']['httpGet']['path']}"
        args.append(arg)
    assert liveness, "the Deployment has a liveness probe, so its args serve one"
    return flags, args, liveness


def service_account_files(kube: Any, sa_dir: Path) -> None:
    """What the kubelet projects: a bound token (TokenRequest API), the cluster CA, the namespace;
    files 0644 in a 0755 directory (the kubelet's defaults), readable by any UID."""
    token = kube.kubectl("create", "token", SA_NAME, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    cfg = yaml.safe_load(Path(kube.kubeconfig).read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ca = (
        base64.b64decode(cluster["certificate-authority-data"])
        if "certificate-authority-data" in cluster
        else Path(cluster["certificate-authority"]).read_bytes()
    )
    sa_dir.mkdir(mode=0o755)
    sa_dir.chmod(0o755)
    for name, data in (("token", token.encode()), ("ca.crt", ca), ("namespace", NAMESPACE.encode())):
        (sa_dir / name).write_bytes(data)
        (sa_dir / name).chmod(0o644)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


CANNOT_CONNECT = re.compile(r"Cannot connect to host [^ ]+")


def run_operator_container(
    kube: Any,
    engine: Engine,
    image: str,
    deployed: dict[str, Any],
    namespace: Any,
    scope: str,
    tmp_path: Path,
    service_flags: list[str],
) -> None:
    """The whole scenario: start the container as the kubelet would, check the process, the
    remediation and the status, then SIGTERM it and check it stopped cleanly."""
    [ctr_spec] = deployed["spec"]["template"]["spec"]["containers"]
    assert ctr_spec["image"] == image, (
        "`kubectl apply -k manifests/` deploys another image than `make image` builds"
    )
    config = json.loads(engine("image", "inspect", image).stdout)[0]
    user = (config.get("Config") or config.get("config") or {}).get("User", "")
    sc = deployed["spec"]["template"]["spec"]["securityContext"]
    assert user == f"{sc['runAsUser']}:{sc['runAsGroup']}", f"image USER {user!r} vs the Deployment's {sc}"
    print(f"\n[image] {image}: {config['Size'] // 10**6} MB, USER {user}")

    sa_dir = tmp_path / "serviceaccount"
    service_account_files(kube, sa_dir)
    flags, args, liveness = kubelet_flags(deployed, engine, sa_dir)
    server = urlsplit(kube.server)
    assert server.hostname and server.port, kube.server

    name = unique("image")
    dev = remediated_namespace(kube, namespace, scope, name, "weak")

    ctr = f"kb-image-test-{uuid.uuid4().hex[:8]}"
    run = [
        "run", "--detach", "--name", ctr, *flags, *service_flags,
        "--env", f"KUBERNETES_SERVICE_HOST={server.hostname}",
        "--env", f"KUBERNETES_SERVICE_PORT={server.port}",
        image, *args,
    ]  # fmt: skip
    print(f"[image] {shlex.join([*engine.cmd, *run])}")

    def logs() -> str:
        res = engine("logs", ctr, check=False)
        return res.stdout + res.stderr

    def until(fn: Callable[[], T], what: str, timeout: float = 90) -> T:
        """wait_for, but giving up as soon as the container exits or cannot reach the API server."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = fn()
            except Exception as exc:
                value, last = None, exc
            else:
                last = value
            if value:
                return value
            running = engine("inspect", "--format", "{{.State.Running}}", ctr).stdout.strip()
            assert running == "true", f"the container exited while waiting for {what}"
            unreachable = CANNOT_CONNECT.search(logs())
            assert not unreachable, f"the operator cannot reach the API server: {unreachable.group(0)}"
            assert time.monotonic() < deadline, (
                f"timed out after {timeout}s waiting for {what}; last: {last!r}"
            )
            time.sleep(0.5)

    t0 = time.monotonic()
    engine(*run)
    try:
        try:
            until(lambda: healthy(liveness), f"the liveness endpoint {liveness}", timeout=60)
            t_live = time.monotonic() - t0
            # The process: the Deployment's UID and GID, no capabilities, no new privileges.
            pid = int(engine("inspect", "--format", "{{.State.Pid}}", ctr).stdout)
            status = proc_status(pid)
            assert status["Uid"].split()[:2] == [str(sc["runAsUser"])] * 2, status["Uid"]
            assert status["Gid"].split()[:2] == [str(sc["runAsGroup"])] * 2, status["Gid"]
            assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status
            assert status["NoNewPrivs"] == "1", status
            # The root filesystem is read-only.
            res = engine("exec", ctr, "python3", "-c", "open('/opt/kube-baseline/x', 'w')", check=False)
            assert res.returncode != 0 and "Read-only file system" in res.stderr, res
            # The weak Deployment gets its one patch, as the ServiceAccount.
            weak = until(
                lambda: (lambda d: d if "kube-baseline" in managers(d) else {})(
                    get(kube, "deployment", "-n", dev, "weak")
                ),
                "the weak Deployment remediated",
            )
            t_fixed = time.monotonic() - t0
            container = weak["spec"]["template"]["spec"]["containers"][0]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert weak["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] == {
                "type": "RuntimeDefault"
            }
            summary = until(
                lambda: (
                    (get(kube, "securitybaseline", name).get("status") or {})
                    .get("summary", {})
                    .get("remediated")
                ),
                "the baseline's status",
                timeout=30,
            )
            assert summary == 1
            assert engine("inspect", "--format", "{{.State.Running}}", ctr).stdout.strip() == "true"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ncontainer log:\n{logs()[-4000:]}") from exc
        finally:
            # SIGTERM, as the kubelet sends it; the grace period is the Pod's (default 30 s).
            grace = deployed["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            t_stop = time.monotonic()
            engine("stop", "--time", str(grace), ctr, timeout=grace + 30)
            stopped_in = time.monotonic() - t_stop
            state = json.loads(engine("inspect", ctr).stdout)[0]["State"]
            log = logs()
    finally:
        engine("rm", "--force", ctr, check=False)
        kube.kubectl("delete", "securitybaseline", name, "--ignore-not-found", "--wait=false")
    print(
        f"[image] live after {t_live:.1f}s, remediated after {t_fixed:.1f}s, "
        f"stopped on SIGTERM in {stopped_in:.1f}s with exit code {state['ExitCode']}"
    )
    assert state["ExitCode"] == 0, (
        f"exit code {state['ExitCode']} (137: killed after the grace period)\n{log[-3000:]}"
    )
    assert stopped_in < grace, log[-3000:]
    assert not [line for line in log.splitlines() if FORBIDDEN.search(line)], log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "Started kube-baseline" in log, log[-3000:]


@pytest.mark.timeout(1500)
def test_image_runs_as_the_deployment_says_and_remediates(
    kube: Any,
    engine: Engine,
    image: str,
    deployed: dict[str, Any],
    namespace: Any,
    scope: str,
    tmp_path: Path,
    kubernetes_service: list[str],
) -> None:
    run_operator_container(kube, engine, image, deployed, namespace, scope, tmp_path, kubernetes_service)


def test_image_logs_in_at_kubernetes_service_host_and_port(
    kube: Any,
    engine: Engine,
    image: str,
    deployed: dict[str, Any],
    namespace: Any,
    scope: str,
    tmp_path: Path,
) -> None:
    """No stand-in for cluster DNS or the kubernetes Service: the operator must log in at
    KUBERNETES_SERVICE_HOST/PORT, as with hostNetwork or a cluster without DNS."""
    run_operator_container(kube, engine, image, deployed, namespace, scope, tmp_path, [])
