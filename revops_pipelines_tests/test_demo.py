"""`revops demo` end to end, as a newcomer runs it: generated drift is found, and only it."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.load_target import WorkspaceFileTarget

REPO = Path(__file__).resolve().parents[1]

ID_COLUMNS = ("crm_id", "billing_id", "erp_id", "field", "expected")


def _revops(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOPS_")}
    env |= {"REVOPS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster_home")}
    return subprocess.run(
        [sys.executable, "-m", "revops_pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _run_demo(data_dir: Path) -> subprocess.CompletedProcess:
    return _revops(data_dir, "demo", "--customers", "60", "--months", "3")


def _matches(truth: dict, finding: dict) -> bool:
    return truth["drift_type"] == finding["drift_type"] and all(
        finding[column] == truth[column] for column in ID_COLUMNS if truth.get(column)
    )


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    first = _run_demo(data_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    exported = data_dir / "output" / "drift_exceptions.csv"
    first_rows = list(csv.DictReader(exported.open()))
    second = _run_demo(data_dir)
    assert second.returncode == 0, second.stdout + second.stderr
    second_rows = list(csv.DictReader(exported.open()))
    return data_dir, first, first_rows, second_rows


def test_demo_prints_the_servers_and_writes_the_report(demo_runs):
    data_dir, first, rows, _ = demo_runs
    lines = first.stdout.splitlines()
    open_rows = [row for row in rows if row["status"] == "open"]
    review = sum(row["action"] == "review" for row in open_rows)
    summary = next(line for line in lines if line.startswith("open exceptions: "))
    assert summary.startswith(f"open exceptions: {len(open_rows)} (")
    assert "; at stake: " in summary and " USD; " in summary
    assert summary.endswith(f"need review: {review}")
    for system in ("crm", "billing", "erp"):
        served = [line for line in lines if line.startswith(f"{system}=http://127.0.0.1:")]
        assert len(served) == 1 and "records)" in served[0]
    report = (data_dir / "output" / "report.html").read_text()
    assert "<svg" in report and "<script src" not in report
    assert (data_dir / "output" / "drift_exceptions.parquet").stat().st_size > 0


def test_every_injected_drift_is_found_and_nothing_else(demo_runs):
    data_dir, _, rows, _ = demo_runs
    truth = [json.loads(line) for line in (data_dir / "sandbox_state" / "truth.jsonl").open()]
    open_rows = [row for row in rows if row["status"] == "open"]
    assert len({t["drift_type"] for t in truth}) == 21
    missed = [t for t in truth if not any(_matches(t, row) for row in open_rows)]
    extra = [row for row in open_rows if not any(_matches(t, row) for t in truth)]
    assert missed == [] and extra == []


def test_a_second_run_keeps_each_exception_and_its_first_detection(demo_runs):
    _, _, first_rows, second_rows = demo_runs
    before = {row["exception_id"]: row["first_detected_at"] for row in first_rows}
    after = {row["exception_id"]: row for row in second_rows}
    assert before.keys() == after.keys()
    for exception_id, first_detected_at in before.items():
        # Detection runs on the data's clock: the end of the manifest's as-of day.
        assert after[exception_id]["first_detected_at"] == first_detected_at
        assert first_detected_at.startswith("2026-10-31 23:59:59")


def test_the_demo_runs_are_listed_under_their_job_in_the_workspace(demo_runs):
    data_dir = demo_runs[0]
    instance = dg.DagsterInstance.from_config(str(data_dir / "dagster_home"))
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="reconcile_job"))
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    [location] = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")]).create_origins()
    for run in runs:
        repository = run.remote_job_origin.repository_origin
        assert repository.code_location_origin == location
        assert repository.repository_name == "__repository__"
    # The UI lists a job's runs by this label, and re-executes against this snapshot.
    label = {REPOSITORY_LABEL_TAG: "__repository__@revops_pipelines"}
    assert len(instance.get_runs(filters=dg.RunsFilter(job_name="reconcile_job", tags=label))) == 2
    assert {r.job_snapshot_id for r in runs} == {_snapshot_id_as_dev_loads_it(data_dir)}


def _snapshot_id_as_dev_loads_it(data_dir: Path) -> str:
    """The job's snapshot id in a code server started by `revops dev` over the sandbox, which
    sets the URLs and the as-of date as the demo did: the settings resource reads them when a
    run starts, so other values (other ports) leave the snapshot as it is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOPS_")}
    env |= {f"REVOPS_{s}_URL": "http://127.0.0.1:1" for s in ("CRM", "BILLING", "ERP")}
    env |= {"REVOPS_DATA_DIR": str(data_dir), "REVOPS_AS_OF": "2000-01-01"}
    code = (
        "from revops_pipelines.definitions import definitions; "
        "print(definitions().resolve_job_def('reconcile_job').get_job_snapshot_id())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_trace_shows_the_lifecycle_and_open_findings_of_an_id(demo_runs):
    data_dir, _, _, rows = demo_runs
    finding = next(row for row in rows if row["drift_type"] == "invoice_amount_mismatch")
    traced = _revops(data_dir, "trace", finding["billing_id"])
    assert traced.returncode == 0, traced.stderr
    assert f"lifecycle {finding['correlation_id']}" in traced.stdout
    assert "invoice_generated" in traced.stdout and "erp_posted" in traced.stdout
    assert "invoice_amount_mismatch" in traced.stdout

    unknown = _revops(data_dir, "trace", "in_does_not_exist")
    assert unknown.returncode == 1 and "in_does_not_exist" in unknown.stderr
