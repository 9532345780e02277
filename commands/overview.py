"""What the Slack surfaces (App Home, the change modal) show a user, read under their permissions.

A read only: who the user is to agentbox (roles, grants), the teams they may see and what their
roles over each are, which buttons are hidden now and the recent changes. Changes themselves go
through :meth:`commands.changes.ChangeService.submit`, like the slash command.
"""

from __future__ import annotations

from dataclasses import dataclass

from commands.access import Access
from commands.grammar import Role
from commands.reads import Reads
from commands.roles import describe
from commands.snapshot import Snapshots
from storage.changes import Requester

#: How many changes App Home lists under "recent activity".
RECENT_CHANGES = 10

CHANGING_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.REQUESTER})
APPROVING_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})


@dataclass(frozen=True)
class TeamView:
    name: str
    agents: tuple[str, ...]
    channel_id: str
    #: The user's roles over this team's agents (empty: they may only read it).
    roles: tuple[Role, ...]


@dataclass(frozen=True)
class UserOverview:
    user_id: str
    roles: frozenset[Role]
    #: The user's grants in words, one line each (``AGENTBOX_ADMINS`` first).
    grants: tuple[str, ...]
    #: Every team, for anyone with a role (reading teams is open to every role); none otherwise.
    teams: tuple[TeamView, ...]
    #: Who to ask for a role (admins), for a user who has none.
    admins: tuple[str, ...]
    #: ``status hidden`` and ``history`` as the slash command answers them ("" without a role).
    hidden: str = ""
    recent: str = ""

    @property
    def can_change(self) -> bool:
        return bool(self.roles & CHANGING_ROLES)

    @property
    def can_approve(self) -> bool:
        return bool(self.roles & APPROVING_ROLES)


class Overview:
    def __init__(self, access: Access, snapshots: Snapshots, reads: Reads) -> None:
        self._access = access
        self._snapshots = snapshots
        self._reads = reads

    async def of(self, requester: Requester, *, activity: bool = True) -> UserOverview:
        """The user's overview; ``activity``: also read what is hidden now and recent changes."""
        caller = await self._access.caller(requester)
        grants = [describe(grant) for grant in caller.grants]
        if caller.env_admin:
            grants.insert(0, "admin (AGENTBOX_ADMINS)")
        admins = sorted(
            {*caller.env_admins}
            | {g.subject_id for g in caller.all_grants
               if g.role == Role.ADMIN and g.subject_type == "user"}
        )  # fmt: skip
        if not caller.roles:
            return UserOverview(requester.user_id, caller.roles, (), (), tuple(admins))
        snapshot = await self._snapshots.get()
        teams = []
        for team in sorted(snapshot.teams.values(), key=lambda t: t.name):
            roles = {
                Role(grant.role)
                for grant in caller.grants
                if grant.role == Role.ADMIN or grant.teams is None or team.name in grant.teams
            }
            if caller.env_admin:
                roles.add(Role.ADMIN)
            ordered = tuple(role for role in Role if role in roles)
            teams.append(TeamView(team.name, team.agents, team.channel_id, ordered))
        hidden = recent = ""
        if activity:
            _, hidden = await self._reads.status(requester, (), (), hidden_only=True)
            _, recent = await self._reads.history(requester, (), (), limit=RECENT_CHANGES)
        return UserOverview(
            requester.user_id,
            caller.roles,
            tuple(grants),
            tuple(teams),
            tuple(admins),
            hidden=hidden,
            recent=recent,
        )
