"""Corrections in Dagster: plan → (approval over the cap) → push → re-verify.

The plan is an asset built after reconciliation, with a blocking blast-radius check; a
sensor launches `push_corrections` once per new plan with pending actions (run key = plan
id); when a push succeeds, a second sensor runs the reconciliation again, which re-reads
the touched records, so the UI shows the chain plan → push → re-verify.
"""

import dataclasses

import dagster as dg

from revops_pipelines.corrections.planner import blast_radius, build_plan, target_counts
from revops_pipelines.corrections.policy import load_policy
from revops_pipelines.corrections.run import (
    CapExceeded,
    check_cap,
    load_actions,
    preview,
    push_actions,
    store_plan,
)
from revops_pipelines.defs.schedules import WRITES_TO_SOURCES, reconcile_job
from revops_pipelines.ledger import Ledger
from revops_pipelines.settings import Settings

GROUP = "corrections"
PLAN_KEY = dg.AssetKey(["corrections", "correction_plan"])
PUSH_KEY = dg.AssetKey(["corrections", "push"])
EXCEPTIONS_KEY = dg.AssetKey(["reconciliation", "drift_exceptions"])
PLAN_TAG = "revops/plan_id"
APPROVE_TAG = "revops/approve"


@dg.asset(
    key=PLAN_KEY,
    deps=[EXCEPTIONS_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb"},
    kinds={"duckdb"},
    check_specs=[dg.AssetCheckSpec("blast_radius", asset=PLAN_KEY, blocking=True)],
)
def correction_plan(context: dg.AssetExecutionContext):
    """The writes that remove the open auto findings, with each field's before → after."""
    settings = Settings.from_env()
    policy = load_policy()
    with context.resources.duckdb.connect() as con:
        plan = build_plan(con, policy)
        store_plan(con, plan)
    with Ledger(settings.ledger_url) as ledger:
        outcomes = ledger.outcomes(a.idempotency_key for a in plan.actions)
        approved = ledger.is_approved(plan.plan_id)
    pending = sum(outcomes.get(a.idempotency_key) != "applied" for a in plan.actions)
    by_target: dict[str, int] = {}
    for action in plan.actions:
        name = f"{action.target}/{action.operation}/{action.record_type}"
        by_target[name] = by_target.get(name, 0) + 1
    yield dg.MaterializeResult(
        metadata={
            "plan_id": dg.MetadataValue.text(plan.plan_id),
            "actions": dg.MetadataValue.int(len(plan.actions)),
            "pending": dg.MetadataValue.int(pending),
            "held_for_review": dg.MetadataValue.int(len(plan.held)),
            "by_target": dg.MetadataValue.json(by_target),
            "money_at_stake_minor": dg.MetadataValue.json(plan.money_minor),
            "blast_radius": dg.MetadataValue.json(plan.radius),
            "preview": dg.MetadataValue.md(preview(plan)),
        }
    )
    yield dg.AssetCheckResult(
        check_name="blast_radius",
        passed=not plan.over_cap or approved,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "within the cap"
            if not plan.over_cap
            else ("approved" if approved else f"over the cap: {'; '.join(plan.over_cap)}")
        ),
        metadata={"plan_id": plan.plan_id, "over_cap": plan.over_cap, "approved": approved},
    )


@dg.asset(
    key=PUSH_KEY,
    deps=[PLAN_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb", "crm", "billing", "erp"},
    tags={WRITES_TO_SOURCES: "true"},
)
def push(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Sends the plan; over the cap only with an approval (ledger or the approve run tag)."""
    resources = context.resources
    settings = dataclasses.replace(
        Settings.from_env(),
        crm_url=resources.crm.url,
        crm_client_id=resources.crm.client_id,
        crm_client_secret=resources.crm.client_secret,
        billing_url=resources.billing.url,
        billing_api_key=resources.billing.api_key,
        erp_url=resources.erp.url,
        erp_token=resources.erp.token,
    )
    policy = load_policy()
    tags = context.run.tags
    with context.resources.duckdb.connect(read_only=True) as con:
        plan_id = (
            tags.get(PLAN_TAG)
            or con.execute(
                "SELECT plan_id FROM corrections.correction_plan ORDER BY planned_at DESC LIMIT 1"
            ).fetchone()[0]
        )
        actions = load_actions(con, plan_id)
        over = _over_cap(con, actions, policy)
    with Ledger(settings.ledger_url) as ledger:
        if tags.get(APPROVE_TAG) == "true":
            ledger.approve(plan_id, by=f"run {context.run_id}")
        try:
            check_cap(plan_id, over, ledger)
        except CapExceeded as refused:
            raise dg.Failure(str(refused)) from None
        summary = push_actions(settings, policy, ledger, plan_id, actions)
    context.log.info(summary.line())
    if not summary.complete:
        context.log.warning("some corrections are left for a later push or for review")
    return dg.MaterializeResult(
        metadata={
            "plan_id": dg.MetadataValue.text(plan_id),
            **{name: dg.MetadataValue.int(count) for name, count in summary.counts.items()},
            "by_target": dg.MetadataValue.json(
                {target: dict(counts) for target, counts in summary.by_target.items()}
            ),
        }
    )


def _over_cap(con, actions: list[dict], policy) -> list[str]:
    """The cap, checked again from the stored plan: a push never trusts the planning run."""
    writes = [(a["target"], a["record_type"]) for a in actions]
    return blast_radius(writes, target_counts(con), policy)[1]


push_corrections = dg.define_asset_job(
    "push_corrections",
    selection=dg.AssetSelection.assets(PUSH_KEY),
    description="Sends one correction plan to the CRM, billing and the ERP.",
)


@dg.sensor(job=push_corrections, minimum_interval_seconds=30)
def new_correction_plan(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One push run per new plan that has pending actions; the cursor is the event seen last."""
    records = context.instance.fetch_materializations(PLAN_KEY, limit=1).records
    event = records[0] if records else None
    if event is None or str(event.storage_id) == context.cursor:
        return dg.SensorResult(skip_reason="no new correction plan")
    materialization = event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    plan_id = metadata.get("plan_id")
    pending = metadata.get("pending")
    requests = []
    if plan_id is not None and pending is not None and pending.value > 0:
        requests.append(
            dg.RunRequest(run_key=str(plan_id.value), tags={PLAN_TAG: str(plan_id.value)})
        )
    return dg.SensorResult(run_requests=requests, cursor=str(event.storage_id))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[push_corrections],
    request_job=reconcile_job,
)
def reverify_after_push(context: dg.RunStatusSensorContext):
    """Re-reads what the push touched and reconciles again: corrected findings resolve."""
    plan_id = context.dagster_run.tags.get(PLAN_TAG, context.dagster_run.run_id)
    return dg.RunRequest(run_key=f"reverify-{plan_id}", tags={"revops/reverify_plan": plan_id})
