"""Timed changes (``hide dial 1001 for 30m``): the revert, made when the time is up.

The timer is a column of the change (``revert_at``), set when the change is done
(storage/changes.py ``finish``), so it survives restarts and any replica can make the revert. The
revert is an ordinary change recorded in the timed change's name, which clears the timer in the
same transaction: two replicas due at once make one revert.

A revert whose calls fail for a reason that may pass (wolkvox down, slow, in maintenance) sets the
timer again when it finishes (:func:`retry_of_failed_revert`, :data:`REVERT_RETRY_DELAYS`): the
next attempt puts back what is still the timed change's, under a key of its own.

It puts back only what the timed change still owns: a button that someone changed again since
(another change, an undo) is left as they set it. The revert needs no new permission check: it
undoes what the requester was allowed to do, for as long as they were allowed to ask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from commands.clock import Clock, aware
from storage.audit import AuditEntry
from storage.changes import ChangeRecord, ChangeStore, PlannedCall, timer_key
from storage.history import History
from storage.models import CallStatus, Decision
from wolkvox.errors import transient_kinds
from wolkvox.model import Display

log = logging.getLogger(__name__)

#: How long after each failed attempt at putting a timed change back agentbox tries again: one
#: more attempt per entry, then it stops (and the summary says to do it by hand).
REVERT_RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)


@dataclass(frozen=True)
class Revert:
    """A revert just recorded: ``change_id`` puts back what ``timed`` changed."""

    change_id: int
    timed: ChangeRecord
    operations: tuple[str, ...]


def describe_duration(seconds: int) -> str:
    """``5400`` → ``1h30m``: the way the grammar reads it."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def retry_of_failed_revert(record: ChangeRecord) -> tuple[timedelta, AuditEntry] | None:
    """For an automatic revert whose failed calls all failed for a reason that may pass: how long
    until the next attempt, and the audit entry that says so. None when nothing failed, when
    some of it would fail again (a refused token, a spent quota: every attempt would end the
    same), or after the last attempt."""
    # Attempt 0: not an automatic revert; beyond the delays: the last attempt.
    if record.reverts_change_id is None or not (
        1 <= record.revert_attempt <= len(REVERT_RETRY_DELAYS)
    ):
        return None
    transient = transient_kinds()
    failed = [call for call in record.calls if call.status == CallStatus.FAILED]
    if not failed or not all(call.error_kind in transient for call in failed):
        return None
    delay = REVERT_RETRY_DELAYS[record.revert_attempt - 1]
    kinds = ", ".join(sorted({call.error_kind or "error" for call in failed}))
    audit = AuditEntry.by(
        record.requester,
        action="revert",
        text=f"end of timed change #{record.reverts_change_id}",
        decision=Decision.ALLOWED,
        reason=(
            f"{len(failed)} call(s) of change #{record.id} failed ({kinds}): attempt "
            f"{record.revert_attempt + 1} in {describe_duration(int(delay.total_seconds()))}"
        ),
        change_id=record.reverts_change_id,
    )
    return delay, audit


class TimedChanges:
    def __init__(
        self,
        store: ChangeStore,
        history: History,
        *,
        replica_id: str,
        lease: float,
        clock: Clock,
    ) -> None:
        self._store = store
        self._history = history
        self._replica_id = replica_id
        self._lease = lease
        self._clock = clock

    async def revert_due(self) -> list[Revert]:
        """Record the revert of every timed change that is due now; the reverts just recorded."""
        reverts = []
        for change_id in await self._store.due_reverts(self._clock()):
            record = await self._store.load_change(change_id)
            if record is None:
                continue
            revert = await self._revert(record)
            if revert is not None:
                reverts.append(revert)
        return reverts

    async def seconds_until_next(self) -> float | None:
        """How long until the next timed change falls due (0 if one is due), or None."""
        due = await self._store.next_revert_at()
        if due is None:
            return None
        return max(0.0, (aware(due) - self._clock()).total_seconds())

    async def _revert(self, record: ChangeRecord) -> Revert | None:
        succeeded = [call for call in record.calls if call.status == CallStatus.SUCCEEDED]
        agents = sorted({call.agent_id for call in succeeded})
        states = await self._history.button_states(agents) if agents else []
        owned = {(s.operation, s.agent_id, s.button) for s in states if s.change_id == record.id}
        # A change still queued for the same button comes after the timed one: it wins.
        pending = await self._history.pending_buttons(agents) if agents else set()
        owned -= {(op, agent, button) for op, agent, button, _ in pending}
        calls = [c for c in succeeded if (c.operation, c.agent_id, c.button) in owned]
        length = describe_duration(record.duration_seconds or 0)
        if not calls:
            why = (
                "nothing to put back: every button was changed again since, or is about to be"
                if succeeded
                else "nothing to put back: none of its calls succeeded"
            )
            await self._store.cancel_timer(
                record.id,
                AuditEntry.by(
                    record.requester,
                    action="revert",
                    text=f"end of timed change #{record.id} ({length})",
                    decision=Decision.ALLOWED,
                    reason=why,
                    change_id=record.id,
                ),
                now=self._clock(),
            )
            return None
        opposite = Display.SHOW if record.display == Display.HIDE else Display.HIDE
        planned = [PlannedCall(c.operation, c.agent_id, c.button, opposite.value) for c in calls]
        attempt = await self._store.automatic_reverts_of(record.id) + 1
        again = f", attempt {attempt}" if attempt > 1 else ""
        recorded = await self._store.record_change(
            record.requester,
            text=f"end of timed change #{record.id} ({length} are up{again})",
            display=opposite.value,
            buttons=list(dict.fromkeys(c.button for c in calls)),
            calls=planned,
            response_url=None,
            idempotency_key=timer_key(record.id, attempt),
            reporter_id=self._replica_id,
            lease=self._lease,
            reason=f"timed change #{record.id} ended after {length}",
            reverts_change_id=record.id,
            ends_timer=self._clock(),
        )
        if recorded.duplicate:
            return None  # another replica made it
        log.info("timed change %s ended: revert is change %s", record.id, recorded.change_id)
        return Revert(
            change_id=recorded.change_id,
            timed=record,
            operations=tuple(sorted({c.operation for c in calls})),
        )
