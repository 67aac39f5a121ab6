"""What the analytical store holds, and the drift-code catalog every reader shares."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

import duckdb

from revops_pipelines.sqlmodels import MODELS_ROOT
from revops_pipelines.sqlmodels.loader import SEEDS_FOLDER

SEVERITIES = ("critical", "high", "medium", "low")
EXCEPTIONS_TABLE = "reconciliation.drift_exceptions"


def relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """A table or a view named `schema.name` exists."""
    return bool(
        con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
            "UNION ALL SELECT 1 FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
            [schema, name, schema, name],
        ).fetchall()
    )


@dataclass(frozen=True)
class DriftCode:
    """One row of `seeds/drift_codes.csv`: a code's entity, default severity and action."""

    drift_type: str
    entity: str
    severity: str
    action: str
    money_values: bool  # `expected` and `actual` are amounts in minor units
    meaning: str


@cache
def drift_codes() -> dict[str, DriftCode]:
    """The drift-code catalog in file order; `findings.sql` joins the same seed."""
    with (MODELS_ROOT / SEEDS_FOLDER / "drift_codes.csv").open(encoding="utf-8") as rows:
        return {
            r["drift_type"]: DriftCode(
                drift_type=r["drift_type"],
                entity=r["entity"],
                severity=r["severity"],
                action=r["action"],
                money_values=r["money_values"] == "true",
                meaning=r["meaning"],
            )
            for r in csv.DictReader(rows)
        }
