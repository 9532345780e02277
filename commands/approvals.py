"""Approval requests: which changes need approval, who may approve them, and their life.

A change needs approval when any of its parts does:

- the caller's grant for it is ``requester``;
- a team's policy says so: ``approval_buttons`` (changes to those buttons of its agents), or
  ``approval_over_agents`` (more than that many of its agents in one change) — for everyone,
  admins included.

Such a change is requested as a whole (every agent and button of it waits), with a ``--reason``,
in one approvals channel: each team's own (or its channel when it has none); agents in no team use
the channel the change was asked in. A change whose teams post requests in different channels is
refused, with advice to ask per team. ``two_approvers_buttons`` makes a request need two distinct
approvers. A request expires after the team's ``approval_ttl_minutes`` (the shortest of its teams')
or ``AGENTBOX_APPROVAL_TTL_MINUTES``.

Who may approve or reject: whoever's grants cover every agent and button of it as an admin or
supervisor (checked now, like a confirmation), never the requester unless every team of the
request allows self-approval. The requester may always reject (withdraw) their own request.
Every refused click is audited with its reason; every decision is audited with the change.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from commands.access import Access
from commands.agents import agent_ranges
from commands.clock import Clock
from commands.grammar import ChangeCommand
from commands.i18n import _, ngettext
from commands.roles import ChangeDecision, Target, decide_change
from commands.snapshot import Snapshot, Snapshots
from storage.approvals import ApprovalStore, Outcome, RequestRecord
from storage.audit import AuditEntry
from storage.changes import Requester, RequestTerms
from storage.directory import TeamRecord
from storage.models import ChangeStatus, Decision
from wolkvox.model import Button

DEFAULT_TTL_MINUTES = 30


@dataclass(frozen=True)
class RequestPlan:
    """A change that needs approval: why, where it is posted, by how many, for how long."""

    why: tuple[str, ...]
    channel: str
    approvals_needed: int
    #: The shortest TTL its teams set; None: the default.
    ttl_minutes: int | None
    pairs: tuple[tuple[Target, Button], ...]


@dataclass(frozen=True)
class Requested:
    """The change is recorded as a request, and waits for approval in ``channel``."""

    change_id: int
    command: ChangeCommand
    agents: tuple[str, ...]
    channel: str
    approvals_needed: int
    expires_at: datetime
    why: tuple[str, ...]


@dataclass(frozen=True)
class Decided:
    """A click that counted: an approval (``runs``: the last one needed, the change is queued)
    or a rejection. ``request`` is as stored after it."""

    request: RequestRecord
    runs: bool = False
    rejected: bool = False
    self_approved: bool = False


@dataclass(frozen=True)
class NotDecided:
    """A click that changed nothing, and why (already audited)."""

    reason: str
    request: RequestRecord | None = None
    #: This click found the request's time up and marked it expired: update its message.
    expired_now: bool = False


def plan_request(
    decision: ChangeDecision,
    teams: Mapping[str, TeamRecord],
    *,
    asked_in: str | None,
) -> RequestPlan | str | None:
    """Whether the change ``decision`` allowed (or left to approval) must be requested: the plan,
    a refusal (its parts would go to different approvals channels), or None (it need not be)."""
    buttons_order = list(Button)
    pairs = sorted(
        (*decision.allowed, *decision.needs_approval),
        key=lambda pair: (
            int(pair[0].agent_id),
            pair[0].agent_id,
            pair[0].operation,
            buttons_order.index(pair[1]),
        ),
    )
    why: list[str] = []
    if decision.needs_approval:
        agents = agent_ranges(dict.fromkeys(t.agent_id for t, _b in decision.needs_approval))
        why.append(_("your role for {agents} is requester").format(agents=agents))
    per_team: dict[str, set[str]] = defaultdict(set)
    for target, _b in pairs:
        if target.team is not None and target.team in teams:
            per_team[target.team].add(target.agent_id)
    two = False
    for name, agents_of_team in sorted(per_team.items()):
        policy = teams[name].policy
        buttons = {b.value for t, b in pairs if t.team == name}
        marked = [b for b in policy.approval_buttons if b in buttons]
        if marked:
            names = ", ".join(f"`{b}`" for b in marked)
            why.append(
                _("team {team} requires approval for changes to {buttons}").format(
                    team=name, buttons=names
                )
            )
        over = policy.approval_over_agents
        if over is not None and len(agents_of_team) > over:
            why.append(
                _(
                    "team {team} requires approval for changes to more than {most} of its agents "
                    "(this one changes {count})"
                ).format(team=name, most=over, count=len(agents_of_team))
            )
        two = two or any(b in buttons for b in policy.two_approvers_buttons)
    if not why:
        return None
    channels: dict[str, list[str]] = defaultdict(list)
    for name in sorted(per_team):
        team = teams[name]
        channels[team.approvals_channel_id or team.channel_id].append(name)
    if any(t.team is None or t.team not in teams for t, _b in pairs):
        if asked_in is None:
            return _("Agents in no team can only be requested from a channel.")
        channels[asked_in].append(_("agents in no team"))
    if len(channels) > 1:
        where = "; ".join(
            f"{', '.join(names)} → <#{channel}>" for channel, names in channels.items()
        )
        return _(
            "This change needs approval, and its teams take requests in different channels "
            "({channels}). Request each team's agents in a command of its own."
        ).format(channels=where)
    ttls = [
        teams[name].policy.approval_ttl_minutes
        for name in per_team
        if teams[name].policy.approval_ttl_minutes is not None
    ]
    return RequestPlan(
        why=tuple(why),
        channel=next(iter(channels)),
        approvals_needed=2 if two else 1,
        ttl_minutes=min(m for m in ttls if m is not None) if ttls else None,
        pairs=tuple(pairs),
    )


class ApprovalService:
    def __init__(
        self,
        store: ApprovalStore,
        access: Access,
        snapshots: Snapshots,
        *,
        replica_id: str,
        lease: float,
        clock: Clock,
        default_ttl_minutes: int = DEFAULT_TTL_MINUTES,
    ) -> None:
        self._store = store
        self._access = access
        self._snapshots = snapshots
        self._replica_id = replica_id
        self._lease = lease
        #: What time it is: expiry is decided by it (tests move it forward).
        self.clock = clock
        self.default_ttl_minutes = default_ttl_minutes

    def terms(self, plan: RequestPlan, reason: str) -> RequestTerms:
        minutes = plan.ttl_minutes if plan.ttl_minutes is not None else self.default_ttl_minutes
        return RequestTerms(
            reason=reason,
            approvals_needed=plan.approvals_needed,
            expires_at=self.clock() + timedelta(minutes=minutes),
            channel=plan.channel,
        )

    async def load(self, change_id: int) -> RequestRecord | None:
        return await self._store.load(change_id) if change_id > 0 else None

    async def remember_message(self, change_id: int, channel: str, ts: str) -> None:
        await self._store.set_message(change_id, channel, ts)

    async def approve(self, change_id: int, user: Requester) -> Decided | NotDecided:
        """``user`` approves the request; the last approval needed queues its change (once)."""
        text = f"approve request #{change_id}"
        record = await self.load(change_id)
        refused = await self._check(record, user, text, approving=True)
        if isinstance(refused, NotDecided):
            return refused
        assert record is not None
        self_approved = refused
        audit = AuditEntry.by(
            user,
            action="approve",
            text=text,
            decision=Decision.ALLOWED,
            reason="self-approval, allowed by the team's policy" if self_approved else None,
            change_id=change_id,
        )
        outcome = await self._store.approve(
            change_id,
            user.user_id,
            now=self.clock(),
            reporter_id=self._replica_id,
            lease=self._lease,
            audit=audit,
        )
        if outcome in (Outcome.RAN, Outcome.WAITING):
            after = await self._store.load(change_id)
            assert after is not None
            return Decided(after, runs=outcome == Outcome.RAN, self_approved=self_approved)
        return await self._not_decided(outcome, change_id, user, text)

    async def check_reject(self, change_id: int, user: Requester) -> RequestRecord | NotDecided:
        """Whether ``user`` may reject the request now (before asking them for a reason)."""
        text = f"reject request #{change_id}"
        record = await self.load(change_id)
        refused = await self._check(record, user, text, approving=False)
        if isinstance(refused, NotDecided):
            return refused
        assert record is not None
        return record

    async def reject(
        self, change_id: int, user: Requester, reason: str | None
    ) -> Decided | NotDecided:
        """``user`` rejects the request (the requester withdraws it); nothing of it runs."""
        text = f"reject request #{change_id}"
        record = await self.load(change_id)
        refused = await self._check(record, user, text, approving=False)
        if isinstance(refused, NotDecided):
            return refused
        reason = (reason or "").strip()[:500] or None
        outcome = await self._store.reject(
            change_id,
            user.user_id,
            reason,
            now=self.clock(),
            audit=AuditEntry.by(
                user,
                action="reject",
                text=text,
                decision=Decision.ALLOWED,
                reason=reason,
                change_id=change_id,
            ),
        )
        if outcome == Outcome.REJECTED:
            after = await self._store.load(change_id)
            assert after is not None
            return Decided(after, rejected=True)
        return await self._not_decided(outcome, change_id, user, text)

    async def withdraw(self, change_id: int, why: str) -> bool:
        """End a request that could not be posted for approvers (nothing of it runs)."""
        record = await self.load(change_id)
        if record is None:
            return False
        requester = record.change.requester
        return await self._store.withdraw(
            change_id,
            now=self.clock(),
            audit=AuditEntry.by(
                requester,
                action="request.withdraw",
                text=record.change.text,
                decision=Decision.REFUSED,
                reason=why,
                change_id=change_id,
            ),
        )

    async def expire_due(self) -> list[RequestRecord]:
        """Mark expired every request whose time is up; those this call expired."""
        expired = []
        for change_id in await self._store.expire(self.clock()):
            record = await self._store.load(change_id)
            if record is not None:
                expired.append(record)
        return expired

    async def waiting_for(self, user: Requester, *, limit: int = 50) -> list[RequestRecord]:
        """The waiting requests ``user`` may approve and has not approved yet (App Home's list),
        the oldest first."""
        now = self.clock()
        found = []
        for change_id in await self._store.waiting(now, limit=limit):
            record = await self._store.load(change_id)
            if record is None or user.user_id in record.approved_by:
                continue
            if await self._why_not(record, user, approving=True) is None:
                found.append(record)
        return found

    async def seconds_until_next(self) -> float | None:
        """How long until the next waiting request expires (0 if one is due), or None."""
        due = await self._store.next_expiry()
        if due is None:
            return None
        return max(0.0, (due - self.clock()).total_seconds())

    # --- checks ----------------------------------------------------------------------------

    async def _check(
        self, record: RequestRecord | None, user: Requester, text: str, *, approving: bool
    ) -> bool | NotDecided:
        """Whether ``user`` may decide on ``record`` now: True for a self-approval, False for
        anyone else allowed, or the refusal (audited)."""
        if record is None:
            return await self._refuse(user, text, _no_request(), None)
        closed = _closed_reason(record)
        if closed is not None:
            return await self._refuse(user, text, closed, record)
        if record.expires_at <= self.clock():
            return await self._expired_at_click(record, user, text)
        why = await self._why_not(record, user, approving=approving)
        if why is not None:
            return await self._refuse(user, text, why, record)
        return user.user_id == record.requester_id

    async def _why_not(
        self, record: RequestRecord, user: Requester, *, approving: bool
    ) -> str | None:
        """Why ``user`` may not approve (or reject) the waiting ``record``; None if they may."""
        own = user.user_id == record.requester_id
        if own and not approving:
            return None  # the requester withdraws their own request
        snapshot = await self._snapshots.get()
        targets = _targets(record, snapshot)
        teams = [snapshot.teams.get(t.team) if t.team else None for t in targets.values()]
        if own and not all(team is not None and team.policy.self_approval for team in teams):
            return _(
                "You asked for this change, so someone else must approve it (self-approval is "
                "off for its team). Ask an approver in this channel."
            )
        missing = await self._not_covered(record, user, targets, snapshot)
        if missing is not None:
            refusal = (
                _(
                    "You may not approve this request: your grants do not cover all of it "
                    "({missing}). An admin or a supervisor of every agent and button in it may."
                )
                if approving
                else _(
                    "You may not reject this request: your grants do not cover all of it "
                    "({missing}). An admin or a supervisor of every agent and button in it may."
                )
            )
            return refusal.format(missing=missing)
        return None

    async def _not_covered(
        self,
        record: RequestRecord,
        user: Requester,
        targets: Mapping[tuple[str, str], Target],
        snapshot: Snapshot,
    ) -> str | None:
        """What of ``record`` ``user`` may not change as a supervisor, in words; None if all."""
        caller = await self._access.caller(user)
        # Where the approver clicks does not matter: the request was asked where it may be.
        teams = {
            name: dataclasses.replace(team, change_channels=())
            for name, team in snapshot.teams.items()
            if any(t.team == name for t in targets.values())
        }
        buttons = tuple(dict.fromkeys(Button(c.button) for c in record.change.calls))
        decision = decide_change(
            caller.actor,
            list(targets.values()),
            buttons,
            grants=caller.grants,
            teams=teams,
            env_admins=self._access.env_admins,
        )
        allowed = {(t.agent_id, t.operation, b.value) for t, b in decision.allowed}
        missing = [
            (c.agent_id, c.button)
            for c in record.change.calls
            if (c.agent_id, c.operation, c.button) not in allowed
        ]
        if not missing:
            return None
        reasons = [r.reason for r in decision.refusals]
        if decision.needs_approval:
            reasons.append(_("as a requester you may ask for changes, not approve them"))
        shown = ", ".join(f"{agent} (`{button}`)" for agent, button in missing[:5])
        if len(missing) > 5:
            shown = _("{agents} and {count} more").format(agents=shown, count=len(missing) - 5)
        because = f": {'; '.join(dict.fromkeys(reasons))}" if reasons else ""
        return _("not {agents}").format(agents=shown) + because

    async def _expired_at_click(
        self, record: RequestRecord, user: Requester, text: str
    ) -> NotDecided:
        expired = await self._store.expire(self.clock(), change_id=record.id)
        after = await self._store.load(record.id) or record
        refusal = await self._refuse(user, text, _expired_text(record), after)
        return dataclasses.replace(refusal, expired_now=bool(expired))

    async def _not_decided(
        self, outcome: Outcome, change_id: int, user: Requester, text: str
    ) -> NotDecided:
        """The refusal for a click the database transition did not take."""
        record = await self._store.load(change_id)
        if outcome == Outcome.EXPIRED and record is not None:
            return await self._expired_at_click(record, user, text)
        if outcome == Outcome.ALREADY and record is not None:
            mine = next((d for d in record.decisions if d.approver_id == user.user_id), None)
            left = record.approvals_needed - len(record.approved_by)
            if mine is not None and mine.decision == "rejected":
                reason = _("You rejected this request already.")
            elif left > 0:
                reason = ngettext(
                    "You approved this request already; it needs {count} more approver "
                    "(someone else).",
                    "You approved this request already; it needs {count} more approvers "
                    "(someone else).",
                    left,
                ).format(count=left)
            else:
                reason = _("You approved this request already.")
            return await self._refuse(user, text, reason, record)
        if record is not None:
            closed = _closed_reason(record)
            if closed is not None:
                return await self._refuse(user, text, closed, record)
        return await self._refuse(user, text, _no_request(), None)

    async def _refuse(
        self, user: Requester, text: str, reason: str, record: RequestRecord | None
    ) -> NotDecided:
        action = text.split(" ", 1)[0]
        await self._store.audit(
            AuditEntry.by(
                user,
                action=action,
                text=text,
                decision=Decision.REFUSED,
                reason=reason,
                change_id=record.id if record else None,
            )
        )
        return NotDecided(reason, record)


def _targets(record: RequestRecord, snapshot: Snapshot) -> dict[tuple[str, str], Target]:
    """Each agent of the request with its operation and its team now."""
    targets: dict[tuple[str, str], Target] = {}
    for call in record.change.calls:
        team = next(
            (name for name, op in snapshot.teams_of(call.agent_id) if op == call.operation), None
        )
        targets[(call.agent_id, call.operation)] = Target(call.agent_id, call.operation, team)
    return targets


def _mentions(users: Sequence[str]) -> str:
    return ", ".join(f"<@{user}>" for user in users)


def _no_request() -> str:
    return _("That button names no approval request, so nothing was done.")


def _expired_text(record: RequestRecord) -> str:
    return _(
        "This request expired at {time} without enough approvals, "
        "so nothing was done. The requester may ask again."
    ).format(time=slack_time(record.expires_at))


def _closed_reason(record: RequestRecord) -> str | None:
    """Why nobody may decide on ``record`` any more; None while it waits."""
    status = record.status
    if status == ChangeStatus.AWAITING_APPROVAL:
        return None
    if status in (ChangeStatus.QUEUED, ChangeStatus.DONE):
        approved = (
            _(
                "This request was approved already (by {approvers}) and has run; "
                "nothing more was done."
            )
            if status == ChangeStatus.DONE
            else _(
                "This request was approved already (by {approvers}) and is running; "
                "nothing more was done."
            )
        )
        return approved.format(approvers=_mentions(record.approved_by))
    if status == ChangeStatus.REJECTED:
        rejection = record.rejection
        if rejection is None:
            return _("This request was rejected; nothing was run.")
        return _("This request was rejected by <@{approver}>; nothing was run.").format(
            approver=rejection.approver_id
        )
    if status == ChangeStatus.EXPIRED:
        return _expired_text(record)
    if status == ChangeStatus.CANCELLED:
        return _("This request was withdrawn; nothing was run.")
    return _no_request()


def slack_time(moment: datetime) -> str:
    """A time Slack shows in each reader's own time zone (UTC where it cannot)."""
    fallback = moment.strftime("%H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{time}}|{fallback}>"
