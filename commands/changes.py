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
import difflib
import logging
import math
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from commands.access import Access, Caller
from commands.agents import agent_ranges
from commands.approvals import ApprovalService, Requested, RequestPlan, plan_request
from commands.clock import Clock, system_clock
from commands.grammar import (
    MAX_AGENTS,
    ChangeCommand,
    HelpCommand,
    Parsed,
    ParseError,
    UndoCommand,
    parse,
)
from commands.i18n import _
from commands.operations import DEFAULT_OPERATION, Operations
from commands.roles import ChangeDecision, Refusal, Target, decide_change
from commands.snapshot import Snapshot, Snapshots
from commands.timed import retry_of_failed_revert
from storage.changes import (
    ChangeRecord,
    ChangeStore,
    PlannedCall,
    Recorded,
    Requester,
    RequestTerms,
)
from storage.models import CallStatus, ChangeStatus, Decision
from storage.queue import CallQueue
from storage.signals import CHANGE, Signals, wait
from wolkvox.model import Button, Display

log = logging.getLogger(__name__)

#: Before any call was measured, estimates assume this many seconds per call.
DEFAULT_CALL_SECONDS = 1.0
#: How often at most a followed change's progress is read while its calls are answered elsewhere
#: than in this process (see :meth:`ChangeService.follow`).
PROGRESS_READ_SECONDS = 0.5


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
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class NeedsConfirmation:
    """Only part of the change is allowed; nothing runs until the requester confirms that part."""

    change_id: int
    command: ChangeCommand
    allowed_agents: tuple[str, ...]
    total_calls: int
    refusals: tuple[Refusal, ...]


@dataclass(frozen=True)
class DryRun:
    """What a change would do, and nothing done: the calls per operation, what would be refused,
    and what would need approval."""

    command: ChangeCommand
    calls: tuple[tuple[str, str, Button], ...]  # (operation, agent, button), in call order
    needs_approval: tuple[Refusal, ...]
    refusals: tuple[Refusal, ...]


@dataclass(frozen=True)
class NotAChange:
    """A command for :class:`commands.admin.AdminService` (grants, teams, who am I…)."""

    command: Parsed


SubmitResult = (
    Accepted
    | Duplicate
    | Refused
    | NeedsConfirmation
    | Requested
    | DryRun
    | NotAChange
    | HelpCommand
    | ParseError
)
ConfirmResult = Accepted | Refused


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
    #: The channels of the teams whose agents the change touched, for the visible trail.
    trail_channels: tuple[str, ...] = ()
    #: A timed change's length (it reverts that long after this report).
    duration_seconds: int | None = None
    #: The change this one reverts, and whether agentbox made it when a timed change ended.
    reverts_change_id: int | None = None
    automatic_revert: bool = False
    #: An automatic revert that failed: in how many seconds agentbox tries again (None: it does
    #: not, and whoever reads should put it back by hand).
    revert_again_in: int | None = None

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
        duration_seconds=record.duration_seconds,
        reverts_change_id=record.reverts_change_id,
        automatic_revert=record.automatic_revert,
    )


class ChangeService:
    def __init__(
        self,
        store: ChangeStore,
        queue: CallQueue,
        signals: Signals,
        access: Access,
        snapshots: Snapshots,
        operations: Operations,
        *,
        replica_id: str,
        concurrency: int,
        lease: float,
        approvals: ApprovalService,
        clock: Clock = system_clock,
    ) -> None:
        """``clock``: what time it is for the timers a finished change sets (a timed change's
        revert, the next attempt at a failed one)."""
        self._store = store
        self._clock = clock
        self._approvals = approvals
        self._queue = queue
        self._signals = signals
        self._access = access
        self._snapshots = snapshots
        self._operations = operations
        self._replica_id = replica_id
        self._concurrency = concurrency
        self._lease = lease
        self._stopping = asyncio.Event()
        # Changes a ``follow`` of this process reports, with the calls of each that this
        # process's dispatcher answered since (:meth:`note_answered`).
        self._following: dict[int, int] = {}

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
        """Understand and authorize a change and, if it may run, record it durably.

        Commands that are not changes (grants, teams…) go to :class:`commands.admin.AdminService`.
        """
        parsed = parse(text)
        if isinstance(parsed, HelpCommand):
            return parsed
        if isinstance(parsed, ParseError):
            await self._refuse(requester, text, Decision.INVALID, parsed.message)
            return parsed
        if isinstance(parsed, UndoCommand):
            return await self._undo(requester, text, response_url, idempotency_key)
        if not isinstance(parsed, ChangeCommand):
            return NotAChange(parsed)
        caller = await self._access.caller(requester)
        if not caller.roles:
            reason = _no_role(caller)
            await self._refuse(requester, text, Decision.REFUSED, reason)
            return Refused(reason)
        snapshot = await self._snapshots.get()  # one view of teams for the whole decision
        targets = await self._targets(parsed, snapshot)
        if isinstance(targets, str):
            await self._refuse(requester, text, Decision.REFUSED, targets)
            return Refused(targets)
        teams = {t.team: snapshot.teams[t.team] for t in targets if t.team in snapshot.teams}
        decision = decide_change(
            caller.actor,
            targets,
            parsed.buttons,
            grants=caller.grants,
            teams=teams,
            env_admins=self._access.env_admins,
        )
        plan = plan_request(decision, teams, asked_in=requester.channel_id)
        if parsed.dry_run:
            return DryRun(
                command=parsed,
                calls=tuple((t.operation, t.agent_id, b) for t, b in decision.allowed),
                needs_approval=_approval_notes(decision, plan),
                refusals=decision.refusals,
            )
        if plan is not None:
            return await self._request(
                requester,
                text,
                parsed,
                decision,
                plan,
                response_url=response_url,
                idempotency_key=idempotency_key,
            )
        if not decision.allowed:
            reason = "; ".join(refusal_text(refusal) for refusal in decision.refusals)
            await self._refuse(requester, text, Decision.REFUSED, reason)
            return Refused(reason, decision.refusals)

        planned = [
            PlannedCall(target.operation, target.agent_id, button.value, parsed.display.value)
            for target, button in decision.allowed
        ]
        partial = bool(decision.refusals)
        recorded = await self._record(
            requester,
            text,
            parsed,
            planned,
            response_url=response_url,
            idempotency_key=idempotency_key,
            held=partial,
            reason="allowed by "
            + ", ".join(decision.grants_used)
            + (f"; reason given: {parsed.reason}" if parsed.reason else ""),
        )
        if recorded.duplicate:
            return Duplicate(recorded.change_id)
        if partial:
            return NeedsConfirmation(
                change_id=recorded.change_id,
                command=parsed,
                allowed_agents=tuple(dict.fromkeys(t.agent_id for t, _b in decision.allowed)),
                total_calls=len(planned),
                refusals=decision.refusals,
            )
        return await self._accepted(recorded.change_id, parsed, planned, recorded.calls_ahead)

    async def _request(
        self,
        requester: Requester,
        text: str,
        parsed: ChangeCommand,
        decision: ChangeDecision,
        plan: RequestPlan | str,
        *,
        response_url: str | None,
        idempotency_key: str | None,
    ) -> SubmitResult:
        """Record a change that needs approval as a request (commands/approvals.py); it runs
        once approved. Nothing is recorded for a request that cannot be made as asked."""
        if isinstance(plan, str):
            why = plan
        elif decision.refusals:
            why = _(
                "This change needs approval, and part of it you may not even request: "
                "{refusals}. Nothing was requested; ask again for the rest alone."
            ).format(refusals="; ".join(refusal_text(refusal) for refusal in decision.refusals))
        elif not parsed.reason:
            why = _(
                "This change needs approval ({why}), and a request for "
                'approval needs a reason: add one, like `--reason "the client asked"`. '
                "Nothing was requested."
            ).format(why="; ".join(plan.why))
        else:
            return await self._record_request(
                requester,
                text,
                parsed,
                decision,
                plan,
                parsed.reason,
                response_url=response_url,
                idempotency_key=idempotency_key,
            )
        await self._refuse(requester, text, Decision.REFUSED, why)
        return Refused(why, decision.refusals)

    async def _record_request(
        self,
        requester: Requester,
        text: str,
        parsed: ChangeCommand,
        decision: ChangeDecision,
        plan: RequestPlan,
        reason: str,
        *,
        response_url: str | None,
        idempotency_key: str | None,
    ) -> Requested | Duplicate:
        terms = self._approvals.terms(plan, reason)
        planned = [
            PlannedCall(target.operation, target.agent_id, button.value, parsed.display.value)
            for target, button in plan.pairs
        ]
        recorded = await self._record(
            requester,
            text,
            parsed,
            planned,
            response_url=response_url,
            idempotency_key=idempotency_key,
            reason=f"requested ({'; '.join(plan.why)}) under "
            + ", ".join(decision.grants_used)
            + f"; reason given: {reason}",
            request=terms,
        )
        if recorded.duplicate:
            return Duplicate(recorded.change_id)
        return Requested(
            change_id=recorded.change_id,
            command=parsed,
            agents=tuple(dict.fromkeys(target.agent_id for target, _b in plan.pairs)),
            channel=plan.channel,
            approvals_needed=plan.approvals_needed,
            expires_at=terms.expires_at,
            why=plan.why,
        )

    async def _undo(
        self,
        requester: Requester,
        text: str,
        response_url: str | None,
        idempotency_key: str | None,
    ) -> SubmitResult:
        """Revert the caller's last finished change: the opposite display for every call of it
        that succeeded, under the caller's permissions of now."""
        last = await self._store.last_done_change(requester.user_id)
        record = await self._store.load_change(last) if last is not None else None
        done = [c for c in record.calls if c.status == CallStatus.SUCCEEDED] if record else []
        if record is None or not done:
            reason = _("You have no finished change to undo.")
            await self._refuse(requester, text, Decision.REFUSED, reason)
            return Refused(reason)
        opposite = Display.SHOW if record.display == Display.HIDE else Display.HIDE
        caller = await self._access.caller(requester)
        snapshot = await self._snapshots.get()
        wanted = [
            (Target(c.agent_id, c.operation, _team_in(snapshot, c.agent_id, c.operation)),
             Button(c.button))
            for c in done
        ]  # fmt: skip
        teams = {t.team: snapshot.teams[t.team] for t, _b in wanted if t.team in snapshot.teams}
        allowed: set[tuple[str, str, Button]] = set()
        needs_request = False
        for button in dict.fromkeys(b for _t, b in wanted):
            decision = decide_change(
                caller.actor,
                [t for t, b in wanted if b == button],
                (button,),
                grants=caller.grants,
                teams=teams,
                env_admins=self._access.env_admins,
            )
            allowed |= {(t.agent_id, t.operation, b) for t, b in decision.allowed}
            # The same approval rules as any change: an undo is not a way around them.
            if plan_request(decision, teams, asked_in=requester.channel_id) is not None:
                needs_request = True
        if needs_request:
            example = '/agentbox {display} {buttons} {agents} --reason "…"'.format(
                display=opposite.value,
                buttons=" ".join(dict.fromkeys(b.value for _t, b in wanted)),
                agents=agent_ranges(list(dict.fromkeys(t.agent_id for t, _b in wanted))),
            )
            reason = _(
                "Undoing change #{change_id} needs approval, as the change itself did. "
                "Ask for it as a request: `{example}`."
            ).format(change_id=record.id, example=example)
            await self._refuse(requester, text, Decision.REFUSED, reason)
            return Refused(reason)
        missing = [(t, b) for t, b in wanted if (t.agent_id, t.operation, b) not in allowed]
        if missing:
            names = ", ".join(f"{t.agent_id} (`{b.value}`)" for t, b in missing[:10])
            reason = _(
                "You may no longer change all of change #{change_id} (not: {agents})."
            ).format(change_id=record.id, agents=names)
            await self._refuse(requester, text, Decision.REFUSED, reason)
            return Refused(reason)
        planned = [PlannedCall(t.operation, t.agent_id, b.value, opposite.value) for t, b in wanted]
        command = ChangeCommand(
            display=opposite,
            buttons=tuple(dict.fromkeys(b for _t, b in wanted)),
            agents=tuple(dict.fromkeys(t.agent_id for t, _b in wanted)),
        )
        recorded = await self._record(
            requester,
            f"{text} (undo of change #{record.id})",
            command,
            planned,
            response_url=response_url,
            idempotency_key=idempotency_key,
            reason=f"undo of change #{record.id}",
            reverts_change_id=record.id,
        )
        if recorded.duplicate:
            return Duplicate(recorded.change_id)
        return await self._accepted(recorded.change_id, command, planned, recorded.calls_ahead)

    async def confirm(self, change_id: int, requester: Requester) -> ConfirmResult:
        """The requester runs the allowed part of a partly allowed change (once).

        The permission check runs again: grants or teams may have changed since the offer. It
        reads the one-second snapshot (commands/snapshot.py), so a revoke made on another replica
        less than a second before the click may not be seen yet.
        """
        text = f"confirm change #{change_id}"
        record = await self._store.load_change(change_id)
        waiting = (
            record is not None
            and record.requester.user_id == requester.user_id
            and record.status == ChangeStatus.AWAITING_CONFIRMATION
        )
        if record is not None and waiting and not await self._still_allowed(record, requester):
            await self._store.cancel(change_id, requester.user_id)
            reason = _(
                "Your permissions changed since you asked, so nothing was run and the change "
                "is cancelled. Ask again to see what you may do now."
            )
            await self._refuse(requester, text, Decision.REFUSED, reason, action="confirm")
            return Refused(reason)
        if record is None or not await self._store.confirm(
            change_id, requester.user_id, reporter_id=self._replica_id, lease=self._lease
        ):
            reason = _(
                "This change is not waiting for your confirmation (it was confirmed or cancelled "
                "already, or it is not yours)."
            )
            await self._refuse(requester, text, Decision.REFUSED, reason, action="confirm")
            return Refused(reason)
        command = ChangeCommand(
            display=Display(record.display),
            buttons=tuple(Button(b) for b in record.buttons),
            agents=tuple(dict.fromkeys(call.agent_id for call in record.calls)),
        )
        planned = [PlannedCall(c.operation, c.agent_id, c.button, c.display) for c in record.calls]
        return await self._accepted(change_id, command, planned)

    async def cancel(self, change_id: int, requester: Requester) -> bool:
        if await self._store.cancel(change_id, requester.user_id):
            return True
        await self._refuse(
            requester,
            f"cancel change #{change_id}",
            Decision.REFUSED,
            "not waiting for this user's confirmation (done already, or not theirs)",
            action="cancel",
        )
        return False

    async def _still_allowed(self, record: ChangeRecord, requester: Requester) -> bool:
        """Whether every held call of ``record`` is still allowed to ``requester``."""
        caller = await self._access.caller(requester)
        snapshot = await self._snapshots.get()
        targets = {
            (call.agent_id, call.operation): Target(
                call.agent_id, call.operation, _team_in(snapshot, call.agent_id, call.operation)
            )
            for call in record.calls
        }
        teams = {t.team: snapshot.teams[t.team] for t in targets.values()
                 if t.team and t.team in snapshot.teams}  # fmt: skip
        decision = decide_change(
            caller.actor,
            list(targets.values()),
            tuple(Button(b) for b in record.buttons),
            grants=caller.grants,
            teams=teams,
            env_admins=self._access.env_admins,
        )
        allowed = {(t.agent_id, t.operation, b.value) for t, b in decision.allowed}
        return all((c.agent_id, c.operation, c.button) in allowed for c in record.calls)

    async def _record(
        self,
        requester: Requester,
        text: str,
        command: ChangeCommand,
        planned: Sequence[PlannedCall],
        *,
        response_url: str | None,
        idempotency_key: str | None,
        reason: str,
        held: bool = False,
        request: RequestTerms | None = None,
        reverts_change_id: int | None = None,
    ) -> Recorded:
        """Store ``command`` (its display, buttons and length) with its ``planned`` calls, as a
        change this replica reports."""
        return await self._store.record_change(
            requester,
            text=text,
            display=command.display.value,
            buttons=[button.value for button in command.buttons],
            calls=planned,
            response_url=response_url,
            idempotency_key=idempotency_key,
            reporter_id=self._replica_id,
            lease=self._lease,
            held=held,
            duration_seconds=_seconds(command),
            reason=reason,
            reverts_change_id=reverts_change_id,
            request=request,
        )

    async def _accepted(
        self,
        change_id: int,
        command: ChangeCommand,
        planned: Sequence[PlannedCall],
        calls_ahead: Mapping[str, int] | None = None,
    ) -> Accepted:
        """``calls_ahead``: as read when the change was recorded; else read now."""
        operations = tuple(sorted({call.operation for call in planned}))
        # The estimate speaks of the busiest operation the change touches.
        ahead, mean = 0, None
        for operation in operations:
            if calls_ahead is not None and operation in calls_ahead:
                op_ahead = calls_ahead[operation]
                op_mean = await self._queue.mean_call_seconds(operation)
            else:
                op_ahead, op_mean = await self._queue.backlog(operation, change_id)
            if op_ahead >= ahead:
                ahead, mean = op_ahead, op_mean if op_mean is not None else mean
        per_call = mean if mean is not None else DEFAULT_CALL_SECONDS
        return Accepted(
            change_id=change_id,
            command=command,
            operations=operations,
            total_calls=len(planned),
            ahead=ahead,
            estimated_wait=math.ceil(ahead / self._concurrency) * per_call,
            estimated_duration=(ahead + len(planned)) * per_call / self._concurrency,
            estimates_measured=mean is not None,
        )

    async def _refuse(
        self,
        requester: Requester,
        text: str,
        decision: Decision,
        reason: str,
        *,
        action: str = "change",
    ) -> None:
        await self._store.record_attempt(
            requester, action=action, text=text, decision=decision, reason=reason
        )

    async def _targets(self, command: ChangeCommand, snapshot: Snapshot) -> list[Target] | str:
        """Each agent with the operation that serves it and its team there; or why not."""
        targets: dict[tuple[str, str], Target] = {}
        for name in command.teams:
            team = snapshot.teams.get(name)
            if team is None:
                close = difflib.get_close_matches(name, list(snapshot.teams), n=1)
                if close:
                    return _(
                        "There is no team named `{name}`. Did you mean `team:{close}`? "
                        "`/agentbox team list` lists them."
                    ).format(name=name, close=close[0])
                return _(
                    "There is no team named `{name}`. `/agentbox team list` lists them."
                ).format(name=name)
            for agent in team.agents:
                targets[(agent, team.operation)] = Target(agent, team.operation, team.name)
        default = await self._operations.exists(DEFAULT_OPERATION)
        for agent in command.agents:
            found = snapshot.teams_of(agent)
            if len(found) > 1:
                names = ", ".join(f"{team} ({operation})" for team, operation in found)
                return _(
                    "Agent {agent} is in teams of several operations ({teams}); "
                    "say which with `team:<name>`."
                ).format(agent=agent, teams=names)
            if found:
                team_name, operation = found[0]
                targets[(agent, operation)] = Target(agent, operation, team_name)
            elif default:
                targets[(agent, DEFAULT_OPERATION)] = Target(agent, DEFAULT_OPERATION, None)
            else:
                return _(
                    "Agent {agent} is in no team, and no default wolkvox operation is "
                    "configured (`WOLKVOX_SERVER` and `WOLKVOX_TOKEN`), so there is nowhere to "
                    "send the change. Add the agent to a team, or ask the operator."
                ).format(agent=agent)
        if len(targets) > MAX_AGENTS:
            return _(
                "That is {count} agents; one command may change at most {most}. "
                "Split it into smaller commands."
            ).format(count=len(targets), most=MAX_AGENTS)
        return sorted(targets.values(), key=lambda t: (int(t.agent_id), t.agent_id, t.operation))

    async def follow(self, change_id: int, listener: ProgressListener) -> ChangeReport | None:
        """Report a change's progress until its summary is delivered.

        Returns None when this replica stops first (shutdown: the listener is told, and the lease is
        released so another replica goes on at once) or when another replica took the change over.

        Progress is read from the database at once when every call still open at the last read
        may be answered (:meth:`_until_worth_reading`: this process's dispatcher answered them,
        or as many wake-ups came), and otherwise at most every :data:`PROGRESS_READ_SECONDS`: a
        change of many calls is not read again for each of them (the progress message shows at
        most one update a second anyway), and a failed token's calls (one wake-up for all of
        them) are still seen soon.
        """
        key = str(change_id)
        renewed = time.monotonic()
        self._following[change_id] = 0
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
                    answered_before = self._following[change_id]
                    read_at = time.monotonic()
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
                        again = retry_of_failed_revert(record)
                        report = replace(
                            report_of(record),
                            trail_channels=await self._trail_channels(record),
                            revert_again_in=int(again[0].total_seconds()) if again else None,
                        )
                        await _notify(listener.on_finished(report))
                        await self._store.finish(change_id, now=self._clock(), revert_again=again)
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
                await self._until_worth_reading(
                    change_id, changed, read_at, open_calls=total - done, since=answered_before
                )
        finally:
            self._following.pop(change_id, None)
            self._signals.forget(CHANGE, key)

    async def _until_worth_reading(
        self, change_id: int, changed: asyncio.Event, read_at: float, *, open_calls: int, since: int
    ) -> None:
        """Return when reading the change's progress again is worth it: its ``open_calls`` may all
        be answered, the follow must stop, or a wake-up came and the last read (at ``read_at``) is
        :data:`PROGRESS_READ_SECONDS` old. Without any wake-up, after a third of the lease (it is
        renewed then).

        "May all be answered": this process's dispatcher answered them (counted from ``since``),
        or as many wake-ups came as there were calls open. Another replica's answers arrive only
        as wake-ups, at least one for each step it wrote; those of this process bring two at
        most each (the step writer's and :meth:`note_answered`'s), which are not counted twice.
        So a change whose calls another replica sends ends at once too, and reading early costs
        one read, no more."""
        deadline: float | None = None  # from the first wake-up on
        woken = 0
        while True:
            timeout = self._lease / 3 if deadline is None else deadline - time.monotonic()
            if timeout <= 0 or not await wait(changed, timeout):  # stop_following() fires it
                return
            woken += 1
            here = self._following.get(change_id, 0) - since
            elsewhere = max(0, woken - 2 * here)
            if self._stopping.is_set() or here + elsewhere >= open_calls:
                return
            if deadline is None:
                deadline = read_at + PROGRESS_READ_SECONDS
            # No await since the check above: a pulse from now on wakes this waiter.
            changed = self._signals.waiter(CHANGE, str(change_id))

    def note_answered(self, change_id: int) -> None:
        """This process's dispatcher recorded the answer of one of ``change_id``'s calls (it is
        durable): a hint for :meth:`follow` that the change may be done. Only a hint: an answer
        counted here may already be in the last read, which costs one more read, no more."""
        if change_id in self._following:
            self._following[change_id] += 1
            # The step writer woke the follower before this count moved: wake it again.
            self._signals.notify(CHANGE, str(change_id))

    async def _trail_channels(self, record: ChangeRecord) -> tuple[str, ...]:
        snapshot = await self._snapshots.get()
        teams = {_team_in(snapshot, call.agent_id, call.operation) for call in record.calls}
        return tuple(
            sorted(
                {
                    snapshot.teams[t].channel_id
                    for t in teams
                    if t in snapshot.teams and snapshot.teams[t].policy.trail_enabled
                }
            )
        )

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


def refusal_text(refusal: Refusal) -> str:
    """``agents 1001, 1002 (`dial`): in team cobranza; you supervise ventas``."""
    agents = refusal.agents
    if len(agents) == 1:
        who = _("agent {agent}").format(agent=agents[0])
    else:
        listed = ", ".join(agents[:10])
        if len(agents) > 10:
            listed = _("{agents} and {count} more").format(agents=listed, count=len(agents) - 10)
        who = _("agents {agents}").format(agents=listed)
    buttons = ", ".join(f"`{b.value}`" for b in refusal.buttons)
    return f"{who} ({buttons}): {refusal.reason}"


def _no_role(caller: Caller) -> str:
    admins = sorted(
        {*caller.env_admins}
        | {
            g.subject_id
            for g in caller.all_grants
            if g.role == "admin" and g.subject_type == "user"
        }
    )
    if not admins:
        return _(
            "You are not allowed to change agents' buttons: nobody has a role in agentbox yet. "
            "The operator names the first admins in `AGENTBOX_ADMINS`."
        )
    names = ", ".join(f"<@{admin}>" for admin in admins)
    return _(
        "You are not allowed to change agents' buttons: you have no role in agentbox. "
        "Ask an admin ({admins}) to run it or to grant you a role."
    ).format(admins=names)


def _seconds(command: ChangeCommand) -> int | None:
    """A timed change's length in whole seconds (the grammar bounds it)."""
    return int(command.duration.total_seconds()) if command.duration is not None else None


def _team_in(snapshot: Snapshot, agent: str, operation: str) -> str | None:
    return next((team for team, op in snapshot.teams_of(agent) if op == operation), None)


def _approval_notes(
    decision: ChangeDecision, plan: RequestPlan | str | None
) -> tuple[Refusal, ...]:
    """What a dry run says about approval: the whole change would be requested, and why."""
    if plan is None:
        return ()
    if isinstance(plan, str):
        return _grouped((*decision.allowed, *decision.needs_approval), plan)
    why = _("would be requested for approval: {why}").format(why="; ".join(plan.why))
    return _grouped(plan.pairs, why)


def _grouped(pairs: Sequence[tuple[Target, Button]], reason: str) -> tuple[Refusal, ...]:
    if not pairs:
        return ()
    return (
        Refusal(
            agents=tuple(dict.fromkeys(t.agent_id for t, _b in pairs)),
            buttons=tuple(dict.fromkeys(b for _t, b in pairs)),
            reason=reason,
        ),
    )
