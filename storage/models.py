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

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ChangeStatus(StrEnum):
    #: Waiting for its requester to confirm the part they may run (its calls are ``held``).
    AWAITING_CONFIRMATION = "awaiting"
    #: A request waiting for approvers (its calls are ``held``); see the ``approvals`` table.
    AWAITING_APPROVAL = "requested"
    REJECTED = "rejected"
    #: A request nobody approved in time.
    EXPIRED = "expired"
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
    #: What the requester said (``--reason "…"``); required for approval requests.
    reason: Mapped[str | None] = mapped_column(Text)
    #: Approval requests: how many distinct approvers it needs, until when, and its message.
    approvals_needed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    request_channel: Mapped[str | None] = mapped_column(String(32))
    request_ts: Mapped[str | None] = mapped_column(String(32))
    #: Timed changes (``for 30m``): how long, and when the revert is due. ``revert_at`` is cleared
    #: in the same transaction that records the revert, so a revert is made once.
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    revert_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    #: The change this one reverts (an undo, or the end of a timed change).
    reverts_change_id: Mapped[int | None] = mapped_column(
        ForeignKey("changes.id", ondelete="SET NULL")
    )

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


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Approval(Base):
    """One approver's decision on a request; one per approver and request."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("change_id", "approver_id", name="uq_approvals_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    approver_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    #: Post one line per executed change in ``channel_id``.
    trail_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Approval policy. ``self_approval``: a requester who may approve may approve their own
    #: request. ``approval_buttons``: comma-separated buttons whose changes always need approval,
    #: even from supervisors; ``approval_over_agents``: changes to more agents than this need it
    #: too. ``two_approvers_buttons``: requests touching these buttons need two distinct
    #: approvers. ``approval_ttl_minutes``: how long a request waits (NULL: the default).
    self_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    approval_buttons: Mapped[str | None] = mapped_column(String(64))
    approval_over_agents: Mapped[int | None] = mapped_column(Integer)
    two_approvers_buttons: Mapped[str | None] = mapped_column(String(64))
    approval_ttl_minutes: Mapped[int | None] = mapped_column(Integer)
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


class UserSetting(Base):
    """A Slack user's own choices; for now the language they chose with ``/agentbox lang``."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: ``en`` or ``es`` (commands/i18n.py); no row: follow the user's Slack language.
    language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- Slack OAuth (multi-workspace install; bot/oauth.py, storage/slack_installations.py) --------
# slack_sdk's SQLAlchemy stores read and write these tables; their columns are slack_sdk's, except
# the tokens, which are Text: they are stored encrypted (AGENTBOX_ENCRYPTION_KEYS).


class SlackInstallation(Base):
    """One installation of the app by a user in a workspace (slack_sdk's ``Installation``)."""

    __tablename__ = "slack_installations"
    __table_args__ = (
        Index(
            "slack_installations_idx",
            "client_id",
            "enterprise_id",
            "team_id",
            "user_id",
            "installed_at",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    enterprise_url: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(32))
    team_name: Mapped[str | None] = mapped_column(String(200))
    bot_token: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(String(32))
    bot_user_id: Mapped[str | None] = mapped_column(String(32))
    bot_scopes: Mapped[str | None] = mapped_column(String(1000))
    bot_refresh_token: Mapped[str | None] = mapped_column(Text)
    bot_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    user_id: Mapped[str] = mapped_column(String(32))
    user_token: Mapped[str | None] = mapped_column(Text)
    user_scopes: Mapped[str | None] = mapped_column(String(1000))
    user_refresh_token: Mapped[str | None] = mapped_column(Text)
    user_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    incoming_webhook_url: Mapped[str | None] = mapped_column(String(200))
    incoming_webhook_channel: Mapped[str | None] = mapped_column(String(200))
    incoming_webhook_channel_id: Mapped[str | None] = mapped_column(String(200))
    incoming_webhook_configuration_url: Mapped[str | None] = mapped_column(String(200))
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean, default=False)
    token_type: Mapped[str | None] = mapped_column(String(32))
    installed_at: Mapped[datetime] = mapped_column(DateTime)


class SlackBot(Base):
    """A workspace's bot token, the newest row per workspace wins (slack_sdk's ``Bot``)."""

    __tablename__ = "slack_bots"
    __table_args__ = (
        Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(32))
    team_name: Mapped[str | None] = mapped_column(String(200))
    bot_token: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(String(32))
    bot_user_id: Mapped[str | None] = mapped_column(String(32))
    bot_scopes: Mapped[str | None] = mapped_column(String(1000))
    bot_refresh_token: Mapped[str | None] = mapped_column(Text)
    bot_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean, default=False)
    installed_at: Mapped[datetime] = mapped_column(DateTime)


class SlackOAuthState(Base):
    """A pending install's ``state`` (CSRF protection), consumed once by the redirect."""

    __tablename__ = "slack_oauth_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(200))
    expire_at: Mapped[datetime] = mapped_column(DateTime)
