"""Runs a canonical table's pandera model over the DuckDB table, collecting every failure."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from revops_pipelines.schemas.canonical import CANONICAL_SCHEMAS

SAMPLE_ROWS = 10


@dataclass(frozen=True)
class ValidationResult:
    table: str
    rows: int
    failures: int
    sample_markdown: str

    @property
    def passed(self) -> bool:
        return self.failures == 0


class UnknownTableError(KeyError):
    def __init__(self, table: str) -> None:
        super().__init__(
            f"no pandera model for canonical table {table!r}; known: {sorted(CANONICAL_SCHEMAS)}"
        )
        self.table = table


def markdown_table(frame: pd.DataFrame) -> str:
    """A small markdown table (pandas' to_markdown needs an extra package)."""
    if frame.empty:
        return ""
    columns = [str(c) for c in frame.columns]

    def cell(value: object) -> str:
        # Lists and structs (DuckDB LIST/STRUCT columns) are shown as they print.
        missing = value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
        text = "" if missing else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:120]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def read_table(
    con: duckdb.DuckDBPyConnection, table: str, *, schema: str = "canonical"
) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {schema}.{table}").df()


def validate_frame(
    frame: pd.DataFrame, model: type[pa.DataFrameModel], *, table: str
) -> ValidationResult:
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        sample = cases[["column", "check", "failure_case", "index"]].head(SAMPLE_ROWS)
        return ValidationResult(
            table=table,
            rows=len(frame),
            failures=len(cases),
            sample_markdown=markdown_table(sample),
        )
    return ValidationResult(table=table, rows=len(frame), failures=0, sample_markdown="")


def validate_table(con: duckdb.DuckDBPyConnection, table: str) -> ValidationResult:
    """Validates `canonical.<table>` with its pandera model (lazy: all failures, not the first)."""
    model = CANONICAL_SCHEMAS.get(table)
    if model is None:
        raise UnknownTableError(table)
    return validate_frame(read_table(con, table), model, table=table)
