"""The production `deploy/dagster.yaml`: runs, events and pools in PostgreSQL from `DAGSTER_PG_*`.

Uses the PostgreSQL server the environment provides (`REVOPS_TEST_PG_*`, default
127.0.0.1:5432, user postgres) in a database of its own, dropped afterwards.
"""

import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[1]
PG = {
    "host": os.environ.get("REVOPS_TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("REVOPS_TEST_PG_PORT", "5432")),
    "user": os.environ.get("REVOPS_TEST_PG_USER", "postgres"),
    "password": os.environ.get("REVOPS_TEST_PG_PASSWORD", ""),
}


def _admin(statement: str) -> None:
    """CREATE/DROP DATABASE cannot run in a transaction: autocommit, no `with connection`."""
    connection = psycopg2.connect(dbname=os.environ.get("REVOPS_TEST_PG_DB", "test"), **PG)
    connection.autocommit = True
    try:
        connection.cursor().execute(statement)
    finally:
        connection.close()


@pytest.fixture
def postgres_home(tmp_path, monkeypatch):
    database = f"revops_dagster_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {database}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", PG["host"])
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG["port"]))
    monkeypatch.setenv("DAGSTER_PG_USER", PG["user"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", PG["password"])
    monkeypatch.setenv("DAGSTER_PG_DB", database)
    yield database
    _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def test_runs_are_stored_in_postgres_and_duckdb_writers_share_one_slot(postgres_home):
    @dg.asset(pool="duckdb")
    def probe() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        result = dg.materialize([probe], instance=instance)
        assert result.success

    connection = psycopg2.connect(dbname=postgres_home, **PG)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id, status FROM runs")
        runs = cursor.fetchall()
    connection.close()
    assert runs == [(result.run_id, "SUCCESS")]
