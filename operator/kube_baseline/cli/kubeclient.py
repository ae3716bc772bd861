"""A small synchronous, read-mostly Kubernetes client for the CLI's `--cluster` preview.

Standard library only (urllib, ssl), so the CLI needs no Kubernetes client library and never
imports the operator's (controller.cluster, aiohttp). It reads a kubeconfig (KUBECONFIG, a
colon-separated list merged first-wins as kubectl does, or ~/.kube/config; --kubeconfig,
--context) with client certificates, bearer tokens (token, tokenFile), basic auth, exec
credential plugins, CA data or files, and insecure-skip-tls-verify.

It only ever sends GET (list), and PATCH/POST with `dryRun=All`, which the API server runs
through validation and admission without persisting anything. This is the one CLI module that
talks HTTP (an import-linter contract).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "kube-baseline"
PAGE = 500
TIMEOUT = 30.0


class ClusterError(Exception):
    """The cluster could not be reached or refused a request; the message says which and why."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Connection:
    server: str
    context: str
    ssl: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict)


def _kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _merged(paths: list[Path]) -> tuple[dict[str, Any], Path]:
    """The kubeconfigs merged first-wins (kubectl's rule), and the directory relative paths use."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    base = paths[0].parent if paths else Path(".")
    found = False
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ClusterError(f"kubeconfig {path}: cannot read: {err.strerror or err}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ClusterError(f"kubeconfig {path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ClusterError(f"kubeconfig {path}: not a kubeconfig")
        if not found:
            base = path.parent
        found = True
        for section, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in data.get(section) or ():
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    merged[section].setdefault(entry["name"], entry.get(key) or {})
        if not merged["current-context"] and data.get("current-context"):
            merged["current-context"] = str(data["current-context"])
    if not found:
        raise ClusterError(f"no kubeconfig found (looked at {', '.join(str(p) for p in paths)})")
    return merged, base


def _file_or_data(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(str(data))
    path = entry.get(key)
    if path:
        full = Path(str(path))
        full = full if full.is_absolute() else base / full
        try:
            return full.read_bytes()
        except OSError as err:
            raise ClusterError(f"kubeconfig: {key} {full}: {err.strerror or err}") from None
    return None


def _exec_credential(spec: Mapping[str, Any]) -> dict[str, Any]:
    command = [str(spec.get("command", "")), *(str(a) for a in spec.get("args") or ())]
    env = dict(os.environ)
    for item in spec.get("env") or ():
        if isinstance(item, dict):
            env[str(item.get("name"))] = str(item.get("value", ""))
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    except OSError as err:
        raise ClusterError(f"kubeconfig exec plugin {command[0]!r}: {err.strerror or err}") from None
    if done.returncode != 0:
        raise ClusterError(f"kubeconfig exec plugin {command[0]!r} failed: {done.stderr.strip()[:300]}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except (ValueError, AttributeError):
        raise ClusterError(f"kubeconfig exec plugin {command[0]!r}: no ExecCredential on stdout") from None
    return dict(status)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """The server, TLS settings and credentials of a kubeconfig context."""
    config, base = _merged(_kubeconfig_paths(kubeconfig))
    name = context or config["current-context"]
    if not name:
        raise ClusterError("kubeconfig: no current-context (use --context)")
    ctx = config["contexts"].get(name)
    if ctx is None:
        raise ClusterError(f"kubeconfig: no context {name!r}")
    cluster = config["clusters"].get(ctx.get("cluster"))
    if not cluster or not cluster.get("server"):
        raise ClusterError(f"kubeconfig: context {name!r} names no cluster with a server")
    user: Mapping[str, Any] = config["users"].get(ctx.get("user"), {})
    server = str(cluster["server"]).rstrip("/")
    tls: ssl.SSLContext | None = None
    headers: dict[str, str] = {"Accept": "application/json", "User-Agent": "kube-baseline-cli"}
    if user.get("exec"):
        user = {**user, **_exec_credential(user["exec"])}
        for key, ours in (
            ("clientCertificateData", "client-certificate-data"),
            ("clientKeyData", "client-key-data"),
        ):
            if user.get(key):
                user = {**user, ours: base64.b64encode(str(user[key]).encode()).decode()}
    if server.startswith("https://"):
        tls = ssl.create_default_context()
        ca = _file_or_data(cluster, "certificate-authority", base)
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        elif ca:
            tls.load_verify_locations(cadata=ca.decode())
        cert = _file_or_data(user, "client-certificate", base)
        key_pem = _file_or_data(user, "client-key", base)
        if cert and key_pem:
            _load_client_cert(tls, cert, key_pem)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = Path(str(user["tokenFile"])).read_text().strip()
        except OSError as err:
            raise ClusterError(f"kubeconfig: tokenFile: {err.strerror or err}") from None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username"):
        basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    return Connection(server, name, tls, headers)


def _load_client_cert(tls: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl wants files: a private temporary directory, removed as soon as the chain is loaded.
    with tempfile.TemporaryDirectory(prefix="kube-baseline-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        try:
            tls.load_cert_chain(str(cert_path), str(key_path))
        except ssl.SSLError as err:
            raise ClusterError(f"kubeconfig: client certificate or key: {err}") from None


def _message(status: int, body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    return body.decode("utf-8", "replace").strip()[:300] or f"HTTP {status}"


class Client:
    """GET, LIST (paginated) and dry-run writes against one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "",
    ) -> dict[str, Any]:
        if method != "GET" and (query or {}).get("dryRun") != "All":
            raise ValueError("the CLI never writes: only GET and dryRun=All requests are sent")
        url = self.conn.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.conn.headers)
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT, context=self.conn.ssl) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise ClusterError(_message(err.code, err.read()), err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClusterError(f"cannot reach {self.conn.server}: {reason}") from None
        try:
            result = json.loads(payload)
        except ValueError:
            raise ClusterError(f"{method} {path}: the server did not answer JSON") from None
        return result if isinstance(result, dict) else {}

    def list(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a collection, page by page; items get apiVersion and kind from the list."""
        token = ""
        while True:
            query = {"limit": str(PAGE)}
            if token:
                query["continue"] = token
            page = self.request("GET", path, query)
            api_version = str(page.get("apiVersion", ""))
            kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or ():
                if isinstance(item, dict):
                    yield {"apiVersion": api_version, "kind": kind, **item}
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def dry_run_patch(self, path: str, patch: Mapping[str, Any], content_type: str) -> dict[str, Any]:
        query = {"dryRun": "All", "fieldManager": FIELD_MANAGER}
        return self.request("PATCH", path, query, patch, content_type)

    def dry_run_create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        query = {"dryRun": "All", "fieldManager": FIELD_MANAGER}
        return self.request("POST", path, query, body, "application/json")
