"""Shared fixtures: a real Kubernetes API server for integration and e2e tests.

- ``kube`` (session): a cluster handle. Started lazily, once per session, only if a test
  asks for it: the ``api`` profile (etcd + kube-apiserver), or ``full`` (adds
  kube-controller-manager, kube-scheduler and kwok nodes) when any collected test is marked
  ``e2e``. ``KB_CLUSTER_PROFILE=api|full`` forces one. With ``KB_USE_EXISTING_CLUSTER=1`` and
  ``KUBECONFIG`` set, the tests use that cluster instead and start nothing.
- ``kube_full`` (session): the same handle, failing unless the cluster runs controllers.
- ``namespace`` (function): a factory, ``namespace(prefix=None) -> name``, creating
  uniquely named namespaces labelled ``kube-baseline.io/test=1``; deleted after the test.

The cluster is stopped at the end of the session, also on failures, Ctrl-C, SIGTERM/SIGHUP
(signal handlers + atexit), and by the kernel if pytest is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

TEST_LABEL = "kube-baseline.io/test"
_NEEDS_FULL = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    registered = " ".join(config.getini("markers"))
    for name, doc in (
        ("integration", "needs a real API server (the local control plane, api profile)"),
        ("e2e", "needs the full local control plane (controllers, scheduler, kwok nodes)"),
        ("image", "builds the operator image and runs it in a container engine (docker or podman)"),
    ):
        if f"{name}:" not in registered:
            config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_NEEDS_FULL] = any(item.get_closest_marker("e2e") for item in items)


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message has its stderr and stdout."""


@dataclass
class Kube:
    """What tests get from the ``kube`` fixture."""

    kubeconfig: str
    server: str
    bin_dir: Path | None
    profile: str  # "api", "full" or "existing"
    workdir: Path
    _sa_count: int = field(default=0, repr=False)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (else the one on PATH) against this cluster."""
        exe = self.bin_dir / "kubectl" if self.bin_dir else None
        if exe is None or not exe.exists():
            found = shutil.which("kubectl")
            if not found:
                raise KubectlError("no kubectl: run hack/build-controlplane or put kubectl on PATH")
            exe = Path(found)
        cmd = [str(exe), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed with exit {res.returncode}:\n{res.stderr}{res.stdout}"
            )
        return res

    def api(self) -> ApiClient:
        """A new official ``kubernetes`` ApiClient for the admin kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)

    def service_account_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """Create the ServiceAccount if needed, get a token for it through the TokenRequest
        API and return the path of a kubeconfig that authenticates as it."""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException

        from hack.localcluster import kubeconfig_text

        with self.api() as api:
            core = client.CoreV1Api(api)
            try:
                core.create_namespaced_service_account(
                    namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                )
            except ApiException as exc:
                if exc.status != 409:  # 409: it exists already
                    raise
            req = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            )
            token = core.create_namespaced_service_account_token(name, namespace, req).status.token
        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        ca_pem = Path(cfg.ssl_ca_cert).read_bytes() if cfg.ssl_ca_cert and cfg.verify_ssl else None
        self._sa_count += 1
        path = self.workdir / f"sa-{namespace}-{name}-{self._sa_count}.kubeconfig"
        path.write_text(kubeconfig_text(cfg.host, ca_pem, {"token": token}, name=f"{namespace}-{name}"))
        path.chmod(0o600)
        return str(path)


def _existing_cluster(workdir: Path) -> Kube:
    from kubernetes import client, config

    from hack.localcluster import ClusterError, find_bin_dir

    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig or os.pathsep in kubeconfig or not Path(kubeconfig).is_file():
        pytest.fail(
            "KB_USE_EXISTING_CLUSTER=1 needs KUBECONFIG set to one existing kubeconfig file", pytrace=False
        )
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    try:
        bin_dir: Path | None = find_bin_dir()
    except ClusterError:
        bin_dir = None  # fall back to kubectl on PATH
    return Kube(kubeconfig, cfg.host, bin_dir, "existing", workdir)


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> Iterator[Kube]:
    workdir = Path(tempfile.mkdtemp(prefix="kb-pytest-"))
    if os.environ.get("KB_USE_EXISTING_CLUSTER") == "1":
        yield _existing_cluster(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        return

    from hack.localcluster import ClusterError, LocalCluster, remove_orphans

    for orphan in remove_orphans(workdir.parent, "kb-pytest-"):
        print(f"\n[kube] removed {orphan}, left by a killed test session")

    profile = os.environ.get("KB_CLUSTER_PROFILE") or (
        "full" if request.config.stash.get(_NEEDS_FULL, False) else "api"
    )
    cluster = LocalCluster(workdir / "cluster", profile, die_with_parent=True)
    stopped = keep_logs = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            cluster.down()
            if not keep_logs:
                shutil.rmtree(workdir, ignore_errors=True)

    def on_signal(signum: int, frame: Any) -> None:
        stop()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    atexit.register(stop)
    try:
        t0 = time.monotonic()
        try:
            cluster.up()
        except ClusterError as exc:
            keep_logs = True
            stop()
            pytest.fail(f"local control plane ({profile}) failed to start: {exc}", pytrace=False)
        print(f"\n[kube] {profile} control plane up in {time.monotonic() - t0:.1f}s at {cluster.server}")
        assert cluster.bin_dir is not None
        yield Kube(cluster.kubeconfig, cluster.server, cluster.bin_dir, profile, workdir)
    finally:
        stop()
        atexit.unregister(stop)
        for s, handler in previous.items():
            signal.signal(s, handler)


@pytest.fixture(scope="session")
def kube_full(kube: Kube) -> Kube:
    if kube.profile == "api":
        pytest.fail(
            "this test needs the full profile (controllers, scheduler, kwok): mark it "
            "@pytest.mark.e2e or set KB_CLUSTER_PROFILE=full",
            pytrace=False,
        )
    return kube


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = kube.api()
    core = client.CoreV1Api(api)
    created: list[str] = []
    default_prefix = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")

    def make(prefix: str | None = None) -> str:
        name = f"{prefix or default_prefix or 'test'}-{uuid.uuid4().hex[:6]}"
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: "1"}))
        )
        created.append(name)
        if kube.profile != "api":  # ServiceAccount admission: wait for the `default` SA
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    core.read_namespaced_service_account("default", name)
                    break
                except ApiException:
                    time.sleep(0.1)
        return name

    try:
        yield make
    finally:
        for name in created:
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)
        api.close()
