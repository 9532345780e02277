"""The audit trail: one row for every attempt to change something, allowed or not."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent, Decision


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
