"""Row-level quarantine: a refused canonical row is set aside with its reason; the rest goes on."""

from __future__ import annotations

import copy
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from revops_pipelines.defs.models import build_model_assets
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.sandbox.raw_tables import insert_records, load_state_dir, read_jsonl
from revops_pipelines.schemas import quarantine_counts, quarantine_table
from revops_pipelines.settings import Settings
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

BAD_INVOICE = "in_1QabcGulf0001"  # paid, posted to the ERP, with a payment on both sides
NEGATIVE_LINE = "il_AcmeJan000001"


def _craft_bad_rows(con: duckdb.DuckDBPyConnection) -> None:
    """One billing invoice in a currency nobody knows, one invoice line with quantity -3."""
    invoices = {i["id"]: i for i in read_jsonl(HANDWRITTEN_STATE / "billing" / "invoices.jsonl")}
    unknown = copy.deepcopy(invoices[BAD_INVOICE])
    unknown["currency"] = "xts"
    for line in unknown["lines"]["data"]:
        line["currency"] = "xts"
    negative = copy.deepcopy(invoices["in_1QabcAcme0001"])
    negative["lines"]["data"][0]["quantity"] = -3
    insert_records(con, "billing_invoice", [unknown, negative])


def _materialize(db: Path, **settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_model_assets(),
        resources=build_resources(RevopsSettings.of(Settings(duckdb_path=db, **settings))),
        raise_on_error=False,
    )


def test_bad_rows_are_quarantined_and_the_rest_reconciles(tmp_path: Path) -> None:
    db = tmp_path / "revops.duckdb"
    with duckdb.connect(str(db)) as con:
        load_state_dir(con, HANDWRITTEN_STATE)
        _craft_bad_rows(con)
    # 1 of 13 invoices (7 billing, 6 ERP) and 2 of 13 lines are refused: above the default
    # 1 %, so a larger share is allowed here.
    result = _materialize(db, quarantine_max_share=0.3, as_of="2025-06-28")
    assert result.success
    checks = {c.asset_key.path[-1]: c for c in result.get_asset_check_evaluations() if c.check_name}
    invoice_check = checks["invoice"]
    assert invoice_check.passed
    assert invoice_check.metadata["quarantined_rows"].value == 1
    assert checks["invoice_line"].metadata["quarantined_rows"].value == 2

    with duckdb.connect(str(db)) as con:
        quarantined = con.execute(
            "SELECT table_name, source_system, source_id, column_name, rule, value, "
            "linked_billing_id FROM canonical.quarantine ORDER BY ALL"
        ).fetchall()
        assert (
            "invoice",
            "billing",
            BAD_INVOICE,
            "currency",
            "currency_in_iso_4217_seed",
            "XTS",
            None,
        ) in quarantined
        assert (
            "invoice_line",
            "billing",
            NEGATIVE_LINE,
            "quantity",
            "greater_than_or_equal_to(0)",
            "-3.0",
            None,
        ) in quarantined
        # refused rows left the canonical tables; the others are there
        invoices = {r[0] for r in con.execute("SELECT source_id FROM canonical.invoice").fetchall()}
        assert BAD_INVOICE not in invoices and "in_1QabcAcme0001" in invoices
        lines = {
            r[0] for r in con.execute("SELECT source_id FROM canonical.invoice_line").fetchall()
        }
        assert NEGATIVE_LINE not in lines
        # a person sees them among the validation issues
        issues = con.execute(
            "SELECT entity, source_id, field, detail FROM canonical.validation_issue "
            "WHERE rule = 'record_quarantined' ORDER BY source_id"
        ).fetchall()
        assert ("invoice", BAD_INVOICE, "currency") in {i[:3] for i in issues}
        assert any(i[1] == NEGATIVE_LINE and "greater_than_or_equal_to(0)" in i[3] for i in issues)
        # the rest reconciles: the ERP copy of the refused invoice and its payment are not
        # reported as orphans, and nothing else is reported either
        findings = con.execute(
            "SELECT drift_type, billing_id, erp_id FROM reconciliation.findings"
        ).fetchall()
        assert findings == []
        counts = quarantine_counts(con)
    assert ("invoice", "currency_in_iso_4217_seed", 1) in counts
    assert ("invoice_line", "greater_than_or_equal_to(0)", 1) in counts


def test_above_the_share_the_check_fails_and_blocks(tmp_path: Path) -> None:
    db = tmp_path / "revops.duckdb"
    with duckdb.connect(str(db)) as con:
        load_state_dir(con, HANDWRITTEN_STATE)
        _craft_bad_rows(con)
    result = _materialize(db)
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert {c.asset_key.path[-1] for c in failed} == {"invoice", "invoice_line"}
    invoice = next(c for c in failed if c.asset_key.path[-1] == "invoice")
    assert invoice.metadata["quarantined_share"].value == pytest.approx(1 / 13)
    assert invoice.metadata["max_share"].value == Settings().quarantine_max_share == 0.01


def test_quarantine_is_replaced_per_table_and_a_missing_column_always_fails() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA canonical")
    con.execute(
        "CREATE TABLE canonical.credit_note AS SELECT * FROM (VALUES "
        "('billing', 'cn_1', 100, 'USD', NULL::TIMESTAMPTZ), "
        "('billing', 'cn_2', 100, 'ZZZ', NULL::TIMESTAMPTZ)) "
        "AS t(source_system, source_id, total_minor, currency, created_at)"
    )
    first = quarantine_table(con, "credit_note", max_share=0.5)
    assert first.sample_markdown.count("ZZZ") == 1
    assert (first.rows, first.quarantined, first.passed) == (2, 1, True)
    again = quarantine_table(con, "credit_note", max_share=0.5)
    assert (again.rows, again.quarantined) == (1, 0)
    assert quarantine_counts(con) == []  # the earlier row of this table was replaced

    con.execute("ALTER TABLE canonical.credit_note DROP COLUMN total_minor")
    missing = quarantine_table(con, "credit_note", max_share=1.0)
    assert missing.table_failures >= 1 and not missing.passed


def test_max_share_setting_is_a_share() -> None:
    assert Settings.from_env({"REVOPS_QUARANTINE_MAX_SHARE": "0.05"}).quarantine_max_share == 0.05
    with pytest.raises(ValueError, match="QUARANTINE_MAX_SHARE"):
        Settings.from_env({"REVOPS_QUARANTINE_MAX_SHARE": "5%"})
