"""The ledger on SQLite and on PostgreSQL: migrations, claims, the append-only log."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from revops_pipelines.ledger import Ledger, LedgerError

ACTION = {
    "action_id": "a1",
    "idempotency_key": "rvp-1",
    "target": "erp",
    "operation": "upsert",
    "record_type": "customer",
    "external_id": "cus_1",
    "payload": "{}",
}


def test_migrations_reach_head_and_are_idempotent(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.revision() == Ledger.head() == "0002"
        assert ledger.upgrade() == "0002"
        tables = set(sa.inspect(ledger.engine).get_table_names())
    assert {
        "correction_log",
        "key_claim",
        "dead_letter",
        "plan_approval",
        "exception_decision",
        "webhook_receipt",
        "alembic_version",
    } <= tables


def test_correction_log_refuses_updates_and_deletes(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        row = {"plan_id": "p", "action_id": "a", "key": "k", "pusher": "me"}
        ledger.log_attempts(
            [{**row, "attempt": 1, "status": "sent"}, {**row, "attempt": 1, "status": "retry"}]
        )
        ledger.log_attempts(
            [{**row, "attempt": 2, "status": "sent"}, {**row, "attempt": 2, "status": "applied"}]
        )
        for statement in ("UPDATE correction_log SET status = 'x'", "DELETE FROM correction_log"):
            with pytest.raises(sa.exc.DBAPIError), ledger.engine.begin() as connection:
                connection.execute(sa.text(statement))
        assert [(a["attempt"], a["status"]) for a in ledger.attempts("k")] == [
            (1, "sent"), (1, "retry"), (2, "sent"), (2, "applied"),
        ]  # fmt: skip


def test_a_key_is_claimed_by_one_pusher_until_settled(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        wins: list[str] = []

        def race(owner: str) -> None:
            if ledger.claim("rvp-1", plan_id="p", action_id="a", owner=owner):
                wins.append(owner)

        threads = [threading.Thread(target=race, args=(f"pusher-{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1
        owner = wins[0]
        # A lost answer: the next claim learns it must verify before re-sending.
        ledger.settle("rvp-1", owner=owner, outcome="unknown")
        claim = ledger.claim("rvp-1", plan_id="p", action_id="a", owner="other")
        assert claim is not None and claim.previous_outcome == "unknown"
        ledger.settle("rvp-1", owner="other", outcome="applied", target_id="42")
        assert ledger.claim("rvp-1", plan_id="p", action_id="a", owner="third") is None
        assert ledger.outcomes() == {"rvp-1": "applied"}


def test_an_expired_lease_can_be_taken_over(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.claim("k", plan_id="p", action_id="a", owner="dead", lease_s=-1)
        taken = ledger.claim("k", plan_id="p", action_id="a", owner="alive")
        assert taken is not None and taken.previous_outcome == "pending"
        assert ledger.claim("k", plan_id="p", action_id="a", owner="third") is None


def test_dead_letters_reopen_their_key_for_replay(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.claim("rvp-1", plan_id="p", action_id="a1", owner="me")
        ledger.settle("rvp-1", owner="me", outcome="dead")
        ledger.add_dead_letter(
            plan_id="p", action=ACTION, http_status=400, error_code="USER_ERROR", error_message="no"
        )
        [letter] = ledger.dead_letters()
        assert (letter["error_code"], letter["http_status"]) == ("USER_ERROR", 400)
        assert ledger.claim("rvp-1", plan_id="p", action_id="a1", owner="me") is None
        with pytest.raises(LedgerError):
            ledger.reopen_dead_letters([letter["id"] + 100])
        assert [d["id"] for d in ledger.reopen_dead_letters([letter["id"]])] == [letter["id"]]
        assert ledger.dead_letters() == []
        assert ledger.claim("rvp-1", plan_id="p", action_id="a1", owner="me") is not None


def test_exception_decisions_keep_the_latest_and_need_a_reason(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        with pytest.raises(LedgerError, match="reason"):
            ledger.decide("e1", "ignored", reason=" ", by="ana")
        ledger.decide("e1", "acknowledged", reason="looking", by="ana")
        ledger.decide("e2", "acknowledged", reason="known", by="ana")
        ledger.decide("e2", "ignored", reason="test account", by="bo")
        decisions = ledger.decisions()
        assert decisions["e2"]["decided_by"] == "bo" and decisions["e2"]["reason"] == "test account"
        assert decisions["e2"]["decided_at"].tzinfo is not None
        assert ledger.exception_statuses() == {"e2": "ignored"}


def test_a_plan_is_approved_once(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert not ledger.is_approved("p1")
        ledger.approve("p1", by="ana")
        ledger.approve("p1", by="bo")  # a second approval changes nothing
        assert ledger.is_approved("p1") and not ledger.is_approved("p2")
        with ledger.engine.connect() as connection:
            who = connection.execute(sa.text("SELECT approved_by FROM plan_approval")).all()
        assert who == [("ana",)]


def test_an_older_ledger_is_migrated_forward_keeping_its_rows(ledger_url: str) -> None:
    from alembic import command

    from revops_pipelines.ledger.store import _alembic_config

    with Ledger(ledger_url, upgrade=False) as ledger:
        config = _alembic_config()
        with ledger.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        ledger.log_attempts(
            [
                {
                    "plan_id": "p",
                    "action_id": "a",
                    "key": "k",
                    "attempt": 1,
                    "status": "sent",
                    "pusher": "me",
                }
            ]
        )
        assert ledger.revision() == "0001"
        assert ledger.upgrade() == "0002"
        assert [a["status"] for a in ledger.attempts("k")] == ["sent"]
        columns = {c["name"] for c in sa.inspect(ledger.engine).get_columns("dead_letter")}
        assert "target_id" in columns
