"""Same verdicts in two languages: the generated ValidatingAdmissionPolicies, applied to the real
API server, admit exactly the pods, Deployments and CronJobs the engine finds compliant.

Every pod spec in tests/fixtures/workloads/, 150 random pod specs and (when present) the shared
third-party test data is wrapped as a Pod, a Deployment and a CronJob and created with
dryRun=All: once in a namespace no policy binds (a refusal there means the object is invalid
for the API server itself, and the case is not counted), then in one namespace per policy
(baseline profile, restricted profile, restricted plus every extra check). Admit/deny must equal
`audit(...).compliant`, 100 %.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from admission_support import KINDS, create, random_pod, wrap
from operator_helpers import wait_for

from kube_baseline.engine.admission.cel import UNENFORCEABLE
from kube_baseline.engine.admission.validating import render_validation
from kube_baseline.engine.checks import Policy, audit, policy_from_spec
from kube_baseline.engine.models import EXTRA_CHECKS, parse_spec
from kube_baseline.engine.workloads import workload_of
from tests.objects import iter_objects

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "workloads"
SHARED = ROOT.parent / "shared" / "testdata"
SELECT = "kube-baseline.io/admission-diff"

SPECS: dict[str, dict[str, Any]] = {
    "baseline": {"profile": "baseline"},
    "restricted": {"profile": "restricted"},
    "extras": {
        "profile": "restricted",
        "checks": {"extra": [c for c in EXTRA_CHECKS if c not in UNENFORCEABLE and c != "requiredLabels"]},
        "labels": {"required": ["team"]},
    },
}


class Setup:
    def __init__(self, api: Any, free: str, namespaces: dict[str, str], policies: dict[str, Policy]):
        self.api, self.free, self.namespaces, self.policies = api, free, namespaces, policies


@pytest.fixture(scope="module")
def setup(kube: Any) -> Iterator[Setup]:
    from kubernetes import client

    api = kube.api()
    core = client.CoreV1Api(api)
    suffix = random.Random().randrange(16**6)
    free = f"adm-diff-free-{suffix:06x}"
    namespaces = {key: f"adm-diff-{key}-{suffix:06x}" for key in SPECS}
    objects: list[dict[str, Any]] = []
    policies: dict[str, Policy] = {}
    for key, raw in SPECS.items():
        spec = parse_spec(
            {
                **raw,
                "namespaces": {"selector": {"matchLabels": {SELECT: f"{key}-{suffix:06x}"}}},
                "admission": {"validation": "Deny"},
            }
        )
        policies[key] = policy_from_spec(spec)
        objects.extend(render_validation(f"diff-{key}-{suffix:06x}", "", spec).objects)
    for name, label in [(free, None), *((ns, f"{k}-{suffix:06x}") for k, ns in namespaces.items())]:
        labels = {"kube-baseline.io/test": "1", **({SELECT: label} if label else {})}
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    kube.kubectl(
        "apply",
        "--server-side",
        "--field-manager=kube-baseline",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(o) for o in objects),
    )
    probe = {"containers": [{"name": "a", "image": "nginx:1.27", "securityContext": {"privileged": True}}]}
    for ns in namespaces.values():
        for kind in KINDS:
            wait_for(
                lambda ns=ns, kind=kind: not create(api, ns, wrap(kind, "probe", probe))[0],
                what=f"the policies to act on {kind} in {ns}",
            )
    try:
        yield Setup(api, free, namespaces, policies)
    finally:
        for o in objects:
            kube.kubectl("delete", o["kind"], o["metadata"]["name"], "--ignore-not-found", check=False)
        for name in [free, *namespaces.values()]:
            core.delete_namespace(name)
        api.close()


Case = tuple[str, dict[str, Any], dict[str, str], dict[str, str]]  # (id, spec, annotations, labels)


def fixture_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        with path.open() as handle:
            docs = list(yaml.safe_load_all(handle))
        for index, obj in enumerate(o for d in docs for o in iter_objects(d)):
            w = workload_of(obj)
            if w is not None:
                annotations = w.pod_metadata.get("annotations") or {}
                cases.append((f"{path.stem}#{index}", w.pod_spec, dict(annotations), dict(w.labels)))
    return cases


def random_cases(count: int = 150, seed: int = 1335) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    for i in range(count):
        spec, annotations = random_pod(rng)
        labels = {"team": "a"} if rng.random() < 0.5 else {}
        cases.append((f"random-{i}", spec, annotations, labels))
    return cases


def shared_cases() -> list[Case]:
    """Polaris's check fixtures and Kyverno's pod-security tests, each distinct pod once."""
    cases: list[Case] = []
    seen: set[str] = set()
    for folder in ("polaris", "kyverno/pod-security"):
        for path in sorted((SHARED / folder).rglob("*.yaml")):
            try:
                with path.open() as handle:
                    docs = list(yaml.safe_load_all(handle))
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
            for index, obj in enumerate(o for d in docs for o in iter_objects(d)):
                w = workload_of(obj)
                if w is not None and isinstance(w.pod_spec.get("containers"), list):
                    annotations = w.pod_metadata.get("annotations") or {}
                    key = json.dumps([w.pod_spec, annotations, w.labels], sort_keys=True, default=str)
                    if key not in seen and all(isinstance(v, str) for v in annotations.values()):
                        seen.add(key)
                        rel = path.relative_to(SHARED)
                        cases.append((f"{rel}#{index}", w.pod_spec, dict(annotations), dict(w.labels)))
    return cases


def _name(index: int) -> str:
    return f"case-{index}"


def differential(setup: Setup, cases: list[Case]) -> tuple[int, int, list[str]]:
    """(compared, invalid, mismatches)."""

    def one(index_case: tuple[int, Case]) -> tuple[int, int, list[str]]:
        index, (case_id, spec, annotations, labels) = index_case
        compared = invalid = 0
        mismatches: list[str] = []
        for kind in KINDS:
            obj = wrap(kind, _name(index), spec, annotations, {k: str(v) for k, v in labels.items()})
            ok, message, _ = create(setup.api, setup.free, obj)
            if not ok:
                # Where no policy binds, only the API server itself may refuse (validation, or
                # an admission plugin such as Priority): never a ValidatingAdmissionPolicy.
                if "ValidatingAdmissionPolicy" in message:
                    mismatches.append(f"{case_id} as {kind} refused where no policy binds: {message}")
                invalid += 1
                continue
            for key, ns in setup.namespaces.items():
                workload = workload_of({**obj, "metadata": {**obj["metadata"], "namespace": ns}})
                assert workload is not None
                result = audit(workload, setup.policies[key])
                admitted, message, _ = create(setup.api, ns, obj)
                compared += 1
                if admitted != result.compliant:
                    engine = sorted({f.check for f in result.findings})
                    mismatches.append(
                        f"{case_id} as {kind} at {key}: engine {engine}, server "
                        f"{'admitted' if admitted else message}"
                    )
        return compared, invalid, mismatches

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, enumerate(cases)))
    return sum(r[0] for r in results), sum(r[1] for r in results), [m for r in results for m in r[2]]


SOURCES: dict[str, Callable[[], list[Case]]] = {
    "fixtures": fixture_cases,
    "random": random_cases,
    "shared": shared_cases,
}


@pytest.mark.parametrize("source", SOURCES)
def test_policy_verdicts_equal_engine_verdicts(setup: Setup, source: str) -> None:
    if source == "shared" and not SHARED.is_dir():
        pytest.skip(f"no shared test data at {SHARED}")
    cases = SOURCES[source]()
    assert cases, source
    compared, invalid, mismatches = differential(setup, cases)
    print(
        f"\n[admission-diff] {source}: {len(cases)} pod specs, {compared} verdicts compared, "
        f"{invalid} objects the API server itself refuses, {len(mismatches)} mismatches"
    )
    assert compared > len(cases), "too few valid objects to compare"
    assert not mismatches, "\n".join(mismatches[:40])
