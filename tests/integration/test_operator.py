"""The operator (KopfRunner) against the real local API server.

Each test uses its own namespaces, carrying a label unique to the test, and baselines that
select only that label, so tests do not see each other's objects.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    SCOPE,
    baseline,
    compliant_deployment,
    create,
    deployment,
    exists,
    get,
    install_crd,
    managers,
    operator,
    spawn_operator,
    unique,
    wait_for,
    writes,
    written,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def crd(kube: Any) -> None:
    install_crd(kube)


def scoped_baseline(name: str, scope: str, **spec: Any) -> dict[str, Any]:
    body = baseline(name, **spec)
    body["metadata"]["labels"] = {SCOPE: scope}
    body["spec"].setdefault("namespaces", {})["selector"] = {"matchLabels": {SCOPE: scope}}
    return body


def label_ns(kube: Any, ns: str, *labels: str) -> None:
    kube.kubectl("label", "namespace", ns, "--overwrite", *labels)


def dep(kube: Any, ns: str, name: str) -> dict[str, Any]:
    return get(kube, "deployment", "-n", ns, name)


def remediated(kube: Any, ns: str, name: str) -> bool:
    return "kube-baseline" in managers(dep(kube, ns, name))


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def events_for(kube: Any, ns: str, name: str) -> list[dict[str, Any]]:
    items = get(kube, "events", "-n", ns)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def status_of(kube: Any, name: str) -> dict[str, Any]:
    return get(kube, "securitybaseline", name).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


REMEDIATE_DEV = {
    "mode": "remediate",
    "profile": "restricted",
    "remediation": {"namespaceSelector": {"matchLabels": {"env": "dev"}}},
}


def test_remediation_one_patch_zero_for_compliant_status_and_event(
    kube: Any, namespace: Any, scope: str
) -> None:
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}", "env=dev")
    create(kube, deployment("plain", ns))
    create(kube, compliant_deployment("good", ns))
    create(
        kube,
        deployment(
            "priv", ns, [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": True}}]
        ),
    )
    create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        },
    )
    before = {n: written(dep(kube, ns, n)) for n in ("plain", "good", "priv")}
    patches_before = writes(kube, "deployments", ("PATCH",))
    pod_writes_before = writes(kube, "pods", ("PATCH", "UPDATE", "APPLY"))
    name = unique("dev")
    create(kube, scoped_baseline(name, scope, **REMEDIATE_DEV))
    with operator(kube):
        wait_for(lambda: remediated(kube, ns, "plain"), what="plain remediated")
        wait_for(
            lambda: status_of(kube, name).get("summary", {}).get("remediated", 0) >= 1, what="status counted"
        )
        time.sleep(2)  # let any extra write show up
        plain = dep(kube, ns, "plain")
        container = pod_spec(plain)["containers"][0]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False}
        assert pod_spec(plain)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # Nothing of Kopf on any workload: no annotations, no finalizers.
        for n in ("plain", "good", "priv"):
            meta = dep(kube, ns, n)["metadata"]
            assert not any("kopf" in k or "kube-baseline" in k for k in meta.get("annotations", {})), meta
            assert not meta.get("finalizers")
        assert written(dep(kube, ns, "good")) == before["good"]  # zero writes
        priv = dep(kube, ns, "priv")
        assert pod_spec(priv)["containers"][0]["securityContext"]["privileged"] is True
        assert "allowPrivilegeEscalation" not in pod_spec(priv)["containers"][0]["securityContext"]
        bare = get(kube, "pod", "-n", ns, "bare")
        assert "kube-baseline" not in managers(bare)
        events = [e for e in events_for(kube, ns, "plain") if e["reason"] == "Remediated"]
        assert (
            len(events) == 1
            and name in events[0]["message"]
            and "allowPrivilegeEscalation" in events[0]["message"]
        )
        status = status_of(kube, name)
        assert condition(status, "Ready")["status"] == "True"
        assert condition(status, "Compliant")["status"] == "False"
        assert condition(status, "Compliant")["observedGeneration"] == 1
        summary = status["summary"]
        # plain, good, priv and the bare Pod; good is the only compliant one.
        assert (summary["namespaces"], summary["workloads"], summary["compliant"]) == (1, 4, 1), summary
        assert summary["drifted"] == 3 and summary["remediated"] >= 1
        drifted = {(d["kind"], d["name"]) for d in status["mostDrifted"]}
        assert ("Pod", "bare") in drifted and ("Deployment", "priv") in drifted
        row = kube.kubectl("get", "sb", name, "--no-headers").stdout.split()
        patched = str(summary["remediated"])
        assert row[1:9] == ["remediate", "restricted", "1", "4", "3", patched, "0", "False"], row
    patches = writes(kube, "deployments", ("PATCH",)) - patches_before
    writes_per_workload = patches / 1
    print(f"\n[writes] deployment PATCHes: {patches} (1 unhardened, 1 compliant, 1 privileged Deployment)")
    # plain gets one patch; priv gets one too when something safe is still fillable (seccomp at pod level).
    fixable_priv = remediated(kube, ns, "priv")
    assert patches == 1 + int(fixable_priv), writes_per_workload
    assert writes(kube, "pods", ("PATCH", "UPDATE", "APPLY")) == pod_writes_before
    # Remediating twice changes nothing: a restart finds nothing to fix.
    before = {n: written(dep(kube, ns, n)) for n in ("plain", "good", "priv")}
    with operator(kube):
        time.sleep(4)
    assert {n: written(dep(kube, ns, n)) for n in ("plain", "good", "priv")} == before
    assert writes(kube, "deployments", ("PATCH",)) - patches_before == patches


def test_workloads_created_and_deleted_while_running_are_counted(
    kube: Any, namespace: Any, scope: str
) -> None:
    """The operator's own list-and-watch of workloads: a workload listed at start, one created
    later and a deletion all reach the baseline's counts."""
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}")
    create(kube, deployment("early", ns))
    name = unique("audit")
    create(kube, scoped_baseline(name, scope, mode="audit", profile="restricted"))

    def summary() -> dict[str, Any]:
        return status_of(kube, name).get("summary") or {}

    with operator(kube):
        wait_for(lambda: summary().get("workloads") == 1, what="the listed workload counted")
        create(kube, compliant_deployment("late", ns))
        wait_for(
            lambda: (summary().get("workloads"), summary().get("compliant")) == (2, 1),
            what="the created workload counted",
        )
        kube.kubectl("delete", "deployment", "-n", ns, "early", "--wait=false")
        wait_for(
            lambda: (summary().get("workloads"), summary().get("drifted")) == (1, 0),
            what="the deleted workload no longer counted",
        )
    assert not remediated(kube, ns, "late")  # audit mode: nothing written


def watch_statuses(kube: Any, scope: str) -> Callable[[], list[dict[str, Any]]]:
    """Start watching the test's baselines (none may exist yet); the function returned stops
    the watch and gives every status seen."""
    exe = kube.bin_dir / "kubectl" if kube.bin_dir else "kubectl"
    selector = f"{SCOPE}={scope}"
    proc = subprocess.Popen(
        [
            str(exe),
            f"--kubeconfig={kube.kubeconfig}",
            "get",
            "securitybaselines",
            "-l",
            selector,
            "-w",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )

    def seen() -> list[dict[str, Any]]:
        proc.terminate()
        text, decoder, found, at = proc.communicate(timeout=10)[0], json.JSONDecoder(), [], 0
        while (at := text.find("{", at)) >= 0:
            try:
                obj, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break  # the last document, cut off when kubectl was terminated mid-write
            found.append(obj.get("status") or {})
        return found

    return seen


def test_no_status_claims_compliance_from_a_partial_picture(kube: Any, namespace: Any, scope: str) -> None:
    """Fixable workloads come first (each compliant once patched), one that remediation must not
    fix comes last: no status written while the new baseline is first applied, nor while a
    restarted operator lists everything again, may say Compliant."""
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}", "env=dev")
    count = 300
    privileged = [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": True}}]
    items = [deployment(f"a{i:03}", ns) for i in range(count)] + [deployment("zz-privileged", ns, privileged)]
    create(kube, {"apiVersion": "v1", "kind": "List", "items": items})
    name = unique("partial")

    def evaluated() -> bool:
        summary = status_of(kube, name).get("summary") or {}
        return (summary.get("workloads"), summary.get("drifted")) == (count + 1, 1)

    with operator(kube):
        seen = watch_statuses(kube, scope)
        time.sleep(1)  # the watch is established
        remediation = {**REMEDIATE_DEV["remediation"], "riskClasses": ["safe", "guarded"]}  # type: ignore[dict-item]
        create(kube, scoped_baseline(name, scope, **{**REMEDIATE_DEV, "remediation": remediation}))
        wait_for(evaluated, timeout=90, what="every workload evaluated")
        first = seen()
    seen = watch_statuses(kube, scope)
    with operator(kube):
        time.sleep(3)
        wait_for(evaluated, timeout=60, what="evaluated again")
    restarted = seen()
    claims = [
        c["message"]
        for status in first + restarted
        for c in status.get("conditions") or ()
        if c["type"] == "Compliant" and c["status"] == "True"
    ]
    assert first and restarted and not claims, claims


def apply_ssa(kube: Any, obj: dict[str, Any], manager: str = "gitops") -> Any:
    return kube.kubectl(
        "apply", "--server-side", f"--field-manager={manager}", "-f", "-", input=json.dumps(obj), check=False
    )


def test_server_side_applied_workload_can_be_reapplied_and_shrunk(
    kube: Any, namespace: Any, scope: str
) -> None:
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}", "env=dev")
    two = deployment(
        "gitops", ns, [{"name": "app", "image": "nginx:1.25"}, {"name": "sidecar", "image": "envoy:v1.30.1"}]
    )
    assert apply_ssa(kube, two).returncode == 0
    create(kube, scoped_baseline(unique("dev"), scope, **REMEDIATE_DEV))
    with operator(kube):
        wait_for(lambda: remediated(kube, ns, "gitops"), what="remediated")
        time.sleep(1)
        # The owner re-applies the same manifest: no conflict, our fields stay.
        res = apply_ssa(kube, two)
        assert res.returncode == 0, res.stderr
        again = dep(kube, ns, "gitops")
        assert all(
            c["securityContext"]["allowPrivilegeEscalation"] is False for c in pod_spec(again)["containers"]
        )
        # The owner removes the sidecar: it must really go.
        one = deployment("gitops", ns, [{"name": "app", "image": "nginx:1.25"}])
        res = apply_ssa(kube, one)
        assert res.returncode == 0, res.stderr
        shrunk = dep(kube, ns, "gitops")
        assert [c["name"] for c in pod_spec(shrunk)["containers"]] == ["app"], pod_spec(shrunk)["containers"]
        time.sleep(2)
        assert (
            pod_spec(dep(kube, ns, "gitops"))["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
            is False
        )


def test_namespace_label_and_baseline_edit_drive_remediation(kube: Any, namespace: Any, scope: str) -> None:
    ns, excluded = namespace(), namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}")
    label_ns(kube, excluded, f"{SCOPE}={scope}", "env=dev")
    create(kube, deployment("web", ns))
    create(kube, deployment("web", excluded))
    name = unique("dev")
    spec = {**REMEDIATE_DEV, "namespaces": {"exclude": [excluded]}}
    create(kube, scoped_baseline(name, scope, **{**spec, "mode": "audit"}))
    with operator(kube):
        wait_for(lambda: status_of(kube, name).get("summary", {}).get("workloads") == 1, what="audited")
        assert not remediated(kube, ns, "web")  # audit mode
        # A baseline edit takes effect without a restart; the namespace is not env=dev yet.
        kube.kubectl("patch", "sb", name, "--type=merge", "-p", json.dumps({"spec": {"mode": "remediate"}}))
        wait_for(
            lambda: condition(status_of(kube, name), "Ready").get("observedGeneration") == 2, what="gen 2"
        )
        time.sleep(1)
        assert not remediated(kube, ns, "web")
        # The namespace gains env=dev: remediation starts.
        label_ns(kube, ns, "env=dev")
        wait_for(lambda: remediated(kube, ns, "web"), what="remediated after env=dev")
        # It loses env=dev: a new workload there is no longer touched.
        label_ns(kube, ns, "env-")
        time.sleep(1)
        create(kube, deployment("later", ns))
        time.sleep(3)
        assert not remediated(kube, ns, "later")
        # The excluded namespace is never touched, and not counted.
        assert not remediated(kube, excluded, "web")
        assert status_of(kube, name)["summary"]["namespaces"] == 1


def test_network_policies_labels_and_cleanup_on_deletion(kube: Any, namespace: Any, scope: str) -> None:
    dev, prod = namespace(), namespace()
    label_ns(kube, dev, f"{SCOPE}={scope}", "env=dev", "team=shop")
    label_ns(kube, prod, f"{SCOPE}={scope}", "env=prod")
    user_np = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "user-policy", "namespace": dev},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    create(kube, user_np)
    name = unique("np")
    spec = {
        **REMEDIATE_DEV,
        "networkPolicies": {
            "enabled": True,
            "namespaceSelector": {"matchLabels": {"env": "dev"}},
            "defaultDenyEgress": True,
            "allowDnsEgress": True,
        },
        "labels": {
            "namespaceDefaults": {"team": "platform", "tier": "dev"},
            "podSecurity": {"warn": "restricted"},
        },
    }
    create(kube, scoped_baseline(name, scope, **spec))
    np_name = f"kube-baseline-{name}"
    with operator(kube):
        policy = wait_for(
            lambda: (
                exists(kube, "networkpolicy", "-n", dev, np_name)
                and get(kube, "networkpolicy", "-n", dev, np_name)
            ),
            what="NetworkPolicy",
        )
        assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-baseline"
        assert policy["metadata"]["ownerReferences"][0]["name"] == name
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["egress"][0]["ports"] == [
            {"port": 53, "protocol": "UDP"},
            {"port": 53, "protocol": "TCP"},
        ]
        assert not exists(kube, "networkpolicy", "-n", prod, np_name)
        labels = wait_for(
            lambda: (lb := get(kube, "namespace", dev)["metadata"]["labels"]).get("tier") == "dev" and lb,
            what="namespace labels",
        )
        assert labels["team"] == "shop"  # present keys are never overwritten
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert "tier" not in get(kube, "namespace", prod)["metadata"]["labels"]  # not remediated there
        # Our policy is stable: no replace loop (the echo of the create is a no-op).
        rv = get(kube, "networkpolicy", "-n", dev, np_name)["metadata"]["resourceVersion"]
        time.sleep(2)
        assert get(kube, "networkpolicy", "-n", dev, np_name)["metadata"]["resourceVersion"] == rv
        # Deleting the baseline removes what it created, leaves no finalizer and the user's policy alone.
        assert not get(kube, "sb", name)["metadata"].get("finalizers")
        kube.kubectl("delete", "sb", name, "--timeout=20s")
        wait_for(lambda: not exists(kube, "networkpolicy", "-n", dev, np_name), what="NetworkPolicy removed")
        labels = wait_for(
            lambda: "tier" not in (lb := get(kube, "namespace", dev)["metadata"]["labels"]) and lb,
            what="labels removed",
        )
        assert labels["team"] == "shop" and "pod-security.kubernetes.io/warn" not in labels
        assert "kube-baseline.io/added-labels" not in get(kube, "namespace", dev)["metadata"].get(
            "annotations", {}
        )
        assert exists(kube, "networkpolicy", "-n", dev, "user-policy")


def test_dry_run_writes_nothing_but_status(kube: Any, namespace: Any, scope: str) -> None:
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}", "env=dev")
    create(kube, deployment("web", ns))
    name = unique("dry")
    spec = {
        **REMEDIATE_DEV,
        "networkPolicies": {"enabled": True},
        "labels": {"namespaceDefaults": {"tier": "x"}},
    }
    create(kube, scoped_baseline(name, scope, **spec))
    before = written(dep(kube, ns, "web"))
    with operator(kube, dry_run=True):
        status = wait_for(
            lambda: (s := status_of(kube, name)).get("summary", {}).get("drifted") == 1 and s, what="status"
        )
        assert condition(status, "Ready")["reason"] == "DryRun"
        time.sleep(2)
    assert written(dep(kube, ns, "web")) == before
    assert not exists(kube, "networkpolicy", "-n", ns, f"kube-baseline-{name}")
    assert "tier" not in get(kube, "namespace", ns)["metadata"]["labels"]


def test_killed_mid_remediation_converges_without_double_patch(
    kube: Any, namespace: Any, scope: str, tmp_path: Path
) -> None:
    ns = namespace()
    label_ns(kube, ns, f"{SCOPE}={scope}", "env=dev")
    count = 150
    items = [deployment(f"w{i:03}", ns) for i in range(count)]
    create(kube, {"apiVersion": "v1", "kind": "List", "items": items})
    before = writes(kube, "deployments", ("PATCH",), successful=True)
    before_any = writes(kube, "deployments", ("PATCH",))
    create(kube, scoped_baseline(unique("kill"), scope, **REMEDIATE_DEV))

    def done() -> int:
        found = get(kube, "deployments", "-n", ns)["items"]
        return sum("kube-baseline" in managers(d) for d in found)

    proc = spawn_operator(kube, tmp_path / "first.log", KUBE_BASELINE_WRITE_CONCURRENCY="1")
    try:
        wait_for(
            lambda: writes(kube, "deployments", ("PATCH",), successful=True) > before,
            timeout=60,
            interval=0.02,
            what="a patch",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = done()
    proc = spawn_operator(kube, tmp_path / "second.log")
    try:
        wait_for(lambda: done() == count, timeout=90, what="all remediated")
        time.sleep(3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # Every PATCH request the API server counted, whatever its code: the one in flight when the
    # first operator was killed can be applied yet counted with an error code (its client is gone).
    patches = writes(kube, "deployments", ("PATCH",)) - before_any
    cut_off = patches - (writes(kube, "deployments", ("PATCH",), successful=True) - before)
    print(
        f"\n[writes] killed after {first}/{count} remediated; {patches} deployment PATCHes in total,"
        f" {cut_off} of them counted with an error code"
    )
    logs = "".join((tmp_path / f).read_text() for f in ("first.log", "second.log"))
    patched = [
        line.split("Patched Deployment ")[1].split(" ")[0]
        for line in logs.splitlines()
        if "Patched Deployment " in line
    ]
    problems = [line for line in logs.splitlines() if "failed" in line or "Error" in line][:20]
    evidence = (sorted(p for p in patched if patched.count(p) > 1), len(patched), patches, problems)
    # No double patch: every Deployment's template changed exactly once (generation 1 -> 2), and
    # no operator patched one Deployment twice.
    generations = {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in get(kube, "deployments", "-n", ns)["items"]
    }
    assert set(generations.values()) == {2}, (generations, evidence)
    assert len(set(patched)) == len(patched), evidence
    # One request per Deployment, plus at most the one the first operator (one write at a time)
    # had in flight when it was killed: the API server may apply it after the second operator
    # listed that Deployment, which then sends the same patch again (a no-op: no new generation).
    assert count <= patches <= count + 1, evidence
