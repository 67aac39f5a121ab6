"""The ledger's tables; migrations under `migrations/versions` create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CorrectionLog(Base):
    """One row per attempt to send a correction; rows are never changed or removed."""

    __tablename__ = "correction_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    # sent, applied, retry, failed, unknown (no answer), verified (read back after no answer)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    pusher: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KeyClaim(Base):
    """Who may send an idempotency key now, and what its last attempt ended in.

    One row per key: a pusher takes it by inserting the row, or by updating it while its
    lease has run out, so two pushers never send one key at the same time.
    """

    __tablename__ = "key_claim"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # pending (being sent), unknown (sent, no answer), applied, dead (in the dead letters)
    outcome: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """A correction that failed for good, with the target system's own error."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    target: Mapped[str] = mapped_column(String(16))
    operation: Mapped[str] = mapped_column(String(16))
    record_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(255))
    target_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str] = mapped_column(String(128))
    error_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlanApproval(Base):
    """A person let a plan over the blast-radius cap go out."""

    __tablename__ = "plan_approval"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    approved_by: Mapped[str] = mapped_column(String(128))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExceptionDecision(Base):
    """What a person decided about a finding; the latest row per exception counts."""

    __tablename__ = "exception_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(String(64), index=True)
    # acknowledged, ignored, planned, corrected, open
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookReceipt(Base):
    """A webhook delivery seen once, so a redelivery is recognized."""

    __tablename__ = "webhook_receipt"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
