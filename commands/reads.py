"""``status`` and ``history``: what agentbox knows, for anyone with a role.

wolkvox cannot be asked for a button's state, so ``status`` shows what the last successful call set,
who set it and when.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from commands.access import Access
from commands.agents import agent_ranges
from commands.i18n import _, ngettext, pgettext
from commands.snapshot import Snapshots
from storage.changes import Requester
from storage.history import ButtonState, History
from storage.models import ChangeStatus

#: At most this many agents are listed one by one in a status answer.
MAX_STATUS_AGENTS = 50


class Reads:
    def __init__(self, history: History, access: Access, snapshots: Snapshots) -> None:
        self._history = history
        self._access = access
        self._snapshots = snapshots

    async def _agents(self, agents: Sequence[str], teams: Sequence[str]) -> list[str] | str:
        snapshot = await self._snapshots.get()
        chosen = list(agents)
        for name in teams:
            team = snapshot.teams.get(name)
            if team is None:
                return _(
                    "There is no team named `{name}`. `/agentbox team list` lists them."
                ).format(name=name)
            chosen += team.agents
        return list(dict.fromkeys(chosen))

    async def status(
        self,
        requester: Requester,
        agents: Sequence[str],
        teams: Sequence[str],
        *,
        hidden_only: bool,
    ) -> tuple[bool, str]:
        caller = await self._access.caller(requester)
        if not caller.roles:
            return False, _("You have no role in agentbox yet; ask an admin.")
        if hidden_only:
            states = await self._history.button_states(None, hidden_only=True)
            if not states:
                return True, _(
                    "No agent has a hidden button right now (as far as agentbox set them)."
                )
            by_button: dict[str, list[str]] = defaultdict(list)
            for state in states:
                by_button[state.button].append(state.agent_id)
            lines = [_("*Hidden right now* (the last call agentbox made for each):")]
            lines += [
                ngettext(
                    "• `{button}`: {count} agent ({agents})",
                    "• `{button}`: {count} agents ({agents})",
                    len(ids),
                ).format(button=button, count=len(ids), agents=agent_ranges(ids))
                for button, ids in sorted(by_button.items())
            ]
            return True, "\n".join(lines)
        chosen = await self._agents(agents, teams)
        if isinstance(chosen, str):
            return False, chosen
        states = await self._history.button_states(chosen)
        known: dict[str, list[ButtonState]] = defaultdict(list)
        for state in states:
            known[state.agent_id].append(state)
        lines = []
        for agent in chosen[:MAX_STATUS_AGENTS]:
            if not known.get(agent):
                lines.append(_("• {agent}: nothing set by agentbox yet").format(agent=agent))
                continue
            parts = [_state(state) for state in known[agent]]
            lines.append(f"• {agent}: " + "; ".join(parts))
        if len(chosen) > MAX_STATUS_AGENTS:
            more = len(chosen) - MAX_STATUS_AGENTS
            lines.append(
                ngettext(
                    "…and {count} more agent; ask for fewer, or `/agentbox status hidden`.",
                    "…and {count} more agents; ask for fewer, or `/agentbox status hidden`.",
                    more,
                ).format(count=more)
            )
        return True, "\n".join(lines)

    async def history(
        self, requester: Requester, agents: Sequence[str], teams: Sequence[str], *, limit: int
    ) -> tuple[bool, str]:
        caller = await self._access.caller(requester)
        if not caller.roles:
            return False, _("You have no role in agentbox yet; ask an admin.")
        chosen: list[str] | None = None
        if agents or teams:
            found = await self._agents(agents, teams)
            if isinstance(found, str):
                return False, found
            chosen = found
        changes = await self._history.recent_changes(chosen, limit=limit)
        if not changes:
            return True, _("No changes yet.")
        lines = []
        for c in changes:
            line = _(
                "• #{change} {time} UTC <@{user}>: `{text}` — {succeeded}/{total} done"
            ).format(
                change=c.change_id,
                time=f"{c.at:%Y-%m-%d %H:%M}",
                user=c.user_id,
                text=c.text,
                succeeded=c.succeeded,
                total=c.total,
            )
            if c.failed:
                line += ngettext(", {count} failed", ", {count} failed", c.failed).format(
                    count=c.failed
                )
            if c.status != ChangeStatus.DONE:
                line += f" ({_status_word(c.status)})"
            lines.append(line)
        return True, "\n".join(lines)


def _state(state: ButtonState) -> str:
    """``dial`` hidden by <@U1> at 2026-11-02 10:04 UTC."""
    hidden = state.display == "hide"
    if state.set_at is None:
        text = _("`{button}` hidden by <@{user}>") if hidden else _("`{button}` shown by <@{user}>")
        return text.format(button=state.button, user=state.set_by)
    text = (
        _("`{button}` hidden by <@{user}> at {time} UTC")
        if hidden
        else _("`{button}` shown by <@{user}> at {time} UTC")
    )
    return text.format(
        button=state.button, user=state.set_by, time=f"{state.set_at:%Y-%m-%d %H:%M}"
    )


def _status_word(status: str) -> str:
    """A change's status (storage.models.ChangeStatus) in words; an unknown one as stored."""
    words: dict[str, str] = {
        ChangeStatus.AWAITING_CONFIRMATION: pgettext("change status", "awaiting confirmation"),
        ChangeStatus.AWAITING_APPROVAL: pgettext("change status", "awaiting approval"),
        ChangeStatus.REJECTED: pgettext("change status", "rejected"),
        ChangeStatus.EXPIRED: pgettext("change status", "expired"),
        ChangeStatus.QUEUED: pgettext("change status", "queued"),
        ChangeStatus.CANCELLED: pgettext("change status", "cancelled"),
    }
    return words.get(status, status)
