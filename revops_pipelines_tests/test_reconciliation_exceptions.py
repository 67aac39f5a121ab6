"""Exception aging across runs: stable ids, first detection kept, resolution, people's statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from revops_pipelines.reconciliation.catalog import relation_exists
from revops_pipelines.reconciliation.exceptions import (
    EXCEPTION_COLUMNS,
    ExceptionStatusError,
    export_exceptions,
    set_status,
    update_exceptions,
)
from revops_pipelines.sqlmodels.loader import load_models
from revops_pipelines_tests.canonical_rows import clean_world, reconcile_world, row

T1 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def _exceptions(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    cursor = con.execute("SELECT * FROM reconciliation.drift_exceptions")
    names = [d[0] for d in cursor.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def _drifted_world() -> dict:
    world = clean_world()
    row(world, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)
    return world


def test_finding_keeps_id_and_first_detection_then_resolves() -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    first = update_exceptions(con, now=T1)
    assert (first.new, first.open_total, first.money_at_stake) == (1, 1, {"USD": 100})
    [exception_id] = _exceptions(con)

    reconcile_world(_drifted_world(), con=con)
    second = update_exceptions(con, now=T1 + timedelta(days=3))
    assert (second.new, second.still_open) == (0, 1)
    again = _exceptions(con)[exception_id]
    assert again["first_detected_at"] == T1
    assert again["last_detected_at"] == T1 + timedelta(days=3)
    assert again["status"] == "open"

    reconcile_world(clean_world(), con=con)
    third = update_exceptions(con, now=T1 + timedelta(days=5))
    assert (third.resolved, third.open_total) == (1, 0)
    gone = _exceptions(con)[exception_id]
    assert gone["status"] == "resolved"
    assert gone["resolved_at"] == T1 + timedelta(days=5)

    reconcile_world(_drifted_world(), con=con)
    fourth = update_exceptions(con, now=T1 + timedelta(days=6))
    back = _exceptions(con)[exception_id]
    assert fourth.reopened == 1
    assert (back["status"], back["resolved_at"], back["first_detected_at"]) == ("open", None, T1)


def test_columns_follow_the_contract() -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1)
    columns = [
        d[0] for d in con.execute("SELECT * FROM reconciliation.drift_exceptions").description
    ]
    assert columns == list(EXCEPTION_COLUMNS)


@pytest.mark.parametrize("status", ["planned", "corrected", "ignored"])
def test_status_set_by_a_person_survives_reappearance(status: str) -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1)
    [exception_id] = _exceptions(con)
    set_status(con, exception_id, status)
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1 + timedelta(hours=1))
    assert _exceptions(con)[exception_id]["status"] == status


def test_statuses_from_the_ledger_are_applied_in_the_merge() -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1)
    [exception_id] = _exceptions(con)
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1, statuses={exception_id: "planned"})
    assert _exceptions(con)[exception_id]["status"] == "planned"
    with pytest.raises(ExceptionStatusError, match="resolved"):
        set_status(con, exception_id, "resolved")
    with pytest.raises(ExceptionStatusError, match="no such exception"):
        set_status(con, "nope", "ignored")


def test_history_survives_a_rebuild_of_the_models() -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1)
    # Models are rebuilt from nothing; the history is not a model and stays.
    for model in load_models():
        kind = "VIEW" if model.materialized == "view" else "TABLE"
        con.execute(f"DROP {kind} IF EXISTS {model.relation} CASCADE")
    assert relation_exists(con, "reconciliation", "exception_history")
    assert not relation_exists(con, "reconciliation", "findings")
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1 + timedelta(days=1))
    [only] = _exceptions(con).values()
    assert only["first_detected_at"] == T1


def test_exports_parquet_and_csv_with_the_contract_columns(tmp_path) -> None:
    con = duckdb.connect()
    reconcile_world(_drifted_world(), con=con)
    update_exceptions(con, now=T1)
    parquet, csv = export_exceptions(con, tmp_path / "out")
    from_parquet = pd.read_parquet(parquet)
    from_csv = pd.read_csv(csv)
    assert list(from_parquet.columns) == list(EXCEPTION_COLUMNS)
    assert list(from_csv.columns) == list(EXCEPTION_COLUMNS)
    assert from_parquet["drift_type"].tolist() == ["invoice_amount_mismatch"]
    assert from_csv["amount_impact_minor"].tolist() == [100]
