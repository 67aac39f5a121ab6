"""Dagster wiring of the reconciliation assets on a temporary DuckDB file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from revops_pipelines.defs.reconciliation import (
    drift_exceptions,
    reconciliation_metrics,
    reconciliation_report,
)
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.reconciliation.run import reconciliation_model_names
from revops_pipelines.settings import Settings
from revops_pipelines_tests.canonical_rows import clean_world, reconcile_world, row


def test_keys_groups_pools_and_deps() -> None:
    assert drift_exceptions.key == dg.AssetKey(["reconciliation", "drift_exceptions"])
    assert reconciliation_report.key == dg.AssetKey(["reconciliation", "report"])
    deps = {k.to_user_string() for k in drift_exceptions.dependency_keys}
    assert "reconciliation/findings" in deps
    assert deps == {f"reconciliation/{n}" for n in reconciliation_model_names()}
    for asset in (drift_exceptions, reconciliation_metrics):
        assert asset.group_names_by_key[asset.key] == "reconciliation"
    assert reconciliation_report.group_names_by_key[reconciliation_report.key] == "report"
    for asset in (drift_exceptions, reconciliation_metrics, reconciliation_report):
        assert asset.op.pool == "duckdb"
    assert {c.name for c in drift_exceptions.check_specs} == {"no_critical_open", "no_high_open"}


def _materialize(
    db: Path, *, detected_at: str | None = None, as_of: str = ""
) -> dg.ExecuteInProcessResult:
    config = {"detected_at": detected_at} if detected_at else {}
    settings = Settings(duckdb_path=db, output_dir=db.parent / "out", as_of=as_of)
    return dg.materialize(
        [drift_exceptions, reconciliation_metrics, reconciliation_report],
        resources=build_resources(RevopsSettings.of(settings)),
        run_config={
            "ops": {
                name: {"config": config}
                for name in (
                    "reconciliation__drift_exceptions",
                    "reconciliation__metrics",
                    "reconciliation__report",
                )
            }
        },
    )


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    [materialization] = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in materialization.metadata.items()}


def test_materialize_exceptions_metrics_and_report(tmp_path: Path) -> None:
    db, out = tmp_path / "revops.duckdb", tmp_path / "out"
    world = clean_world()
    row(world, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)
    with duckdb.connect(str(db)) as con:
        reconcile_world(world, con=con)
    result = _materialize(db, detected_at="2025-06-28T12:00:00+00:00")
    assert result.success
    meta = _meta(result, "reconciliation__drift_exceptions")
    assert meta["new"] == 1
    assert meta["by_type"] == {"invoice_amount_mismatch": 1}
    assert meta["at_stake"].startswith("1.00 USD")
    assert meta["at_stake_usd_minor"] == 100
    assert "invoice_amount_mismatch" in meta["top_10"]
    assert Path(meta["csv"]).is_absolute() and Path(meta["parquet"]).is_file()
    assert pd.read_csv(out / "drift_exceptions.csv")["drift_type"].tolist() == [
        "invoice_amount_mismatch"
    ]
    report = _meta(result, "reconciliation__report")
    assert Path(report["path"]).is_absolute() and report["url"].startswith("file:///")
    assert "invoice_amount_mismatch" in (out / "report.html").read_text()

    metrics = _meta(result, "reconciliation__metrics")
    assert metrics["open_exceptions_by_severity"] == {"critical": 1}
    assert metrics["money_at_stake"] == {"USD": "1.00 USD"}
    assert metrics["money_at_stake_usd"] == "1.00 USD"
    assert all(len(str(v)) < 400 for v in metrics.values())

    # A critical finding open: the ERROR check fails with a sample; no high one: WARN passes.
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["no_critical_open"].passed
    assert checks["no_critical_open"].severity == dg.AssetCheckSeverity.ERROR
    assert "invoice_amount_mismatch" in checks["no_critical_open"].metadata["sample"].value
    assert "1.00 USD" in checks["no_critical_open"].metadata["sample"].value
    assert checks["no_high_open"].passed
    assert checks["no_high_open"].severity == dg.AssetCheckSeverity.WARN


def test_exceptions_age_with_the_as_of_date(tmp_path: Path) -> None:
    db = tmp_path / "revops.duckdb"
    world = clean_world()
    row(world, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)
    with duckdb.connect(str(db)) as con:
        reconcile_world(world, con=con)
    for day in ("2025-06-01", "2025-06-11"):
        assert _materialize(db, as_of=day).success
    with duckdb.connect(str(db), read_only=True) as con:
        [(first, last)] = con.execute(
            "SELECT first_detected_at, last_detected_at FROM reconciliation.drift_exceptions"
        ).fetchall()
        aging = dict(
            con.execute(
                "SELECT dimension, value FROM reconciliation.metrics_history "
                "WHERE metric = 'open_exceptions_by_age' AND value > 0 ORDER BY run_at"
            ).fetchall()
        )
    assert (last - first).days == 10
    assert aging == {"0-1": 1.0, "8-30": 1.0}
