"""Read-only queries behind the ``/metrics`` page (bot/metrics.py): the queue and approvals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from storage.database import Database
from storage.models import Call, CallStatus, Change, ChangeStatus

#: The most sent calls one scrape reads; the rest are read by the next scrape.
CLAIMS_PER_READ = 5000

_CLAIMED = (CallStatus.RUNNING, CallStatus.SUCCEEDED, CallStatus.FAILED)


@dataclass(frozen=True)
class QueueGroup:
    """The calls of one operation in one state (``queued`` or ``running``)."""

    operation: str
    status: str
    count: int
    lowest_id: int
    #: When the change of the longest-waiting call in the group was recorded.
    oldest_created_at: datetime


@dataclass(frozen=True)
class Claim:
    """A call this replica sent: how long after its change was recorded (``started_at``)."""

    call_id: int
    operation: str
    wait_seconds: float


async def queue_groups(database: Database) -> list[QueueGroup]:
    """Queued and running calls per operation: one GROUP BY on the queue's index."""
    statement = (
        select(
            Call.operation,
            Call.status,
            func.count(),
            func.min(Call.id),
            func.min(Change.created_at),
        )
        .join(Change, Change.id == Call.change_id)
        .where(Call.status.in_((CallStatus.QUEUED, CallStatus.RUNNING)))
        .group_by(Call.operation, Call.status)
    )
    async with database.sessions() as session:
        rows = (await session.execute(statement)).all()
    return [
        QueueGroup(operation, status, int(count), int(lowest), _aware(oldest))
        for operation, status, count, lowest, oldest in rows
    ]


async def last_call_id(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.max(Call.id))) or 0)


async def claims_after(database: Database, replica_id: str, after_id: int) -> list[Claim]:
    """Calls with an id above ``after_id`` that ``replica_id`` sent (oldest first, at most
    :data:`CLAIMS_PER_READ`), with the time from their change's recording to their sending."""
    statement = (
        select(Call.id, Call.operation, Call.started_at, Change.created_at)
        .join(Change, Change.id == Call.change_id)
        .where(
            Call.id > after_id,
            Call.claimed_by == replica_id,
            Call.status.in_(_CLAIMED),
            Call.started_at.is_not(None),
        )
        .order_by(Call.id)
        .limit(CLAIMS_PER_READ)
    )
    async with database.sessions() as session:
        rows = (await session.execute(statement)).all()
    return [
        Claim(call_id, operation, _seconds_between(created, started))
        for call_id, operation, started, created in rows
    ]


async def approval_requests(database: Database) -> dict[str, int]:
    """Changes that needed approval, by outcome: pending, approved, rejected, expired or
    cancelled (an approved request went on to be queued and run)."""
    statement = (
        select(Change.status, func.count())
        .where(Change.approvals_needed > 0)
        .group_by(Change.status)
    )
    async with database.sessions() as session:
        rows = (await session.execute(statement)).all()
    outcomes = dict.fromkeys(("pending", "approved", "rejected", "expired", "cancelled"), 0)
    for status, count in rows:
        outcomes[_APPROVAL_OUTCOMES.get(status, "approved")] += int(count)
    return outcomes


_APPROVAL_OUTCOMES: dict[str, str] = {
    ChangeStatus.AWAITING_APPROVAL: "pending",
    ChangeStatus.AWAITING_CONFIRMATION: "pending",
    ChangeStatus.REJECTED: "rejected",
    ChangeStatus.EXPIRED: "expired",
    ChangeStatus.CANCELLED: "cancelled",
}


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC); PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seconds_between(earlier: datetime, later: datetime | None) -> float:
    if later is None:
        return 0.0
    return max(0.0, (_aware(later) - _aware(earlier)).total_seconds())
