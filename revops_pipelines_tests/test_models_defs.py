from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from revops_pipelines.defs.models import build_model_assets
from revops_pipelines.defs.resources import DuckDBResource
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE
from revops_pipelines_tests.rawdata import insert_records, load_state_dir, read_jsonl

INVOICE_PATH = {
    "stg_billing_invoice",
    "stg_billing_invoice_line",
    "stg_billing_product",
    "stg_erp_currency",
    "stg_erp_customer",
    "stg_erp_item",
    "stg_erp_transaction",
    "stg_erp_transaction_line",
    "invoice",
    "invoice_line",
    "revenue_event",
}


def _assets() -> list[dg.AssetsDefinition]:
    return [a for a in build_model_assets() if a.key.path[-1] in INVOICE_PATH]


def _run(db: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        _assets(),
        resources={"duckdb": DuckDBResource(path=str(db))},
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


@pytest.fixture
def raw_db(tmp_path: Path) -> Path:
    db = tmp_path / "revops.duckdb"
    with duckdb.connect(str(db)) as con:
        load_state_dir(con, HANDWRITTEN_STATE)
    return db


def test_asset_keys_groups_and_deps() -> None:
    assets = {a.key.to_user_string(): a for a in build_model_assets()}
    invoice = assets["canonical/invoice"]
    assert invoice.group_names_by_key[invoice.key] == "canonical"
    deps = {k.to_user_string() for k in invoice.asset_deps[invoice.key]}
    assert {"staging/stg_billing_invoice", "staging/stg_erp_transaction"} <= deps
    stg = assets["staging/stg_billing_invoice"]
    assert {k.to_user_string() for k in stg.asset_deps[stg.key]} == {"raw/billing_invoices"}
    checks = {c.name: c for c in invoice.check_specs}
    assert checks["pandera"].blocking
    assert "seeds" not in {a.key.path[0] for a in assets.values()}


def test_clean_run_materializes_with_row_counts(raw_db: Path) -> None:
    result = _run(raw_db)
    assert result.success
    assert "canonical/revenue_event" in _materialized(result)
    invoice = result.asset_materializations_for_node("canonical__invoice")[0]
    assert invoice.metadata["dagster/row_count"].value == 13
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_failed_pandera_check_blocks_downstream(raw_db: Path) -> None:
    invoices = read_jsonl(HANDWRITTEN_STATE / "billing" / "invoices.jsonl")
    broken = json.loads(json.dumps(invoices[0]))
    broken["currency"] = "zzz"
    with duckdb.connect(str(raw_db)) as con:
        insert_records(con, "billing_invoices", [broken])

    result = _run(raw_db)
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.to_user_string() for c in failed] == ["canonical/invoice"]
    assert failed[0].metadata["failures"].value >= 1
    assert "ZZZ" in failed[0].metadata["sample"].value
    done = _materialized(result)
    assert "canonical/invoice" in done
    assert "canonical/revenue_event" not in done
