"""Corrections in Dagster: plan → (approval over the cap) → push → re-verify.

The plan is an asset built after reconciliation. Its blast-radius check runs in the push job,
ahead of the push, and blocks it: a plan over the cap stops the push until a person approves
it, while the reconciliation that made the plan reads as the success it was. A sensor
launches `push_corrections` once per new plan with pending actions (run key = plan id). The
push names the raw streams it wrote in its metadata; the landing-zone sensor re-reads them
in its next refresh run, together with the webhooks the push caused, so the UI shows the
chain plan → push → re-verify and one run re-verifies both.
"""

import dagster as dg

from revops_pipelines.corrections.planner import blast_radius, build_plan, target_counts
from revops_pipelines.corrections.policy import Policy, load_policy
from revops_pipelines.corrections.run import (
    CapExceeded,
    check_cap,
    load_actions,
    preview,
    push_actions,
    store_plan,
)
from revops_pipelines.defs.resources import SETTINGS, RevopsSettings
from revops_pipelines.defs.schedules import PLAN_KEY, PUSH_GATE, WRITES_TO_SOURCES
from revops_pipelines.ledger import Ledger
from revops_pipelines.raw.refresh import streams_written

GROUP = "corrections"
PUSH_KEY = dg.AssetKey(["corrections", "push"])
EXCEPTIONS_KEY = dg.AssetKey(["reconciliation", "drift_exceptions"])
PLAN_TAG = "revops/plan_id"
SENSOR_INTERVAL_S = SETTINGS.push_sensor_interval_s
APPROVE_TAG = "revops/approve"
# The push's metadata entry naming the raw streams it wrote, for the re-verifying refresh.
WROTE_STREAMS = "wrote_streams"


@dg.asset(
    key=PLAN_KEY,
    deps=[EXCEPTIONS_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb", "settings"},
    kinds={"duckdb", "table"},
    metadata={"dagster/table_name": "corrections.correction_plan"},
)
def correction_plan(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The writes that remove the open auto findings, with each field's before → after."""
    settings = context.resources.settings.get()
    policy = load_policy(settings.policy_path)
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
    return dg.MaterializeResult(
        metadata={
            "plan_id": dg.MetadataValue.text(plan.plan_id),
            "actions": dg.MetadataValue.int(len(plan.actions)),
            "pending": dg.MetadataValue.int(pending),
            "held_for_review": dg.MetadataValue.int(len(plan.held)),
            "by_target": dg.MetadataValue.json(by_target),
            "money_at_stake_minor": dg.MetadataValue.json(plan.money_minor),
            "blast_radius": dg.MetadataValue.json(plan.radius),
            "over_cap": dg.MetadataValue.json(plan.over_cap),
            "approved": dg.MetadataValue.bool(approved),
            "preview": dg.MetadataValue.md(preview(plan)),
        }
    )


def _gate(context, con, ledger: Ledger, policy: Policy) -> tuple[str, list[dict], list[str], bool]:
    """The run's plan (its tag, else the newest), its actions, what of it is over the cap
    (checked again from the stored plan: a push never trusts the planning run), and whether
    it is approved; the run tag revops/approve=true approves it."""
    tags = context.run.tags
    plan_id = (
        tags.get(PLAN_TAG)
        or con.execute(
            "SELECT plan_id FROM corrections.correction_plan ORDER BY planned_at DESC LIMIT 1"
        ).fetchone()[0]
    )
    actions = load_actions(con, plan_id)
    over = _over_cap(con, actions, policy)
    if over and tags.get(APPROVE_TAG) == "true":
        ledger.approve(plan_id, by=f"run {context.run.run_id}")
    return plan_id, actions, over, ledger.is_approved(plan_id)


@dg.asset_check(
    asset=PLAN_KEY,
    name=PUSH_GATE.name,
    blocking=True,
    required_resource_keys={"duckdb", "settings"},
    pool="duckdb",
)
def plan_within_blast_radius(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Within the cap, or approved (`revops corrections approve PLAN_ID` or the run tag
    revops/approve=true); otherwise the push after it in the run does not start."""
    settings = context.resources.settings.get()
    with (
        context.resources.duckdb.connect(read_only=True) as con,
        Ledger(settings.ledger_url) as ledger,
    ):
        plan_id, _, over, approved = _gate(context, con, ledger, load_policy(settings.policy_path))
    if not over:
        description = "within the cap"
    elif approved:
        description = "over the cap, approved"
    else:
        description = (
            f"over the cap: {'; '.join(over)}. Approve with `revops corrections approve "
            f"{plan_id}` (the push sensor then launches it again) or launch the push with the tag "
            f"{APPROVE_TAG}=true"
        )
    return dg.AssetCheckResult(
        passed=not over or approved,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"plan_id": plan_id, "over_cap": over, "approved": approved},
    )


@dg.asset(
    key=PUSH_KEY,
    deps=[PLAN_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb", "settings"},
    tags={WRITES_TO_SOURCES: "true"},
    # It writes to the three systems; each attempt is a row of the ledger's correction log.
    kinds={"salesforce", "stripe", "netsuite"},
    metadata={"dagster/table_name": "correction_log"},
)
def push(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Sends the plan; over the cap only with an approval (ledger or the approve run tag)."""
    settings = context.resources.settings.get()
    policy = load_policy(settings.policy_path)
    with (
        context.resources.duckdb.connect(read_only=True) as con,
        Ledger(settings.ledger_url) as ledger,
    ):
        plan_id, actions, over, _ = _gate(context, con, ledger, policy)
        try:
            check_cap(plan_id, over, ledger)  # also when the push runs without its check
        except CapExceeded as refused:
            raise dg.Failure(str(refused)) from None
        summary = push_actions(settings, policy, ledger, plan_id, actions)
    context.log.info(summary.line())
    if not summary.complete:
        context.log.warning("some corrections are left for a later push or for review")
    wrote = streams_written(
        (a["target"], a["record_type"])
        for a in actions
        if summary.by_target.get(a["target"], {}).get("applied")
    )
    return dg.MaterializeResult(
        metadata={
            "plan_id": dg.MetadataValue.text(plan_id),
            WROTE_STREAMS: dg.MetadataValue.json(wrote),
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
    selection=dg.AssetSelection.assets(PUSH_KEY) | dg.AssetSelection.checks(PUSH_GATE),
    description="Checks one correction plan's blast radius, then sends it to the CRM, "
    "billing and the ERP.",
)


def _approved_after_refusal(instance: dg.DagsterInstance, plan_id: str, ledger_url: str) -> bool:
    """The plan's push was refused (over the cap) and the plan has been approved since."""
    runs = instance.get_runs(
        dg.RunsFilter(job_name=push_corrections.name, tags={PLAN_TAG: plan_id})
    )
    if not runs or any(not r.is_finished or r.is_success for r in runs):
        return False
    with Ledger(ledger_url) as ledger:
        return ledger.is_approved(plan_id)


@dg.sensor(job=push_corrections, minimum_interval_seconds=SENSOR_INTERVAL_S)
def new_correction_plan(
    context: dg.SensorEvaluationContext, settings: RevopsSettings
) -> dg.SensorResult:
    """One push run per new plan that has pending actions; the cursor is the event seen last.
    A plan whose push was refused over the cap is pushed once more when it is approved."""
    records = context.instance.fetch_materializations(PLAN_KEY, limit=1).records
    event = records[0] if records else None
    if event is None:
        return dg.SensorResult(skip_reason="no correction plan")
    materialization = event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    plan_id = metadata.get("plan_id")
    pending = metadata.get("pending")
    if plan_id is None or pending is None or pending.value == 0:
        return dg.SensorResult(skip_reason="no pending correction", cursor=str(event.storage_id))
    plan = str(plan_id.value)
    # A push is short: it leaves the queue before waiting reconciliations, so a correction
    # follows its finding without waiting for them.
    tags = {PLAN_TAG: plan, "dagster/priority": "10"}
    if str(event.storage_id) != context.cursor:
        request = dg.RunRequest(run_key=plan, tags=tags)
    elif (
        metadata.get("over_cap")
        and metadata["over_cap"].value
        and _approved_after_refusal(context.instance, plan, settings.get().ledger_url)
    ):
        # Dagster launches one run per run key: this asks once, however often it is seen.
        request = dg.RunRequest(run_key=f"{plan}-approved", tags=tags)
    else:
        return dg.SensorResult(skip_reason="no new correction plan")
    return dg.SensorResult(run_requests=[request], cursor=str(event.storage_id))
