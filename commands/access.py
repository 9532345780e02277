"""Who the caller is to agentbox: their grants (own and through user groups) and roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from commands.grammar import Role
from commands.roles import Actor, holds, roles_of
from commands.snapshot import Snapshots
from storage.changes import Requester
from storage.directory import GrantRecord


class GroupMembers(Protocol):
    """Who is in a Slack user group (the bot asks Slack; tests and the console use a fake)."""

    async def members(self, group_id: str) -> frozenset[str]: ...


class NoGroups:
    async def members(self, group_id: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Caller:
    actor: Actor
    grants: tuple[GrantRecord, ...]
    """The grants the caller holds (their own and their groups')."""
    all_grants: tuple[GrantRecord, ...]
    roles: frozenset[Role]
    env_admin: bool
    env_admins: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


class Access:
    def __init__(
        self, snapshots: Snapshots, groups: GroupMembers, env_admins: frozenset[str]
    ) -> None:
        self._snapshots = snapshots
        self._groups = groups
        self.env_admins = env_admins

    async def caller(self, requester: Requester) -> Caller:
        every = (await self._snapshots.get()).grants
        group_ids = sorted({g.subject_id for g in every if g.subject_type == "usergroup"})
        mine = frozenset(
            [gid for gid in group_ids if requester.user_id in await self._groups.members(gid)]
        )
        actor = Actor(requester.user_id, mine, requester.channel_id, requester.team_id)
        held = tuple(grant for grant in every if holds(actor, grant))
        return Caller(
            actor=actor,
            grants=held,
            all_grants=every,
            roles=frozenset(roles_of(actor, held, self.env_admins)),
            env_admin=requester.user_id in self.env_admins,
            env_admins=self.env_admins,
        )
