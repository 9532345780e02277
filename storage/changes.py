"""Reading and writing changes, their calls and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from storage.database import Database
from storage.models import AuditEvent, Call, CallStatus, Change, ChangeStatus, Decision, utcnow


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
    calls: tuple[CallRecord, ...]


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


class ChangeStore:
    """The storage side of a change's life: recorded, its calls answered one by one, finished."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def record_change(
        self,
        requester: Requester,
        *,
        text: str,
        display: str,
        buttons: Sequence[str],
        calls: Sequence[PlannedCall],
        response_url: str | None,
    ) -> ChangeRecord:
        """Store a change, its calls and the audit event that allowed it, in one transaction."""
        async with self._db.transaction() as session:
            change = Change(
                slack_team_id=requester.team_id,
                slack_user_id=requester.user_id,
                slack_channel_id=requester.channel_id,
                response_url=response_url,
                text=text,
                display=display,
                buttons=",".join(buttons),
                status=ChangeStatus.QUEUED,
                calls=[
                    Call(
                        seq=seq,
                        operation=planned.operation,
                        agent_id=planned.agent_id,
                        button=planned.button,
                        display=planned.display,
                        status=CallStatus.QUEUED,
                        attempts=0,
                    )
                    for seq, planned in enumerate(calls)
                ],
            )
            session.add(change)
            await session.flush()
            session.add(
                AuditEvent(
                    slack_team_id=requester.team_id,
                    slack_user_id=requester.user_id,
                    slack_channel_id=requester.channel_id,
                    action="change",
                    text=text,
                    decision=Decision.ALLOWED,
                    change_id=change.id,
                )
            )
            return ChangeRecord(
                id=change.id,
                requester=requester,
                response_url=response_url,
                text=text,
                display=display,
                buttons=tuple(buttons),
                status=change.status,
                calls=tuple(_call_record(call) for call in change.calls),
            )

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
            session.add(
                AuditEvent(
                    slack_team_id=requester.team_id,
                    slack_user_id=requester.user_id,
                    slack_channel_id=requester.channel_id,
                    action=action,
                    text=text,
                    decision=decision,
                    reason=reason,
                )
            )

    async def record_call_outcome(
        self,
        call_id: int,
        *,
        succeeded: bool,
        attempts: int,
        message: str,
        error_kind: str | None,
        duration: float,
    ) -> None:
        finished = utcnow()
        async with self._db.transaction() as session:
            await session.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(
                    status=CallStatus.SUCCEEDED if succeeded else CallStatus.FAILED,
                    attempts=attempts,
                    message=message,
                    error_kind=error_kind,
                    started_at=finished - timedelta(seconds=duration),
                    finished_at=finished,
                )
            )

    async def mark_change(self, change_id: int, status: ChangeStatus) -> None:
        finished: datetime | None = utcnow() if status is ChangeStatus.DONE else None
        async with self._db.transaction() as session:
            await session.execute(
                update(Change)
                .where(Change.id == change_id)
                .values(status=status, finished_at=finished)
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
                calls=tuple(_call_record(call) for call in calls),
            )

    async def unfinished_change_ids(self) -> list[int]:
        """Changes that still have calls to make, oldest first (to resume after a restart)."""
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(Change.id).where(Change.status != ChangeStatus.DONE).order_by(Change.id)
            )
            return list(rows)
