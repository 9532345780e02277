"""A short-lived, in-process copy of who is who (grants and teams), for the slash-command path.

Every command needs the caller's grants and its agents' teams before Slack's 3-second deadline;
reading them from the database for each of 200 commands arriving together costs more than the
deadline allows. A snapshot serves every command for at most ``MAX_AGE_SECONDS``; this process's
own changes (grants, teams) drop it at once, and another replica's are seen within that age.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from storage.directory import Directory, GrantRecord, TeamRecord

#: How stale a grant or team may be when another replica changed it.
MAX_AGE_SECONDS = 1.0


@dataclass(frozen=True)
class Snapshot:
    grants: tuple[GrantRecord, ...]
    teams: dict[str, TeamRecord]
    memberships: dict[str, list[tuple[str, str]]]  # agent -> [(team, operation)]

    def teams_of(self, agent: str) -> list[tuple[str, str]]:
        return self.memberships.get(agent, [])


class Snapshots:
    def __init__(self, directory: Directory, max_age: float = MAX_AGE_SECONDS) -> None:
        self._directory = directory
        directory.on_change.append(self.invalidate)
        self._max_age = max_age
        self._current: tuple[float, Snapshot] | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._current = None

    async def get(self) -> Snapshot:
        current = self._current
        if current is not None and time.monotonic() - current[0] < self._max_age:
            return current[1]
        async with self._lock:  # one reload serves every command waiting for it
            current = self._current
            if current is not None and time.monotonic() - current[0] < self._max_age:
                return current[1]
            taken = time.monotonic()
            teams = {team.name: team for team in await self._directory.teams()}
            memberships: dict[str, list[tuple[str, str]]] = {}
            for team in teams.values():
                for agent in team.agents:
                    memberships.setdefault(agent, []).append((team.name, team.operation))
            snapshot = Snapshot(tuple(await self._directory.grants()), teams, memberships)
            self._current = (taken, snapshot)
            return snapshot
