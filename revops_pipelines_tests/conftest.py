"""Fixtures shared by the test suite: a hand-written state directory and a sandbox serving it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

HANDWRITTEN_STATE = Path(__file__).parent / "fixtures" / "handwritten_state"


@pytest.fixture
def handwritten_state(tmp_path: Path) -> Path:
    """A private copy of the hand-written state directory, so writes never touch the original."""
    target = tmp_path / "state"
    shutil.copytree(HANDWRITTEN_STATE, target)
    return target


@pytest.fixture
def sandbox(handwritten_state: Path) -> Iterator[object]:
    """The three sandbox servers over `handwritten_state`; yields their `SandboxUrls`."""
    from revops_pipelines.sandbox.serve import running_sandbox

    with running_sandbox(handwritten_state, seed=7) as urls:
        yield urls


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    import os
    import uuid

    import sqlalchemy as sa

    host = os.environ.get("REVOPS_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("REVOPS_TEST_PG_PORT", "5432")
    user = os.environ.get("REVOPS_TEST_PG_USER", "postgres")
    database = os.environ.get("REVOPS_TEST_PG_DB", "test")
    base = f"postgresql+psycopg2://{user}@{host}:{port}/{database}"
    schema = f"ledger_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
