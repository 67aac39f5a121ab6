"""Planning and pushing from the settings: the one path the CLI and the Dagster job share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from revops_pipelines.clients import client_from_settings
from revops_pipelines.corrections.planner import Plan, plan_rows
from revops_pipelines.corrections.policy import Policy
from revops_pipelines.corrections.pusher import Progress, Pusher, PushSummary
from revops_pipelines.corrections.targets import BillingTarget, CrmTarget, ErpTarget
from revops_pipelines.ledger import Ledger
from revops_pipelines.settings import Settings

PLAN_TABLE = "corrections.correction_plan"
HELD_TABLE = "corrections.held_findings"

_PLAN_DDL = f"""
CREATE TABLE IF NOT EXISTS {PLAN_TABLE} (
    plan_id VARCHAR NOT NULL,
    action_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    prerequisites VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    operation VARCHAR NOT NULL,
    record_type VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    target_id VARCHAR,
    payload VARCHAR NOT NULL,
    idempotency_key VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    amount_minor BIGINT,
    currency VARCHAR,
    changes VARCHAR NOT NULL,
    planned_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (plan_id, action_id)
)
"""
_HELD_DDL = f"""
CREATE TABLE IF NOT EXISTS {HELD_TABLE} (
    plan_id VARCHAR NOT NULL,
    exception_id VARCHAR NOT NULL,
    drift_type VARCHAR,
    reason VARCHAR NOT NULL
)
"""
PLAN_COLUMNS = (
    "plan_id", "action_id", "seq", "prerequisites", "target", "operation", "record_type",
    "external_id", "target_id", "payload", "idempotency_key", "reason", "amount_minor",
    "currency", "changes", "planned_at",
)  # fmt: skip


class CapExceeded(Exception):
    """The plan is above the blast-radius cap and nobody approved it."""


def store_plan(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """Keep the plan in `corrections.correction_plan` (a plan id is written once)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS corrections")
    con.execute(_PLAN_DDL)
    con.execute(_HELD_DDL)
    if con.execute(f"SELECT 1 FROM {PLAN_TABLE} WHERE plan_id = ?", [plan.plan_id]).fetchall():
        return
    rows = plan_rows(plan)
    if rows:
        placeholders = ", ".join("?" for _ in PLAN_COLUMNS)
        con.executemany(
            f"INSERT INTO {PLAN_TABLE} ({', '.join(PLAN_COLUMNS)}) VALUES ({placeholders})",
            [[row[c] for c in PLAN_COLUMNS] for row in rows],
        )
    if plan.held:
        con.executemany(
            f"INSERT INTO {HELD_TABLE} VALUES (?, ?, ?, ?)",
            [[plan.plan_id, h.exception_id, h.drift_type, h.reason] for h in plan.held],
        )


def load_actions(con: duckdb.DuckDBPyConnection, plan_id: str) -> list[dict[str, Any]]:
    cursor = con.execute(
        f"SELECT {', '.join(PLAN_COLUMNS)} FROM {PLAN_TABLE} WHERE plan_id = ? ORDER BY seq",
        [plan_id],
    )
    return [as_action(dict(zip(PLAN_COLUMNS, row, strict=True))) for row in cursor.fetchall()]


def as_action(row: dict[str, Any]) -> dict[str, Any]:
    """A plan row as the pusher takes it (prerequisites as a list)."""
    prerequisites = row.get("prerequisites") or "[]"
    if isinstance(prerequisites, str):
        prerequisites = json.loads(prerequisites)
    return {**row, "prerequisites": list(prerequisites)}


@contextmanager
def targets_from(settings: Settings, policy: Policy) -> Iterator[dict[str, Any]]:
    """Writers for the three systems; each makes one attempt per call (the pusher retries) and
    holds at most the target's concurrency limit of requests in flight."""
    erp = policy.targets["erp"]
    billing = policy.targets["billing"]
    crm = policy.targets["crm"]
    writers = {
        "erp": client_from_settings(
            settings,
            "erp",
            writer=True,
            rate_limit=erp.rate_per_s,
            max_attempts=1,
            max_concurrency=erp.concurrency,
            workers=erp.concurrency,
        ),
        "billing": client_from_settings(
            settings,
            "billing",
            writer=True,
            rate_limit=billing.rate_per_s,
            max_attempts=1,
            max_concurrency=billing.concurrency,
            workers=billing.concurrency,
        ),
        "crm": client_from_settings(
            settings, "crm", writer=True, rate_limit=crm.rate_per_s, max_attempts=1
        ),
    }
    try:
        yield {
            "erp": ErpTarget(writers["erp"]),
            "billing": BillingTarget(writers["billing"]),
            "crm": CrmTarget(writers["crm"], max_allowance_share=crm.max_allowance_share),
        }
    finally:
        for writer in writers.values():
            writer.close()


def check_cap(plan_id: str, over_cap: list[str], ledger: Ledger) -> None:
    if over_cap and not ledger.is_approved(plan_id):
        raise CapExceeded(
            f"plan {plan_id} is over the blast-radius cap and not approved: "
            + "; ".join(over_cap)
            + f". Approve it with `revops corrections approve {plan_id}` or push --approve."
        )


def push_actions(
    settings: Settings,
    policy: Policy,
    ledger: Ledger,
    plan_id: str,
    actions: list[dict[str, Any]],
    *,
    progress: bool = False,
) -> PushSummary:
    with targets_from(settings, policy) as targets:
        pusher = Pusher(
            ledger, targets, policy, progress=Progress(len(actions)) if progress else None
        )
        return pusher.push(plan_id, actions)


def replay(
    settings: Settings,
    policy: Policy,
    ledger: Ledger,
    ids: list[int] | None,
    *,
    progress: bool = False,
) -> PushSummary:
    """Send chosen dead letters again with their own idempotency keys."""
    letters = ledger.reopen_dead_letters(ids)
    actions = [
        {
            "plan_id": letter["plan_id"],
            "action_id": letter["action_id"],
            "seq": n,
            "prerequisites": [],
            "target": letter["target"],
            "operation": letter["operation"],
            "record_type": letter["record_type"],
            "external_id": letter["external_id"],
            "target_id": letter["target_id"],
            "payload": letter["payload"],
            "idempotency_key": letter["idempotency_key"],
        }
        for n, letter in enumerate(letters, start=1)
    ]
    return push_actions(settings, policy, ledger, "replay", actions, progress=progress)


def preview(plan: Plan, *, limit: int = 20) -> str:
    """The first actions as a markdown table: what each writes, before → after."""
    lines = [
        "| # | target | operation | record | external id | change (before → after) |",
        "|---|---|---|---|---|---|",
    ]
    for action in plan.actions[:limit]:
        changes = "; ".join(
            f"{c.field}: {_short(c.before)} → {_short(c.after)}" for c in action.changes[:4]
        )
        if len(action.changes) > 4:
            changes += f"; … {len(action.changes) - 4} more"
        lines.append(
            f"| {action.seq} | {action.target} | {action.operation} | {action.record_type} | "
            f"{action.external_id} | {changes} |"
        )
    if len(plan.actions) > limit:
        lines.append(f"| … | {len(plan.actions) - limit} more actions | | | | |")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = "∅" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "…"
