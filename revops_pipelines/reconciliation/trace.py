"""`revops trace <id>`: one lifecycle across the three systems, with its open findings.

Any CRM, billing or ERP id, or a correlation id, leads to the lifecycle(s) it belongs to.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from revops_pipelines.reconciliation.catalog import relation_exists
from revops_pipelines.reconciliation.exceptions import EXCEPTIONS_TABLE
from revops_pipelines.reconciliation.money import Rates, currency_exponents
from revops_pipelines.reconciliation.reading import exception_rows
from revops_pipelines.schemas.canonical import LIFECYCLE_STAGES


class TraceNotFoundError(LookupError):
    """No lifecycle, record or finding carries this id."""

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"no CRM, billing or ERP record, lifecycle or finding has id {record_id!r}; "
            "check the id, or run the reconciliation first"
        )
        self.record_id = record_id


def correlation_ids(con: duckdb.DuckDBPyConnection, any_id: str) -> list[str]:
    """The lifecycles an id belongs to: itself if it is one, else through records and findings."""
    found: set[str] = set()
    if relation_exists(con, "canonical", "lifecycle_event"):
        found |= {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT correlation_id FROM canonical.lifecycle_event "
                "WHERE correlation_id = ? OR record_id = ?",
                [any_id, any_id],
            ).fetchall()
        }
    if relation_exists(con, "canonical", "lifecycle_event") and relation_exists(
        con, "canonical", "payment"
    ):
        # An ERP record reaches its lifecycle through the billing id it carries.
        rows = con.execute(
            """
            SELECT l.correlation_id
            FROM canonical.invoice AS i
            JOIN canonical.lifecycle_event AS l ON l.record_id = i.billing_invoice_id
            WHERE i.source_id = ? AND i.source_system = 'erp'
            UNION
            SELECT l.correlation_id
            FROM canonical.payment AS p
            JOIN canonical.lifecycle_event AS l ON l.record_id = p.billing_invoice_id
            WHERE p.source_id = ? AND p.source_system = 'erp'
            """,
            [any_id, any_id],
        ).fetchall()
        found |= {r[0] for r in rows}
    if relation_exists(con, "reconciliation", "drift_exceptions"):
        found |= {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT correlation_id FROM {EXCEPTIONS_TABLE} "
                "WHERE ? IN (exception_id, correlation_id, crm_id, billing_id, erp_id)",
                [any_id],
            ).fetchall()
            if r[0] is not None
        }
    return sorted(found)


def trace(con: duckdb.DuckDBPyConnection, any_id: str, *, as_of: datetime | None = None) -> str:
    """The lifecycle(s) of `any_id` as text: stages with time and system, then open findings."""
    any_id = any_id.strip()
    as_of = as_of or datetime.now(UTC)
    money_text = Rates("", exponents=currency_exponents(con)).text
    ids = correlation_ids(con, any_id)
    if not ids:
        raise TraceNotFoundError(any_id)
    lines: list[str] = []
    for correlation_id in ids:
        lines.append(f"lifecycle {correlation_id}")
        if relation_exists(con, "canonical", "lifecycle_event"):
            events = con.execute(
                """
                SELECT occurred_at, stage, system, record_id FROM canonical.lifecycle_event
                WHERE correlation_id = ?
                ORDER BY occurred_at NULLS LAST, list_position(?, stage), record_id
                """,
                [correlation_id, list(LIFECYCLE_STAGES)],
            ).fetchall()
            for occurred_at, stage, system, record_id in events:
                when = occurred_at.strftime("%Y-%m-%d %H:%M:%SZ") if occurred_at else "?"
                lines.append(f"  {when}  {stage:<24} {system:<8} {record_id}")
            if not events:
                lines.append("  (no lifecycle events)")
        findings = []
        if relation_exists(con, "reconciliation", "drift_exceptions"):
            findings = exception_rows(
                con, as_of=as_of, where="correlation_id = ?", params=[correlation_id]
            )
        lines.append(f"  open findings: {len(findings)}")
        for f in findings:
            ids_text = " ".join(
                f"{name}={f[column]}"
                for name, column in (
                    ("crm", "crm_id"),
                    ("billing", "billing_id"),
                    ("erp", "erp_id"),
                )
                if f[column]
            )
            detail = (
                f" {f['field']}: expected {f['expected']!r}, actual {f['actual']!r}"
                if f["field"]
                else ""
            )
            money = (
                f" ({money_text(f['at_stake_minor'], f['currency'])})"
                if f["at_stake_minor"] is not None
                else ""
            )
            since = f["first_detected_at"].strftime("%Y-%m-%d")
            lines.append(
                f"  - {f['drift_type']} [{f['severity']}, {f['status']} since {since}] "
                f"{ids_text}{detail}{money}"
            )
            lines.append(f"      {f['suggested_action']}")
    return "\n".join(lines) + "\n"
