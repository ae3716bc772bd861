"""The CLI's namespace scope: the engine's governance rules plus the CLI's own unknown-namespace rule."""

from __future__ import annotations

import pytest

from kube_baseline.cli.scope import Scope, namespace_info
from kube_baseline.engine.checks import policy_from_spec
from kube_baseline.engine.desired import Baseline, NamespaceInfo, governs, why_not_governed
from kube_baseline.engine.models import parse_spec

SPEC = parse_spec(
    {
        "namespaces": {"selector": {"matchLabels": {"tier": "prod"}}, "exclude": ["sandbox"]},
        "remediation": {"namespaceSelector": {"matchLabels": {"fix": "yes"}}},
    }
)
BASELINE = Baseline("b", "", 0, SPEC, policy_from_spec(SPEC))


@pytest.mark.parametrize(
    ("ns", "reason"),
    [
        (NamespaceInfo("kube-system", {"tier": "prod"}), "namespace kube-system is a system namespace"),
        (NamespaceInfo("sandbox", {"tier": "prod"}), "namespace sandbox is excluded by the baseline"),
        (
            NamespaceInfo("dev", {"tier": "dev"}),
            "namespace dev does not match the baseline's namespace selector",
        ),
        (NamespaceInfo("prod", {"tier": "prod"}), ""),
        # A label the operator added does not count for selectors.
        (
            NamespaceInfo("p2", {"tier": "prod"}, added={"other": {"tier": "prod"}}),
            "namespace p2 does not match the baseline's namespace selector",
        ),
    ],
)
def test_why_not_governed_agrees_with_governs(ns: NamespaceInfo, reason: str) -> None:
    assert why_not_governed(BASELINE, ns) == reason
    assert governs(BASELINE, ns) is (reason == "")


def scope(*namespaces: NamespaceInfo, rules: bool = True) -> Scope:
    return Scope(SPEC, BASELINE.policy, SPEC.remediation, namespaces, namespace_rules=rules)


def test_unknown_namespace_matches_selectors_but_not_exclusions() -> None:
    s = scope(NamespaceInfo("dev", {"tier": "dev"}))
    assert s.why_not_governed("elsewhere") == ""
    assert s.remediated("elsewhere")
    assert s.why_not_governed("sandbox") == "namespace sandbox is excluded by the baseline"
    assert s.why_not_governed("kube-public") == "namespace kube-public is a system namespace"
    assert s.why_not_governed("dev") == "namespace dev does not match the baseline's namespace selector"


def test_remediation_selector_of_known_namespace_whatever_the_mode() -> None:
    # SPEC's mode is audit: plan previews remediation as if it were remediate.
    s = scope(NamespaceInfo("a", {"tier": "prod", "fix": "yes"}), NamespaceInfo("b", {"tier": "prod"}))
    assert (s.remediated("a"), s.remediated("b")) == (True, False)


def test_without_namespace_rules_everything_is_governed() -> None:
    s = scope(NamespaceInfo("dev", {"tier": "dev"}), rules=False)
    assert s.why_not_governed("kube-system") == "" and s.remediated("dev")


def test_namespace_info_adds_the_name_label_and_survives_bad_labels() -> None:
    info = namespace_info({"metadata": {"name": "x", "labels": ["not", "a", "map"]}})
    assert info is not None and dict(info.labels) == {"kubernetes.io/metadata.name": "x"}
    assert namespace_info({"metadata": {}}) is None
