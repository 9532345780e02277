"""The audit trail: one row for every attempt to change something, allowed or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent, Decision


class SlackContext(Protocol):
    """Who asked, and where (storage/changes.Requester)."""

    @property
    def user_id(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def channel_id(self) -> str | None: ...


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, where, and what agentbox decided."""

    user_id: str
    action: str
    text: str
    decision: Decision
    reason: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    change_id: int | None = None

    @classmethod
    def by(
        cls,
        who: SlackContext,
        *,
        action: str,
        text: str,
        decision: Decision,
        reason: str | None = None,
        change_id: int | None = None,
    ) -> AuditEntry:
        """``who`` did ``action``, in the workspace and channel they asked from."""
        return cls(
            user_id=who.user_id,
            action=action,
            text=text,
            decision=decision,
            reason=reason,
            team_id=who.team_id,
            channel_id=who.channel_id,
            change_id=change_id,
        )


def add_audit(session: AsyncSession, entry: AuditEntry) -> None:
    """Record ``entry`` in the caller's transaction, so it commits with the work it describes."""
    session.add(
        AuditEvent(
            slack_team_id=entry.team_id,
            slack_user_id=entry.user_id,
            slack_channel_id=entry.channel_id,
            action=entry.action,
            text=entry.text,
            decision=entry.decision,
            reason=entry.reason,
            change_id=entry.change_id,
        )
    )
