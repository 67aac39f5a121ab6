"""The project's Python log lines reach a run's own log (the UI's run view) on both instances."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from revops_pipelines.defs.extract import extract
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.demo import LOCAL_INSTANCE_YAML
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_both_instances_capture_the_project_loggers():
    for text in (LOCAL_INSTANCE_YAML, (REPO / "deploy" / "dagster.yaml").read_text()):
        python_logs = yaml.safe_load(text)["python_logs"]
        assert "revops_pipelines" in python_logs["managed_python_loggers"]


def test_a_connector_retry_shows_in_the_run_log(handwritten_state, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    billing = dg.AssetKey(["raw", "billing_customer"])
    # Every other billing request is answered 500 or 503: the client retries and succeeds.
    with (
        running_sandbox(handwritten_state, seed=3, faults="billing.error_rate=0.5") as urls,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        settings = Settings(
            crm_url=urls.crm,
            billing_url=urls.billing,
            erp_url=urls.erp,
            duckdb_path=tmp_path / "revops.duckdb",
            max_attempts=10,
        )
        result = dg.materialize(
            [extract],
            selection=[billing],
            resources=build_resources(RevopsSettings.of(settings)),
            instance=instance,
        )
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    retries = [m for m in messages if "event=retry" in m and "system=billing" in m]
    assert retries, "\n".join(messages)
    # Each stream's counts come along too (INFO).
    assert any("stream=customer" in m and "fetched=" in m for m in messages)
