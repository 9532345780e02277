"""``status`` and ``history``: what agentbox knows, for anyone with a role.

wolkvox cannot be asked for a button's state, so ``status`` shows what the last successful call set,
who set it and when.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from commands.access import Access
from commands.agents import agent_ranges
from commands.snapshot import Snapshots
from storage.changes import Requester
from storage.history import ButtonState, History

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
                return f"There is no team named `{name}`. `/agentbox team list` lists them."
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
            return False, "You have no role in agentbox yet; ask an admin."
        if hidden_only:
            states = await self._history.button_states(None, hidden_only=True)
            if not states:
                return True, "No agent has a hidden button right now (as far as agentbox set them)."
            by_button: dict[str, list[str]] = defaultdict(list)
            for state in states:
                by_button[state.button].append(state.agent_id)
            lines = ["*Hidden right now* (the last call agentbox made for each):"]
            lines += [
                f"• `{button}`: {len(ids)} agent{'s' if len(ids) != 1 else ''} "
                f"({agent_ranges(ids)})"
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
                lines.append(f"• {agent}: nothing set by agentbox yet")
                continue
            parts = [
                f"`{s.button}` {'hidden' if s.display == 'hide' else 'shown'} by <@{s.set_by}>"
                + (f" at {s.set_at:%Y-%m-%d %H:%M} UTC" if s.set_at else "")
                for s in known[agent]
            ]
            lines.append(f"• {agent}: " + "; ".join(parts))
        if len(chosen) > MAX_STATUS_AGENTS:
            lines.append(
                f"…and {len(chosen) - MAX_STATUS_AGENTS} more agents; ask for fewer, or "
                "`/agentbox status hidden`."
            )
        return True, "\n".join(lines)

    async def history(
        self, requester: Requester, agents: Sequence[str], teams: Sequence[str], *, limit: int
    ) -> tuple[bool, str]:
        caller = await self._access.caller(requester)
        if not caller.roles:
            return False, "You have no role in agentbox yet; ask an admin."
        chosen: list[str] | None = None
        if agents or teams:
            found = await self._agents(agents, teams)
            if isinstance(found, str):
                return False, found
            chosen = found
        changes = await self._history.recent_changes(chosen, limit=limit)
        if not changes:
            return True, "No changes yet."
        lines = [
            f"• #{c.change_id} {c.at:%Y-%m-%d %H:%M} UTC <@{c.user_id}>: `{c.text}` — "
            f"{c.succeeded}/{c.total} done"
            + (f", {c.failed} failed" if c.failed else "")
            + ("" if c.status == "done" else f" ({c.status})")
            for c in changes
        ]
        return True, "\n".join(lines)
