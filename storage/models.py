"""The tables. A *change* is one requested command (one slash command); it fans out into one *call*
per agent and button, which is what the dispatcher sends to wolkvox. Every attempt to change
something, allowed or not, leaves an *audit event*.

The ``calls`` table is also the queue: a call is ``queued`` until a worker holding one of its
token's slots claims it (``running``), and ``succeeded`` or ``failed`` once answered. Calls are
claimed in ``id`` order, which is the order they were asked for. Every schema change goes through
a migration in ``storage/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ChangeStatus(StrEnum):
    #: Waiting for its requester to confirm the part they may run (its calls are ``held``).
    AWAITING_CONFIRMATION = "awaiting"
    QUEUED = "queued"
    DONE = "done"
    CANCELLED = "cancelled"


class CallStatus(StrEnum):
    HELD = "held"  # recorded, not to be sent until its change is confirmed
    CANCELLED = "cancelled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Decision(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    INVALID = "invalid"


class Change(Base):
    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    slack_team_id: Mapped[str | None] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    response_url: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    display: Mapped[str] = mapped_column(String(8))
    buttons: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ChangeStatus.QUEUED)
    #: One per Slack delivery (``slash:<trigger_id>``): a command delivered twice is one change.
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    #: The Slack message that follows the change, so that any replica can go on updating it.
    progress_channel: Mapped[str | None] = mapped_column(String(32))
    progress_ts: Mapped[str | None] = mapped_column(String(32))
    #: The replica reporting progress, until ``reporter_lease_until``; another one takes over after.
    reporter_id: Mapped[str | None] = mapped_column(String(128))
    reporter_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    calls: Mapped[list[Call]] = relationship(
        back_populates="change", order_by="Call.seq", cascade="all, delete-orphan"
    )


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_change_seq", "change_id", "seq"),
        Index("ix_calls_queue", "operation", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(32))
    button: Mapped[str] = mapped_column(String(16))
    display: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    #: The replica and the token slot that claimed it; a ``running`` call whose slot has been
    #: taken over by someone else was in flight when its replica died, and is queued again.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    slot: Mapped[int | None] = mapped_column(Integer)
    #: New at every claim: an answer is recorded only by the claim that is current, so a replica
    #: that lost its slot and answers late cannot overwrite the call's re-run.
    claim_token: Mapped[str | None] = mapped_column(String(32))

    change: Mapped[Change] = relationship(back_populates="calls")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    slack_team_id: Mapped[str | None] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32), index=True)
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))


class Operation(Base):
    """A wolkvox operation (tenant) in the database; its token is encrypted (storage/secrets)."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    server: Mapped[str] = mapped_column(String(64))
    token_ciphertext: Mapped[str] = mapped_column(Text)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Team(Base):
    """Agents of one operation, with the channel for their trail."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    operation: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(32))
    approvals_channel_id: Mapped[str | None] = mapped_column(String(32))
    #: Comma-separated channel ids where changes to these agents are accepted; empty = anywhere.
    change_channels: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    agents: Mapped[list[TeamAgent]] = relationship(
        back_populates="team", cascade="all, delete-orphan", order_by="TeamAgent.agent_id"
    )


class TeamAgent(Base):
    """An agent's membership; an agent belongs to at most one team per operation."""

    __tablename__ = "team_agents"
    __table_args__ = (UniqueConstraint("operation", "agent_id", name="uq_team_agents_operation"),)

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))

    team: Mapped[Team] = relationship(back_populates="agents")


class Grant(Base):
    """A role given to a Slack user or user group, over some teams (or all) and buttons (or all)."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # "user" | "usergroup"
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(16))
    #: Comma-separated team names; NULL = every team.
    teams: Mapped[str | None] = mapped_column(Text)
    #: Comma-separated buttons; NULL = every button.
    buttons: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
