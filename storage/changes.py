"""Reading and writing changes, their calls and the audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Integer, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.audit import AuditEntry, add_audit
from storage.database import Database
from storage.group_commit import GroupCommit
from storage.models import AuditEvent, Call, CallStatus, Change, ChangeStatus, Decision, utcnow
from storage.signals import Signals
from wolkvox.dispatcher import WORK


@dataclass(frozen=True)
class Requester:
    """Who asked, and where: the Slack context of a command."""

    user_id: str
    team_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class PlannedCall:
    """One wolkvox call a change will make."""

    operation: str
    agent_id: str
    button: str
    display: str


@dataclass(frozen=True)
class RequestTerms:
    """What makes a change an approval request (storage/approvals.py decides on it): its calls
    are held until enough approvers approve it before ``expires_at``."""

    reason: str
    approvals_needed: int
    expires_at: datetime
    #: Where the request is posted for approvers.
    channel: str


@dataclass(frozen=True)
class CallRecord:
    """A call as stored, detached from any session."""

    id: int
    seq: int
    operation: str
    agent_id: str
    button: str
    display: str
    status: str
    attempts: int
    error_kind: str | None
    message: str | None

    @property
    def answered(self) -> bool:
        return self.status in (CallStatus.SUCCEEDED, CallStatus.FAILED)


@dataclass(frozen=True)
class ChangeRecord:
    """A change as stored, with its calls in the order they were asked for."""

    id: int
    requester: Requester
    response_url: str | None
    text: str
    display: str
    buttons: tuple[str, ...]
    status: str
    progress_message: tuple[str, str] | None
    calls: tuple[CallRecord, ...]
    #: A timed change's length; and the change this one reverts (undo, end of a timed change).
    duration_seconds: int | None = None
    reverts_change_id: int | None = None
    #: Which attempt at putting the timed change back this automatic revert is (1 the first);
    #: 0 for any change someone asked for.
    revert_attempt: int = 0

    @property
    def automatic_revert(self) -> bool:
        """Made by agentbox when a timed change's time was up (not asked for by anyone)."""
        return self.revert_attempt > 0

    @property
    def operations(self) -> tuple[str, ...]:
        return tuple(sorted({call.operation for call in self.calls}))


@dataclass(frozen=True)
class Recorded:
    change_id: int
    duplicate: bool = False
    #: For each operation a new change queued calls for: how many calls of it, asked for before
    #: them, were not answered yet (read in the transaction that stored the change, so on
    #: PostgreSQL another replica's changes committing at the same moment are not counted).
    calls_ahead: Mapping[str, int] = field(default_factory=dict, compare=False)


def _call_record(call: Call) -> CallRecord:
    return CallRecord(
        id=call.id,
        seq=call.seq,
        operation=call.operation,
        agent_id=call.agent_id,
        button=call.button,
        display=call.display,
        status=call.status,
        attempts=call.attempts,
        error_kind=call.error_kind,
        message=call.message,
    )


def _initial_status(held: bool, request: RequestTerms | None) -> ChangeStatus:
    if request is not None:
        return ChangeStatus.AWAITING_APPROVAL
    return ChangeStatus.AWAITING_CONFIRMATION if held else ChangeStatus.QUEUED


def _request_values(request: RequestTerms | None) -> dict[str, object]:
    if request is None:  # the same keys either way: changes are inserted many rows at a time
        return {"reason": None, "approvals_needed": 0, "expires_at": None, "request_channel": None}
    return {
        "reason": request.reason,
        "approvals_needed": request.approvals_needed,
        "expires_at": request.expires_at,
        "request_channel": request.channel,
    }


# The tables themselves, for Core inserts on the ack path (cheaper than ORM-enabled ones).
_CHANGES = cast(Table, Change.__table__)
_CALLS = cast(Table, Call.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)


#: Calls of an operation asked for before a change and not answered yet: the change's place in
#: its operation's queue. Built once: it runs for every change recorded.
CALLS_AHEAD = select(func.count()).where(
    Call.operation == bindparam("operation"),
    Call.status.in_((CallStatus.QUEUED, CallStatus.RUNNING)),
    Call.change_id < bindparam("change_id"),
)


#: (answered calls, all calls) of a change: read each time one of its calls is answered.
_PROGRESS = select(
    func.sum(func.cast(Call.status.in_((CallStatus.SUCCEEDED, CallStatus.FAILED)), Integer)),
    func.count(),
).where(Call.change_id == bindparam("change_id"))


#: The idempotency key of a timed change's automatic revert is this and the timed change's id.
TIMER_KEY_PREFIX = "timer:"


def _due_timer(now: datetime) -> ColumnElement[bool]:
    """A change's timer is set and due at ``now``."""
    return and_(_CHANGES.c.revert_at.is_not(None), _CHANGES.c.revert_at <= now)


def timer_key(change_id: int, attempt: int = 1) -> str:
    """The idempotency key of the ``attempt``-th automatic revert of timed change
    ``change_id``: each attempt is made once, whichever replica makes it."""
    suffix = "" if attempt == 1 else f":{attempt}"
    return f"{TIMER_KEY_PREFIX}{change_id}{suffix}"


def revert_attempt(idempotency_key: str | None) -> int:
    """Which attempt an automatic revert is, from its :func:`timer_key`; 0 for other changes."""
    if not idempotency_key or not idempotency_key.startswith(TIMER_KEY_PREFIX):
        return 0
    _change, _, attempt = idempotency_key[len(TIMER_KEY_PREFIX) :].partition(":")
    return int(attempt) if attempt.isdigit() else 1


@dataclass(eq=False)
class _NewChange:
    """A change's rows before it has an id: the change, its calls and its audit event."""

    change: dict[str, object]
    calls: list[dict[str, object]]
    audit: dict[str, object]
    #: Operations whose dispatchers to wake (none while the calls are held).
    operations: tuple[str, ...]

    @property
    def key(self) -> str | None:
        return cast("str | None", self.change["idempotency_key"])


class ChangeStore:
    """The storage side of a change's life, apart from the queue (storage/queue.py)."""

    def __init__(self, database: Database, signals: Signals) -> None:
        self._db = database
        self._signals = signals
        # Every new change goes through here: a burst of commands is written in a few grouped
        # transactions instead of one each (see storage/group_commit.py).
        self._new_changes = GroupCommit(self._record_changes)

    async def aclose(self, grace: float | None = None) -> None:
        """Take no more changes, and wait until those being recorded are (shutdown, before the
        database is disposed of), ``grace`` seconds at most: their commands were not
        acknowledged yet, but their batch's transaction is begun."""
        await self._new_changes.aclose(grace)

    async def record_change(
        self,
        requester: Requester,
        *,
        text: str,
        display: str,
        buttons: Sequence[str],
        calls: Sequence[PlannedCall],
        response_url: str | None,
        idempotency_key: str | None,
        reporter_id: str,
        lease: float,
        held: bool = False,
        reason: str | None = None,
        duration_seconds: int | None = None,
        reverts_change_id: int | None = None,
        ends_timer: datetime | None = None,
        request: RequestTerms | None = None,
    ) -> Recorded:
        """Store a change, its queued calls and the audit event that allowed it, atomically.

        A second delivery with the same ``idempotency_key`` stores nothing and names the change
        the first one made. The caller becomes the change's reporter for ``lease`` seconds.
        ``held``: the calls wait for :meth:`confirm` (a partly allowed change).
        ``duration_seconds``: a timed change; its revert falls due that long after it is done.
        ``reverts_change_id``: the change this one reverts. With ``ends_timer`` (what time it is),
        this is the automatic revert of a timed change, recorded only if that change's timer is
        still set and due (it is cleared here, in the same transaction): one revert whoever else
        tries, and none before a failed one's next attempt is due. Otherwise
        ``Recorded(duplicate=True)`` names the timed change.
        ``request``: an approval request, its calls held until it is approved.
        """
        held = held or request is not None
        call_status = CallStatus.HELD if held else CallStatus.QUEUED
        now = utcnow()
        new = _NewChange(
            change={
                "created_at": now,
                "slack_team_id": requester.team_id,
                "slack_user_id": requester.user_id,
                "slack_channel_id": requester.channel_id,
                "response_url": response_url,
                "text": text,
                "display": display,
                "buttons": ",".join(buttons),
                "status": _initial_status(held, request),
                "idempotency_key": idempotency_key,
                "reporter_id": reporter_id,
                "reporter_lease_until": now + timedelta(seconds=lease),
                "duration_seconds": duration_seconds,
                "reverts_change_id": reverts_change_id,
                **_request_values(request),
            },
            calls=[
                {
                    "seq": seq,
                    "operation": planned.operation,
                    "agent_id": planned.agent_id,
                    "button": planned.button,
                    "display": planned.display,
                    "status": call_status,
                    "attempts": 0,
                }
                for seq, planned in enumerate(calls)
            ],
            audit={
                "at": now,
                "slack_team_id": requester.team_id,
                "slack_user_id": requester.user_id,
                "slack_channel_id": requester.channel_id,
                "action": "request" if request is not None else "change",
                "text": text,
                "decision": Decision.ALLOWED,
                "reason": reason,
            },
            operations=() if held else tuple(sorted({planned.operation for planned in calls})),
        )
        if ends_timer is not None:
            assert reverts_change_id is not None
            return await self._record_one(new, ends_timer_of=(reverts_change_id, ends_timer))
        return await self._new_changes.submit(new)

    async def _record_changes(self, batch: Sequence[_NewChange]) -> list[Recorded | Exception]:
        """One transaction for a batch of new changes (storage/group_commit.py): three multi-row
        inserts, whatever the batch's size. A second delivery of an idempotency key, already
        stored or earlier in the same batch, stores nothing and names the first change. If the
        database refuses the batch's values, each change is tried alone: one that cannot be
        stored fails by itself, not the commands that arrived with it."""
        keys = [new.key for new in batch if new.key is not None]
        try:
            async with self._db.transaction() as session:
                stored: dict[str, int] = {}
                if keys:
                    rows = await session.execute(
                        select(_CHANGES.c.idempotency_key, _CHANGES.c.id).where(
                            _CHANGES.c.idempotency_key.in_(keys)
                        )
                    )
                    stored = {key: change_id for key, change_id in rows.all()}
                fresh: list[_NewChange] = []
                seen = set(stored)
                for new in batch:
                    if new.key is None or new.key not in seen:
                        fresh.append(new)
                    if new.key is not None:
                        seen.add(new.key)
                ids: Sequence[int] = []
                ahead: dict[int, dict[str, int]] = {}
                if fresh:
                    ids = (
                        await session.scalars(
                            insert(_CHANGES).returning(_CHANGES.c.id, sort_by_parameter_order=True),
                            [new.change for new in fresh],
                        )
                    ).all()
                    ahead = await self._insert_rest(session, list(zip(fresh, ids, strict=True)))
        except (IntegrityError, DataError) as error:
            if error.connection_invalidated or (len(batch) == 1 and not keys):
                raise
            # Another replica stored one of these keys between the read and the insert (on
            # PostgreSQL), where a duplicate is found and named; or the database refused one
            # change's values. Not for a database that is away: every change would wait for it
            # again, one after the other, while later commands wait behind them.
            alone: list[Recorded | Exception] = []
            for new in batch:
                try:
                    alone.append(await self._record_one(new))
                except Exception as refused:
                    alone.append(refused)
            return alone
        fresh_ids = {id(new): change_id for new, change_id in zip(fresh, ids, strict=True)}
        first_of_key = {new.key: fresh_ids[id(new)] for new in fresh if new.key is not None}
        results: list[Recorded | Exception] = []
        for new in batch:
            if id(new) in fresh_ids:
                change_id = fresh_ids[id(new)]
                results.append(Recorded(change_id, calls_ahead=ahead.get(change_id, {})))
            else:
                assert new.key is not None
                results.append(Recorded(stored.get(new.key) or first_of_key[new.key], True))
        return results

    async def _record_one(
        self, new: _NewChange, *, ends_timer_of: tuple[int, datetime] | None = None
    ) -> Recorded:
        """One change in a transaction of its own. ``ends_timer_of``: (the timed change this is
        the automatic revert of, now); recorded only if its timer is set and due (cleared here)."""
        try:
            async with self._db.transaction() as session:
                if ends_timer_of is not None:
                    timed, now = ends_timer_of
                    claimed = await session.execute(
                        update(_CHANGES)
                        .where(_CHANGES.c.id == timed, _due_timer(now))
                        .values(revert_at=None)
                    )
                    if not claimed.rowcount:  # type: ignore[attr-defined]
                        return Recorded(timed, duplicate=True)
                change_id = await session.scalar(
                    insert(_CHANGES).values(new.change).returning(_CHANGES.c.id)
                )
                assert change_id is not None
                ahead = await self._insert_rest(session, [(new, change_id)])
                return Recorded(change_id, calls_ahead=ahead.get(change_id, {}))
        except IntegrityError:
            if new.key is None:
                raise
            existing = await self._change_for_key(new.key)
            if existing is None:
                raise
            return Recorded(existing, duplicate=True)

    async def _insert_rest(
        self, session: AsyncSession, changes: Sequence[tuple[_NewChange, int]]
    ) -> dict[int, dict[str, int]]:
        """The calls and audit events of changes just inserted, and the wake-up for their
        operations' dispatchers (sent when the transaction commits). Returns each queued change's
        calls ahead per operation (:attr:`Recorded.calls_ahead`): one count per operation for the
        whole batch, the batch's own earlier changes added in memory."""
        calls = [{**call, "change_id": cid} for new, cid in changes for call in new.calls]
        if calls:
            await session.execute(insert(_CALLS), calls)
        await session.execute(
            insert(_AUDIT), [{**new.audit, "change_id": cid} for new, cid in changes]
        )
        operations = sorted({op for new, _cid in changes for op in new.operations})
        for operation in operations:
            await self._signals.publish(session, WORK, operation)
        ahead: dict[int, dict[str, int]] = {}
        in_order = sorted(changes, key=lambda change: change[1])
        for operation in operations:
            before = await session.scalar(
                CALLS_AHEAD, {"operation": operation, "change_id": in_order[0][1]}
            )
            count = int(before or 0)
            for new, cid in in_order:
                if operation in new.operations:  # queued (not held): in the queue from now on
                    ahead.setdefault(cid, {})[operation] = count
                    count += sum(1 for call in new.calls if call["operation"] == operation)
        return ahead

    async def confirm(
        self, change_id: int, user_id: str, *, reporter_id: str, lease: float
    ) -> bool:
        """Release a held change's calls, once: True for the one confirmation that did it."""
        async with self._db.transaction() as session:
            released = await self._settle_held(
                session,
                change_id,
                user_id,
                change={
                    "status": ChangeStatus.QUEUED,
                    "reporter_id": reporter_id,
                    "reporter_lease_until": utcnow() + timedelta(seconds=lease),
                },
                calls=CallStatus.QUEUED,
            )
            if released:
                operations = await session.scalars(
                    select(Call.operation).where(Call.change_id == change_id).distinct()
                )
                for operation in operations:
                    await self._signals.publish(session, WORK, operation)
        return released

    async def cancel(self, change_id: int, user_id: str) -> bool:
        """Drop a held change, once; True for the one cancellation that did it."""
        now = utcnow()
        async with self._db.transaction() as session:
            return await self._settle_held(
                session,
                change_id,
                user_id,
                change={"status": ChangeStatus.CANCELLED, "finished_at": now, "reported_at": now},
                calls=CallStatus.CANCELLED,
            )

    async def _settle_held(
        self,
        session: AsyncSession,
        change_id: int,
        user_id: str,
        *,
        change: dict[str, object],
        calls: CallStatus,
    ) -> bool:
        """Move a change out of ``awaiting`` (and its held calls to ``calls``), if it still is.

        A conditional state transition in the database, so double clicks, Slack retries and two
        replicas racing all end with exactly one of them taking effect.
        """
        result = await session.execute(
            update(Change)
            .where(
                Change.id == change_id,
                Change.slack_user_id == user_id,
                Change.status == ChangeStatus.AWAITING_CONFIRMATION,
            )
            .values(**change)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await session.execute(
            update(Call)
            .where(Call.change_id == change_id, Call.status == CallStatus.HELD)
            .values(status=calls)
        )
        return True

    async def _change_for_key(self, key: str) -> int | None:
        async with self._db.sessions() as session:
            return await session.scalar(select(Change.id).where(Change.idempotency_key == key))

    async def record_attempt(
        self,
        requester: Requester,
        *,
        action: str,
        text: str,
        decision: Decision,
        reason: str | None,
    ) -> None:
        """Audit an attempt that changed nothing (refused or not understood)."""
        async with self._db.transaction() as session:
            add_audit(
                session,
                AuditEntry.by(
                    requester, action=action, text=text, decision=decision, reason=reason
                ),
            )

    async def load_change(self, change_id: int) -> ChangeRecord | None:
        async with self._db.sessions() as session:
            change = await session.get(Change, change_id)
            if change is None:
                return None
            calls = (
                await session.scalars(
                    select(Call).where(Call.change_id == change_id).order_by(Call.seq)
                )
            ).all()
            message = (
                (change.progress_channel, change.progress_ts)
                if change.progress_channel and change.progress_ts
                else None
            )
            return ChangeRecord(
                id=change.id,
                requester=Requester(
                    user_id=change.slack_user_id,
                    team_id=change.slack_team_id,
                    channel_id=change.slack_channel_id,
                ),
                response_url=change.response_url,
                text=change.text,
                display=change.display,
                buttons=tuple(b for b in change.buttons.split(",") if b),
                status=change.status,
                progress_message=message,
                calls=tuple(_call_record(call) for call in calls),
                duration_seconds=change.duration_seconds,
                reverts_change_id=change.reverts_change_id,
                revert_attempt=revert_attempt(change.idempotency_key),
            )

    async def last_done_change(self, user_id: str) -> int | None:
        """The id of ``user_id``'s most recent finished change; agentbox's automatic reverts of
        timed changes are in their name but are not theirs to undo."""
        async with self._db.sessions() as session:
            return await session.scalar(
                select(Change.id)
                .where(
                    Change.slack_user_id == user_id,
                    Change.status == ChangeStatus.DONE,
                    or_(
                        Change.idempotency_key.is_(None),
                        Change.idempotency_key.not_like(f"{TIMER_KEY_PREFIX}%"),
                    ),
                )
                .order_by(Change.id.desc())
                .limit(1)
            )

    async def progress(self, change_id: int) -> tuple[int, int]:
        """(answered calls, all calls) of a change."""
        async with self._db.sessions() as session:
            row = (await session.execute(_PROGRESS, {"change_id": change_id})).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def set_progress_message(self, change_id: int, channel: str, ts: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(Change)
                .where(Change.id == change_id)
                .values(progress_channel=channel, progress_ts=ts)
            )

    async def finish(
        self,
        change_id: int,
        *,
        now: datetime | None = None,
        revert_again: tuple[timedelta, AuditEntry] | None = None,
    ) -> None:
        """Every call is answered and the summary delivered.

        A timed change's revert falls due from now: the timer is set by the same transaction that
        marks the change done, and only by the first one, so it is never set again once reverted.
        ``revert_again`` (this is an automatic revert that failed): the timed change's timer is
        set again, that long from now, and audited so, by that same first transaction. ``now``:
        what time it is for those timers (the services' clock).
        """
        now = now or utcnow()
        async with self._db.transaction() as session:
            finished = (
                await session.execute(
                    update(_CHANGES)
                    .where(_CHANGES.c.id == change_id, _CHANGES.c.status != ChangeStatus.DONE)
                    .values(
                        status=ChangeStatus.DONE,
                        finished_at=now,
                        reported_at=now,
                        reporter_lease_until=None,
                    )
                    .returning(_CHANGES.c.duration_seconds, _CHANGES.c.reverts_change_id)
                )
            ).one_or_none()
            if finished is None:
                return  # finished already, by another replica
            duration, reverted = finished
            if duration:
                await session.execute(
                    update(_CHANGES)
                    .where(_CHANGES.c.id == change_id)
                    .values(revert_at=now + timedelta(seconds=duration))
                )
            if revert_again is not None and reverted is not None:
                delay, audit = revert_again
                rearmed = await session.execute(
                    update(_CHANGES)
                    .where(_CHANGES.c.id == reverted, _CHANGES.c.revert_at.is_(None))
                    .values(revert_at=now + delay)
                )
                if rearmed.rowcount:  # type: ignore[attr-defined]
                    add_audit(session, audit)

    async def automatic_reverts_of(self, change_id: int) -> int:
        """How many times agentbox has tried to put timed change ``change_id`` back."""
        async with self._db.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Change)
                .where(
                    Change.reverts_change_id == change_id,
                    Change.idempotency_key.like(f"{TIMER_KEY_PREFIX}%"),
                )
            )
        return int(count or 0)

    async def due_reverts(self, now: datetime, *, limit: int = 100) -> list[int]:
        """Timed changes whose revert is due at ``now``, the earliest first."""
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(Change.id)
                .where(_due_timer(now))
                .order_by(Change.revert_at, Change.id)
                .limit(limit)
            )
            return list(rows)

    async def next_revert_at(self) -> datetime | None:
        """When the next timed change falls due, if any is waiting."""
        async with self._db.sessions() as session:
            return await session.scalar(select(func.min(Change.revert_at)))

    async def cancel_timer(self, change_id: int, audit: AuditEntry, *, now: datetime) -> bool:
        """Clear a timed change's revert, due at ``now``, without recording one (nothing left to
        put back), and audit why in the same transaction; False if another replica got there
        first (or set it again for later)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(_CHANGES)
                .where(_CHANGES.c.id == change_id, _due_timer(now))
                .values(revert_at=None)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            add_audit(session, audit)
            return True

    async def renew_lease(self, change_id: int, reporter_id: str, lease: float) -> bool:
        """Extend the caller's lease on reporting a change; False if it is no longer theirs."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(Change)
                .where(
                    Change.id == change_id,
                    Change.reporter_id == reporter_id,
                    Change.reported_at.is_(None),
                )
                .values(reporter_lease_until=utcnow() + timedelta(seconds=lease))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_leases(self, change_ids: Sequence[int], reporter_id: str, lease: float) -> None:
        """Extend the caller's leases on every change it follows, in one statement."""
        if not change_ids:
            return
        async with self._db.transaction() as session:
            await session.execute(
                update(Change)
                .where(
                    Change.id.in_(list(change_ids)),
                    Change.reporter_id == reporter_id,
                    Change.reported_at.is_(None),
                )
                .values(reporter_lease_until=utcnow() + timedelta(seconds=lease))
            )

    async def release_lease(self, change_id: int, reporter_id: str) -> None:
        """Give up reporting a change now (shutdown), so another replica takes it at once."""
        async with self._db.transaction() as session:
            await session.execute(
                update(Change)
                .where(Change.id == change_id, Change.reporter_id == reporter_id)
                .values(reporter_lease_until=utcnow())
            )

    async def adopt_unreported(
        self, reporter_id: str, lease: float, *, ignore_leases: bool = False
    ) -> list[int]:
        """Become the reporter of unreported changes whose reporter's lease ran out.

        ``ignore_leases`` takes every unreported change: right for SQLite at start, where no
        other process can be reporting.
        """
        now = utcnow()
        condition: ColumnElement[bool] = and_(
            Change.reported_at.is_(None), Change.status == ChangeStatus.QUEUED
        )
        if not ignore_leases:
            condition = and_(
                condition,
                or_(Change.reporter_lease_until.is_(None), Change.reporter_lease_until < now),
            )
        async with self._db.transaction() as session:
            candidates = (
                await session.scalars(
                    select(Change.id)
                    .where(condition)
                    .order_by(Change.id)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if candidates:
                await session.execute(
                    update(Change)
                    .where(Change.id.in_(candidates))
                    .values(
                        reporter_id=reporter_id,
                        reporter_lease_until=now + timedelta(seconds=lease),
                    )
                )
        return list(candidates)
