"""Operator benchmark: bring N existing Deployments into compliance, against a bare client.

One run on one machine (see bench/README.md):

1. Start the local control plane (api profile: etcd + kube-apiserver, API Priority and
   Fairness on). Install the CRD and the operator's RBAC; both the operator and the bare
   reference authenticate with ServiceAccount tokens, so they land in APF's workload-low level.
2. Bare reference: create N non-compliant Deployments over 100 namespaces; a minimal aiohttp
   client LISTs them (pages of 500) and sends one strategic-merge PATCH each (the patch the
   engine plans), 64 in flight. Timed from the first LIST to the last PATCH response.
3. Delete and recreate the same Deployments. Start `kube-baseline run` and wait until it is
   idle (its index is full), then apply a remediating baseline and time until every Deployment
   is fixed (seen on a watch) and the baseline reports Compliant=True.
4. Writes by verb/resource from the API server's own `apiserver_request_total`, during
   convergence and during an idle minute after it. Operator RSS and CPU from /proc.
5. Latency: create one non-compliant Deployment at a time in a remediating namespace, 200
   times; time from the create request to the watch event that shows it fixed.

Prints a table and writes bench/out/operator-<N>.json; `--results` appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import functools
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hack.localcluster import LocalCluster
from kube_baseline.engine import checks, remediation, workloads
from kube_baseline.engine.models import parse_spec

ROOT = Path(__file__).resolve().parent.parent

NAMESPACES = 100
IN_FLIGHT = 64
BENCH_LABEL = "kube-baseline.io/bench"
BASELINE_NAME = "bench"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
BASELINE_SPEC: dict[str, Any] = {
    "mode": "remediate",
    "profile": "restricted",
    "namespaces": {"selector": {"matchLabels": {BENCH_LABEL: "1"}}},
    "remediation": {
        "namespaceSelector": {"matchLabels": {"env": "dev"}},
        "riskClasses": ["safe", "guarded"],
        # The rollout guard (on by default in a baseline) follows each fix's rollout, at most
        # maxInFlight (default 10) at a time; this cluster has no controllers, so no rollout ever
        # progresses and the waves would measure the poll interval. Undo off and no wave limit
        # here, so the figures compare with earlier ones; --guard keeps the defaults.
        "rollout": {"guard": False, "maxInFlight": "100%"},
    },
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- fixtures


def deployment(namespace: str, name: str) -> dict[str, Any]:
    """A realistic (~3.5 KB) Deployment that fails the restricted profile but is fully fixable."""
    env = [{"name": f"SETTING_{i}", "value": f"value-{i}-" + "x" * 40} for i in range(24)]
    labels = {"app": name, "tier": "backend", BENCH_LABEL: "1"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"bench.kube-baseline.io/purpose": "convergence benchmark fixture"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/app:1.2.3",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                        },
                        {
                            "name": "sidecar",
                            "image": "registry.example/proxy:4.5.6",
                            "args": ["--listen=:9090", "--upstream=127.0.0.1:8080"],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        },
                    ]
                },
            },
        },
    }


def names(n: int) -> list[tuple[str, str]]:
    return [(f"bench-{i % NAMESPACES:03d}", f"web-{i:05d}") for i in range(n)]


def is_fixed(obj: dict[str, Any]) -> bool:
    pod = obj["spec"]["template"]["spec"]
    sc = pod.get("securityContext") or {}
    return "seccompProfile" in sc and all(
        (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is False for c in pod["containers"]
    )


@functools.cache
def _bench_policy() -> tuple[Any, Any]:
    spec = parse_spec(BASELINE_SPEC)
    return spec, checks.policy_from_spec(spec)


def planned_patch(obj: dict[str, Any]) -> dict[str, Any]:
    """The patch the engine plans for obj (the baseline is parsed once, like the operator does)."""
    spec, policy = _bench_policy()
    wl = workloads.workload_of(obj)
    assert wl is not None
    found = checks.audit(wl, policy).findings
    return remediation.plan(wl, found, spec.remediation, spec.labels).patch


# ----------------------------------------------------------------------------- API access


class Api:
    """A bare aiohttp client from a kubeconfig (client certificate or bearer token)."""

    def __init__(self, kubeconfig: str) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        ctx = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        self.headers = {"Content-Type": "application/json"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        else:
            self._tmp = tempfile.TemporaryDirectory()
            cert, key = Path(self._tmp.name, "c.pem"), Path(self._tmp.name, "k.pem")
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(str(cert), str(key))
        self.ssl = ctx
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession(
            self.server,
            headers=self.headers,
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=IN_FLIGHT),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json", accept: str = ""
    ) -> Any:
        assert self.session is not None
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": ctype} | ({"Accept": accept} if accept else {})
        async with self.session.request(method, path, data=data, headers=headers) as r:
            text = await r.text()
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {r.status}: {text[:300]}")
            return json.loads(text) if text.startswith("{") else text

    async def watch(self, path: str, rv: str, accept: str = "") -> AsyncIterator[dict[str, Any]]:
        assert self.session is not None
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
        async with self.session.get(url, headers={"Accept": accept} if accept else {}) as r:
            async for line in r.content:
                if line.strip():
                    yield json.loads(line)


async def bounded(coros: list[Any], limit: int = IN_FLIGHT) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def create_fixtures(admin: Api, n: int) -> None:
    await bounded(
        [
            admin.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment(ns, name))
            for ns, name in names(n)
        ]
    )


async def delete_fixtures(admin: Api) -> None:
    await bounded(
        [
            admin.call(
                "DELETE",
                f"/apis/apps/v1/namespaces/bench-{i:03d}/deployments?labelSelector={BENCH_LABEL}%3D1",
            )
            for i in range(NAMESPACES)
        ]
    )


# ----------------------------------------------------------------------------- measurements


def metrics(cluster: LocalCluster) -> Counter[tuple[str, str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource, code)."""
    text = cluster.request("GET", "/metrics", timeout=30)
    out: Counter[tuple[str, str, str, str]] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        key = (
            labels.get("verb", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("code", ""),
        )
        out[key] += int(float(line.rsplit(" ", 1)[1]))
    return out


def writes(before: Counter[Any], after: Counter[Any]) -> dict[str, int]:
    """Mutating requests between two snapshots, by 'VERB resource[/subresource] code'."""
    out: dict[str, int] = {}
    for key in set(after) | set(before):
        verb, res, sub, code = key
        if verb in {"GET", "LIST", "WATCH", "CONNECT"}:
            continue
        delta = after[key] - before[key]
        if delta:
            out[f"{verb} {res}{'/' + sub if sub else ''} {code}"] = delta
    return dict(sorted(out.items()))


def events_posted(before: Counter[Any], after: Counter[Any]) -> int:
    return sum(after[k] - before[k] for k in after if k[0] == "POST" and k[1] == "events" and k[3] == "201")


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def wait_idle(pid: int, quiet_cpu: float = 0.05, window: float = 1.0, timeout: float = 600) -> float:
    """Wait until a process uses < quiet_cpu CPU-seconds per window; returns seconds waited."""
    t0 = time.monotonic()
    _, last = proc_stats(pid)
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        _, cpu = proc_stats(pid)
        if cpu - last < quiet_cpu:
            return time.monotonic() - t0
        last = cpu
    raise TimeoutError("the operator never went idle")


# ----------------------------------------------------------------------------- phases


async def bare_reference(sa: Api, n: int) -> dict[str, Any]:
    t0 = time.monotonic()
    items: list[dict[str, Any]] = []
    cont = ""
    while True:
        page = await sa.call(
            "GET", f"/apis/apps/v1/deployments?labelSelector={BENCH_LABEL}%3D1&limit=500&continue={cont}"
        )
        # Items of a LIST carry no kind; the engine needs it.
        items += [{"apiVersion": "apps/v1", "kind": "Deployment", **o} for o in page["items"]]
        cont = page["metadata"].get("continue", "")
        if not cont:
            break
    listed = time.monotonic() - t0
    await bounded(
        [
            sa.call(
                "PATCH",
                f"/apis/apps/v1/namespaces/{o['metadata']['namespace']}/deployments/{o['metadata']['name']}"
                "?fieldManager=bench-bare",
                planned_patch(o),
                "application/strategic-merge-patch+json",
            )
            for o in items
        ]
    )
    total = time.monotonic() - t0
    assert len(items) == n, f"listed {len(items)} of {n}"
    return {"seconds": total, "list_seconds": listed}


async def converge(
    admin: Api, n: int, timeout: float, reports: bool = False, guard: bool = False
) -> dict[str, float]:
    """Apply the baseline, then wait for every Deployment fixed and Compliant=True."""
    page = await admin.call("GET", f"/apis/apps/v1/deployments?labelSelector={BENCH_LABEL}%3D1&limit=1")
    rv = page["metadata"]["resourceVersion"]
    fixed: set[str] = set()
    done: dict[str, float] = {}
    t0 = time.monotonic()

    # Watched as metadata only: the operator's one patch changes the pod template, so generation
    # 2 means patched, and the driver (sharing two cores with the API server) keeps up with the
    # stream. Whether every Deployment is really fixed is checked on the whole objects after.
    def seen(obj: dict[str, Any]) -> None:
        if obj["metadata"].get("generation", 1) >= 2:
            fixed.add(obj["metadata"]["namespace"] + "/" + obj["metadata"]["name"])
            if len(fixed) == n and "fixed" not in done:
                done["fixed"] = time.monotonic() - t0

    async def watch_deployments() -> None:
        path = f"/apis/apps/v1/deployments?labelSelector={BENCH_LABEL}%3D1"
        watch_rv = rv
        while True:
            async for ev in admin.watch(path, watch_rv, accept=METADATA_ONLY):
                if ev["type"] == "ERROR":
                    break
                watch_rv = ev["object"]["metadata"]["resourceVersion"]
                if ev["type"] in ("ADDED", "MODIFIED"):
                    seen(ev["object"])
                if "fixed" in done:
                    return
            # The API server ends a watch whose reader falls behind (this driver shares two cores
            # with it): list what was missed and watch on from there.
            log(f"deployment watch ended after {len(fixed)} fixed; listing and watching again")
            listed = await admin.call("GET", path, accept=METADATA_ONLY)
            for obj in listed["items"]:
                seen(obj)
            if "fixed" in done:
                return
            watch_rv = listed["metadata"]["resourceVersion"]

    def compliant(baseline: dict[str, Any]) -> bool:
        status = baseline.get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions", [])}
        ok = conds.get("Compliant", {}).get("status") == "True"
        if ok and status.get("summary", {}).get("workloads", 0) >= n:
            done["compliant"] = time.monotonic() - t0
        return "compliant" in done

    async def watch_compliant() -> None:
        path = "/apis/kube-baseline.io/v1alpha1/securitybaselines"
        listed = await admin.call("GET", path)
        if any(compliant(b) for b in listed["items"]):
            return
        async for ev in admin.watch(path, listed["metadata"]["resourceVersion"]):
            if compliant(ev.get("object") or {}):
                return

    spec: dict[str, Any] = json.loads(json.dumps(BASELINE_SPEC))
    if reports:
        spec["reports"] = {"enabled": True}
    if guard:
        del spec["remediation"]["rollout"]  # the default: guard on
    body = {
        "apiVersion": "kube-baseline.io/v1alpha1",
        "kind": "SecurityBaseline",
        "metadata": {"name": BASELINE_NAME},
        "spec": spec,
    }
    await admin.call("POST", "/apis/kube-baseline.io/v1alpha1/securitybaselines", body)
    await asyncio.wait_for(asyncio.gather(watch_deployments(), watch_compliant()), timeout)
    return done


async def check_all_fixed(admin: Api, n: int) -> None:
    """The convergence watch saw metadata only: check the whole objects once it is over."""
    items = (await admin.call("GET", f"/apis/apps/v1/deployments?labelSelector={BENCH_LABEL}%3D1"))["items"]
    not_fixed = [d["metadata"]["name"] for d in items if not is_fixed(d)]
    if len(items) != n or not_fixed:
        raise RuntimeError(f"{len(items)} Deployments, not fixed: {not_fixed[:10]}")


async def latency(admin: Api, samples: int) -> list[float]:
    ns = "bench-000"
    page = await admin.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments?limit=1")
    rv = page["metadata"]["resourceVersion"]
    waiters: dict[str, asyncio.Future[float]] = {}

    async def watch() -> None:
        async for ev in admin.watch(f"/apis/apps/v1/namespaces/{ns}/deployments?labelSelector=lat%3D1", rv):
            obj = ev["object"]
            fut = waiters.get(obj["metadata"]["name"])
            if fut and not fut.done() and is_fixed(obj):
                fut.set_result(time.monotonic())

    task = asyncio.create_task(watch())
    out = []
    for i in range(samples):
        name = f"lat-{i:04d}"
        body = deployment(ns, name)
        body["metadata"]["labels"]["lat"] = "1"
        waiters[name] = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        await admin.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body)
        out.append(await asyncio.wait_for(waiters[name], 30) - t0)
    task.cancel()
    return out


def setup_cluster(cluster: LocalCluster, reports: bool = False) -> tuple[str, str]:
    """CRD, the operator's RBAC, a bare-client ServiceAccount; returns their kubeconfigs."""
    kubectl = [str(Path(cluster.bin_dir or "") / "kubectl"), "--kubeconfig", cluster.kubeconfig]
    for f in (
        "crds/securitybaselines.yaml",
        "manifests/namespace.yaml",
        "manifests/serviceaccount.yaml",
        "manifests/rbac.yaml",
        "bench/bare-rbac.yaml",
        *(["manifests/optional/policyreport-crd.yaml"] if reports else []),
    ):
        subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", str(ROOT / f)], check=True, capture_output=True
        )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "crd/securitybaselines.kube-baseline.io"],
        check=True,
        capture_output=True,
    )
    ns_docs = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": f"bench-{i:03d}", "labels": {BENCH_LABEL: "1", "env": "dev"}},
        }
        for i in range(NAMESPACES)
    ]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": ns_docs}),
        text=True,
        check=True,
        capture_output=True,
    )
    return tuple(  # type: ignore[return-value]
        sa_kubeconfig(cluster, kubectl, ns, sa)
        for ns, sa in (("kube-baseline", "kube-baseline"), ("kube-baseline", "bench-bare"))
    )


def sa_kubeconfig(cluster: LocalCluster, kubectl: list[str], ns: str, sa: str) -> str:
    token = subprocess.run(
        [*kubectl, "-n", ns, "create", "token", sa, "--duration=4h"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    cfg = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cfg["users"] = [{"name": sa, "user": {"token": token}}]
    cfg["contexts"][0]["context"]["user"] = sa
    path = Path(cluster.state_dir) / f"{sa}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# The identities both sides run as: ServiceAccount tokens are queued by API Priority and Fairness
# in workload-low like a production operator; the admin client certificate (system:masters) is
# exempt, so that run shows what the operator costs when the API server never holds it back.
MODES = {
    "serviceaccount": "ServiceAccount tokens (APF workload-low)",
    "admin": "admin client certificate (system:masters, APF-exempt)",
}


async def run(args: argparse.Namespace, cluster: LocalCluster) -> dict[str, Any]:
    op_cfg, bare_cfg = setup_cluster(cluster, args.reports)
    kubeconfigs = {"serviceaccount": (op_cfg, bare_cfg), "admin": (cluster.kubeconfig, cluster.kubeconfig)}
    result: dict[str, Any] = {
        "n": args.n,
        "namespaces": NAMESPACES,
        "reports": args.reports,
        "guard": args.guard,
        "modes": {},
    }
    async with Api(cluster.kubeconfig) as admin:
        for i, (mode, (operator_cfg, bare_client_cfg)) in enumerate(kubeconfigs.items()):
            if i:  # the previous mode's baseline and Deployments (latency samples too) go first
                await admin.call(
                    "DELETE", f"/apis/kube-baseline.io/v1alpha1/securitybaselines/{BASELINE_NAME}"
                )
                await delete_fixtures(admin)
            # The idle window and the latency samples once, with the production identity.
            full = mode == "serviceaccount"
            result["modes"][mode] = await run_mode(
                args, cluster, admin, mode, operator_cfg, bare_client_cfg, full
            )
    sa = result["modes"]["serviceaccount"]
    result |= {k: sa.pop(k) for k in ("latency_ms", "operator_startup_seconds")}
    return result


async def run_mode(
    args: argparse.Namespace,
    cluster: LocalCluster,
    admin: Api,
    mode: str,
    operator_cfg: str,
    bare_cfg: str,
    full: bool,
) -> dict[str, Any]:
    """Bare loop, then the operator, both as ``mode``'s identity; with ``full`` also the Events
    drain, the idle window and the latency samples."""
    n = args.n
    result: dict[str, Any] = {"identity": MODES[mode]}
    async with Api(bare_cfg) as bare:
        log(f"[{mode}] creating {n} Deployments for the bare reference")
        await create_fixtures(admin, n)
        m0 = metrics(cluster)
        r = await bare_reference(bare, n)
        m1 = metrics(cluster)
    result["bare"] = {**r, "writes": writes(m0, m1)}
    log(f"[{mode}] bare: {r['seconds']:.2f} s")
    await delete_fixtures(admin)
    await create_fixtures(admin, n)
    log(f"[{mode}] recreated {n} Deployments; starting the operator")
    env = {**os.environ, "KUBECONFIG": operator_cfg}
    out_log = open(Path(args.out) / f"operator-{n}-{mode}.log", "w")  # noqa: SIM115
    # KB_BENCH_OPERATOR replaces the command, e.g. to run it under a profiler.
    command = os.environ.get("KB_BENCH_OPERATOR", args.operator).split()
    op = subprocess.Popen(
        [*command, "run", "--standalone", "--log-format=json"],
        env=env,
        stdout=out_log,
        stderr=subprocess.STDOUT,
    )
    try:
        t_start = time.monotonic()
        time.sleep(1)
        wait_idle(op.pid)
        result["operator_startup_seconds"] = time.monotonic() - t_start
        rss_idle, cpu0 = proc_stats(op.pid)
        m2 = metrics(cluster)
        profiler = None
        if args.profile and full:  # py-spy samples the operator during convergence only
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(op.pid),
                    "--format",
                    "raw",
                    "-r",
                    "250",
                    "-o",
                    args.profile,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        done = await converge(admin, n, timeout=args.timeout, reports=args.reports, guard=args.guard)
        m3 = metrics(cluster)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        rss, cpu1 = proc_stats(op.pid)
        await check_all_fixed(admin, n)
        log(f"[{mode}] operator: fixed in {done['fixed']:.2f} s, Compliant after {done['compliant']:.2f} s")
        if full:
            # Events queue behind the fixes: wait until they are all posted before the idle window.
            t_drain = time.monotonic()
            while events_posted(m2, metrics(cluster)) < n and time.monotonic() - t_drain < 300:
                time.sleep(0.5)
            done["events_posted_after"] = done["fixed"] + time.monotonic() - t_drain
            m3b = metrics(cluster)
            log(f"[{mode}] idle {args.idle} s")
            time.sleep(args.idle)
            m4 = metrics(cluster)
            lat = sorted(await latency(admin, args.samples))
            result["latency_ms"] = {
                "samples": len(lat),
                "p50": 1000 * statistics.median(lat),
                "p99": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            }
            rss_after, _ = proc_stats(op.pid)
    finally:
        op.terminate()
        op.wait(30)
        out_log.close()
    result["operator"] = {
        **done,
        "writes": writes(m2, m3),
        "rss_mib_before": rss_idle,
        "rss_mib_after_convergence": rss,
        "cpu_seconds_convergence": cpu1 - cpu0,
    }
    if full:
        result["operator"] |= {
            "writes_until_events_posted": writes(m2, m3b),
            "idle_writes": writes(m3b, m4),
            "rss_mib_after_latency": rss_after,
        }
    conv = max(done["fixed"], done["compliant"])
    result["ratio_operator_over_bare"] = conv / result["bare"]["seconds"]
    result["operator_cpu_ms_per_fix"] = 1000 * (cpu1 - cpu0) / n
    return result


def summary(r: dict[str, Any]) -> str:
    """Both identities side by side: the two ratios and the operator's CPU per fix."""
    head = (
        "| identity (bare loop and operator) | bare loop | operator: all fixed | operator: Compliant "
        "| **ratio operator / bare** | operator CPU per fix | PATCH deployments per workload |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for m in r["modes"].values():
        op = m["operator"]
        patches = op["writes"].get("PATCH deployments 200", 0)
        cells = [
            m["identity"],
            f"{m['bare']['seconds']:.2f} s",
            f"{op['fixed']:.2f} s",
            f"{op['compliant']:.2f} s",
            f"**{m['ratio_operator_over_bare']:.2f}**",
            f"{m['operator_cpu_ms_per_fix']:.2f} ms",
            f"{patches / r['n']:.3f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows)


def markdown(r: dict[str, Any]) -> str:
    """The ServiceAccount run's figures as a Markdown table for bench/RESULTS.md."""
    n, m = r["n"], r["modes"]["serviceaccount"]
    op, bare = m["operator"], m["bare"]
    patches = op["writes_until_events_posted"].get("PATCH deployments 200", 0)
    events = op["writes_until_events_posted"].get("POST events 201", 0)
    status = op["writes_until_events_posted"].get("PATCH securitybaselines/status 200", 0)
    # Reports (written behind the fixes and the Events) and the guard's writes (rollouts conclude
    # after convergence) are counted until the idle window ends.
    total = Counter(op["writes_until_events_posted"]) + Counter(op["idle_writes"])
    reports = sum(v for k, v in total.items() if k.split(" ")[1] == "policyreports")

    rows = [
        ("Deployments (non-compliant, over 100 namespaces)", f"{n}"),
        ("bare loop: LIST + one PATCH each, 64 in flight", f"{bare['seconds']:.2f} s"),
        ("operator: every Deployment fixed", f"{op['fixed']:.2f} s"),
        ("operator: baseline Compliant=True", f"{op['compliant']:.2f} s"),
        ("**ratio operator / bare**", f"**{m['ratio_operator_over_bare']:.2f}**"),
        ("PATCH deployments per workload", f"{patches / n:.3f}"),
        ("Remediated Events per workload (posted behind the fixes)", f"{events / n:.3f}"),
        ("all Events posted after", f"{op['events_posted_after']:.2f} s"),
        ("baseline status writes", f"{status}"),
        (
            "PolicyReport writes per workload, until the idle window ends "
            f"(reports {'on' if r.get('reports') else 'off'})",
            f"{reports / n:.3f}",
        ),
        (
            f"writes during {r['idle_seconds']:.0f} s idle (all verbs, all clients)",
            json.dumps(op["idle_writes"]),
        ),
        (
            "rollout guard, until the idle window ends: record (ConfigMap) writes, all Events, per workload",
            f"{total['PATCH configmaps 200'] / n:.3f}, {total['POST events 201'] / n:.3f}",
        ),
        ("operator CPU during convergence", f"{op['cpu_seconds_convergence']:.2f} s"),
        ("operator RSS: indexed, before the baseline", f"{op['rss_mib_before']:.0f} MiB"),
        ("operator RSS: after convergence", f"{op['rss_mib_after_convergence']:.0f} MiB"),
        ("operator start-up until idle (initial listing)", f"{r['operator_startup_seconds']:.1f} s"),
        (
            f"create-to-remediation latency, {r['latency_ms']['samples']} samples",
            f"p50 {r['latency_ms']['p50']:.0f} ms, p99 {r['latency_ms']['p99']:.0f} ms",
        ),
    ]
    return "| what | figure |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=1000, help="number of Deployments (default 1000)")
    p.add_argument("--idle", type=float, default=60, help="idle seconds after convergence (default 60)")
    p.add_argument("--samples", type=int, default=200, help="latency samples (default 200)")
    p.add_argument("--timeout", type=float, default=600, help="convergence timeout in seconds")
    p.add_argument("--out", default=str(ROOT / "bench" / "out"))
    p.add_argument(
        "--operator",
        default=str(ROOT / ".venv" / "bin" / "kube-baseline"),
        help="the kube-baseline command to run (make bench: one from a runtime-only venv)",
    )
    p.add_argument(
        "--guard",
        action="store_true",
        help="keep the rollout guard's defaults (undo on, maxInFlight 10); off and unlimited otherwise",
    )
    p.add_argument(
        "--reports", action="store_true", help="the baseline asks for PolicyReports (the CRD is installed)"
    )
    p.add_argument(
        "--profile", metavar="FILE", help="record a py-spy profile (raw stacks) of the convergence"
    )
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="kb-bench-")), "api", die_with_parent=True)
    cluster.up()
    try:
        result = asyncio.run(run(args, cluster))
    finally:
        cluster.down()
    result["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["idle_seconds"] = args.idle
    suffix = ("-reports" if args.reports else "") + ("-guard" if args.guard else "")
    Path(args.out, f"operator-{args.n}{suffix}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(summary(result))
    print(f"\nServiceAccount run in detail:\n{markdown(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
