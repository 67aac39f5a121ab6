"""The corrections chain in Dagster on a test instance: the reconciliation plans, the sensor
launches one push per plan, the blocking cap check stops the push until approved (by the CLI
or the run tag), and the landing-zone sensor re-reads what a successful push wrote."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from revops_pipelines import cli
from revops_pipelines.corrections.policy import default_path
from revops_pipelines.defs.corrections import (
    APPROVE_TAG,
    PLAN_TAG,
    correction_plan,
    new_correction_plan,
    plan_within_blast_radius,
    push,
    push_corrections,
)
from revops_pipelines.defs.landing import REVERIFY_TAG, build_landing_sensor
from revops_pipelines.defs.reconciliation import drift_exceptions
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.defs.schedules import PUSH_GATE, reconcile_job
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.settings import Settings
from revops_pipelines_tests.canonical_rows import clean_world, reconcile_world
from revops_pipelines_tests.corrections_support import (
    ACME_ACCOUNT,
    ACME_BILLING,
    external_id_counts,
    journal_writes,
)

# The hand-written sandbox ERP's Acme customer: its invoice in_I and payment inpay_P are
# missing there, so the plan upserts them (two actions, over a cap of one).
NAMES = {"cus_A": ACME_BILLING, "001A": ACME_ACCOUNT, "1234": "1234"}


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return NAMES.get(value, value) if isinstance(value, str) else value


def _analytical_store(path: Path) -> None:
    world = _renamed(clean_world())
    world["invoice"] = [r for r in world["invoice"] if r["source_system"] != "erp"]
    world["payment"] = [r for r in world["payment"] if r["source_system"] != "erp"]
    with duckdb.connect(str(path)) as con:
        findings = reconcile_world(world, con=con)
        assert [f["drift_type"] for f in findings] == ["invoice_missing_in_erp"]
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.erp_currency (id VARCHAR, payload JSON, deleted BOOLEAN)")
        con.execute("""INSERT INTO raw.erp_currency VALUES ('1', '{"symbol": "USD"}', false)""")


def _definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[drift_exceptions, correction_plan, push],
        asset_checks=[plan_within_blast_radius],
        jobs=[reconcile_job, push_corrections],
        sensors=[new_correction_plan],
        resources=build_resources(RevopsSettings.of(settings)),
    )


@pytest.fixture
def chain(handwritten_state: Path, tmp_path: Path, monkeypatch):
    strict = tmp_path / "policy.toml"
    strict.write_text(default_path().read_text().replace("max_actions = 1000", "max_actions = 1"))
    # The CLI's approval goes to the same ledger the assets read.
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("REVOPS_LEDGER_URL", ledger_url)
    _analytical_store(tmp_path / "revops.duckdb")
    with running_sandbox(handwritten_state) as urls, dg.instance_for_test() as instance:
        settings = Settings(
            data_dir=tmp_path,
            duckdb_path=tmp_path / "revops.duckdb",
            ledger_url=ledger_url,
            output_dir=tmp_path / "out",
            policy_path=strict,
            crm_url=urls.crm,
            billing_url=urls.billing,
            erp_url=urls.erp,
        )
        yield _definitions(settings), instance, handwritten_state, settings


def _plan_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("corrections__correction_plan")
    return {k: v.value for k, v in materialization.metadata.items()}


def _gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_check_key == PUSH_GATE
    return evaluation


def test_plan_sensor_blocking_cap_check_approval_and_reverify(chain, tmp_path):
    defs, instance, state, settings = chain
    # The reconciliation job (here: findings and plan) plans; over the cap, it still succeeds.
    reconciled = defs.resolve_job_def("reconcile_job").execute_in_process(instance=instance)
    assert reconciled.success
    checked = {e.asset_check_key for e in reconciled.get_asset_check_evaluations()}
    assert checked and PUSH_GATE not in checked
    plan = _plan_metadata(reconciled)
    plan_id = plan["plan_id"]
    assert plan["pending"] == 2 and plan["over_cap"] and plan["approved"] is False

    # The sensor asks for one push of this plan; its cursor moves only through its result.
    sensor = defs.get_sensor_def("new_correction_plan")
    resources = {"settings": RevopsSettings.of(settings)}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    first = sensor(context)
    [request] = first.run_requests
    assert request.run_key == plan_id and request.tags[PLAN_TAG] == plan_id
    assert first.cursor and context.cursor is None
    again = sensor(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
    )
    assert not again.run_requests

    # Over the cap and not approved: the check fails and the push does not start.
    job = defs.resolve_job_def("push_corrections")
    refused = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert not refused.success
    gate = _gate(refused)
    assert not gate.passed and gate.blocking and plan_id in (gate.description or "")
    assert refused.asset_materializations_for_node("corrections__push") == []
    assert not journal_writes(state)

    # Approved by the CLI: the sensor asks once more for the plan's push (a new run key,
    # which Dagster launches once), and that run goes through, writing each record once.
    assert cli.main(["corrections", "approve", plan_id, "--by", "test"]) == 0
    [relaunch] = sensor(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
    ).run_requests
    assert relaunch.run_key == f"{plan_id}-approved" and relaunch.tags[PLAN_TAG] == plan_id
    pushed = job.execute_in_process(instance=instance, tags=request.tags)
    assert pushed.success and _gate(pushed).passed
    [done] = pushed.asset_materializations_for_node("corrections__push")
    assert done.metadata["applied"].value == 2
    counts = external_id_counts(state)
    assert counts["invoice"]["in_I"] == 1 and counts["customerpayment"]["inpay_P"] == 1

    # Approved by the run tag alone (a ledger that knows no approval).
    other = dataclasses.replace(settings, ledger_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    tagged = (
        _definitions(other)
        .resolve_job_def("push_corrections")
        .execute_in_process(instance=instance, tags={**request.tags, APPROVE_TAG: "true"})
    )
    assert tagged.success and _gate(tagged).passed
    assert external_id_counts(state)["invoice"]["in_I"] == 1

    # The landing-zone sensor re-reads, by their change cursors, the streams the pushes wrote
    # (the ERP's invoices and payments, with the transaction lines), once: the refused run
    # materialized nothing, and the cursor moves past the pushes.
    landing = build_landing_sensor()
    first = landing(dg.build_sensor_context(instance=instance, resources=resources))
    [reverify] = first.run_requests
    assert reverify.tags[REVERIFY_TAG] == plan_id
    assert {key.path[1] for key in reverify.asset_selection} == {
        "erp_customer_payment",
        "erp_invoice",
        "erp_previous_transaction_link",
        "erp_transaction_line",
    }
    assert reverify.run_config["ops"]["extract"]["config"]["notified_files"] == {}
    again = landing(
        dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
    )
    assert not again.run_requests
    nodes = set(defs.resolve_job_def("reconcile_job").graph.node_names())
    assert nodes == {"reconciliation__drift_exceptions", "corrections__correction_plan"}, nodes
