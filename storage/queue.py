"""The ``calls`` table as a queue: reserve and claim in order, record answers, recover what a
dead replica held.

A call's life in the table: ``queued``; *reserved* by the token's sender (still ``queued``, with
``claimed_by``, ``slot`` and a ``claim_token``: it is next, nobody else takes it); ``running`` from
the moment it is sent; ``succeeded`` or ``failed`` with wolkvox's answer. Marking a call running and
recording its answer both require its current claim token, so a replica that lost its slot cannot
overwrite a re-run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.changes import CALLS_AHEAD
from storage.database import Database
from storage.group_commit import GroupCommit
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

_calls = cast(Table, Call.__table__)
# Core statements run with many parameter sets at once (one round trip for a batch of steps).
_MARK_RUNNING = (
    update(_calls)
    .where(
        _calls.c.id == bindparam("b_id"),
        _calls.c.claim_token == bindparam("b_token"),
        _calls.c.status == CallStatus.QUEUED,
    )
    .values(status=CallStatus.RUNNING, slot=bindparam("b_slot"), started_at=bindparam("b_at"))
)
_RECORD_ANSWER = (
    update(_calls)
    .where(
        _calls.c.id == bindparam("b_id"),
        _calls.c.claim_token == bindparam("b_token"),
        _calls.c.status == CallStatus.RUNNING,
    )
    .values(
        status=bindparam("b_status"),
        attempts=_calls.c.attempts + bindparam("b_attempts"),
        message=bindparam("b_message"),
        error_kind=bindparam("b_error_kind"),
        duration_ms=bindparam("b_duration_ms"),
        finished_at=bindparam("b_at"),
    )
)

_RESERVE = (
    update(_calls)
    .where(
        _calls.c.id.in_(
            select(_calls.c.id)
            .where(
                _calls.c.operation == bindparam("b_operation"),
                _calls.c.status == CallStatus.QUEUED,
                _calls.c.claim_token.is_(None),
            )
            .order_by(_calls.c.id)
            .limit(bindparam("b_limit"))
            # Two senders never take the same row (PostgreSQL; SQLite has one writer anyway).
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(
        claimed_by=bindparam("b_replica"),
        slot=bindparam("b_slot"),
        claim_token=bindparam("b_token"),
    )
    .returning(
        _calls.c.id, _calls.c.change_id, _calls.c.agent_id, _calls.c.display, _calls.c.button
    )
)
# Queue again what was left in some (operation, slot) pairs: running calls first (returned, to be
# counted per operation), then reserved ones.
_REQUEUE = [
    update(_calls)
    .where(
        _calls.c.status == status,
        tuple_(_calls.c.operation, _calls.c.slot).in_(bindparam("b_slots", expanding=True)),
    )
    .values(status=CallStatus.QUEUED, claimed_by=None, slot=None, claim_token=None)
    for status in (CallStatus.RUNNING, CallStatus.QUEUED)
]
_REQUEUE[0] = _REQUEUE[0].returning(_calls.c.operation)
_NOTIFY_CHANGES = text("SELECT pg_notify(:topic, key) FROM unnest(CAST(:keys AS text[])) AS key")


@dataclass
class _Step:
    answered: tuple[QueuedCall, CallOutcome] | None
    started: QueuedCall | None
    at: datetime


async def _reserve(
    connection: AsyncConnection, operation: str, replica_id: str, slot: int, limit: int
) -> list[QueuedCall]:
    """:meth:`CallQueue.reserve` within a transaction."""
    token = secrets.token_hex(8)
    rows = (
        await connection.execute(
            _RESERVE,
            {
                "b_operation": operation,
                "b_limit": limit,
                "b_replica": replica_id,
                "b_slot": slot,
                "b_token": token,
            },
        )
    ).all()
    return [
        QueuedCall(
            id=call_id,
            change_id=change_id,
            operation=operation,
            request=DisplayRequest(agent_id, Display(display), Button(button)),
            slot=slot,
            claim_token=token,
        )
        for call_id, change_id, agent_id, display, button in sorted(rows)
    ]


async def _requeue(
    connection: AsyncConnection, slots: Sequence[tuple[str, int]]
) -> collections.Counter[str]:
    """Queue again what was left running or reserved in several (operation, slot) pairs, within
    a transaction (:meth:`CallQueue.adopt`); how many calls were running, per operation."""
    if not slots:
        return collections.Counter()
    where = {"b_slots": list(slots)}
    running = collections.Counter((await connection.execute(_REQUEUE[0], where)).scalars())
    await connection.execute(_REQUEUE[1], where)
    return running


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failed write's error as seen: its sender may have been cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


class CallQueue:
    def __init__(self, database: Database, signals: Signals) -> None:
        self._db = database
        self._signals = signals
        self._means: dict[str, tuple[float, float | None]] = {}  # operation -> (taken, mean)
        # No bound on a batch beyond the senders': each has a few steps unsettled at most.
        self._steps = GroupCommit(self._write_steps, max_batch=10_000)

    async def reserve(
        self, operation: str, *, replica_id: str, slot: int, limit: int
    ) -> list[QueuedCall]:
        """Reserve, for the holder of ``slot``, up to ``limit`` of the oldest queued calls of
        ``operation`` that nobody has reserved; in id (= asked-for) order.

        They stay ``queued`` (not sent yet) under a new claim token; :meth:`step` marks
        each one ``running`` as it is sent, :meth:`release` gives back those never sent, and
        :meth:`adopt` those of a holder that is gone.
        """
        async with self._db.transaction() as session:
            return await _reserve(await session.connection(), operation, replica_id, slot, limit)

    async def adopt(
        self,
        operation: str,
        *,
        orphaned_slots: Sequence[int],
        replica_id: str,
        slot: int,
        limit: int,
    ) -> tuple[int, list[QueuedCall]]:
        """Queue again the calls a holder that is gone left running or reserved in each of
        ``orphaned_slots``, then :meth:`reserve`, in one transaction: what a sender does when it
        takes a token's slots. Returns how many calls were running in those slots (in flight,
        maybe answered: they are sent again), and the calls reserved.

        Called by the new holder of the slots: the lock is exclusive, so nobody else can still
        be sending them (but see storage/slots.py for the edge of a lost database connection).

        One transaction instead of one per slot and one more for the reservation: a token's
        first call waits for it, and on SQLite it waits for the one writer with everyone else.
        """
        async with self._db.transaction() as session:
            connection = await session.connection()
            running = await _requeue(connection, [(operation, slot) for slot in orphaned_slots])
            calls = await _reserve(connection, operation, replica_id, slot, limit)
        return running[operation], calls

    def step(
        self,
        *,
        answered: tuple[QueuedCall, CallOutcome] | None = None,
        started: QueuedCall | None = None,
    ) -> asyncio.Future[None]:
        """Record, without making the caller wait, that ``answered`` got its answer and that the
        reserved call ``started`` (its ``slot`` the sender's) is being sent now.

        Both go into one transaction, so a sender that swaps one call for the next never shows
        more calls ``running`` than it has in flight. Steps are written in the order they were
        made (a call's answer after its start), grouped into one transaction with whatever
        other senders recorded meanwhile. The future is done once the step is durable, and those
        following the answered call's change have been woken then, not before.
        """
        written = self._steps.enqueue(_Step(answered, started, utcnow()))
        written.add_done_callback(_retrieve)
        return written

    async def aclose(self, grace: float | None = None) -> None:
        """Wait until every step recorded so far is written (shutdown, before the database is
        disposed of), ``grace`` seconds at most: an answer not recorded would be sent again
        after the restart (safe: show/hide are idempotent)."""
        await self._steps.aclose(grace)

    async def flush(self) -> None:
        """Wait until every step recorded so far is durable (or has failed)."""
        with contextlib.suppress(Exception):
            await self.step()

    async def _write_steps(self, batch: Sequence[_Step]) -> list[Exception | None]:
        changes = await self._write(batch)
        for change in changes:  # once durable: whoever follows the change reads the answer
            self._signals.notify(CHANGE, change)
        return [None] * len(batch)

    async def _write(self, batch: Sequence[_Step]) -> list[str]:
        """One transaction for ``batch``; the changes whose calls were answered."""
        # Marks first: a call started and answered within one batch is running before its answer.
        marks = [
            {"b_id": s.id, "b_token": s.claim_token, "b_slot": s.slot, "b_at": step.at}
            for step in batch
            if (s := step.started) is not None
        ]
        answers = [
            {
                "b_id": call.id,
                "b_token": call.claim_token,
                "b_status": CallStatus.SUCCEEDED if outcome.ok else CallStatus.FAILED,
                "b_attempts": outcome.attempts,
                "b_message": outcome.message,
                "b_error_kind": outcome.error.kind if outcome.error is not None else None,
                "b_duration_ms": round(outcome.duration * 1000),
                "b_at": step.at,
            }
            for step in batch
            if step.answered is not None
            for call, outcome in (step.answered,)
        ]
        changes = sorted({str(s.answered[0].change_id) for s in batch if s.answered is not None})
        if not (marks or answers):
            return []
        async with self._db.transaction() as session:
            connection = await session.connection()  # Core: no ORM work per statement
            if marks:
                await connection.execute(_MARK_RUNNING, marks)
            if answers:
                await connection.execute(_RECORD_ANSWER, answers)
            if changes and self._signals.shared:
                # Signals.publish, for many keys in one round trip.
                await connection.execute(_NOTIFY_CHANGES, {"topic": CHANGE, "keys": changes})
        return changes

    async def release(self, calls: Sequence[QueuedCall]) -> None:
        """Give back reserved calls that were not sent (the sender stopped before them)."""
        if not calls:
            return
        async with self._db.transaction() as session:
            await session.execute(
                update(_calls)
                .where(
                    _calls.c.id == bindparam("b_id"),
                    _calls.c.claim_token == bindparam("b_token"),
                    _calls.c.status == CallStatus.QUEUED,
                )
                .values(claimed_by=None, slot=None, claim_token=None),
                [{"b_id": call.id, "b_token": call.claim_token} for call in calls],
            )

    async def claim_next(self, operation: str, *, replica_id: str, slot: int) -> QueuedCall | None:
        """Reserve the oldest queued call of ``operation`` and mark it running at once, for a
        caller holding ``slot`` that sends one call at a time (the dispatcher reserves ahead)."""
        calls = await self.reserve(operation, replica_id=replica_id, slot=slot, limit=1)
        if not calls:
            return None
        await self.step(started=calls[0])
        return calls[0]

    async def complete(self, call: QueuedCall, outcome: CallOutcome) -> None:
        """Record the answer of a call taken with :meth:`claim_next`, and tell whoever follows
        the change."""
        await self.step(answered=(call, outcome))

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
        """Calls of ``operation`` asked for before ``change_id`` and not answered yet, and
        :meth:`mean_call_seconds`."""
        async with self._db.sessions() as session:
            ahead = await session.scalar(
                CALLS_AHEAD, {"operation": operation, "change_id": change_id}
            )
        return int(ahead or 0), await self.mean_call_seconds(operation)

    async def mean_call_seconds(self, operation: str) -> float | None:
        """The mean duration of ``operation``'s recent calls in seconds (None before any was
        measured); read at most every few seconds."""
        cached = self._means.get(operation)
        if cached is not None and time.monotonic() - cached[0] < _MEAN_MAX_AGE:
            return cached[1]
        recent = (
            select(Call.duration_ms)
            .where(and_(Call.operation == operation, Call.duration_ms.is_not(None)))
            .order_by(Call.finished_at.desc())
            .limit(_RECENT_CALLS)
            .subquery()
        )
        async with self._db.sessions() as session:
            mean_ms = await session.scalar(select(func.avg(recent.c.duration_ms)))
        mean = float(mean_ms) / 1000 if mean_ms is not None else None
        self._means[operation] = (time.monotonic(), mean)
        return mean
