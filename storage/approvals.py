"""Approval requests: who approved or rejected them, and the one transition that runs or ends each.

A request is a change in status ``requested`` whose calls are ``held`` (storage/changes.py records
it). Every way out of that status is one conditional ``UPDATE … WHERE status = 'requested'`` in the
database, taken with the change's row locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has
one writer at a time), so double clicks, Slack retries, two approvers at once and two replicas
end with exactly one outcome, and the change runs at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditEntry, add_audit
from storage.changes import ChangeRecord, ChangeStore
from storage.database import Database
from storage.models import (
    Approval,
    ApprovalDecision,
    Call,
    CallStatus,
    Change,
    ChangeStatus,
    Decision,
    utcnow,
)
from storage.signals import Signals
from wolkvox.dispatcher import WORK


@dataclass(frozen=True)
class ApprovalRecord:
    approver_id: str
    decision: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class RequestRecord:
    """An approval request as stored: the change, its terms, and the decisions so far."""

    change: ChangeRecord
    reason: str | None
    approvals_needed: int
    expires_at: datetime
    #: Where the request is posted, and its message once posted.
    channel: str | None
    message: tuple[str, str] | None
    decisions: tuple[ApprovalRecord, ...]

    @property
    def id(self) -> int:
        return self.change.id

    @property
    def status(self) -> str:
        return self.change.status

    @property
    def requester_id(self) -> str:
        return self.change.requester.user_id

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(
            d.approver_id for d in self.decisions if d.decision == ApprovalDecision.APPROVED
        )

    @property
    def rejection(self) -> ApprovalRecord | None:
        return next((d for d in self.decisions if d.decision == ApprovalDecision.REJECTED), None)


class Outcome(StrEnum):
    """What became of an approval or a rejection."""

    #: The last approval needed: the change is queued now (this click did it).
    RAN = "ran"
    #: Approved, and more approvers are needed.
    WAITING = "waiting"
    REJECTED = "rejected"
    #: This approver decided on this request already.
    ALREADY = "already"
    #: Not waiting any more (approved, rejected, expired or withdrawn before this click).
    CLOSED = "closed"
    #: Its time is up (not yet marked expired: the caller expires it).
    EXPIRED = "expired"
    #: No such change, or a change that is not a request.
    NO_REQUEST = "no request"


class _Closed(Exception):
    """The conditional transition found the request no longer waiting: roll back."""


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their time zone; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ApprovalStore:
    def __init__(self, database: Database, signals: Signals, changes: ChangeStore) -> None:
        self._db = database
        self._signals = signals
        self._changes = changes

    async def load(self, change_id: int) -> RequestRecord | None:
        """The request ``change_id``; None when there is no such change or it is no request."""
        change = await self._changes.load_change(change_id)
        if change is None:
            return None
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(
                        Change.reason,
                        Change.approvals_needed,
                        Change.expires_at,
                        Change.request_channel,
                        Change.request_ts,
                    ).where(Change.id == change_id)
                )
            ).one()
            decisions = await session.scalars(
                select(Approval).where(Approval.change_id == change_id).order_by(Approval.id)
            )
            records = tuple(
                ApprovalRecord(d.approver_id, d.decision, d.reason, _aware(d.at)) for d in decisions
            )
        if not row.approvals_needed or row.expires_at is None:
            return None
        return RequestRecord(
            change=change,
            reason=row.reason,
            approvals_needed=row.approvals_needed,
            expires_at=_aware(row.expires_at),
            channel=row.request_channel,
            message=(row.request_channel, row.request_ts) if row.request_ts else None,
            decisions=records,
        )

    async def set_message(self, change_id: int, channel: str, ts: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(Change)
                .where(Change.id == change_id)
                .values(request_channel=channel, request_ts=ts)
            )

    async def approve(
        self,
        change_id: int,
        approver_id: str,
        *,
        now: datetime,
        reporter_id: str,
        lease: float,
        audit: AuditEntry,
    ) -> Outcome:
        """Record ``approver_id``'s approval and, when it is the last one needed, queue the change.

        One transaction: the approval, the count of approvals, and the conditional transition
        ``requested → queued`` (which also makes the request's message the change's progress
        message, so any replica that adopts the change updates it).
        """
        try:
            async with self._db.transaction() as session:
                found = await self._open(session, change_id, approver_id, now)
                if isinstance(found, Outcome):
                    return found
                needed, channel, ts = found
                session.add(
                    Approval(
                        change_id=change_id,
                        approver_id=approver_id,
                        decision=ApprovalDecision.APPROVED,
                        at=now,
                    )
                )
                await session.flush()
                approvals = await session.scalar(
                    select(func.count())
                    .select_from(Approval)
                    .where(
                        Approval.change_id == change_id,
                        Approval.decision == ApprovalDecision.APPROVED,
                    )
                )
                add_audit(session, audit)
                if (approvals or 0) < needed:
                    return Outcome.WAITING
                await self._leave(
                    session,
                    change_id,
                    now,
                    change={
                        "status": ChangeStatus.QUEUED,
                        "reporter_id": reporter_id,
                        # Leases are real time: other replicas compare them with their own.
                        "reporter_lease_until": utcnow() + timedelta(seconds=lease),
                        "progress_channel": channel,
                        "progress_ts": ts,
                    },
                    calls=CallStatus.QUEUED,
                )
                operations = await session.scalars(
                    select(Call.operation).where(Call.change_id == change_id).distinct()
                )
                for operation in sorted(operations):
                    await self._signals.publish(session, WORK, operation)
                return Outcome.RAN
        except _Closed:
            return Outcome.CLOSED
        except IntegrityError:
            return Outcome.ALREADY  # the same approver's other click, committed first

    async def reject(
        self,
        change_id: int,
        approver_id: str,
        reason: str | None,
        *,
        now: datetime,
        audit: AuditEntry,
    ) -> Outcome:
        """End the request as rejected (its calls cancelled), with the rejecter's reason."""
        try:
            async with self._db.transaction() as session:
                found = await self._open(session, change_id, approver_id, now, rejecting=True)
                if isinstance(found, Outcome):
                    return found
                await self._leave(
                    session,
                    change_id,
                    now,
                    change={
                        "status": ChangeStatus.REJECTED,
                        "finished_at": now,
                        "reported_at": now,
                    },
                    calls=CallStatus.CANCELLED,
                )
                session.add(
                    Approval(
                        change_id=change_id,
                        approver_id=approver_id,
                        decision=ApprovalDecision.REJECTED,
                        reason=reason,
                        at=now,
                    )
                )
                add_audit(session, audit)
                return Outcome.REJECTED
        except _Closed:
            return Outcome.CLOSED
        except IntegrityError:
            return Outcome.ALREADY

    async def withdraw(self, change_id: int, *, now: datetime, audit: AuditEntry) -> bool:
        """End a request nobody can see (its message could not be posted); True if it did."""
        try:
            async with self._db.transaction() as session:
                await self._leave(
                    session,
                    change_id,
                    None,
                    change={
                        "status": ChangeStatus.CANCELLED,
                        "finished_at": now,
                        "reported_at": now,
                    },
                    calls=CallStatus.CANCELLED,
                )
                add_audit(session, audit)
        except _Closed:
            return False
        return True

    async def expire(
        self, now: datetime, *, change_id: int | None = None, limit: int = 100
    ) -> list[int]:
        """Mark expired every request whose time is up at ``now`` (or just ``change_id``); the
        ids this call expired. Each is audited in the requester's name."""
        due = and_(
            Change.status == ChangeStatus.AWAITING_APPROVAL,
            Change.expires_at.is_not(None),
            Change.expires_at <= now,
        )
        if change_id is not None:
            due = and_(due, Change.id == change_id)
        expired: list[int] = []
        # Read first: the sweep runs every few seconds in every replica, and most of the time
        # nothing is due, so it takes no write lock then.
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(Change.id, Change.slack_user_id, Change.slack_team_id, Change.text)
                    .where(due)
                    .order_by(Change.expires_at, Change.id)
                    .limit(limit)
                )
            ).all()
        if not rows:
            return expired
        async with self._db.transaction() as session:
            for row in rows:
                result = await session.execute(
                    update(Change)
                    .where(Change.id == row.id, due)
                    .values(status=ChangeStatus.EXPIRED, finished_at=now, reported_at=now)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    continue
                await session.execute(
                    update(Call)
                    .where(Call.change_id == row.id, Call.status == CallStatus.HELD)
                    .values(status=CallStatus.CANCELLED)
                )
                add_audit(
                    session,
                    AuditEntry(
                        user_id=row.slack_user_id,
                        action="request.expire",
                        text=row.text,
                        decision=Decision.REFUSED,
                        reason="expired: not approved in time; nothing was run",
                        team_id=row.slack_team_id,
                        change_id=row.id,
                    ),
                )
                expired.append(row.id)
        return expired

    async def waiting(self, now: datetime, *, limit: int = 50) -> list[int]:
        """The requests still waiting for approval at ``now``, the oldest first."""
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(Change.id)
                .where(Change.status == ChangeStatus.AWAITING_APPROVAL, Change.expires_at > now)
                .order_by(Change.id)
                .limit(limit)
            )
            return list(rows)

    async def next_expiry(self) -> datetime | None:
        """When the next waiting request expires, if any is waiting."""
        async with self._db.sessions() as session:
            found = await session.scalar(
                select(func.min(Change.expires_at)).where(
                    Change.status == ChangeStatus.AWAITING_APPROVAL
                )
            )
        return _aware(found) if found is not None else None

    async def audit(self, entry: AuditEntry) -> None:
        async with self._db.transaction() as session:
            add_audit(session, entry)

    async def _open(
        self,
        session: AsyncSession,
        change_id: int,
        approver_id: str,
        now: datetime,
        *,
        rejecting: bool = False,
    ) -> tuple[int, str | None, str | None] | Outcome:
        """Lock the request and say whether ``approver_id`` may still decide on it: its
        (approvals needed, channel, ts), or why not. ``rejecting``: someone who approved may
        still reject (a requester who approved their own may still withdraw); the rejection
        takes the place of their approval."""
        row = (
            await session.execute(
                select(
                    Change.status,
                    Change.approvals_needed,
                    Change.expires_at,
                    Change.request_channel,
                    Change.request_ts,
                )
                .where(Change.id == change_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None or not row.approvals_needed or row.expires_at is None:
            return Outcome.NO_REQUEST
        if row.status != ChangeStatus.AWAITING_APPROVAL:
            return Outcome.CLOSED
        if _aware(row.expires_at) <= now:
            return Outcome.EXPIRED
        mine = await session.scalar(
            select(Approval.id).where(
                Approval.change_id == change_id, Approval.approver_id == approver_id
            )
        )
        if mine is not None:
            if not rejecting:
                return Outcome.ALREADY
            await session.execute(delete(Approval).where(Approval.id == mine))
        return row.approvals_needed, row.request_channel, row.request_ts

    async def _leave(
        self,
        session: AsyncSession,
        change_id: int,
        now: datetime | None,
        *,
        change: dict[str, object],
        calls: CallStatus,
    ) -> None:
        """The conditional transition out of ``requested`` (before ``now``, when given), and the
        held calls with it; raises :class:`_Closed` when the request is no longer waiting."""
        condition = and_(Change.id == change_id, Change.status == ChangeStatus.AWAITING_APPROVAL)
        if now is not None:
            condition = and_(condition, Change.expires_at > now)
        result = await session.execute(update(Change).where(condition).values(**change))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise _Closed
        await session.execute(
            update(Call)
            .where(Call.change_id == change_id, Call.status == CallStatus.HELD)
            .values(status=calls)
        )
