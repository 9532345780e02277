"""The life of a change: understood, allowed, recorded; then followed until every call is answered.

``submit`` does everything that must happen before Slack gets its acknowledgement (parse,
permission check, the durable record of the change and its queued calls). The calls themselves are
sent by the dispatcher (wolkvox/dispatcher.py) from the database queue, by whichever replica holds
the token's slot. ``follow`` reports a change's progress to a listener until its summary is out;
a replica follows the changes it took, and adopts those whose reporter went away.

Nothing here knows about Slack: the bot and the console turn results into messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from commands.grammar import ChangeCommand, HelpCommand, ParseError, parse
from commands.operations import Operations
from commands.permissions import ChangePolicy
from storage.changes import ChangeRecord, ChangeStore, PlannedCall, Requester
from storage.models import CallStatus, Decision
from storage.queue import CallQueue
from storage.signals import CHANGE, Signals, wait
from wolkvox.model import Button, Display

log = logging.getLogger(__name__)

#: Before any call was measured, estimates assume this many seconds per call.
DEFAULT_CALL_SECONDS = 1.0


@dataclass(frozen=True)
class Accepted:
    """The change is recorded and will run; ``ahead`` calls for the same token run before it."""

    change_id: int
    command: ChangeCommand
    operations: tuple[str, ...]
    total_calls: int
    ahead: int
    estimated_wait: float
    estimated_duration: float
    #: Whether the estimates come from measured wolkvox calls (else from a default guess).
    estimates_measured: bool = False


@dataclass(frozen=True)
class Duplicate:
    """The same Slack delivery arrived again; ``change_id`` is the change the first one made."""

    change_id: int


@dataclass(frozen=True)
class Refused:
    reason: str


SubmitResult = Accepted | Duplicate | Refused | HelpCommand | ParseError


@dataclass(frozen=True)
class CallReport:
    agent_id: str
    button: Button
    display: Display
    ok: bool
    message: str
    error_kind: str | None
    attempts: int


@dataclass(frozen=True)
class ChangeReport:
    """What became of every call of a change."""

    change_id: int
    requester: Requester
    display: Display
    calls: tuple[CallReport, ...]

    @property
    def succeeded(self) -> int:
        return sum(1 for call in self.calls if call.ok)

    @property
    def failed(self) -> int:
        return sum(1 for call in self.calls if not call.ok)

    @property
    def total(self) -> int:
        return len(self.calls)


class ProgressListener(Protocol):
    """Told as a change advances; the bot updates a Slack message, the tests record."""

    async def on_progress(self, done: int, total: int) -> None: ...

    async def on_interrupted(self, done: int, total: int) -> None: ...

    async def on_finished(self, report: ChangeReport) -> None: ...


def report_of(record: ChangeRecord) -> ChangeReport:
    return ChangeReport(
        change_id=record.id,
        requester=record.requester,
        display=Display(record.display),
        calls=tuple(
            CallReport(
                agent_id=call.agent_id,
                button=Button(call.button),
                display=Display(call.display),
                ok=call.status == CallStatus.SUCCEEDED,
                message=call.message or "",
                error_kind=call.error_kind,
                attempts=call.attempts,
            )
            for call in record.calls
        ),
    )


class ChangeService:
    def __init__(
        self,
        store: ChangeStore,
        queue: CallQueue,
        signals: Signals,
        policy: ChangePolicy,
        operations: Operations,
        *,
        replica_id: str,
        concurrency: int,
        lease: float,
    ) -> None:
        self._store = store
        self._queue = queue
        self._signals = signals
        self._policy = policy
        self._operations = operations
        self._replica_id = replica_id
        self._concurrency = concurrency
        self._lease = lease
        self._stopping = asyncio.Event()
        self._following: set[int] = set()  # changes a ``follow`` of this process reports

    @property
    def lease(self) -> float:
        return self._lease

    async def submit(
        self,
        requester: Requester,
        text: str,
        *,
        response_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> SubmitResult:
        """Understand and authorize a command and, if it may run, record it durably."""
        parsed = parse(text)
        if isinstance(parsed, HelpCommand):
            return parsed
        if isinstance(parsed, ParseError):
            await self._store.record_attempt(
                requester,
                action="change",
                text=text,
                decision=Decision.INVALID,
                reason=parsed.message,
            )
            return parsed
        if not isinstance(parsed, ChangeCommand):
            return Refused("Roles and teams are not available yet in this version of agentbox.")
        if parsed.teams:
            return Refused(
                "Teams are not available yet in this version of agentbox: name the agents."
            )
        verdict = self._policy.may_change(requester, parsed)
        routes = {agent: self._operations.route(agent) for agent in parsed.agents}
        unrouted = sorted(agent for agent, operation in routes.items() if operation is None)
        reason = verdict.reason
        if verdict.allowed and unrouted:
            reason = (
                "No wolkvox operation is configured (`WOLKVOX_SERVER` and `WOLKVOX_TOKEN`), so "
                "there is nowhere to send the change. Ask the operator to set them."
            )
        if not verdict.allowed or unrouted:
            await self._store.record_attempt(
                requester, action="change", text=text, decision=Decision.REFUSED, reason=reason
            )
            return Refused(reason)

        planned = [
            PlannedCall(routes[agent] or "", agent, button.value, parsed.display.value)
            for agent in parsed.agents
            for button in parsed.buttons
        ]
        recorded = await self._store.record_change(
            requester,
            text=text,
            display=parsed.display.value,
            buttons=[button.value for button in parsed.buttons],
            calls=planned,
            response_url=response_url,
            idempotency_key=idempotency_key,
            reporter_id=self._replica_id,
            lease=self._lease,
        )
        if recorded.duplicate:
            return Duplicate(recorded.change_id)
        operations = tuple(sorted({call.operation for call in planned}))
        # The estimate speaks of the busiest operation the change touches.
        ahead, mean = 0, None
        for operation in operations:
            op_ahead, op_mean = await self._queue.backlog(operation, recorded.change_id)
            if op_ahead >= ahead:
                ahead, mean = op_ahead, op_mean if op_mean is not None else mean
        per_call = mean if mean is not None else DEFAULT_CALL_SECONDS
        return Accepted(
            change_id=recorded.change_id,
            command=parsed,
            operations=operations,
            total_calls=len(planned),
            ahead=ahead,
            estimated_wait=math.ceil(ahead / self._concurrency) * per_call,
            estimated_duration=(ahead + len(planned)) * per_call / self._concurrency,
            estimates_measured=mean is not None,
        )

    async def follow(self, change_id: int, listener: ProgressListener) -> ChangeReport | None:
        """Report a change's progress until its summary is delivered.

        Returns None when this replica stops first (shutdown: the listener is told, and the lease is
        released so another replica goes on at once) or when another replica took the change over.
        """
        key = str(change_id)
        renewed = time.monotonic()
        self._following.add(change_id)
        try:
            while True:
                changed = self._signals.waiter(CHANGE, key)  # before reading: no wake-up missed
                try:
                    if time.monotonic() - renewed > self._lease / 3:
                        # Also the first thing after a database outage: if the lease ran out
                        # meanwhile and another replica took the change, stop before reporting.
                        if not await self._store.renew_lease(
                            change_id, self._replica_id, self._lease
                        ):
                            log.info("change %s is reported by another replica now", change_id)
                            return None
                        renewed = time.monotonic()
                    done, total = await self._store.progress(change_id)
                    if total == 0:
                        return None
                    if done >= total:
                        # Only the change's current reporter sends the summary: after a stall
                        # (a slow Slack call, a busy pool) another replica may have taken over.
                        if not await self._store.renew_lease(
                            change_id, self._replica_id, self._lease
                        ):
                            log.info("change %s is reported by another replica now", change_id)
                            return None
                        record = await self._store.load_change(change_id)
                        assert record is not None
                        report = report_of(record)
                        await _notify(listener.on_finished(report))
                        await self._store.finish(change_id)
                        return report
                    if self._stopping.is_set():
                        await _notify(listener.on_interrupted(done, total))
                        await self._store.release_lease(change_id, self._replica_id)
                        return None
                    await _notify(listener.on_progress(done, total))
                except Exception:
                    if self._stopping.is_set():
                        return None  # the lease runs out and the next start adopts the change
                    # The database is away (a restart, a failover): keep following. The calls
                    # stay queued meanwhile, and the lease says whether someone else took over.
                    log.warning(
                        "cannot follow change %s for now; trying again", change_id, exc_info=True
                    )
                    await wait(changed, min(1.0, self._lease / 3))
                    continue
                await wait(changed, self._lease / 3)  # stop_following() fires it too
        finally:
            self._following.discard(change_id)
            self._signals.forget(CHANGE, key)

    def stop_following(self) -> None:
        """Shutdown: every ``follow`` tells its listener and hands the change over."""
        self._stopping.set()
        for pulse_key in list(self._signals.keys(CHANGE)):
            self._signals.notify(CHANGE, pulse_key)

    async def adopt(self, *, ignore_leases: bool = False) -> list[ChangeRecord]:
        """Changes this replica should now report (their reporter went away).

        First renews the leases of every change this process follows, so that a reporting loop
        stalled by a slow Slack call does not lose its change to another replica.
        """
        await self._store.renew_leases(sorted(self._following), self._replica_id, self._lease)
        adopted = []
        for change_id in await self._store.adopt_unreported(
            self._replica_id, self._lease, ignore_leases=ignore_leases
        ):
            if change_id in self._following:
                continue  # ours, and still followed: its lease ran out during an outage
            record = await self._store.load_change(change_id)
            if record is not None:
                adopted.append(record)
        return adopted

    async def load(self, change_id: int) -> ChangeRecord | None:
        return await self._store.load_change(change_id)

    async def remember_progress_message(self, change_id: int, channel: str, ts: str) -> None:
        await self._store.set_progress_message(change_id, channel, ts)


async def _notify(notification: Awaitable[None]) -> None:
    """Run a listener callback; a failure to report must never stop the reporting loop."""
    try:
        await notification
    except Exception:
        log.exception("progress listener failed")
