"""Dagster wiring of the reconciliation assets on a temporary DuckDB file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from revops_pipelines.defs.reconcile import drift_exceptions, recon_metrics, recon_report
from revops_pipelines.defs.resources import DuckDBResource
from revops_pipelines.recon.run import reconciliation_model_names
from revops_pipelines_tests.canonical_rows import clean_world, reconcile_world, row


def test_keys_groups_pools_and_deps() -> None:
    assert drift_exceptions.key == dg.AssetKey(["recon", "drift_exceptions"])
    assert recon_report.key == dg.AssetKey(["recon", "report"])
    deps = {k.to_user_string() for k in drift_exceptions.dependency_keys}
    assert "reconciliation/findings" in deps
    assert deps == {f"reconciliation/{n}" for n in reconciliation_model_names()}
    for asset in (drift_exceptions, recon_metrics, recon_report):
        assert asset.group_names_by_key[asset.key] == "reconciliation"
        assert asset.op.pool == "duckdb"


def test_materialize_exceptions_metrics_and_report(tmp_path: Path, monkeypatch) -> None:
    db, out = tmp_path / "revops.duckdb", tmp_path / "out"
    monkeypatch.setenv("REVOPS_OUTPUT_DIR", str(out))
    world = clean_world()
    row(world, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)
    with duckdb.connect(str(db)) as con:
        reconcile_world(world, con=con)
    config = {"detected_at": "2025-06-28T12:00:00+00:00"}
    result = dg.materialize(
        [drift_exceptions, recon_metrics, recon_report],
        resources={"duckdb": DuckDBResource(path=str(db))},
        run_config={
            "ops": {
                name: {"config": config}
                for name in ("recon__drift_exceptions", "recon__metrics", "recon__report")
            }
        },
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("recon__drift_exceptions")
    meta = materialization.metadata
    assert meta["new"].value == 1
    assert meta["by_type"].value == {"invoice_amount_mismatch": 1}
    assert "invoice_amount_mismatch" in meta["top_10"].value
    assert pd.read_csv(out / "drift_exceptions.csv")["drift_type"].tolist() == [
        "invoice_amount_mismatch"
    ]
    assert (out / "drift_exceptions.parquet").exists()
    assert "invoice_amount_mismatch" in (out / "report.html").read_text()
