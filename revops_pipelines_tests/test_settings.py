import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.settings import Settings


def test_defaults_live_under_data_dir():
    settings = Settings.from_env({"REVOPS_DATA_DIR": "elsewhere"})
    assert settings.duckdb_path == Path("elsewhere/revops.duckdb")
    assert settings.ledger_url == "sqlite:///elsewhere/ledger.sqlite"


def test_tolerances_are_per_currency_in_minor_units():
    settings = Settings.from_env({"REVOPS_TOLERANCE_MINOR": "usd=2, JPY=0"})
    assert settings.tolerance_for("USD") == 2
    assert settings.tolerance_for("jpy") == 0
    assert settings.tolerance_for("EUR") == 0


def test_bad_tolerance_names_the_variable():
    with pytest.raises(ValueError, match="REVOPS_TOLERANCE_MINOR"):
        Settings.from_env({"REVOPS_TOLERANCE_MINOR": "USD=one"})


def test_a_bad_value_names_its_variable():
    with pytest.raises(ValueError, match="REVOPS_EXTRACT_WORKERS='many'"):
        Settings.from_env({"REVOPS_EXTRACT_WORKERS": "many"})


def test_the_resource_carries_every_setting_and_keeps_secrets_in_the_environment(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("REVOPS_ERP_TOKEN", "token-from-the-environment")
    monkeypatch.setenv("REVOPS_CRM_RATE_LIMIT", "7")
    resource = RevopsSettings.from_env()
    seen = {}

    @dg.asset(required_resource_keys={"settings", "duckdb"})
    def probe(context: dg.AssetExecutionContext) -> None:
        seen["run"] = context.resources.settings.get()
        seen["duckdb"] = context.resources.duckdb.path

    resources = build_resources(resource)
    job = dg.Definitions(
        assets=[probe], resources=resources
    ).resolve_implicit_global_asset_job_def()
    shown = (
        job.run_config_schema.config_type.fields["resources"]
        .config_type.fields["settings"]
        .config_type.fields["config"]
        .default_value
    )
    # The launchpad shows every setting, a secret only by the name of its variable.
    assert set(shown) == {f.name for f in dataclasses.fields(Settings)}
    assert shown["crm_rate_limit"] == 7.0 and shown["erp_token"] == {"env": "REVOPS_ERP_TOKEN"}
    assert "token-from-the-environment" not in str(shown)

    with dg.DagsterInstance.ephemeral() as instance:
        run = dg.materialize([probe], resources=resources, instance=instance)
        logged = [entry.user_message for entry in instance.all_logs(run.run_id)]
    assert run.success and seen["run"] == Settings.from_env()
    # The run's log names the values the run used, a secret masked.
    [line] = [m for m in logged if m.startswith("settings of this run")]
    assert "'erp_token': '***'" in line and "'crm_rate_limit': 7.0" in line
    assert "token-from-the-environment" not in line
    # The launchpad starts from what it shows; a run's config changes a setting for that run,
    # the DuckDB file it writes included.
    other = {**shown, "as_of": "2025-01-31", "duckdb_path": str(tmp_path / "other.duckdb")}
    changed = {"resources": {"settings": {"config": other}}}
    assert dg.materialize([probe], resources=resources, run_config=changed).success
    assert seen["run"].as_of == "2025-01-31"
    assert seen["run"].erp_token == "token-from-the-environment"
    assert seen["duckdb"] == str(tmp_path / "other.duckdb")
