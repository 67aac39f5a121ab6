from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from revops_pipelines.defs import models as model_defs
from revops_pipelines.defs.models import build_model_assets, model_layers
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.sandbox.raw_tables import insert_records, load_state_dir, read_jsonl
from revops_pipelines.settings import Settings
from revops_pipelines.sqlmodels import load_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

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


def _canonical_models() -> dg.AssetsDefinition:
    (step,) = [a for a in build_model_assets() if a.node_def.name == "canonical_models"]
    return step


def _run(db: Path, selection: object = None) -> dg.ExecuteInProcessResult:
    step = _canonical_models()
    if selection is None:
        selection = [key for key in step.keys if key.path[-1] in INVOICE_PATH]
    return dg.materialize(
        [step],
        selection=selection,
        resources=build_resources(RevopsSettings.of(Settings(duckdb_path=db))),
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


def _specs() -> dict[str, dg.AssetSpec]:
    return {
        key.to_user_string(): spec
        for step in build_model_assets()
        for key, spec in step.specs_by_key.items()
    }


def test_asset_keys_groups_and_deps() -> None:
    specs = _specs()
    invoice = specs["canonical/invoice"]
    assert invoice.group_name == "canonical"
    assert invoice.kinds == {"duckdb", "sql", "table", "pandera"}
    deps = {dep.asset_key.to_user_string() for dep in invoice.deps}
    assert {"staging/stg_billing_invoice", "staging/stg_erp_transaction"} <= deps
    stg = specs["staging/stg_billing_invoice"]
    assert stg.kinds == {"duckdb", "sql", "view"}
    assert {dep.asset_key.to_user_string() for dep in stg.deps} == {"raw/billing_invoice"}
    step = _canonical_models()
    checks = {
        c.name: c for c in step.check_specs if c.asset_key == dg.AssetKey(["canonical", "invoice"])
    }
    assert checks["pandera"].blocking
    assert "seeds" not in {key.split("/")[0] for key in specs}


def test_two_subsettable_steps_share_the_duckdb_pool() -> None:
    steps = {a.node_def.name: a for a in build_model_assets()}
    assert set(steps) == {"canonical_models", "reconciliation_models"}
    assert all(step.can_subset and step.node_def.pools == {"duckdb"} for step in steps.values())
    assert {k.path[0] for k in steps["reconciliation_models"].keys} == {"reconciliation"}


def test_a_table_with_a_check_is_built_before_its_readers() -> None:
    models = load_models()
    layers = [{m.name for m in layer} for layer in model_layers(models, models)]
    first = next(i for i, names in enumerate(layers) if "invoice" in names)
    later = set().union(*layers[first + 1 :])
    assert {"revenue_event", "lifecycle_event", "validation_issue"} <= later
    assert "stg_billing_invoice" in layers[0]


def test_clean_run_materializes_with_row_counts(raw_db: Path) -> None:
    result = _run(raw_db)
    assert result.success
    assert "canonical/revenue_event" in _materialized(result)
    (invoice,) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["canonical", "invoice"])
    ]
    assert invoice.metadata["dagster/row_count"].value == 13
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_failed_pandera_check_blocks_downstream(raw_db: Path) -> None:
    invoices = read_jsonl(HANDWRITTEN_STATE / "billing" / "invoices.jsonl")
    broken = json.loads(json.dumps(invoices[0]))
    broken["currency"] = "zzz"
    with duckdb.connect(str(raw_db)) as con:
        insert_records(con, "billing_invoice", [broken])

    result = _run(raw_db)
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.to_user_string() for c in failed] == ["canonical/invoice"]
    assert failed[0].metadata["failures"].value >= 1
    assert "ZZZ" in failed[0].metadata["sample"].value
    done = _materialized(result)
    assert "canonical/invoice" in done
    assert "canonical/revenue_event" not in done
    with duckdb.connect(str(raw_db)) as con:
        built = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "revenue_event" not in built


def test_whole_step_runs_the_models_once_per_layer(
    raw_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    selects: list[set[str]] = []
    run_models = model_defs.run_models

    def counting(con, models, *, select, vars):
        selects.append(set(select))
        return run_models(con, models, select=select, vars=vars)

    monkeypatch.setattr(model_defs, "run_models", counting)
    step = _canonical_models()
    result = _run(raw_db, selection=list(step.keys))
    assert result.success
    # staging and the tables staging gives; those that read them; what reads the quarantine
    assert len(selects) == 3
    assert "stg_billing_invoice" in selects[0] and "invoice" in selects[0]
    assert {"revenue_event", "lifecycle_event"} <= selects[1]
    assert selects[2] == {"validation_issue"}
    assert len(_materialized(result)) == len(step.keys) == sum(map(len, selects))


def test_a_subset_builds_only_what_was_selected(raw_db: Path) -> None:
    selection = dg.AssetSelection.assets(dg.AssetKey(["canonical", "customer"])).upstream()
    result = _run(raw_db, selection=selection)
    assert result.success
    assert _materialized(result) == {
        "canonical/customer",
        "canonical/legal_entity_subsidiary",
        "staging/stg_billing_customer",
        "staging/stg_crm_account",
        "staging/stg_erp_currency",
        "staging/stg_erp_customer",
        "staging/stg_erp_subsidiary",
    }
    checks = result.get_asset_check_evaluations()
    assert [(c.asset_key.to_user_string(), c.check_name) for c in checks] == [
        ("canonical/legal_entity_subsidiary", "pandera"),
        ("canonical/customer", "pandera"),
    ]
    with duckdb.connect(str(raw_db)) as con:
        built = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "customer" in built and "invoice" not in built
