"""The ledger's operations; every change is one short transaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from revops_pipelines.ledger.models import (
    CorrectionLog,
    DeadLetter,
    ExceptionDecision,
    KeyClaim,
    PlanApproval,
)

DECISIONS = ("acknowledged", "ignored", "planned", "corrected", "open")
# pending: may be sent; unknown: sent, no answer (read the target first); applied; dead.
OUTCOMES = ("pending", "unknown", "applied", "dead")


_MIGRATING = threading.Lock()


class LedgerError(Exception):
    """A ledger request that cannot be carried out (unknown id, bad status)."""


@dataclass(frozen=True)
class Claim:
    """The right to send one key now, and what its previous attempt ended in."""

    key: str
    previous_outcome: str | None
    target_id: str | None
    attempts: int = 0  # requests sent with this key so far (`sent` rows in the log)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# How a key's last attempt ended, and the end of its lease (parameters k, o, out, t, now);
# one statement for many keys; a missing target id keeps the stored one.
_SETTLE = (
    update(KeyClaim)
    .where(KeyClaim.idempotency_key == bindparam("k"), KeyClaim.owner == bindparam("o"))
    .values(
        outcome=bindparam("out"),
        updated_at=bindparam("now"),
        lease_until=bindparam("now"),
        target_id=func.coalesce(bindparam("t"), KeyClaim.target_id),
    )
)


def _claim_row(
    key: str, plan_id: str, action_id: str, owner: str, lease: datetime, now: datetime
) -> dict[str, Any]:
    """A new key's claim: pending, held by `owner` until `lease`."""
    return {"idempotency_key": key, "plan_id": plan_id, "action_id": action_id, "owner": owner,
            "lease_until": lease, "outcome": "pending", "updated_at": now}  # fmt: skip


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("revops_pipelines.ledger") / "migrations"))
    return config


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, record: Any) -> None:
        # WAL lets readers go on while a pusher writes; other processes wait up to the timeout.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class Ledger:
    """The ledger at `url`, migrated to the newest schema when opened."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = _engine(url)
        if upgrade:
            self.upgrade()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema

    def upgrade(self) -> str:
        """Apply every migration not applied yet; returns the revision now in place.

        Alembic's command runs one at a time per process; across processes PostgreSQL
        serializes on an advisory lock, and a SQLite loser of the race finds the work done.
        """
        head = self.head()
        if self.revision() == head:
            return head
        config = _alembic_config()
        with _MIGRATING:
            try:
                with self.engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                    if MigrationContext.configure(connection).get_current_revision() != head:
                        config.attributes["connection"] = connection
                        command.upgrade(config, "head")
            except OperationalError:
                if self.revision() != head:
                    raise
        return self.revision() or ""

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head() -> str:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""

    def _insert_once(self, statement: Any, rows: list[dict[str, Any]]) -> bool:
        """Insert the rows in one transaction; False, and nothing inserted, when a unique key
        says one is there already."""
        try:
            with self.engine.begin() as connection:
                connection.execute(statement, rows)
        except IntegrityError:
            return False
        return True

    # -- key claims

    def claim(
        self, key: str, *, plan_id: str, action_id: str, owner: str, lease_s: float = 60.0
    ) -> Claim | None:
        """Take the key for `lease_s` seconds; None when another pusher holds it or it is done.

        A key whose outcome is `applied` or `dead` is never taken again (replay re-opens it).
        """
        now = _now()
        lease = now + timedelta(seconds=lease_s)
        with self.engine.begin() as connection:
            row = connection.execute(
                select(KeyClaim.outcome, KeyClaim.target_id).where(KeyClaim.idempotency_key == key)
            ).first()
            sent = (
                connection.execute(
                    select(func.count()).where(
                        CorrectionLog.idempotency_key == key, CorrectionLog.status == "sent"
                    )
                ).scalar_one()
                if row is not None
                else 0
            )
        if row is None:
            fresh = _claim_row(key, plan_id, action_id, owner, lease, now)
            return Claim(key, None, None) if self._insert_once(insert(KeyClaim), [fresh]) else None
        outcome, target_id = row
        if outcome in ("applied", "dead"):
            return None
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(KeyClaim)
                .where(
                    KeyClaim.idempotency_key == key,
                    KeyClaim.outcome.in_(("pending", "unknown")),
                    (KeyClaim.lease_until < now) | (KeyClaim.owner == owner),
                )
                .values(owner=owner, lease_until=lease, updated_at=now)
            ).rowcount
        return Claim(key, outcome, target_id, sent) if taken == 1 else None

    def claim_many(
        self, keys: dict[str, tuple[str, str]], *, owner: str, lease_s: float = 60.0
    ) -> dict[str, Claim | None]:
        """`claim` for many keys (key → (plan id, action id)) in two statements when none is
        known yet, which is the common case of a new plan; known keys are claimed one by one."""
        now = _now()
        lease = now + timedelta(seconds=lease_s)
        known: dict[str, tuple[str, str | None]] = {}
        wanted = list(keys)
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                rows = connection.execute(
                    select(KeyClaim.idempotency_key, KeyClaim.outcome, KeyClaim.target_id).where(
                        KeyClaim.idempotency_key.in_(wanted[start : start + 500])
                    )
                )
                known.update({key: (outcome, target) for key, outcome, target in rows})
        fresh = [key for key in wanted if key not in known]
        claims: dict[str, Claim | None] = {}
        rows = [_claim_row(key, *keys[key], owner, lease, now) for key in fresh]
        # All at once; when another pusher took some, one by one below.
        if rows and self._insert_once(insert(KeyClaim), rows):
            claims.update({key: Claim(key, None, None) for key in fresh})
        for key in wanted:
            if key not in claims:
                plan_id, action_id = keys[key]
                claims[key] = self.claim(
                    key, plan_id=plan_id, action_id=action_id, owner=owner, lease_s=lease_s
                )
        return claims

    def settle(self, key: str, *, owner: str, outcome: str, target_id: str | None = None) -> None:
        """Record how the key's last attempt ended, and end the lease."""
        if outcome not in OUTCOMES:
            raise LedgerError(f"unknown outcome {outcome!r}")
        with self.engine.begin() as connection:
            connection.execute(
                _SETTLE, [{"k": key, "o": owner, "out": outcome, "t": target_id, "now": _now()}]
            )

    def outcomes(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        query = select(KeyClaim.idempotency_key, KeyClaim.outcome)
        if keys is not None:
            query = query.where(KeyClaim.idempotency_key.in_(list(keys)))
        with self.engine.connect() as connection:
            return dict(connection.execute(query).tuples().all())

    # -- attempts

    def log_attempts(self, attempts: list[dict[str, Any]]) -> None:
        """Append attempts in one transaction; each is a dict of plan_id, action_id, key,
        attempt (its number: a `sent` row opens it, its answer and read-backs carry it),
        status, pusher and optionally http_status, response, and outcome (with target_id),
        which settles the key's claim in the same transaction."""
        if not attempts:
            return
        for a in attempts:
            if a.get("outcome") is not None and a["outcome"] not in OUTCOMES:
                raise LedgerError(f"unknown outcome {a['outcome']!r}")
        now = _now()
        rows = []
        for a in attempts:
            response = a.get("response")
            if response is not None and not isinstance(response, str):
                response = json.dumps(response)
            rows.append(
                {
                    "plan_id": a["plan_id"],
                    "action_id": a["action_id"],
                    "idempotency_key": a["key"],
                    "attempt": a["attempt"],
                    "status": a["status"],
                    "http_status": a.get("http_status"),
                    "response": response[:10_000] if response else response,
                    "pusher": a["pusher"],
                    "at": now,
                }
            )
        settled = [
            {"k": a["key"], "o": a["pusher"], "out": a["outcome"], "t": a.get("target_id")}
            for a in attempts
            if a.get("outcome") is not None
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(CorrectionLog), rows)
            if settled:
                connection.execute(_SETTLE, [{**s, "now": now} for s in settled])

    def attempts(self, key: str | None = None) -> list[dict[str, Any]]:
        query = select(CorrectionLog).order_by(CorrectionLog.id)
        if key is not None:
            query = query.where(CorrectionLog.idempotency_key == key)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    # -- dead letters

    def add_dead_letter(
        self,
        *,
        plan_id: str,
        action: dict[str, Any],
        http_status: int | None,
        error_code: str,
        error_message: str,
    ) -> None:
        """Keep the correction that failed for good; a second failure of one key updates it."""
        key = action["idempotency_key"]
        values = {
            "plan_id": plan_id,
            "action_id": action["action_id"],
            "target": action["target"],
            "operation": action["operation"],
            "record_type": action["record_type"],
            "external_id": action["external_id"],
            "target_id": action.get("target_id"),
            "payload": action["payload"],
            "http_status": http_status,
            "error_code": error_code,
            "error_message": error_message,
            "created_at": _now(),
            "replayed_at": None,
        }
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(DeadLetter).where(DeadLetter.idempotency_key == key).values(**values)
            ).rowcount
            if not changed:
                connection.execute(insert(DeadLetter).values(idempotency_key=key, **values))

    def dead_letters(self, *, include_replayed: bool = False) -> list[dict[str, Any]]:
        query = select(DeadLetter).order_by(DeadLetter.id)
        if not include_replayed:
            query = query.where(DeadLetter.replayed_at.is_(None))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def reopen_dead_letters(self, ids: Iterable[int] | None) -> list[dict[str, Any]]:
        """Mark dead letters replayed and let their keys be claimed again; returns them."""
        query = select(DeadLetter).where(DeadLetter.replayed_at.is_(None))
        if ids is not None:
            wanted = [int(i) for i in ids]
            query = query.where(DeadLetter.id.in_(wanted))
        now = _now()
        with self.engine.begin() as connection:
            letters = [dict(row._mapping) for row in connection.execute(query)]
            if ids is not None:
                missing = set(wanted) - {letter["id"] for letter in letters}
                if missing:
                    raise LedgerError(f"no open dead letter with id {sorted(missing)}")
            for letter in letters:
                connection.execute(
                    update(DeadLetter).where(DeadLetter.id == letter["id"]).values(replayed_at=now)
                )
                connection.execute(
                    update(KeyClaim)
                    .where(KeyClaim.idempotency_key == letter["idempotency_key"])
                    .values(outcome="pending", lease_until=now, updated_at=now)
                )
        return letters

    # -- approvals

    def approve(self, plan_id: str, *, by: str) -> None:
        """The first approval of a plan is kept."""
        self._insert_once(
            insert(PlanApproval), [{"plan_id": plan_id, "approved_by": by, "approved_at": _now()}]
        )

    def is_approved(self, plan_id: str) -> bool:
        with self.engine.connect() as connection:
            return (
                connection.execute(
                    select(PlanApproval.plan_id).where(PlanApproval.plan_id == plan_id)
                ).first()
                is not None
            )

    # -- exception workflow

    def decide(self, exception_id: str, status: str, *, reason: str, by: str) -> None:
        """A person's decision about a finding; acknowledging or ignoring needs a reason."""
        if status not in DECISIONS:
            raise LedgerError(f"status {status!r} is not one of {', '.join(DECISIONS)}")
        if status in ("acknowledged", "ignored") and not reason.strip():
            raise LedgerError(f"{status} needs a reason")
        with self.engine.begin() as connection:
            connection.execute(
                insert(ExceptionDecision).values(
                    exception_id=exception_id,
                    status=status,
                    reason=reason,
                    decided_by=by,
                    decided_at=_now(),
                )
            )

    def decisions(self) -> dict[str, dict[str, Any]]:
        """The latest decision per exception id."""
        latest = (
            select(func.max(ExceptionDecision.id))
            .group_by(ExceptionDecision.exception_id)
            .scalar_subquery()
        )
        query = select(ExceptionDecision).where(ExceptionDecision.id.in_(latest))
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            row["decided_at"] = _aware(row["decided_at"])
        return {row["exception_id"]: row for row in rows}

    def exception_statuses(self) -> dict[str, str]:
        """Statuses for the exception history; an acknowledgment changes none."""
        return {
            exception_id: row["status"]
            for exception_id, row in self.decisions().items()
            if row["status"] != "acknowledged"
        }


def exception_statuses(url: str) -> dict[str, str]:
    """People's decisions for the exception history; none while no ledger file exists yet."""
    parsed = make_url(url)
    database = parsed.database or ""
    sqlite_file = parsed.get_backend_name() == "sqlite" and database != ":memory:"
    if sqlite_file and not (database and Path(database).exists()):
        return {}
    with Ledger(url) as ledger:
        return ledger.exception_statuses()
