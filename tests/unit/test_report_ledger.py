"""The ledger's report bookkeeping (store.WriteLedger): digests per workload, failures per baseline."""

from __future__ import annotations

from kube_baseline.controller.store import WriteLedger
from kube_baseline.engine.status import build_verdict

A = ("Deployment", "shop", "web")
B = ("Deployment", "pay", "api")


def ledger_with_verdicts() -> WriteLedger:
    ledger = WriteLedger()
    ledger.record_verdicts(A, {"prod": build_verdict("shop", "Deployment", "web", [], [], remediated=False)})
    ledger.record_verdicts(B, {"dev": build_verdict("pay", "Deployment", "api", [], [], remediated=False)})
    ledger.take_due()
    return ledger


def test_failures_are_counted_for_the_baselines_governing_the_workload() -> None:
    ledger = ledger_with_verdicts()
    ledger.report_failed(A, "HTTP 403")
    assert ledger.report_errors("prod") == ["HTTP 403"] and ledger.report_errors("dev") == []
    assert ledger.take_due() == ["prod"]  # its status must say so
    ledger.report_failed(A, "HTTP 403")
    assert ledger.take_due() == []  # the same error again changes nothing
    ledger.report_written(A, "d1")
    assert ledger.report_errors("prod") == [] and ledger.take_due() == ["prod"]
    assert ledger.report_hash(A) == "d1"


def test_digests_are_forgotten_with_the_workload_or_the_crd() -> None:
    ledger = ledger_with_verdicts()
    ledger.report_written(A, "d1")
    ledger.report_written(B, "d2")
    ledger.forget_workload(A)
    assert ledger.report_hash(A) is None and ledger.report_hash(B) == "d2"
    ledger.report_written(B, None)
    assert ledger.report_hash(B) is None
    ledger.report_written(B, "d3")
    ledger.forget_report_hashes()
    assert ledger.report_hash(B) is None
