"""The life of a change: understood, allowed, recorded, sent to wolkvox call by call, reported.

``submit`` does everything that must happen before Slack gets its acknowledgement (parse, permission
check, the durable record); ``run`` does the calls afterwards and reports progress to a listener.
Neither knows about Slack: the bot and the console turn their results into messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from commands.grammar import ChangeCommand, HelpCommand, ParseError, parse
from commands.permissions import ChangePolicy
from storage.changes import ChangeStore, PlannedCall, Requester
from storage.models import CallStatus, ChangeStatus, Decision
from wolkvox.dispatcher import CallOutcome, Dispatcher, DispatcherClosed
from wolkvox.model import Button, Credentials, Display, DisplayRequest

log = logging.getLogger(__name__)

DEFAULT_OPERATION = "default"


@dataclass(frozen=True)
class Accepted:
    """The change is recorded and will run; ``ahead`` calls for the same token run before it."""

    change_id: int
    command: ChangeCommand
    total_calls: int
    ahead: int
    estimated_wait: float
    estimated_duration: float
    #: Whether the estimates come from measured wolkvox calls (else from a default guess).
    estimates_measured: bool = False


@dataclass(frozen=True)
class Refused:
    reason: str


SubmitResult = Accepted | Refused | HelpCommand | ParseError


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
    """What became of every call of a change. ``pending`` calls were handed back at shutdown."""

    change_id: int
    requester: Requester
    display: Display
    calls: tuple[CallReport, ...]
    pending: int = 0

    @property
    def succeeded(self) -> int:
        return sum(1 for call in self.calls if call.ok)

    @property
    def failed(self) -> int:
        return sum(1 for call in self.calls if not call.ok)

    @property
    def total(self) -> int:
        return len(self.calls) + self.pending


class ProgressListener(Protocol):
    """Told as a change advances; the bot updates a Slack message, the tests record."""

    async def on_progress(self, done: int, total: int) -> None: ...

    async def on_finished(self, report: ChangeReport) -> None: ...


class ChangeService:
    def __init__(
        self,
        store: ChangeStore,
        dispatcher: Dispatcher,
        policy: ChangePolicy,
        credentials: Credentials | None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._policy = policy
        self._credentials = credentials

    async def submit(
        self, requester: Requester, text: str, *, response_url: str | None = None
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
        verdict = self._policy.may_change(requester, parsed)
        if verdict.allowed and self._credentials is None:
            verdict = type(verdict)(
                False,
                "No wolkvox operation is configured (`WOLKVOX_SERVER` and `WOLKVOX_TOKEN`), "
                "so there is nowhere to send the change. Ask the operator to set them.",
            )
        if not verdict.allowed:
            await self._store.record_attempt(
                requester,
                action="change",
                text=text,
                decision=Decision.REFUSED,
                reason=verdict.reason,
            )
            return Refused(verdict.reason)

        planned = [
            PlannedCall(DEFAULT_OPERATION, agent, button.value, parsed.display.value)
            for agent in parsed.agents
            for button in parsed.buttons
        ]
        record = await self._store.record_change(
            requester,
            text=text,
            display=parsed.display.value,
            buttons=[button.value for button in parsed.buttons],
            calls=planned,
            response_url=response_url,
        )
        assert self._credentials is not None
        info = self._dispatcher.queue_info(self._credentials)
        ahead = info.waiting + info.in_flight
        per_slot = info.mean_duration / self._dispatcher.concurrency
        return Accepted(
            change_id=record.id,
            command=parsed,
            total_calls=len(planned),
            ahead=ahead,
            estimated_wait=math.ceil(ahead / self._dispatcher.concurrency) * info.mean_duration,
            estimated_duration=(ahead + len(planned)) * per_slot,
            estimates_measured=info.measured,
        )

    async def run(self, change_id: int, listener: ProgressListener) -> ChangeReport | None:
        """Send a recorded change's outstanding calls and report as they are answered.

        Calls already answered (a change resumed after a restart) are not sent again; calls that
        were queued or in flight are. Repeating an in-flight call is safe because show/hide is
        idempotent on wolkvox's side: hiding a hidden button leaves it hidden.
        """
        record = await self._store.load_change(change_id)
        if record is None:
            return None
        if self._credentials is None:
            raise RuntimeError("no wolkvox credentials configured")
        reports: dict[int, CallReport] = {}
        pending: dict[asyncio.Future[CallOutcome], int] = {}
        handed_back = unrecorded = 0
        for call in record.calls:
            if call.status in (CallStatus.SUCCEEDED, CallStatus.FAILED):
                reports[call.seq] = CallReport(
                    call.agent_id,
                    Button(call.button),
                    Display(call.display),
                    call.status == CallStatus.SUCCEEDED,
                    call.message or "",
                    call.error_kind,
                    call.attempts,
                )
                continue
            request = DisplayRequest(call.agent_id, Display(call.display), Button(call.button))
            try:
                ticket = self._dispatcher.submit(self._credentials, request)
            except DispatcherClosed:
                handed_back += 1  # shutting down: it stays queued for the next start
                continue
            pending[ticket.outcome] = call.seq
        calls_by_seq = {call.seq: call for call in record.calls}
        total = len(record.calls)
        remaining = set(pending)
        while remaining:
            done, remaining = await asyncio.wait(remaining, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                seq = pending[future]
                try:
                    outcome = future.result()
                except DispatcherClosed:
                    # Handed back at shutdown: the call stays queued in the database and runs
                    # again when the change is resumed.
                    handed_back += 1
                    continue
                call = calls_by_seq[seq]
                report = _report(outcome)
                reports[seq] = report
                try:
                    await self._store.record_call_outcome(
                        call.id,
                        succeeded=report.ok,
                        attempts=report.attempts,
                        message=report.message,
                        error_kind=report.error_kind,
                        duration=outcome.duration,
                    )
                except Exception:
                    # The user is still told below. The call stays queued in the database, so
                    # a restart repeats it, which is safe: show/hide is idempotent.
                    log.exception("could not record the outcome of call %s", call.id)
                    unrecorded += 1
            await _notify(listener.on_progress(len(reports), total))
        result = ChangeReport(
            change_id=change_id,
            requester=record.requester,
            display=Display(record.display),
            calls=tuple(reports[seq] for seq in sorted(reports)),
            pending=handed_back,
        )
        if not handed_back and not unrecorded:
            try:
                await self._store.mark_change(change_id, ChangeStatus.DONE)
            except Exception:
                log.exception("could not mark change %s done; it will be resumed", change_id)
        await _notify(listener.on_finished(result))
        return result


def _report(outcome: CallOutcome) -> CallReport:
    request = outcome.request
    if outcome.result is not None:
        message, kind = outcome.result.message, None
    else:
        assert outcome.error is not None
        message, kind = outcome.error.user_message, outcome.error.kind
    return CallReport(
        agent_id=request.agent_id,
        button=request.button,
        display=request.display,
        ok=outcome.ok,
        message=message,
        error_kind=kind,
        attempts=outcome.attempts,
    )


async def _notify(notification: Awaitable[None]) -> None:
    """Run a listener callback; a failure to report must never stop the calls themselves."""
    try:
        await notification
    except Exception:
        log.exception("progress listener failed")
