"""A Dagster user's first command, on a fresh, empty `DAGSTER_HOME` (no `dagster.yaml`):
`dagster asset materialize` of everything works, and works again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.serve import running_sandbox


def test_materialize_everything_twice_on_an_empty_dagster_home(tmp_path: Path) -> None:
    state = tmp_path / "state"
    generate_state(state, customers=20, months=2, seed=3, drift_rate=0.1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    outcomes = []
    with running_sandbox(state, seed=1) as urls:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOPS_", "DAGSTER_"))}
        env |= {
            "DAGSTER_HOME": str(home),
            "REVOPS_DATA_DIR": str(tmp_path / "data"),
            "REVOPS_AS_OF": json.loads((state / "manifest.json").read_text())["as_of"],
            **{f"REVOPS_{s.upper()}_URL": urls.for_system(s) for s in ("crm", "billing", "erp")},
        }
        command = [sys.executable, "-m", "dagster", "asset", "materialize", "--select", "*",
                   "-m", "revops_pipelines.definitions"]  # fmt: skip
        for _ in range(2):
            outcomes.append(
                subprocess.run(
                    command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
                )
            )
    for done in outcomes:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert not (home / "dagster.yaml").exists()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        from revops_pipelines.definitions import definitions

        every_asset = set(definitions().resolve_all_asset_keys())
        for run in runs:
            records = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            assert {r.event_log_entry.dagster_event.asset_key for r in records} == every_asset
