"""Raw tables in DuckDB: one row per record id, the cursor and quarantine beside them.

Each `write_batch` is one transaction, so a stream's cursor is only ever stored
together with the rows it covers.

A full read returns every record the source still has. The billing API and the ERP have no
`IsDeleted`: a record deleted there simply stops being returned. So the ids of a full read
are noted as it goes (`start_full_read`), and the batch that ends it turns every stored
record the read did not return into a tombstone (`deleted = true`, last payload kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

SCHEMA = "raw"
QUARANTINE_DETAIL = ("record_id", "field", "value")


@dataclass(frozen=True)
class RawRow:
    id: str
    payload: str
    cursor_value: str | None
    deleted: bool


@dataclass(frozen=True)
class QuarantinedRecord:
    """A record kept out of raw: why, and where known the id, the field and its value (JSON)."""

    reason: str
    payload: str
    record_id: str | None = None
    field: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class WriteResult:
    new: int = 0
    changed: int = 0
    deleted: int = 0


def table_name(stream_key: str) -> str:
    return f"{SCHEMA}.{stream_key}"


def ensure_tables(con: duckdb.DuckDBPyConnection, stream_key: str) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {table_name(stream_key)} (
            id VARCHAR NOT NULL, payload JSON, cursor_value VARCHAR, deleted BOOLEAN,
            api_version VARCHAR, extracted_at TIMESTAMPTZ, run_id VARCHAR)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}._cursors (
            stream VARCHAR PRIMARY KEY, cursor VARCHAR, updated_at TIMESTAMPTZ)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}._quarantine (
            stream VARCHAR, reason VARCHAR, payload VARCHAR, extracted_at TIMESTAMPTZ,
            run_id VARCHAR)"""
    )
    # Added later: tables made before them gain the columns, nulls in the old rows.
    for column in QUARANTINE_DETAIL:
        con.execute(f"ALTER TABLE {SCHEMA}._quarantine ADD COLUMN IF NOT EXISTS {column} VARCHAR")


def read_cursor(con: duckdb.DuckDBPyConnection, stream_key: str) -> dict[str, Any] | None:
    row = con.execute(
        f"SELECT cursor FROM {SCHEMA}._cursors WHERE stream = ?", [stream_key]
    ).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def row_count(con: duckdb.DuckDBPyConnection, stream_key: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table_name(stream_key)}").fetchone()[0]


def quarantine_count(con: duckdb.DuckDBPyConnection, stream_key: str) -> int:
    return con.execute(
        f"SELECT count(*) FROM {SCHEMA}._quarantine WHERE stream = ?", [stream_key]
    ).fetchone()[0]


def _seen_table(stream_key: str) -> str:
    return f"temp.main._seen_{stream_key}"


def start_full_read(con: duckdb.DuckDBPyConnection, stream_key: str) -> None:
    """Starts noting the ids a full read returns (on this connection), for `end_full_read`."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _seen_{stream_key} (id VARCHAR)")


def write_batch(
    con: duckdb.DuckDBPyConnection,
    stream_key: str,
    rows: list[RawRow],
    *,
    run_id: str,
    api_version: str,
    quarantined: list[QuarantinedRecord] = (),
    replaces: tuple[tuple[str, ...], list[str]] | None = None,
    cursor: dict[str, Any] | None = None,
    full_read: bool = False,
    end_full_read: bool = False,
) -> WriteResult:
    """Upsert rows by id (the latest wins), in one transaction with the cursor, if given.

    Rows whose payload and tombstone equal the stored ones are left as they are.
    `full_read`: the rows belong to a read begun with `start_full_read`; `end_full_read`: this
    batch ends it, and stored records it never returned become tombstones.
    """
    table = table_name(stream_key)
    con.execute("BEGIN TRANSACTION")
    try:
        result = WriteResult()
        if rows or replaces:
            result = _upsert(con, table, rows, run_id=run_id, api_version=api_version)
        if replaces:
            result = _tombstone_missing_children(
                con, table, rows, replaces=replaces, run_id=run_id, result=result
            )
        # A quarantined record with an id is still at the source: seen, never tombstoned.
        seen = [r.id for r in rows] + [q.record_id for q in quarantined if q.record_id]
        if full_read and seen:
            con.register("_seen_batch", pa.table({"id": pa.array(seen, pa.string())}))
            try:
                con.execute(f"INSERT INTO {_seen_table(stream_key)} SELECT id FROM _seen_batch")
            finally:
                con.unregister("_seen_batch")
        if end_full_read:
            result = _tombstone_unseen(con, stream_key, run_id=run_id, result=result)
        if quarantined:
            con.executemany(
                f"""INSERT INTO {SCHEMA}._quarantine
                    (stream, reason, payload, extracted_at, run_id, record_id, field, value)
                VALUES (?, ?, ?, now(), ?, ?, ?, ?)""",
                [
                    [stream_key, q.reason, q.payload, run_id, q.record_id, q.field, q.value]
                    for q in quarantined
                ],
            )
        if cursor is not None:
            con.execute(
                f"INSERT OR REPLACE INTO {SCHEMA}._cursors VALUES (?, ?, now())",
                [stream_key, json.dumps(cursor, sort_keys=True)],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[RawRow],
    *,
    run_id: str,
    api_version: str,
) -> WriteResult:
    if not rows:
        return WriteResult()
    batch = pa.table(
        {
            "seq": pa.array(range(len(rows)), pa.int64()),
            "id": pa.array([r.id for r in rows], pa.string()),
            "payload": pa.array([r.payload for r in rows], pa.string()),
            "cursor_value": pa.array([r.cursor_value for r in rows], pa.string()),
            "deleted": pa.array([r.deleted for r in rows], pa.bool_()),
        }
    )
    con.register("_raw_batch", batch)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _raw_incoming AS
            WITH latest AS (
                SELECT * FROM _raw_batch
                QUALIFY row_number() OVER (PARTITION BY id ORDER BY seq DESC) = 1)
            SELECT b.id, b.payload, b.cursor_value, b.deleted, t.id IS NULL AS is_new
            FROM latest b LEFT JOIN {table} t ON t.id = b.id
            WHERE t.id IS NULL
               OR t.payload::VARCHAR IS DISTINCT FROM b.payload
               OR t.deleted IS DISTINCT FROM b.deleted"""
        )
    finally:
        con.unregister("_raw_batch")
    new, changed, deleted = con.execute(
        """SELECT count(*) FILTER (is_new), count(*) FILTER (NOT is_new),
                  count(*) FILTER (deleted) FROM _raw_incoming"""
    ).fetchone()
    con.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _raw_incoming)")
    con.execute(
        f"""INSERT INTO {table}
        SELECT id, payload::JSON, cursor_value, deleted, ?, now(), ? FROM _raw_incoming""",
        [api_version, run_id],
    )
    con.execute("DROP TABLE _raw_incoming")
    return WriteResult(new=new, changed=changed, deleted=deleted)


def _tombstone_missing_children(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[RawRow],
    *,
    replaces: tuple[tuple[str, ...], list[str]],
    run_id: str,
    result: WriteResult,
) -> WriteResult:
    fields, parents = replaces
    if not parents:
        return result
    parent_match = " OR ".join(
        f"json_extract_string(payload, '$.{f}') IN (SELECT unnest(?::VARCHAR[]))" for f in fields
    )
    seen = [r.id for r in rows]
    params: list[Any] = [list(parents)] * len(fields)
    gone = con.execute(
        f"""UPDATE {table} SET deleted = true, extracted_at = now(), run_id = ?
        WHERE NOT deleted AND ({parent_match})
          AND id NOT IN (SELECT unnest(?::VARCHAR[]))""",
        [run_id, *params, seen],
    ).fetchone()[0]
    return WriteResult(new=result.new, changed=result.changed + gone, deleted=result.deleted + gone)


def _tombstone_unseen(
    con: duckdb.DuckDBPyConnection, stream_key: str, *, run_id: str, result: WriteResult
) -> WriteResult:
    seen = _seen_table(stream_key)
    gone = con.execute(
        f"""UPDATE {table_name(stream_key)} SET deleted = true, extracted_at = now(), run_id = ?
        WHERE NOT coalesce(deleted, false) AND id NOT IN (SELECT id FROM {seen})""",
        [run_id],
    ).fetchone()[0]
    con.execute(f"DROP TABLE {seen}")
    return WriteResult(new=result.new, changed=result.changed + gone, deleted=result.deleted + gone)
