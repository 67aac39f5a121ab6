"""Row-level quarantine: canonical rows that break their pandera model leave the table.

One odd record must not stop the reconciliation of all the others: the rows a pandera model
refuses move to `canonical.quarantine` with the column, the rule and the value, and the rest
go on. Only when more than a share of a table fails (the mapping is broken, not one record) is
the check failed, which stops what reads the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from revops_pipelines.schemas.canonical import CANONICAL_SCHEMAS
from revops_pipelines.schemas.validate import SAMPLE_ROWS, UnknownTableError, markdown_table
from revops_pipelines.sqlmodels import QUARANTINE_COLUMNS

QUARANTINE_TABLE = "canonical.quarantine"
DEFAULT_MAX_SHARE = 0.01
_ROW = "__quarantine_row"
# Tables whose records are not named by source_system/source_id.
_RECORD_COLUMNS = {
    "revenue_event": ("source_system", "invoice_line_id"),
    "customer_xref": (None, "xref_id"),
    "lifecycle_event": ("system", "record_id"),
    "legal_entity_subsidiary": (None, "subsidiary_id"),
}
# The billing record an ERP row is reconciled against: its findings are held back as well.
_BILLING_LINK = {
    "customer": "billing_customer_id",
    "invoice": "billing_invoice_id",
    "payment": "billing_payment_id",
    "credit_note": "billing_credit_note_id",
}


@dataclass(frozen=True)
class QuarantineResult:
    table: str
    rows: int
    quarantined: int
    failures: int
    table_failures: int
    max_share: float
    sample_markdown: str

    @property
    def share(self) -> float:
        return self.quarantined / self.rows if self.rows else 0.0

    @property
    def passed(self) -> bool:
        """Failures not tied to a row (a missing column) always fail, rows only above the share."""
        return self.table_failures == 0 and self.share <= self.max_share


def ensure_quarantine_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS canonical")
    con.execute(f"CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} ({QUARANTINE_COLUMNS})")


def _failure_cases(frame: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as errors:
        return errors.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def _text(value: object) -> str | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def quarantine_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    now: datetime | None = None,
) -> QuarantineResult:
    """Validates `canonical.<table>`, moves the refused rows to the quarantine (replacing the
    table's earlier quarantine) and says whether the share of refused rows is acceptable."""
    model = CANONICAL_SCHEMAS.get(table)
    if model is None:
        raise UnknownTableError(table)
    frame = con.execute(f"SELECT rowid AS {_ROW}, * FROM canonical.{table}").df()
    frame = frame.set_index(_ROW)
    cases = _failure_cases(frame, model)
    on_row = cases[cases["index"].notna()]
    system_column, id_column = _RECORD_COLUMNS.get(table, ("source_system", "source_id"))

    def cell(row: object, column: str | None) -> str | None:
        if column is None or column not in frame.columns:
            return None
        return _text(frame.at[row, column])

    stamp = now or datetime.now(UTC)
    records = []
    for case in on_row.itertuples(index=False):
        row = case.index
        erp_row = cell(row, "source_system") == "erp"
        linked = cell(row, _BILLING_LINK.get(table)) if erp_row else None
        records.append(
            (
                table,
                cell(row, system_column),
                cell(row, id_column),
                _text(case.column),
                str(case.check),
                _text(case.failure_case),
                stamp,
                linked,
            )
        )
    rows = sorted({int(r) for r in on_row["index"]})
    ensure_quarantine_table(con)
    con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE table_name = ?", [table])
    if records:
        con.executemany(f"INSERT INTO {QUARANTINE_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
        con.execute(
            f"DELETE FROM canonical.{table} WHERE rowid IN (SELECT unnest(?::BIGINT[]))", [rows]
        )
    sample = cases[["column", "check", "failure_case", "index"]].head(SAMPLE_ROWS)
    return QuarantineResult(
        table=table,
        rows=len(frame),
        quarantined=len(rows),
        failures=len(cases),
        table_failures=len(cases) - len(on_row),
        max_share=max_share,
        sample_markdown=markdown_table(sample),
    )


def quarantine_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(table, rule, records) of what is in quarantine now, largest first: what the report
    says could not be reconciled, and why."""
    ensure_quarantine_table(con)
    rows = con.execute(
        f"SELECT table_name, rule, count(DISTINCT coalesce(source_system, '') || '/' || "
        f"coalesce(source_id, '')) AS records FROM {QUARANTINE_TABLE} "
        "GROUP BY ALL ORDER BY records DESC, table_name, rule"
    ).fetchall()
    return [(table, rule, int(records)) for table, rule, records in rows]
