"""`trace(con, id)`: the lifecycle across systems and its open findings, from any id."""

from __future__ import annotations

import pytest

from revops_pipelines.reconciliation.trace import TraceNotFoundError, trace
from revops_pipelines_tests.test_report import _reconciled


@pytest.mark.parametrize("any_id", ["006O", "sub_S", "in_I", "5001", "inpay_P"])
def test_trace_from_any_id_shows_stages_and_open_findings(any_id: str) -> None:
    con = _reconciled()
    text = trace(con, any_id)
    assert text.startswith("lifecycle 006O\n")
    stages = [line.split()[2] for line in text.splitlines() if line.startswith("  20")]
    assert stages == [
        "opportunity_won",
        "subscription_provisioned",
        "invoice_generated",
        "payment_applied",
    ]
    assert "invoice_amount_mismatch [critical, open since 2025-05-22]" in text
    assert "expected '100000', actual '100100'" in text


def test_trace_of_an_id_only_in_findings() -> None:
    con = _reconciled()
    text = trace(con, "in_J")
    assert "lifecycle in_J" in text
    assert "invoice_missing_in_erp" in text


def test_unknown_id_says_so() -> None:
    con = _reconciled()
    with pytest.raises(TraceNotFoundError, match="nope"):
        trace(con, "nope")
