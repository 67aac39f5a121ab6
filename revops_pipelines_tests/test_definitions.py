"""The graph itself: an accidental change of assets, checks, jobs or schedules fails here."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from revops_pipelines.definitions import definitions
from revops_pipelines.defs.resources import RevopsSettings
from revops_pipelines.schemas import CANONICAL_SCHEMAS
from revops_pipelines.settings import Settings

RAW_STREAMS = {
    "crm": ["account", "contract", "opportunity", "opportunity_line_item", "product"],
    "billing": [
        "credit_note",
        "customer",
        "invoice",
        "invoice_payment",
        "price",
        "product",
        "subscription",
    ],
    "erp": [
        "credit_memo",
        "currency",
        "currency_rate",
        "customer",
        "customer_payment",
        "invoice",
        "item",
        "previous_transaction_link",
        "subsidiary",
        "transaction_line",
    ],
}
CANONICAL = [
    "contract",
    "contract_line",
    "credit_note",
    "customer",
    "customer_xref",
    "invoice",
    "invoice_line",
    "lifecycle_event",
    "payment",
    "product",
    "revenue_event",
    "subscription",
    "subscription_item",
]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return definitions()


@pytest.fixture(scope="module")
def asset_keys(defs) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_all_asset_keys()}


def test_every_source_stream_is_an_asset(asset_keys):
    expected = {
        f"raw/{system}_{stream}" for system, streams in RAW_STREAMS.items() for stream in streams
    }
    assert expected == {key for key in asset_keys if key.startswith("raw/")}


def test_canonical_tables_and_outputs_are_assets(asset_keys):
    assert {f"canonical/{name}" for name in CANONICAL} <= asset_keys
    assert {
        "reconciliation/drift_exceptions",
        "reconciliation/metrics",
        "reconciliation/report",
    } <= asset_keys
    assert "reconciliation/findings" in asset_keys
    assert any(key.startswith("staging/") for key in asset_keys)


def test_every_canonical_table_has_a_blocking_pandera_check(defs):
    graph = defs.resolve_asset_graph()
    blocking = {
        spec.key.asset_key.to_user_string()
        for key in graph.asset_check_keys
        if (spec := graph.get_check_spec(key)).blocking and key.name == "pandera"
    }
    assert {f"canonical/{name}" for name in CANONICAL} <= blocking


def test_every_raw_stream_has_a_quarantine_check(defs):
    graph = defs.resolve_asset_graph()
    quarantined = {
        key.asset_key.to_user_string()
        for key in graph.asset_check_keys
        if key.name == "quarantine_empty"
    }
    assert {key for key in quarantined} == {
        f"raw/{system}_{stream}" for system, streams in RAW_STREAMS.items() for stream in streams
    }


def test_duckdb_writers_share_one_pool(defs):
    graph = defs.resolve_asset_graph()
    pools = {
        node.key.to_user_string(): node.pools
        for node in graph.asset_nodes
        if node.is_materializable
    }
    assert pools and all(found == {"duckdb"} for found in pools.values()), pools


def test_jobs_schedules_and_resources(defs):
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "reconcile_job",
        "full_refresh_job",
        "landing_refresh_job",
    }
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"hourly_reconciliation", "nightly_reconciliation"}
    assert schedules["hourly_reconciliation"].cron_schedule == "0 * * * *"
    assert schedules["nightly_reconciliation"].job_name == "full_refresh_job"
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"landing_zone_sensor", "new_correction_plan"}
    assert sensors["landing_zone_sensor"].job_name == "landing_refresh_job"
    assert set(defs.resources) == {"settings", "duckdb"}


def test_reconciliation_reads_canonical_and_report_comes_last(defs):
    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey(["reconciliation", "report"])).parent_keys
    assert dg.AssetKey(["reconciliation", "drift_exceptions"]) in upstream or any(
        dg.AssetKey(["reconciliation", "drift_exceptions"]) in graph.get(key).parent_keys
        for key in upstream
    )


def test_groups_read_as_layers_and_every_asset_says_what_it_is(defs):
    graph = defs.resolve_asset_graph()
    groups = {node.key.to_user_string(): node.group_name for node in graph.asset_nodes}
    assert set(groups.values()) == {
        "raw",
        "staging",
        "canonical",
        "reconciliation",
        "report",
        "corrections",
    }
    assert groups["reconciliation/report"] == "report" and groups["raw/crm_account"] == "raw"
    for node in graph.asset_nodes:
        description = node.description or ""
        assert description and not description.startswith("SQL model"), node.key


def test_kinds_the_ui_draws(defs):
    graph = defs.resolve_asset_graph()
    kinds = {node.key.to_user_string(): node.kinds for node in graph.asset_nodes}
    assert {"salesforce", "duckdb"} <= kinds["raw/crm_account"]
    assert "stripe" in kinds["raw/billing_invoice"]
    assert "view" in kinds["staging/stg_billing_invoice"]
    assert {"table", "pandera"} <= kinds["canonical/invoice"]
    assert {"parquet", "csv"} <= kinds["reconciliation/drift_exceptions"]
    assert kinds["reconciliation/report"] == {"html"}


def test_corrections_plan_push_and_reverify(defs):
    graph = defs.resolve_asset_graph()
    plan = dg.AssetKey(["corrections", "correction_plan"])
    push = dg.AssetKey(["corrections", "push"])
    assert dg.AssetKey(["reconciliation", "drift_exceptions"]) in graph.get(plan).parent_keys
    assert plan in graph.get(push).parent_keys
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert checks["blast_radius"].blocking and checks["blast_radius"].asset_key == plan
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    # The cap gates the push in the push's run; the reconciliation runs plan without it.
    gate = "corrections__correction_plan_blast_radius"
    assert set(jobs["push_corrections"].graph.node_names()) == {gate, "corrections__push"}
    for name in ("reconcile_job", "full_refresh_job", "landing_refresh_job"):
        nodes = set(jobs[name].graph.node_names())
        assert "corrections__correction_plan" in nodes
        assert "corrections__push" not in nodes and gate not in nodes
    # Only its own job pushes corrections.
    pushing = {name for name, job in jobs.items() if "corrections__push" in job.graph.node_names()}
    assert pushing - {"__ASSET_JOB"} == {"push_corrections"}
    assert {"new_correction_plan", "landing_zone_sensor"} <= {s.name for s in defs.sensors}


def test_a_new_plan_with_pending_actions_launches_one_push(defs):
    sensor = next(s for s in defs.sensors if s.name == "new_correction_plan")
    plan = dg.AssetKey(["corrections", "correction_plan"])
    resources = {"settings": RevopsSettings.of(Settings())}
    with dg.instance_for_test() as instance:
        empty = sensor(dg.build_sensor_context(resources=resources, instance=instance))
        assert not empty.run_requests
        instance.report_runless_asset_event(
            dg.AssetMaterialization(plan, metadata={"plan_id": "p1", "pending": 3})
        )
        first = sensor(dg.build_sensor_context(resources=resources, instance=instance))
        [request] = first.run_requests
        assert request.run_key == "p1" and request.tags["revops/plan_id"] == "p1"
        again = sensor(
            dg.build_sensor_context(resources=resources, instance=instance, cursor=first.cursor)
        )
        assert not again.run_requests and again.cursor is None
        instance.report_runless_asset_event(
            dg.AssetMaterialization(plan, metadata={"plan_id": "p2", "pending": 0})
        )
        done = sensor(
            dg.build_sensor_context(resources=resources, instance=instance, cursor=first.cursor)
        )
        assert not done.run_requests and done.cursor != first.cursor


def test_every_job_runs_its_steps_in_one_process_whatever_the_instance(defs):
    # The UI's "Materialize" runs the implicit asset job, which takes the default executor.
    executors = {job.name: job.executor_def.name for job in defs.resolve_all_job_defs()}
    assert {"__ASSET_JOB", "reconcile_job", "full_refresh_job"} <= set(executors)
    assert set(executors.values()) == {"in_process"}, executors


def test_one_subsettable_extract_step_holds_every_raw_stream(defs):
    raw = [key for key in defs.resolve_all_asset_keys() if key.path[0] == "raw"]
    steps = {defs.resolve_assets_def(key) for key in raw}
    assert [step.node_def.name for step in steps] == ["extract"]
    assert all(step.can_subset for step in steps)


def test_every_asset_has_kinds_owners_code_references_and_its_table(defs):
    graph = defs.resolve_asset_graph()
    for node in graph.asset_nodes:
        key = node.key.to_user_string()
        assert node.kinds and node.owners == ["team:revops"], key
        files = [
            Path(r.file_path) for r in node.metadata["dagster/code_references"].code_references
        ]
        assert files and all(f.is_file() for f in files), key
        assert any(f.suffix == ".py" for f in files), key
        if node.group_name in {"staging", "canonical"} or "sql" in node.kinds:
            assert f"{node.key.path[-1]}.sql" in {f.name for f in files}, key
        if key == "reconciliation/report":
            continue  # a file, not a table: each materialization names its path
        table = node.metadata["dagster/table_name"]
        assert table == ".".join(node.key.path) or key in {
            "reconciliation/metrics",
            "corrections/push",
        }, (key, table)
    kinds = {node.key.to_user_string(): node.kinds for node in graph.asset_nodes}
    assert kinds["corrections/push"] == {"salesforce", "stripe", "netsuite"}


def test_canonical_tables_show_the_columns_of_their_pandera_model(defs):
    graph = defs.resolve_asset_graph()
    for name in CANONICAL:
        node = graph.get(dg.AssetKey(["canonical", name]))
        columns = {c.name: c for c in node.metadata["dagster/column_schema"].columns}
        model = CANONICAL_SCHEMAS[name].to_schema()
        assert set(columns) == set(model.columns), name
        for column, spec in model.columns.items():
            assert columns[column].constraints.nullable == spec.nullable, (name, column)
    invoice = graph.get(dg.AssetKey(["canonical", "invoice"])).metadata["dagster/column_schema"]
    status = next(c for c in invoice.columns if c.name == "status")
    assert any("paid" in text for text in status.constraints.other)


def test_reconciliation_assets_say_how_stale_the_exceptions_may_be(defs):
    # Stale after a missed hourly run, failed after a day without one.
    policy = dg.FreshnessPolicy.time_window(
        warn_window=timedelta(hours=2), fail_window=timedelta(hours=26)
    )
    graph = defs.resolve_asset_graph()
    for node in graph.asset_nodes:
        expected = policy if node.group_name in {"reconciliation", "report"} else None
        assert node.freshness_policy == expected, node.key
