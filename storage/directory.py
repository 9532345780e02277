"""Operations, teams and grants: who is who, and which token serves which agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditEntry, add_audit
from storage.database import Database
from storage.models import Grant, Operation, Team, TeamAgent, utcnow
from storage.secrets import TokenCipher


def N_(message: str) -> str:
    """Mark ``message`` for translation (gettext's marker, as in commands.i18n: storage depends on
    nothing in commands)."""
    return message


class DirectoryError(Exception):
    """A request the directory cannot carry out; the message says why, for the user.

    ``str(error)`` is English (the operator's CLI shows it); :meth:`localized` gives it in the
    reader's language, from the marked English ``message`` and its ``fields``.
    """

    def __init__(self, message: str, **fields: object) -> None:
        self.message = message
        self.fields = fields
        super().__init__(message.format(**fields))

    def localized(self, translate: Callable[[str], str]) -> str:
        """The message in the language of ``translate`` (the reader's gettext)."""
        return translate(self.message).format(**self.fields)


@dataclass(frozen=True)
class OperationRecord:
    """An operation without its token: safe to show and to log."""

    name: str
    server: str
    concurrency: int


@dataclass(frozen=True)
class TeamPolicy:
    """A team's trail switch and approval policy (see the ``teams`` columns in storage/models)."""

    trail_enabled: bool = True
    self_approval: bool = False
    approval_buttons: tuple[str, ...] = ()
    approval_over_agents: int | None = None
    two_approvers_buttons: tuple[str, ...] = ()
    approval_ttl_minutes: int | None = None


@dataclass(frozen=True)
class TeamRecord:
    name: str
    operation: str
    channel_id: str
    approvals_channel_id: str | None
    change_channels: tuple[str, ...]
    agents: tuple[str, ...]
    policy: TeamPolicy = TeamPolicy()


@dataclass(frozen=True)
class GrantRecord:
    id: int
    subject_type: str
    subject_id: str
    role: str
    teams: tuple[str, ...] | None  # None: every team
    buttons: tuple[str, ...] | None  # None: every button
    created_by: str
    created_at: datetime


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(part for part in value.split(",") if part)


def _join(values: Iterable[str] | None) -> str | None:
    return None if values is None else ",".join(sorted(set(values)))


def _team_record(team: Team, agents: Iterable[str] | None = None) -> TeamRecord:
    """``agents``: the team's agent ids, when read apart from ``team`` (else its ``agents``)."""
    if agents is None:
        agents = (member.agent_id for member in team.agents)
    return TeamRecord(
        name=team.name,
        operation=team.operation,
        channel_id=team.channel_id,
        approvals_channel_id=team.approvals_channel_id,
        change_channels=_split(team.change_channels) or (),
        agents=tuple(sorted(agents, key=lambda a: (int(a), a))),
        policy=TeamPolicy(
            trail_enabled=team.trail_enabled,
            self_approval=team.self_approval,
            approval_buttons=_split(team.approval_buttons) or (),
            approval_over_agents=team.approval_over_agents,
            two_approvers_buttons=_split(team.two_approvers_buttons) or (),
            approval_ttl_minutes=team.approval_ttl_minutes,
        ),
    )


def _grant_record(grant: Grant) -> GrantRecord:
    return GrantRecord(
        id=grant.id,
        subject_type=grant.subject_type,
        subject_id=grant.subject_id,
        role=grant.role,
        teams=_split(grant.teams),
        buttons=_split(grant.buttons),
        created_by=grant.created_by,
        created_at=grant.created_at,
    )


class Directory:
    def __init__(self, database: Database, cipher: Callable[[], TokenCipher]) -> None:
        """``cipher`` is called only when a token is written or read, so that a deployment
        without stored operations needs no encryption key."""
        self._db = database
        self._cipher = cipher
        #: Called after every write, e.g. to drop an in-memory copy (commands/snapshot.py).
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction; listeners hear of it once it is committed."""
        async with self._db.transaction() as session:
            yield session
        self._changed()

    # --- operations ------------------------------------------------------------------------

    async def put_operation(
        self, name: str, server: str, token: str, *, concurrency: int, audit: AuditEntry
    ) -> bool:
        """Create or update an operation; True if it was created."""
        ciphertext = self._cipher().encrypt(token)
        async with self._writing() as session:
            existing = await session.scalar(select(Operation).where(Operation.name == name))
            if existing is None:
                session.add(
                    Operation(
                        name=name,
                        server=server,
                        token_ciphertext=ciphertext,
                        concurrency=concurrency,
                    )
                )
            else:
                existing.server = server
                existing.token_ciphertext = ciphertext
                existing.concurrency = concurrency
                existing.updated_at = utcnow()
            add_audit(session, audit)
        return existing is None

    async def operations(self) -> list[OperationRecord]:
        async with self._db.sessions() as session:
            rows = await session.scalars(select(Operation).order_by(Operation.name))
            return [OperationRecord(op.name, op.server, op.concurrency) for op in rows]

    async def operation_secret(self, name: str) -> tuple[OperationRecord, str] | None:
        """An operation and its decrypted token (for the dispatcher only)."""
        async with self._db.sessions() as session:
            op = await session.scalar(select(Operation).where(Operation.name == name))
        if op is None:
            return None
        record = OperationRecord(op.name, op.server, op.concurrency)
        return record, self._cipher().decrypt(op.token_ciphertext)

    async def rotate_tokens(self) -> int:
        """Re-encrypt every token with the newest key; returns how many."""
        cipher = self._cipher()
        async with self._writing() as session:
            rows = list(await session.scalars(select(Operation)))
            for op in rows:
                op.token_ciphertext = cipher.rotate(op.token_ciphertext)
        return len(rows)

    # --- teams -----------------------------------------------------------------------------

    async def team(self, name: str) -> TeamRecord | None:
        async with self._db.sessions() as session:
            team = await session.scalar(select(Team).where(Team.name == name))
            if team is None:
                return None
            await session.refresh(team, ["agents"])
            return _team_record(team)

    async def teams(self) -> list[TeamRecord]:
        async with self._db.sessions() as session:
            # Two queries whatever the number of teams (not one more per team), and the agents
            # as plain rows, not ORM objects: the snapshot of the slash-command path reloads
            # every team each second while commands arrive (62 teams of 20: 17 -> 8 ms).
            teams = list(await session.scalars(select(Team).order_by(Team.name)))
            members: dict[int, list[str]] = {team.id: [] for team in teams}
            for team_id, agent_id in await session.execute(
                select(TeamAgent.team_id, TeamAgent.agent_id)
            ):
                members.setdefault(team_id, []).append(agent_id)
            return [_team_record(team, members[team.id]) for team in teams]

    async def create_team(
        self,
        name: str,
        *,
        operation: str,
        agents: Sequence[str],
        channel_id: str,
        approvals_channel_id: str | None,
        change_channels: Sequence[str] | None,
        audit: AuditEntry,
    ) -> TeamRecord:
        async with self._writing() as session:
            if await session.scalar(select(Team.id).where(Team.name == name)) is not None:
                raise DirectoryError(N_("A team named `{name}` exists already."), name=name)
            await self._check_free(session, operation, agents, team_id=None)
            team = Team(
                name=name,
                operation=operation,
                channel_id=channel_id,
                approvals_channel_id=approvals_channel_id,
                change_channels=_join(change_channels) if change_channels else None,
                agents=[TeamAgent(agent_id=a, operation=operation) for a in agents],
            )
            session.add(team)
            await session.flush()
            add_audit(session, audit)
            return _team_record(team)

    async def add_agents(
        self, name: str, agents: Sequence[str], *, audit: AuditEntry
    ) -> TeamRecord:
        async with self._writing() as session:
            team = await self._team_for_update(session, name)
            await session.refresh(team, ["agents"])
            present = {member.agent_id for member in team.agents}
            new = [agent for agent in agents if agent not in present]
            await self._check_free(session, team.operation, new, team_id=team.id)
            team.agents.extend(TeamAgent(agent_id=a, operation=team.operation) for a in new)
            add_audit(session, audit)
            await session.flush()
            return _team_record(team)

    async def remove_agents(
        self, name: str, agents: Sequence[str], *, audit: AuditEntry
    ) -> TeamRecord:
        async with self._writing() as session:
            team = await self._team_for_update(session, name)
            await session.execute(
                delete(TeamAgent).where(
                    TeamAgent.team_id == team.id, TeamAgent.agent_id.in_(list(agents))
                )
            )
            add_audit(session, audit)
            await session.flush()
            await session.refresh(team, ["agents"])
            return _team_record(team)

    async def update_team(
        self,
        name: str,
        *,
        channel_id: str,
        approvals_channel_id: str | None,
        change_channels: Sequence[str] | None,
        audit: AuditEntry,
    ) -> None:
        async with self._writing() as session:
            await session.execute(
                update(Team)
                .where(Team.name == name)
                .values(
                    channel_id=channel_id,
                    approvals_channel_id=approvals_channel_id,
                    change_channels=_join(change_channels) if change_channels else None,
                )
            )
            add_audit(session, audit)

    async def configure_team(
        self, name: str, change: Callable[[TeamRecord], TeamRecord], *, audit: AuditEntry
    ) -> TeamRecord:
        """Set a team's approvals channel and policy to ``change(team as it is now)``, in one
        transaction with the team's row locked, so two admins setting two keys keep both."""
        async with self._writing() as session:
            team = await self._team_for_update(session, name, lock=True)
            await session.refresh(team, ["agents"])
            wanted = change(_team_record(team))
            team.approvals_channel_id = wanted.approvals_channel_id
            team.trail_enabled = wanted.policy.trail_enabled
            team.self_approval = wanted.policy.self_approval
            team.approval_buttons = _join(wanted.policy.approval_buttons) or None
            team.approval_over_agents = wanted.policy.approval_over_agents
            team.two_approvers_buttons = _join(wanted.policy.two_approvers_buttons) or None
            team.approval_ttl_minutes = wanted.policy.approval_ttl_minutes
            add_audit(session, audit)
            await session.flush()
            return _team_record(team)

    async def _team_for_update(
        self, session: AsyncSession, name: str, *, lock: bool = False
    ) -> Team:
        statement = select(Team).where(Team.name == name)
        team = await session.scalar(statement.with_for_update() if lock else statement)
        if team is None:
            raise DirectoryError(N_("There is no team named `{name}`."), name=name)
        return team

    async def _check_free(
        self, session: AsyncSession, operation: str, agents: Sequence[str], *, team_id: int | None
    ) -> None:
        """An agent belongs to at most one team per operation."""
        taken: dict[str, str] = {}
        for start in range(0, len(agents), 500):
            rows = await session.execute(
                select(TeamAgent.agent_id, Team.name)
                .join(Team, Team.id == TeamAgent.team_id)
                .where(
                    TeamAgent.operation == operation,
                    TeamAgent.agent_id.in_(list(agents[start : start + 500])),
                    Team.id != (team_id or -1),
                )
            )
            taken.update({agent: team for agent, team in rows})
        if taken:
            sample = ", ".join(f"{agent} ({team})" for agent, team in sorted(taken.items())[:10])
            if len(taken) > 10:
                raise DirectoryError(
                    N_(
                        "An agent belongs to at most one team per operation; already in a team: "
                        "{agents} and {count} more. Remove them there first "
                        "(`/agentbox team remove …`)."
                    ),
                    agents=sample,
                    count=len(taken) - 10,
                )
            raise DirectoryError(
                N_(
                    "An agent belongs to at most one team per operation; already in a team: "
                    "{agents}. Remove them there first (`/agentbox team remove …`)."
                ),
                agents=sample,
            )

    # --- grants ----------------------------------------------------------------------------

    async def grants(self, subjects: Iterable[tuple[str, str]] | None = None) -> list[GrantRecord]:
        """Grants of the given (subject_type, subject_id) pairs, or every grant."""
        statement = select(Grant).order_by(Grant.id)
        if subjects is not None:
            wanted = list(subjects)
            if not wanted:
                return []
            ids = [subject_id for _, subject_id in wanted]
            statement = statement.where(Grant.subject_id.in_(ids))
        async with self._db.sessions() as session:
            rows = [_grant_record(grant) for grant in await session.scalars(statement)]
        if subjects is None:
            return rows
        pairs = set(wanted)
        return [grant for grant in rows if (grant.subject_type, grant.subject_id) in pairs]

    async def add_grant(
        self,
        *,
        subject_type: str,
        subject_id: str,
        role: str,
        teams: Sequence[str] | None,
        buttons: Sequence[str] | None,
        created_by: str,
        audit: AuditEntry,
    ) -> tuple[GrantRecord, bool]:
        """Store a grant (True) or find the identical one that exists (False)."""
        teams_value, buttons_value = _join(teams), _join(buttons)
        async with self._writing() as session:
            existing = await session.scalar(
                select(Grant).where(
                    Grant.subject_type == subject_type,
                    Grant.subject_id == subject_id,
                    Grant.role == role,
                    Grant.teams.is_(None) if teams_value is None else Grant.teams == teams_value,
                    Grant.buttons.is_(None)
                    if buttons_value is None
                    else Grant.buttons == buttons_value,
                )
            )
            if existing is not None:
                return _grant_record(existing), False
            grant = Grant(
                subject_type=subject_type,
                subject_id=subject_id,
                role=role,
                teams=teams_value,
                buttons=buttons_value,
                created_by=created_by,
            )
            session.add(grant)
            add_audit(session, audit)
            await session.flush()
            return _grant_record(grant), True

    async def replace_grants(
        self,
        remove: Sequence[int],
        add: Sequence[GrantRecord],
        *,
        keep_an_admin: bool,
        audit: AuditEntry,
    ) -> None:
        """Remove grants and add others in one transaction (a revoke that narrows a grant).

        ``keep_an_admin``: refuse (DirectoryError) when no user would hold an admin grant after;
        checked inside the transaction, with the admin grants locked on PostgreSQL, so two
        admins revoking each other at the same moment cannot both succeed.
        """
        async with self._writing() as session:
            if keep_an_admin:
                admins = set(
                    await session.scalars(
                        select(Grant.id)
                        .where(Grant.role == "admin", Grant.subject_type == "user")
                        .with_for_update()
                    )
                )
                if not admins - set(remove) and not any(g.role == "admin" for g in add):
                    raise DirectoryError(
                        N_(
                            "That would leave agentbox without an admin. Grant admin to someone "
                            "else first."
                        )
                    )
            await session.execute(delete(Grant).where(Grant.id.in_(list(remove))))
            for grant in add:
                session.add(
                    Grant(
                        subject_type=grant.subject_type,
                        subject_id=grant.subject_id,
                        role=grant.role,
                        teams=_join(grant.teams),
                        buttons=_join(grant.buttons),
                        created_by=grant.created_by,
                    )
                )
            add_audit(session, audit)

    async def remove_grants(self, grant_ids: Sequence[int], *, audit: AuditEntry) -> None:
        await self.replace_grants(grant_ids, [], keep_an_admin=False, audit=audit)

    async def audit(self, entry: AuditEntry) -> None:
        """Record an entry on its own (a refusal, a read)."""
        async with self._db.transaction() as session:
            add_audit(session, entry)
