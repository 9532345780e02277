"""The ``calls`` table as a queue: claim in order, complete, recover what a dead replica held."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import and_, func, select, update

from storage.database import Database
from storage.models import Call, CallStatus, utcnow
from storage.signals import CHANGE, Signals
from wolkvox.dispatcher import QueuedCall
from wolkvox.errors import WolkvoxError
from wolkvox.model import Button, Display, DisplayRequest
from wolkvox.retrying import CallOutcome

#: How many recent calls the mean duration (for wait estimates) is taken over.
_RECENT_CALLS = 50
#: How long that mean is reused before it is computed again.
_MEAN_MAX_AGE = 5.0


class CallQueue:
    def __init__(self, database: Database, signals: Signals) -> None:
        self._db = database
        self._signals = signals
        self._means: dict[str, tuple[float, float | None]] = {}  # operation -> (taken, mean)

    async def claim_next(self, operation: str, *, replica_id: str, slot: int) -> QueuedCall | None:
        """Mark the oldest queued call of ``operation`` running, for the caller holding ``slot``.

        ``FOR UPDATE SKIP LOCKED`` lets two slots of one operation claim side by side without
        taking the same row (PostgreSQL; SQLite has one writer at a time anyway).
        """
        oldest = (
            select(Call.id)
            .where(Call.operation == operation, Call.status == CallStatus.QUEUED)
            .order_by(Call.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        token = secrets.token_hex(8)
        statement = (
            update(Call)
            .where(Call.id == oldest)
            .values(
                status=CallStatus.RUNNING,
                claimed_by=replica_id,
                slot=slot,
                claim_token=token,
                started_at=utcnow(),
            )
            .returning(Call.id, Call.change_id, Call.agent_id, Call.display, Call.button)
        )
        async with self._db.transaction() as session:
            row = (await session.execute(statement)).first()
        if row is None:
            return None
        call_id, change_id, agent_id, display, button = row
        return QueuedCall(
            id=call_id,
            change_id=change_id,
            operation=operation,
            request=DisplayRequest(agent_id, Display(display), Button(button)),
            slot=slot,
            claim_token=token,
        )

    async def complete(self, call: QueuedCall, outcome: CallOutcome) -> None:
        """Record the answer, and tell whoever follows the change."""
        async with self._db.transaction() as session:
            await session.execute(
                update(Call)
                .where(
                    Call.id == call.id,
                    Call.status == CallStatus.RUNNING,
                    Call.claim_token == call.claim_token,
                )
                .values(
                    status=CallStatus.SUCCEEDED if outcome.ok else CallStatus.FAILED,
                    attempts=Call.attempts + outcome.attempts,
                    message=outcome.message,
                    error_kind=outcome.error.kind if outcome.error is not None else None,
                    duration_ms=round(outcome.duration * 1000),
                    finished_at=utcnow(),
                )
            )
            await self._signals.publish(session, CHANGE, str(call.change_id))
        self._signals.notify(CHANGE, str(call.change_id))

    async def requeue_orphans(self, operation: str, slot: int) -> int:
        """Queue again the calls left running in ``slot`` by a holder that is gone.

        Called by the new holder of the slot: the lock is exclusive, so nobody else can still be
        running them (but see storage/slots.py for the edge of a lost database connection).
        """
        async with self._db.transaction() as session:
            result = await session.execute(
                update(Call)
                .where(
                    Call.operation == operation,
                    Call.status == CallStatus.RUNNING,
                    Call.slot == slot,
                )
                .values(status=CallStatus.QUEUED, claimed_by=None, slot=None, claim_token=None)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def fail_queued(self, operation: str, error: WolkvoxError) -> int:
        """Fail every queued call of ``operation`` with ``error`` (its token is unusable)."""
        async with self._db.transaction() as session:
            changes = (
                await session.scalars(
                    select(Call.change_id)
                    .where(Call.operation == operation, Call.status == CallStatus.QUEUED)
                    .distinct()
                )
            ).all()
            result = await session.execute(
                update(Call)
                .where(Call.operation == operation, Call.status == CallStatus.QUEUED)
                .values(
                    status=CallStatus.FAILED,
                    message=error.user_message,
                    error_kind=error.kind,
                    finished_at=utcnow(),
                )
            )
            for change_id in changes:
                await self._signals.publish(session, CHANGE, str(change_id))
        for change_id in changes:
            self._signals.notify(CHANGE, str(change_id))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def operations_with_work(self) -> list[str]:
        """Operations that have calls queued or left running (to serve them at start)."""
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(Call.operation)
                .where(Call.status.in_((CallStatus.QUEUED, CallStatus.RUNNING)))
                .distinct()
            )
            return sorted(rows)

    async def backlog(self, operation: str, change_id: int) -> tuple[int, float | None]:
        """Calls of ``operation`` asked for before ``change_id`` and not answered yet, and the
        mean duration of its recent calls in seconds (None before any was measured)."""
        async with self._db.sessions() as session:
            ahead = await session.scalar(
                select(func.count()).where(
                    Call.operation == operation,
                    Call.status.in_((CallStatus.QUEUED, CallStatus.RUNNING)),
                    Call.change_id < change_id,
                )
            )
            cached = self._means.get(operation)
            if cached is not None and time.monotonic() - cached[0] < _MEAN_MAX_AGE:
                return int(ahead or 0), cached[1]
            recent = (
                select(Call.duration_ms)
                .where(
                    and_(Call.operation == operation, Call.duration_ms.is_not(None)),
                )
                .order_by(Call.finished_at.desc())
                .limit(_RECENT_CALLS)
                .subquery()
            )
            mean_ms = await session.scalar(select(func.avg(recent.c.duration_ms)))
        mean = float(mean_ms) / 1000 if mean_ms is not None else None
        self._means[operation] = (time.monotonic(), mean)
        return int(ahead or 0), mean
