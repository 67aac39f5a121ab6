from __future__ import annotations

import duckdb
import pytest

from revops_pipelines.sandbox.raw_tables import load_state_dir
from revops_pipelines.schemas import (
    CANONICAL_SCHEMAS,
    UnknownTableError,
    markdown_table,
    validate_table,
)
from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE


@pytest.fixture(scope="module")
def built() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_state_dir(con, HANDWRITTEN_STATE)
    run_models(con, [m for m in load_models() if m.schema in {"staging", "canonical"}])
    return con


def _corrupt(con: duckdb.DuckDBPyConnection, table: str, sql: str) -> duckdb.DuckDBPyConnection:
    copy = con.cursor()
    copy.execute(f"create or replace temp table {table}_backup as select * from canonical.{table}")
    copy.execute(sql)
    return copy


def _restore(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(f"create or replace table canonical.{table} as select * from {table}_backup")


@pytest.mark.parametrize(
    ("table", "corruption", "column"),
    [
        (
            "invoice",
            "update canonical.invoice set currency = 'usd' where source_id = '5678'",
            "currency",
        ),
        (
            "invoice",
            "update canonical.invoice set currency = 'ABC' where source_id = '5678'",
            "currency",
        ),
        ("invoice", "update canonical.invoice set status = 'paidInFull'", "status"),
        (
            "invoice",
            "update canonical.invoice set billing_invoice_id = ' ' || billing_invoice_id",
            "billing_invoice_id",
        ),
        ("invoice", "update canonical.invoice set total_minor = null", "total_minor"),
        (
            "invoice",
            "insert into canonical.invoice select * from canonical.invoice limit 1",
            "source_id",
        ),
        ("payment", "update canonical.payment set invoice_id = 'x', source_id = 'y'", "uniqueness"),
        (
            "customer",
            "update canonical.customer set source_id = null where source_system = 'erp'",
            "source_id",
        ),
        (
            "invoice",
            "alter table canonical.invoice alter total_minor type double; "
            "update canonical.invoice set total_minor = 1.5",
            "total_minor",
        ),
        ("invoice", "update canonical.invoice set created_at = '1970-01-01'", "created_at"),
    ],
)
def test_corruption_is_caught(
    built: duckdb.DuckDBPyConnection, table: str, corruption: str, column: str
) -> None:
    assert validate_table(built, table).passed
    con = _corrupt(built, table, corruption)
    try:
        result = validate_table(con, table)
        assert not result.passed
        assert result.failures >= 1
        assert column in result.sample_markdown
    finally:
        _restore(con, table)


def test_every_canonical_model_has_a_schema() -> None:
    canonical = {m.name for m in load_models() if m.schema == "canonical"}
    assert canonical == set(CANONICAL_SCHEMAS)


def test_unknown_table() -> None:
    with pytest.raises(UnknownTableError):
        validate_table(duckdb.connect(), "nope")


def test_markdown_preview_shows_list_and_null_cells() -> None:
    frame = duckdb.sql(
        "SELECT 'in_1' AS id, [1, 2] AS amounts, NULL::VARCHAR AS note, {'a': 'x|y'} AS s"
    ).df()
    assert markdown_table(frame).splitlines() == [
        "| id | amounts | note | s |",
        "|---|---|---|---|",
        "| in_1 | [1 2] |  | {'a': 'x\\|y'} |",
    ]
