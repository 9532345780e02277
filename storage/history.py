"""What happened, read back: the last known state of each button, the recent changes, the audit.

wolkvox cannot report a button's state, so the state shown is the one set by the last call that
succeeded for that agent and button.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, and_, func, select

from storage.database import Database
from storage.models import AuditEvent, Call, CallStatus, Change


@dataclass(frozen=True)
class ButtonState:
    operation: str
    agent_id: str
    button: str
    display: str
    set_by: str
    set_at: datetime | None
    change_id: int


@dataclass(frozen=True)
class ChangeSummary:
    change_id: int
    at: datetime
    user_id: str
    text: str
    status: str
    succeeded: int
    failed: int
    total: int


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    user_id: str
    team_id: str | None
    channel_id: str | None
    action: str
    text: str
    decision: str
    reason: str | None
    change_id: int | None


class History:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def pending_buttons(self, agents: Sequence[str]) -> set[tuple[str, str, str, int]]:
        """(operation, agent, button, change id) of every call of these agents still waiting in
        the queue or in flight: a change that will set the button after what is known now."""
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(Call.operation, Call.agent_id, Call.button, Call.change_id).where(
                    Call.agent_id.in_(list(agents)),
                    Call.status.in_((CallStatus.QUEUED, CallStatus.RUNNING)),
                )
            )
            return {(row[0], row[1], row[2], row[3]) for row in rows}

    async def button_states(
        self, agents: Sequence[str] | None = None, *, hidden_only: bool = False
    ) -> list[ButtonState]:
        """The last successful display of each (operation, agent, button), newest call wins."""
        ranked = select(
            Call.operation,
            Call.agent_id,
            Call.button,
            Call.display,
            Call.finished_at,
            Call.change_id,
            func.row_number()
            .over(
                partition_by=(Call.operation, Call.agent_id, Call.button),
                order_by=(Call.finished_at.desc(), Call.id.desc()),
            )
            .label("rank"),
        ).where(Call.status == CallStatus.SUCCEEDED)
        if agents is not None:
            ranked = ranked.where(Call.agent_id.in_(list(agents)))
        latest = ranked.subquery()
        statement = (
            select(latest, Change.slack_user_id)
            .join(Change, Change.id == latest.c.change_id)
            .where(latest.c.rank == 1)
        )
        if hidden_only:
            statement = statement.where(latest.c.display == "hide")
        async with self._db.sessions() as session:
            rows = (await session.execute(statement)).all()
        states = [
            ButtonState(
                operation=row.operation,
                agent_id=row.agent_id,
                button=row.button,
                display=row.display,
                set_by=row.slack_user_id,
                set_at=row.finished_at,
                change_id=row.change_id,
            )
            for row in rows
        ]
        return sorted(states, key=lambda s: (int(s.agent_id), s.agent_id, s.operation, s.button))

    async def recent_changes(
        self, agents: Sequence[str] | None = None, *, limit: int = 20
    ) -> list[ChangeSummary]:
        """The newest changes (touching ``agents``, if given), newest first."""
        answered = func.sum(func.cast(Call.status == CallStatus.SUCCEEDED, Integer))
        failed = func.sum(func.cast(Call.status == CallStatus.FAILED, Integer))
        statement = (
            select(Change, answered, failed, func.count(Call.id))
            .join(Call, Call.change_id == Change.id)
            .group_by(Change.id)
            .order_by(Change.id.desc())
            .limit(limit)
        )
        if agents is not None:
            touching = select(Call.change_id).where(Call.agent_id.in_(list(agents)))
            statement = statement.where(Change.id.in_(touching))
        async with self._db.sessions() as session:
            rows = (await session.execute(statement)).all()
        return [
            ChangeSummary(
                change_id=change.id,
                at=change.created_at,
                user_id=change.slack_user_id,
                text=change.text,
                status=change.status,
                succeeded=int(ok or 0),
                failed=int(bad or 0),
                total=int(total or 0),
            )
            for change, ok, bad, total in rows
        ]

    async def audit(self, since: datetime, *, batch: int = 1000) -> AsyncIterator[AuditRow]:
        """Every audit event since ``since``, oldest first, read in batches (for export)."""
        last_id = 0
        while True:
            async with self._db.sessions() as session:
                events = (
                    await session.scalars(
                        select(AuditEvent)
                        .where(and_(AuditEvent.at >= since, AuditEvent.id > last_id))
                        .order_by(AuditEvent.id)
                        .limit(batch)
                    )
                ).all()
            if not events:
                return
            for event in events:
                yield AuditRow(
                    id=event.id,
                    at=event.at,
                    user_id=event.slack_user_id,
                    team_id=event.slack_team_id,
                    channel_id=event.slack_channel_id,
                    action=event.action,
                    text=event.text,
                    decision=event.decision,
                    reason=event.reason,
                    change_id=event.change_id,
                )
            last_id = events[-1].id
