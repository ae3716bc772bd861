"""A real Kubernetes control plane on 127.0.0.1, without a container engine.

Starts the binaries built by hack/build-controlplane:

- profile ``api``:  etcd + kube-apiserver (RBAC, TokenRequest, no ServiceAccount admission)
- profile ``full``: the above + kube-controller-manager, kube-scheduler and kwok, which
  simulates the Node objects we create, so Deployments get ReplicaSets and Pods run.

Importable (``LocalCluster(state_dir, profile).up()``) and a CLI (``hack/cluster``).
Needs only the standard library and ``cryptography``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HACK_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = HACK_DIR / "build-controlplane"
PROFILES = ("api", "full")
DEFAULT_STATE_DIR = Path(
    os.environ.get("KB_CLUSTER_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kube-baseline" / "cluster"
)
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
STATE_FILE = "cluster.json"
# Components in start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    """Something the user has to act on; the message says what."""


def log(msg: str) -> None:
    print(f"[localcluster] {msg}", file=sys.stderr, flush=True)


def find_bin_dir() -> Path:
    """The cached binaries of hack/build-controlplane (KB_CONTROLPLANE_BIN overrides)."""
    if env := os.environ.get("KB_CONTROLPLANE_BIN"):
        return Path(env)
    try:
        res = subprocess.run(
            [str(BUILD_SCRIPT), "--print-bin-dir"], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise ClusterError(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    if res.returncode != 0:
        raise ClusterError(
            res.stderr.strip() or "the control plane is not built; run hack/build-controlplane"
        )
    return Path(res.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- PKI --------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usage: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _load_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue_serving_cert(pki: Path, name: str, hosts: list[str]) -> tuple[Path, Path]:
    """Sign a serving certificate with the cluster CA (e.g. for a webhook on 127.0.0.1).

    ``hosts`` are DNS names or IP addresses; returns (cert path, key path) in ``pki``.
    """
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = _key()
    cert = _cert(_name(name), key, _load_ca(pki), usage=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans)
    crt_path, key_path = pki / f"{name}.crt", pki / f"{name}.key"
    _write_cert(crt_path, cert)
    _write_key(key_path, key)
    return crt_path, key_path


def write_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert (system:masters), SA signing keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert(_name("kube-baseline-local-ca"), ca_key, None, ca=True)
    _write_cert(pki / "ca.crt", ca)
    _write_key(pki / "ca.key", ca_key)
    issue_serving_cert(
        pki,
        "apiserver",
        [
            "127.0.0.1",
            "10.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    admin_key = _key()
    admin = _cert(
        _name("admin", "system:masters"), admin_key, (ca, ca_key), usage=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    _write_cert(pki / "admin.crt", admin)
    _write_key(pki / "admin.key", admin_key)
    sa_key = _key()
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def kubeconfig_text(
    server: str, ca_pem: bytes | None, user: dict[str, str], name: str = "kube-baseline"
) -> str:
    """A kubeconfig (JSON is valid YAML) with one cluster, user and context.
    Without ``ca_pem`` the server certificate is not verified."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = b64encode(ca_pem).decode()
    else:
        cluster["insecure-skip-tls-verify"] = True
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        },
        indent=2,
    )


# --- processes --------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _pid_is(pid: int, exe: str) -> bool:
    """True if ``pid`` runs ``exe`` according to its argv[0]. Only for state files written
    before start times were recorded: right after a spawn the new program's argv is not set
    up yet (``/proc/PID/cmdline`` reads empty), so this can say no for a live process."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0 == exe


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (/proc/PID/stat field 22), or None if
    it is gone. Set at fork and unchanged by exec: with the PID it names one process, so a
    recycled PID never passes for a component, and a process still inside exec does not
    look like another program."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22; fields[0] is field 3 (state)


def _pdeathsig_hook() -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGKILL the child when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: nothing to import after fork
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return hook


@dataclass
class Proc:
    name: str
    pid: int
    exe: str
    log: str
    start_time: int = 0  # /proc/PID/stat starttime; 0 in state files of older versions
    started: float = 0.0  # time.monotonic() at spawn, for messages


def _running(p: Proc) -> bool:
    """Is the process recorded as ``p`` still running (not some later owner of its PID)?"""
    if not _pid_alive(p.pid):
        return False
    if p.start_time:
        return _start_time(p.pid) == p.start_time
    return _pid_is(p.pid, p.exe)


@dataclass
class LocalCluster:
    """etcd + kube-apiserver (+ controllers, scheduler, kwok) in ``state_dir``.

    ``die_with_parent`` makes the kernel kill every component if the thread that called
    ``up()`` dies (even by SIGKILL); the pytest fixture uses it, ``hack/cluster up`` does not.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    profile: str = "api"
    bin_dir: Path | None = None
    apiserver_port: int | None = None
    nodes: int = 1
    # Dedicated node pools: one more kwok node per name, labelled pool=<name> and tainted
    # pool=<name>:NoSchedule (as sensitivity tiers expect their dedicated nodes).
    pools: tuple[str, ...] = ()
    die_with_parent: bool = False
    # Serve MutatingAdmissionPolicy (beta and off by default in 1.35): feature gate + runtime-config.
    mutating_admission_policy: bool = False
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    etcd_data: str = ""
    started_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        if self.profile not in PROFILES:
            raise ClusterError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # paths and addresses
    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> str:
        return str(self.state_dir / "admin.kubeconfig")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.get('apiserver', 0)}"

    @property
    def _state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    # ------------------------------------------------------------------ public API
    def up(self) -> LocalCluster:
        """Start the profile's components; returns once the API server is ready (and, in
        the full profile, once the kwok nodes are Ready and `default` ServiceAccount exists).
        Retries with new ports if another process grabbed a chosen free port meanwhile."""
        for attempt in range(3):
            try:
                return self._up()
            except ClusterError as exc:
                if self.apiserver_port or "address already in use" not in str(exc) or attempt == 2:
                    raise
                log("a port was taken while starting; retrying with new ports")
        raise AssertionError("unreachable")

    def _up(self) -> LocalCluster:
        t0 = time.monotonic()
        self._clean_stale()
        self.procs = []
        if self.bin_dir is None:
            self.bin_dir = find_bin_dir()
        self.bin_dir = Path(self.bin_dir).resolve()
        needed = ["etcd", "kube-apiserver"]
        if self.profile == "full":
            needed += ["kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"]
        if missing := [b for b in needed if not (self.bin_dir / b).exists()]:
            raise ClusterError(f"{self.bin_dir} lacks {', '.join(missing)}; run hack/build-controlplane")
        if self.apiserver_port and port_in_use(self.apiserver_port):
            raise ClusterError(
                f"port {self.apiserver_port} on 127.0.0.1 is already in use; pick another one or find "
                f"its owner with: ss -ltnp 'sport = :{self.apiserver_port}'"
            )

        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir()
        write_pki(self.pki)
        self.ports = {"apiserver": self.apiserver_port or free_port()}
        for name in ("etcd", "etcd-peer", "controller-manager", "scheduler"):
            while (port := free_port()) in self.ports.values():
                pass
            self.ports[name] = port
        self._write_kubeconfig()
        shm = Path("/dev/shm")
        self.etcd_data = tempfile.mkdtemp(
            prefix="kube-baseline-etcd-", dir=shm if os.access(shm, os.W_OK) else self.state_dir
        )
        self._save()
        try:
            self._start_etcd()
            self._start_apiserver()
            if self.profile == "full":
                self._start_controllers()
                self._start_kwok()
        except BaseException as exc:
            try:
                self.down()  # keeps the logs the error message points to
            except ClusterError as stop_error:
                raise ClusterError(f"{exc}\nCleaning up failed too: {stop_error}") from exc
            raise
        self.started_seconds = round(time.monotonic() - t0, 1)
        self._save()
        return self

    def down(self) -> None:
        """Stop every component (by PID) and remove the etcd data and cluster state.
        Logs stay in ``state_dir/logs`` until the next ``up``. Safe to call twice."""
        if not self.procs and self._state_path.exists():
            self._load()
        self._stop_processes()  # raises, keeping the state file, if a process survives
        self._remove_runtime()
        for p in (self._state_path, Path(self.kubeconfig)):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.pki, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        """{'state': 'running'|'stopped'|'stale', 'profile', 'server', 'kubeconfig', ...}."""
        if not self.procs:
            if not self._state_path.exists():
                return {"state": "stopped", "state_dir": str(self.state_dir)}
            self._load()
        alive = {p.name: self._alive(p) for p in self.procs}
        ready = all(alive.values()) and self._ready()
        return {
            "state": "running" if ready else "stale",
            "profile": self.profile,
            "server": self.server,
            "kubeconfig": self.kubeconfig,
            "bin_dir": str(self.bin_dir),
            "components": {p.name: {"pid": p.pid, "alive": alive[p.name], "log": p.log} for p in self.procs},
            "etcd_data": self.etcd_data,
            "started_seconds": self.started_seconds,
        }

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """A JSON request to the API server as admin (stdlib only)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as resp:
            raw = resp.read()
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode()

    # ------------------------------------------------------------------ state
    def _save(self) -> None:
        state = {
            "profile": self.profile,
            "bin_dir": str(self.bin_dir),
            "ports": self.ports,
            "etcd_data": self.etcd_data,
            "procs": [vars(p) for p in self.procs],
            "started_seconds": self.started_seconds,
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    def _load(self) -> None:
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError) as exc:
            raise ClusterError(
                f"cannot read {self._state_path} ({exc}); stop any leftover processes and remove "
                f"{self.state_dir}"
            ) from exc
        self.profile = state["profile"]
        self.bin_dir = Path(state["bin_dir"])
        self.ports = state["ports"]
        self.etcd_data = state["etcd_data"]
        self.procs = [Proc(**p) for p in state["procs"]]
        self.started_seconds = state.get("started_seconds", 0.0)

    def _clean_stale(self) -> None:
        if not self._state_path.exists():
            return
        other = LocalCluster(self.state_dir)
        st = other.status()
        if st["state"] == "running":
            raise ClusterError(
                f"the {st['profile']} cluster already runs from {self.state_dir} ({st['server']}); "
                "use it, or stop it first with: hack/cluster down"
                + (f" (KB_CLUSTER_DIR={self.state_dir})" if self.state_dir != DEFAULT_STATE_DIR else "")
            )
        log(f"cleaning up a stale cluster from an earlier run in {self.state_dir}")
        other.down()

    def _remove_runtime(self) -> None:
        if self.etcd_data:
            shutil.rmtree(self.etcd_data, ignore_errors=True)

    # ------------------------------------------------------------------ processes
    def _alive(self, p: Proc) -> bool:
        """Our own child: ask the kernel through its Popen (exact, and its PID cannot be reused
        before we reap it). A process from a state file: PID and start time (``_running``)."""
        child = self._children.get(p.pid)
        if child is not None:
            return child.poll() is None
        return _running(p)

    def _spawn(self, name: str, args: list[str]) -> Proc:
        assert self.bin_dir is not None
        exe = str(self.bin_dir / name)
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as out:
            child = subprocess.Popen(
                [exe, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # Ctrl-C in the calling shell does not reach it
                preexec_fn=_pdeathsig_hook() if self.die_with_parent else None,
            )
        self._children[child.pid] = child
        # Our unreaped child: its /proc entry exists until we wait for it.
        proc = Proc(name, child.pid, exe, str(log_path), _start_time(child.pid) or 0, time.monotonic())
        self.procs.append(proc)
        self._save()
        return proc

    def _stop_processes(self) -> None:
        """SIGTERM in reverse start order, each waited for (the API server shuts down
        cleanly only while etcd still runs); SIGKILL after 15 s. Every process we started or
        that the state file names (and that still is that process) is signalled; nothing is
        signalled by name. Raises ClusterError, keeping the list, if any survives."""
        procs = list(self.procs)
        recorded = {p.pid for p in procs}
        # A child spawned but not recorded yet (interrupted in between) is stopped too.
        procs += [Proc("unrecorded child", pid, "", "") for pid in self._children if pid not in recorded]
        left: list[Proc] = []
        for p in reversed(procs):
            if not self._alive(p):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            if not self._wait_gone(p, 15):
                log(f"{p.name} (pid {p.pid}) ignored SIGTERM for 15s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                if not self._wait_gone(p, 10):
                    left.append(p)
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        if left:
            self.procs = [p for p in self.procs if p in left]
            raise ClusterError(
                "could not stop "
                + ", ".join(f"{p.name} (pid {p.pid})" for p in left)
                + f"; {self._state_path} keeps them: run `hack/cluster down` again"
            )
        self.procs = []

    def _wait_gone(self, p: Proc, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(p):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _wait(self, proc: Proc, what: str, check: Any, timeout: float) -> None:
        """Poll ``check`` until it returns true. A failure names the check, the component,
        how it ended (exit code or signal) or the check's last error, and the log's tail."""
        check_name = f"{proc.name} {what}"
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if not self._alive(proc):
                self._fail(proc, check_name, f"{proc.name} {self._how_it_ended(proc)}", last_error)
            try:
                if check():
                    return
                last_error = "the check returned false"
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                self._fail(proc, check_name, f"not done within {timeout:.0f}s", last_error)
            time.sleep(0.1)

    def _how_it_ended(self, proc: Proc) -> str:
        child = self._children.get(proc.pid)
        code = child.poll() if child is not None else None
        when = f" {time.monotonic() - proc.started:.1f}s after it started" if proc.started else ""
        if code is None:
            return f"is gone{when}"
        if code < 0:
            return f"was killed by signal {-code} ({signal.Signals(-code).name}){when}"
        return f"exited with code {code}{when}"

    def _fail(self, proc: Proc, check: str, why: str, last_error: str) -> None:
        text = tail(Path(proc.log)) or "(empty)"
        hint = ""
        if "address already in use" in text:
            hint = "\nA port it needs is taken (another cluster? a race for a free port?); try again."
        raise ClusterError(
            f"startup check failed: {check}: {why} (last check result: {last_error}). "
            f"Last lines of {proc.log}:\n{text}{hint}\nFull log: {proc.log}"
        )

    # ------------------------------------------------------------------ components
    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        proc = self._spawn(
            "etcd",
            [
                "--name=kube-baseline",
                f"--data-dir={self.etcd_data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kube-baseline={peer}",
                "--watch-progress-notify-interval=5s",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(client + "/health", timeout=2) as r:
                return bool(json.load(r).get("health") == "true")

        self._wait(proc, "healthy", healthy, 30)

    def _start_apiserver(self) -> None:
        pki = self.pki
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=true",
        ]
        if self.mutating_admission_policy:
            args.append("--feature-gates=MutatingAdmissionPolicy=true")
            args.append("--runtime-config=admissionregistration.k8s.io/v1beta1=true")
        if self.profile == "api":
            # No controller-manager creates `default` ServiceAccounts, so pods would be refused.
            args.append("--disable-admission-plugins=ServiceAccount")
        proc = self._spawn("kube-apiserver", args)
        self._wait(proc, "ready (/readyz)", lambda: self.request("GET", "/readyz", timeout=2) == "ok", 90)

    def _start_controllers(self) -> None:
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        kcm = self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={self.ports['controller-manager']}",
                f"--cert-dir={self.state_dir / 'pki' / 'kcm'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        sched = self._spawn(
            "kube-scheduler",
            [
                *common,
                f"--secure-port={self.ports['scheduler']}",
                f"--cert-dir={self.state_dir / 'pki' / 'scheduler'}",
            ],
        )
        for proc, port in ((kcm, self.ports["controller-manager"]), (sched, self.ports["scheduler"])):
            self._wait(proc, "healthy (/healthz)", lambda port=port: self._healthz(port), 60)

    def _healthz(self, port: int) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert of kcm / scheduler
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2) as r:
            return bool(r.read() == b"ok")

    def _start_kwok(self) -> None:
        assert self.bin_dir is not None
        key, value = KWOK_NODE_ANNOTATION
        proc = self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.bin_dir / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={key}={value}",
                "--cidr=10.0.1.0/24",
                "--node-ip=10.0.0.2",
                "--node-lease-duration-seconds=40",
            ],
        )
        names = [f"kwok-node-{i}" for i in range(self.nodes)]
        for name in names:
            self.request("POST", "/api/v1/nodes", _kwok_node(name))
        for pool in self.pools:
            names.append(f"kwok-{pool}-0")
            self.request("POST", "/api/v1/nodes", kwok_pool_node(names[-1], pool))

        def nodes_ready() -> bool:
            for name in names:
                node = self.request("GET", f"/api/v1/nodes/{name}", timeout=2)
                conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                if conds.get("Ready") != "True":
                    return False
            return True

        self._wait(proc, "managing Ready nodes", nodes_ready, 60)
        kcm = next(p for p in self.procs if p.name == "kube-controller-manager")
        self._wait(
            kcm,
            "creating the default ServiceAccount",
            lambda: self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default", timeout=2),
            60,
        )

    # ------------------------------------------------------------------ helpers
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _ready(self) -> bool:
        try:
            return bool(self.request("GET", "/readyz", timeout=3) == "ok")
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _write_kubeconfig(self) -> None:
        user = {
            "client-certificate-data": b64encode((self.pki / "admin.crt").read_bytes()).decode(),
            "client-key-data": b64encode((self.pki / "admin.key").read_bytes()).decode(),
        }
        path = Path(self.kubeconfig)
        path.write_text(kubeconfig_text(self.server, (self.pki / "ca.crt").read_bytes(), user))
        path.chmod(0o600)


def remove_orphans(parent: Path, prefix: str, min_age: float = 600) -> list[Path]:
    """Remove ``parent/<prefix>*/cluster`` state dirs (and their etcd data) whose processes
    are all gone: what a SIGKILLed test session leaves behind. Returns the removed dirs."""
    removed = []
    for state in Path(parent).glob(f"{prefix}*/cluster/{STATE_FILE}"):
        try:
            info = json.loads(state.read_text())
            age = time.time() - state.stat().st_mtime
        except (OSError, ValueError):
            continue
        procs = [Proc(**p) for p in info.get("procs", [])]
        if any(_running(p) for p in procs):
            continue
        if not procs and age < min_age:  # maybe still starting
            continue
        if info.get("etcd_data"):
            shutil.rmtree(info["etcd_data"], ignore_errors=True)
        shutil.rmtree(state.parent.parent, ignore_errors=True)
        removed.append(state.parent.parent)
    return removed


def kwok_pool_node(name: str, pool: str, *, tainted: bool = True) -> dict[str, Any]:
    """A kwok node of a node pool: labelled pool=<pool> and (dedicated) tainted pool=<pool>:NoSchedule."""
    node = _kwok_node(name)
    node["metadata"]["labels"]["pool"] = pool
    if tainted:
        node["spec"] = {"taints": [{"key": "pool", "value": pool, "effect": "NoSchedule"}]}
    return node


def _kwok_node(name: str) -> dict[str, Any]:
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
    }


# --- CLI ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: %(default)s (KB_CLUSTER_DIR)"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="build if needed, then start the control plane")
    p_up.add_argument("--profile", choices=PROFILES, default="api")
    p_up.add_argument("--port", type=int, help="kube-apiserver port (default: a free one)")
    p_up.add_argument("--nodes", type=int, default=1, help="kwok nodes in the full profile")
    p_up.add_argument(
        "--pool",
        action="append",
        default=[],
        help="a dedicated kwok node labelled pool=POOL, tainted pool=POOL:NoSchedule (repeatable)",
    )
    p_up.add_argument(
        "--mutating-admission-policy",
        action="store_true",
        help="serve MutatingAdmissionPolicy (admissionregistration.k8s.io/v1beta1, off by default in 1.35)",
    )
    sub.add_parser("down", help="stop every component and remove the cluster state")
    sub.add_parser("status", help="show the components; exit 0 only if the cluster runs")
    sub.add_parser("env", help="print export lines for KUBECONFIG and PATH (eval them)")
    args = parser.parse_args(argv)

    cluster = LocalCluster(args.state_dir)
    try:
        if args.cmd == "up":
            build = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
            if build.returncode != 0:
                return build.returncode
            cluster = LocalCluster(
                args.state_dir,
                args.profile,
                bin_dir=Path(build.stdout.strip().splitlines()[-1]),
                apiserver_port=args.port,
                nodes=args.nodes,
                pools=tuple(args.pool),
                mutating_admission_policy=args.mutating_admission_policy,
            )
            log(f"starting the {args.profile} profile in {args.state_dir}")
            # SIGTERM/SIGHUP unwind like Ctrl-C, so a failed start stops what it started.
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
            cluster.up()
            log(f"{args.profile} cluster ready in {cluster.started_seconds}s at {cluster.server}")
            print(f"export KUBECONFIG={cluster.kubeconfig}\nexport PATH={cluster.bin_dir}:$PATH")
            log('use it with: eval "$(hack/cluster env)"; stop it with: hack/cluster down')
        elif args.cmd == "down":
            st = cluster.status()
            cluster.down()
            log("stopped" if st["state"] != "stopped" else "no cluster was running")
        elif args.cmd == "status":
            st = cluster.status()
            print(json.dumps(st, indent=2))
            return 0 if st["state"] == "running" else 1
        elif args.cmd == "env":
            st = cluster.status()
            if st["state"] != "running":
                log(f"warning: the cluster is {st['state']}; start it with: hack/cluster up")
            bin_dir = st.get("bin_dir") or str(find_bin_dir())
            print(f"export KUBECONFIG={cluster.kubeconfig}\nexport PATH={bin_dir}:$PATH")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
