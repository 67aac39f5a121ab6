"""The extraction loop and raw store with an in-process reader: upserts, cursors, quarantine."""

from __future__ import annotations

import json

import duckdb
import pytest

from revops_pipelines.connectors.base import Change, ClientStats, Page
from revops_pipelines.raw import store
from revops_pipelines.raw.extract import extract_stream


class FakeReader:
    """Serves fixed pages; records the cursor each read started from."""

    def __init__(self, system: str, pages_by_call: list[list[Page]]) -> None:
        self.system = system
        self.api_version = "test-1"
        self.stats = ClientStats()
        self._calls = list(pages_by_call)
        self.cursors: list[dict | None] = []

    def read(self, spec, *, cursor):
        self.cursors.append(cursor)
        yield from self._calls.pop(0)


def customer(n: int, **extra) -> dict:
    return {"id": f"cus_{n}", "object": "customer", "created": 1000 + n, "name": f"C{n}", **extra}


def rows(con, table: str) -> dict[str, tuple]:
    result = con.execute(f"SELECT id, payload, deleted, run_id FROM raw.{table}").fetchall()
    return {r[0]: (json.loads(r[1]), r[2], r[3]) for r in result}


@pytest.fixture
def con():
    with duckdb.connect(":memory:") as connection:
        yield connection


def test_upsert_counts_new_changed_deleted_and_keeps_one_row_per_id(con):
    first = [Page([Change(customer(1)), Change(customer(2))]), Page([], cursor={"created": 5})]
    second = [
        Page(
            [
                Change(customer(2, name="renamed")),
                Change(customer(1)),
                Change(customer(3)),
                Change(customer(3), deleted=True),
            ]
        ),
        Page([], cursor={"created": 9}),
    ]
    reader = FakeReader("billing", [first, second])
    stats1 = extract_stream(reader, con, "customer", run_id="r1")
    stats2 = extract_stream(reader, con, "customer", run_id="r2")
    assert (stats1.new, stats1.changed, stats1.row_count) == (2, 0, 2)
    assert (stats2.fetched, stats2.new, stats2.changed, stats2.deleted) == (4, 1, 1, 1)
    stored = rows(con, "billing_customer")
    assert stored["cus_1"] == (customer(1), False, "r1")  # unchanged: not rewritten
    assert stored["cus_2"] == (customer(2, name="renamed"), False, "r2")
    assert stored["cus_3"][1] is True
    assert reader.cursors == [None, {"created": 5}]
    assert store.read_cursor(con, "billing_customer") == {"created": 9}


def test_full_refresh_ignores_the_cursor(con):
    pages = [Page([Change(customer(1))]), Page([], cursor={"created": 1})]
    reader = FakeReader("billing", [pages, list(pages)])
    extract_stream(reader, con, "customer", run_id="r1")
    stats = extract_stream(reader, con, "customer", run_id="r2", full_refresh=True)
    assert reader.cursors == [None, None] and stats.full_refresh


def test_contract_breaking_records_are_quarantined_with_reason(con):
    bad = [
        Change("{not json"),
        Change({"object": "customer", "created": 1}),
        Change({"id": 42, "created": 1}),
        Change({"id": "cus_9", "created": "yesterday"}),
    ]
    good = customer(1, shiny_new_field=True)
    reader = FakeReader("billing", [[Page([*bad, Change(good)]), Page([], cursor={})]])
    stats = extract_stream(reader, con, "customer", run_id="r1")
    assert stats.quarantined == 4 and stats.new == 1
    assert stats.unknown_fields == ["shiny_new_field"]
    quarantined = con.execute(
        """SELECT reason, record_id, field, value FROM raw._quarantine
        WHERE stream = 'billing_customer' ORDER BY reason"""
    ).fetchall()
    assert quarantined == [
        ("created: not Unix seconds", "cus_9", "created", '"yesterday"'),
        ("id: not a non-blank string", None, "id", "42"),
        ("missing id", None, "id", None),
        ("not a JSON object: str", None, None, None),
    ]
    assert rows(con, "billing_customer")["cus_1"][0] == good


def test_crash_after_fetching_keeps_the_old_cursor_and_a_rerun_doubles_nothing(con, monkeypatch):
    pages = [Page([Change(customer(n)) for n in range(5)]), Page([], cursor={"created": 7})]
    reader = FakeReader("billing", [pages, list(pages)])
    real_write = store.write_batch

    def failing_write(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(store, "write_batch", failing_write)
    with pytest.raises(RuntimeError):
        extract_stream(reader, con, "customer", run_id="r1")
    monkeypatch.setattr(store, "write_batch", real_write)
    assert store.read_cursor(con, "billing_customer") is None
    stats = extract_stream(reader, con, "customer", run_id="r2")
    assert stats.new == 5 and stats.row_count == 5
    count = con.execute("SELECT count(*), count(DISTINCT id) FROM raw.billing_customer").fetchone()
    assert count == (5, 5)


def test_failed_batch_rolls_back_rows_and_cursor_together(con):
    store.ensure_tables(con, "billing_customer")
    row = store.RawRow("cus_1", json.dumps(customer(1)), "1", False)
    with pytest.raises(duckdb.Error):
        store.write_batch(
            con,
            "billing_customer",
            [row, store.RawRow("cus_2", "{broken", "2", False)],
            run_id="r1",
            api_version="v",
            cursor={"created": 2},
        )
    assert store.row_count(con, "billing_customer") == 0
    assert store.read_cursor(con, "billing_customer") is None


def test_children_missing_from_a_reread_parent_become_tombstones(con):
    def line(tx: str, seq: int) -> dict:
        return {"id": f"{tx}-{seq}", "transaction": tx, "linesequencenumber": seq}

    first = [
        Page([Change(line("10", 1)), Change(line("10", 2)), Change(line("11", 1))],
             replaces=(("transaction",), ["10", "11"])),
        Page([], cursor={"since": "a"}),
    ]  # fmt: skip
    second = [
        Page([Change(line("10", 1))], replaces=(("transaction",), ["10"])),
        Page([], cursor={"since": "b"}),
    ]
    reader = FakeReader("erp", [first, second])
    extract_stream(reader, con, "transaction_line", run_id="r1")
    stats = extract_stream(reader, con, "transaction_line", run_id="r2")
    stored = rows(con, "erp_transaction_line")
    assert {k: v[1] for k, v in stored.items()} == {"10-1": False, "10-2": True, "11-1": False}
    assert (stats.new, stats.changed, stats.deleted) == (0, 1, 1)


def test_large_batch_upsert(con):
    many = [Change(customer(n)) for n in range(20000)]
    reader = FakeReader("billing", [[Page(many), Page([], cursor={})]])
    stats = extract_stream(reader, con, "customer", run_id="r1", batch_size=7000)
    assert stats.new == 20000 and stats.row_count == 20000


def test_full_refresh_turns_records_the_source_no_longer_returns_into_tombstones(con):
    everything = [Page([Change(customer(n)) for n in (1, 2, 3)]), Page([], cursor={"created": 3})]
    incremental = [Page([Change(customer(2, name="renamed"))]), Page([], cursor={"created": 4})]
    without_1_and_3 = [Page([Change(customer(2, name="renamed"))]), Page([], cursor={"c": 5})]
    back_again = [Page([Change(customer(n)) for n in (1, 2)]), Page([], cursor={"created": 6})]
    reader = FakeReader("billing", [everything, incremental, without_1_and_3, back_again])
    extract_stream(reader, con, "customer", run_id="r1")
    # an incremental read returns only changes: what it leaves out is not deleted
    extract_stream(reader, con, "customer", run_id="r2")
    assert {k: v[1] for k, v in rows(con, "billing_customer").items()} == {
        "cus_1": False,
        "cus_2": False,
        "cus_3": False,
    }
    stats = extract_stream(reader, con, "customer", run_id="r3", full_refresh=True)
    stored = rows(con, "billing_customer")
    assert {k: v[1] for k, v in stored.items()} == {"cus_1": True, "cus_2": False, "cus_3": True}
    assert stored["cus_1"] == (customer(1), True, "r3")  # the last payload is kept
    assert (stats.new, stats.changed, stats.deleted) == (0, 2, 2)
    # a record the source returns again is live again
    extract_stream(reader, con, "customer", run_id="r4", full_refresh=True)
    stored = rows(con, "billing_customer")
    assert {k: v[1] for k, v in stored.items()} == {"cus_1": False, "cus_2": False, "cus_3": True}


def test_a_quarantined_record_is_still_at_the_source_and_never_tombstoned(con):
    everything = [Page([Change(customer(n)) for n in (1, 2, 3)]), Page([], cursor={})]
    # cus_2 breaks the contract but names its id; cus_1 is gone
    named = [
        Page([Change(customer(2, created="yesterday")), Change(customer(3))]),
        Page([], cursor={}),
    ]
    # a record with no id could be any stored one: nothing is tombstoned
    anonymous = [Page([Change({"object": "customer", "created": 1})]), Page([], cursor={})]
    reader = FakeReader("billing", [everything, named, anonymous])
    extract_stream(reader, con, "customer", run_id="r1")
    stats = extract_stream(reader, con, "customer", run_id="r2", full_refresh=True)
    assert (stats.quarantined, stats.deleted) == (1, 1)
    assert {k: v[1] for k, v in rows(con, "billing_customer").items()} == {
        "cus_1": True,
        "cus_2": False,
        "cus_3": False,
    }
    stats = extract_stream(reader, con, "customer", run_id="r3", full_refresh=True)
    assert (stats.quarantined, stats.deleted) == (1, 0)


def test_a_full_refresh_that_fails_before_its_end_tombstones_nothing(con):
    first = [Page([Change(customer(1)), Change(customer(2))]), Page([], cursor={})]

    def cut_short():
        yield Page([Change(customer(1))])
        raise RuntimeError("connection reset")

    reader = FakeReader("billing", [first])
    extract_stream(reader, con, "customer", run_id="r1")
    reader.read = lambda spec, *, cursor: cut_short()
    with pytest.raises(RuntimeError):
        extract_stream(reader, con, "customer", run_id="r2", full_refresh=True, batch_size=1)
    assert {k: v[1] for k, v in rows(con, "billing_customer").items()} == {
        "cus_1": False,
        "cus_2": False,
    }
