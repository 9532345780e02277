"""Grants, teams and "who am I": the commands that manage agentbox rather than agents.

Only admins change grants and teams. Everyone with a role may read them. Every change and every
refusal is in the audit trail. ``AGENTBOX_ADMINS`` are admins no command can revoke, and no revoke
may leave the workspace without an admin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from commands.access import Access, Caller
from commands.agents import agent_ranges
from commands.grammar import (
    ChannelRef,
    GrantCommand,
    HelpCommand,
    HistoryCommand,
    LanguageCommand,
    Parsed,
    RevokeCommand,
    Role,
    RolesCommand,
    Section,
    StatusCommand,
    Subject,
    TeamAddCommand,
    TeamCreateCommand,
    TeamListCommand,
    TeamRemoveCommand,
    TeamSetCommand,
    TeamSetting,
    TeamShowCommand,
    UserRef,
    WhoamiCommand,
    sections_for,
    usage,
)
from commands.i18n import _, ngettext
from commands.languages import LanguageChoices
from commands.operations import DEFAULT_OPERATION, Operations
from commands.reads import Reads
from commands.roles import describe
from commands.snapshot import Snapshots
from storage.audit import AuditEntry
from storage.changes import Requester
from storage.directory import Directory, DirectoryError, GrantRecord, TeamRecord
from storage.models import Decision


@dataclass(frozen=True)
class Reply:
    """What to tell the caller; ``ok`` is False for a refusal or an error."""

    text: str
    ok: bool = True


def mention(subject: Subject) -> str:
    if isinstance(subject, UserRef):
        return f"<@{subject.user_id}>"
    return f"<!subteam^{subject.group_id}>"


def _subject_key(subject: Subject) -> tuple[str, str]:
    if isinstance(subject, UserRef):
        return ("user", subject.user_id)
    return ("usergroup", subject.group_id)


def _grant_line(grant: GrantRecord) -> str:
    who = (
        f"<@{grant.subject_id}>"
        if grant.subject_type == "user"
        else f"<!subteam^{grant.subject_id}>"
    )
    return f"• {who}: {describe(grant)}"


def _team_text(team: TeamRecord) -> str:
    count = len(team.agents)
    lines = [
        ngettext(
            "*{team}* (operation `{operation}`): {count} agent",
            "*{team}* (operation `{operation}`): {count} agents",
            count,
        ).format(team=team.name, operation=team.operation, count=count)
        + (f" ({agent_ranges(team.agents)})" if team.agents else ""),
        _("trail in {channel}").format(channel=f"<#{team.channel_id}>"),
    ]
    if team.approvals_channel_id:
        lines.append(_("approvals in {channel}").format(channel=f"<#{team.approvals_channel_id}>"))
    if team.change_channels:
        lines.append(
            _("changes accepted only in {channels}").format(
                channels=", ".join(f"<#{c}>" for c in team.change_channels)
            )
        )
    return "\n".join(lines + _policy_lines(team))


def _policy_lines(team: TeamRecord) -> list[str]:
    """The team's approval policy and trail switch, where they differ from the defaults."""
    policy = team.policy
    lines = []
    needs = [f"`{b}`" for b in policy.approval_buttons]
    if policy.approval_over_agents is not None:
        needs.append(
            _("more than {count} of its agents at once").format(count=policy.approval_over_agents)
        )
    if needs:
        lines.append(_("changes that need approval: {what}").format(what=", ".join(needs)))
    if policy.two_approvers_buttons:
        buttons = ", ".join(f"`{b}`" for b in policy.two_approvers_buttons)
        lines.append(_("two approvers for changes to {buttons}").format(buttons=buttons))
    if policy.approval_ttl_minutes is not None:
        lines.append(
            _("requests wait {minutes} min for approval").format(
                minutes=policy.approval_ttl_minutes
            )
        )
    if policy.self_approval:
        lines.append(_("self-approval on (approvers may approve their own requests)"))
    if not policy.trail_enabled:
        lines.append(_("trail off (no line in its channel for each change)"))
    return lines


def _with_setting(team: TeamRecord, command: TeamSetCommand) -> TeamRecord:
    """``team`` with ``command``'s setting applied."""
    value, policy = command.value, team.policy
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    buttons = tuple(b.value for b in value) if isinstance(value, tuple) else ()
    setting = command.setting
    if setting is TeamSetting.APPROVALS_CHANNEL:
        channel = value.channel_id if isinstance(value, ChannelRef) else None
        return replace(team, approvals_channel_id=channel)
    if setting is TeamSetting.TRAIL:
        policy = replace(policy, trail_enabled=bool(value))
    elif setting is TeamSetting.SELF_APPROVAL:
        policy = replace(policy, self_approval=bool(value))
    elif setting is TeamSetting.APPROVAL_BUTTONS:
        policy = replace(policy, approval_buttons=buttons)
    elif setting is TeamSetting.TWO_APPROVERS:
        policy = replace(policy, two_approvers_buttons=buttons)
    elif setting is TeamSetting.APPROVAL_OVER:
        policy = replace(policy, approval_over_agents=number)
    else:
        policy = replace(policy, approval_ttl_minutes=number)
    return replace(team, policy=policy)


class AdminService:
    def __init__(
        self,
        directory: Directory,
        access: Access,
        operations: Operations,
        snapshots: Snapshots,
        reads: Reads,
        languages: LanguageChoices | None = None,
    ) -> None:
        self._directory = directory
        self._access = access
        self._operations = operations
        self._snapshots = snapshots
        self._reads = reads
        self._languages = languages

    async def handle(self, requester: Requester, text: str, command: Parsed) -> Reply:
        try:
            return await self._handle(requester, text, command)
        finally:
            # Whatever changed is seen at once by this process's next command.
            self._snapshots.invalidate()

    async def _handle(self, requester: Requester, text: str, command: Parsed) -> Reply:
        if isinstance(command, LanguageCommand) and self._languages is not None:
            # Anyone may choose their own language, role or not.
            return Reply(await self._languages.handle(requester, command))
        if isinstance(command, StatusCommand):
            ok, answer = await self._reads.status(
                requester, command.agents, command.teams, hidden_only=command.hidden_only
            )
            return Reply(answer, ok=ok)
        if isinstance(command, HistoryCommand):
            ok, answer = await self._reads.history(
                requester, command.agents, command.teams, limit=command.limit
            )
            return Reply(answer, ok=ok)
        caller = await self._access.caller(requester)
        if isinstance(command, WhoamiCommand):
            return self._whoami(caller)
        if isinstance(command, RolesCommand):
            return await self._roles(caller, command)
        if isinstance(command, TeamShowCommand | TeamListCommand):
            if not caller.roles:
                return await self._refuse(requester, text, _("You have no role in agentbox yet."))
            if isinstance(command, TeamListCommand):
                teams = await self._directory.teams()
                if not teams:
                    return Reply(
                        _("No teams yet. An admin creates them: `/agentbox team create …`.")
                    )
                return Reply("\n\n".join(_team_text(team) for team in teams))
            team = await self._directory.team(command.name)
            if team is None:
                return Reply(
                    _("There is no team named `{name}`.").format(name=command.name), ok=False
                )
            return Reply(_team_text(team))
        if not caller.is_admin:
            return await self._refuse(
                requester, text, _("Only agentbox admins manage grants and teams.")
            )
        try:
            if isinstance(command, GrantCommand):
                return await self._grant(requester, text, command)
            if isinstance(command, RevokeCommand):
                return await self._revoke(requester, text, caller, command)
            if isinstance(command, TeamCreateCommand):
                return await self._team_create(requester, text, command)
            if isinstance(command, TeamAddCommand):
                team = await self._directory.add_agents(
                    command.name, command.agents, audit=self._audit(requester, "team.add", text)
                )
                return Reply(_("Added. {team}").format(team=_team_text(team)))
            if isinstance(command, TeamSetCommand):
                team = await self._directory.configure_team(
                    command.name,
                    lambda team: _with_setting(team, command),
                    audit=self._audit(requester, "team.set", text),
                )
                return Reply(_("Set. {team}").format(team=_team_text(team)))
            if isinstance(command, TeamRemoveCommand):
                team = await self._directory.remove_agents(
                    command.name, command.agents, audit=self._audit(requester, "team.remove", text)
                )
                return Reply(_("Removed. {team}").format(team=_team_text(team)))
        except DirectoryError as error:
            return await self._refuse(requester, text, error.localized(_))
        return Reply(_("That command is not handled here."), ok=False)

    async def help(self, requester: Requester, command: HelpCommand) -> Reply:
        """The usage of what the caller may run (everyone sees the change syntax)."""
        caller = await self._access.caller(requester)
        # Without a role, only the syntax of a change (to ask an admin for the right one).
        sections = set(sections_for(caller.roles)) if caller.roles else set()
        sections.add(Section.CHANGE)
        if command.topic is not None:
            sections &= {command.topic} if command.topic in sections else sections
        return Reply(usage(sections))

    def _whoami(self, caller: Caller) -> Reply:
        lines = [_("You are {user}.").format(user=f"<@{caller.actor.user_id}>")]
        if caller.env_admin:
            lines.append(_("• admin (AGENTBOX_ADMINS: set by the operator, no command revokes it)"))
        lines += [f"• {describe(grant)}" for grant in caller.grants]
        if len(lines) == 1:
            lines.append(_("You have no role in agentbox yet; ask an admin."))
        return Reply("\n".join(lines))

    async def _roles(self, caller: Caller, command: RolesCommand) -> Reply:
        others = command.subject is None or command.subject != UserRef(caller.actor.user_id)
        if others and not caller.roles:
            return Reply(_("You have no role in agentbox yet."), ok=False)
        grants = list(caller.all_grants)
        if command.subject is not None:
            key = _subject_key(command.subject)
            grants = [g for g in grants if (g.subject_type, g.subject_id) == key]
        lines = []
        if command.subject is None:
            admins = sorted(self._access.env_admins)
            lines += [f"• <@{admin}>: admin (AGENTBOX_ADMINS)" for admin in admins]
        elif isinstance(command.subject, UserRef) and (
            command.subject.user_id in self._access.env_admins
        ):
            lines.append(f"• <@{command.subject.user_id}>: admin (AGENTBOX_ADMINS)")
        lines += [_grant_line(grant) for grant in grants]
        return Reply("\n".join(lines) if lines else _("No grants."))

    async def _grant(self, requester: Requester, text: str, command: GrantCommand) -> Reply:
        if command.teams:
            missing = [name for name in command.teams if await self._directory.team(name) is None]
            if missing:
                return await self._refuse(
                    requester,
                    text,
                    ngettext(
                        "There is no team named {names}.",
                        "There are no teams named {names}.",
                        len(missing),
                    ).format(names=", ".join(missing)),
                )
        subject_type, subject_id = _subject_key(command.subject)
        grant, created = await self._directory.add_grant(
            subject_type=subject_type,
            subject_id=subject_id,
            role=command.role.value,
            teams=command.teams,
            buttons=[b.value for b in command.buttons] if command.buttons else None,
            created_by=requester.user_id,
            audit=self._audit(requester, "grant", text),
        )
        if not created:
            return Reply(
                _("{who} already has that: {grant}.").format(
                    who=mention(command.subject), grant=describe(grant)
                )
            )
        return Reply(
            _("Granted {who}: {grant}.").format(who=mention(command.subject), grant=describe(grant))
        )

    async def _revoke(
        self, requester: Requester, text: str, caller: Caller, command: RevokeCommand
    ) -> Reply:
        subject = command.subject
        env_admin = isinstance(subject, UserRef) and subject.user_id in self._access.env_admins
        key = _subject_key(subject)
        matching = [
            g
            for g in caller.all_grants
            if (g.subject_type, g.subject_id) == key
            and (command.role is None or g.role == command.role)
        ]
        removed: list[GrantRecord] = []
        narrowed: list[tuple[GrantRecord, tuple[str, ...]]] = []
        for grant in matching:
            if command.teams is None:
                removed.append(grant)
            elif grant.teams is None:
                return await self._refuse(
                    requester,
                    text,
                    _(
                        "{who}'s grant #{id} covers every team; revoke it (without `team:`) and "
                        "grant the teams you want instead."
                    ).format(who=mention(subject), id=grant.id),
                )
            elif set(command.teams) & set(grant.teams):
                removed.append(grant)
                rest = tuple(t for t in grant.teams if t not in command.teams)
                if rest:
                    narrowed.append((grant, rest))
        if not removed and env_admin and command.role in (None, Role.ADMIN):
            return await self._refuse(
                requester,
                text,
                _(
                    "{who} is an admin through AGENTBOX_ADMINS, which only the operator can "
                    "change; no Slack command can revoke it."
                ).format(who=mention(subject)),
            )
        if not removed:
            return Reply(_("{who} has no such grant.").format(who=mention(subject)), ok=False)
        audit = self._audit(requester, "revoke", text)
        # Narrowed grants are re-added in the same transaction as the removal.
        await self._directory.replace_grants(
            [g.id for g in removed],
            [replace(grant, teams=rest, created_by=requester.user_id) for grant, rest in narrowed],
            keep_an_admin=not self._access.env_admins,
            audit=audit,
        )
        what = ", ".join(f"#{g.id} ({g.role})" for g in removed)
        revoked = _("Revoked {who}'s grant {what}.").format(who=mention(subject), what=what)
        if env_admin:
            revoked += " " + _("They stay admin through AGENTBOX_ADMINS.")
        return Reply(revoked)

    async def _team_create(
        self, requester: Requester, text: str, command: TeamCreateCommand
    ) -> Reply:
        operation = command.operation or DEFAULT_OPERATION
        if not await self._operations.exists(operation):
            known = ", ".join(f"`{name}`" for name in self._operations.names)
            reason = (
                _(
                    "There is no wolkvox operation `{operation}` (known: {known}). An operator "
                    "adds one with `agentbox operation add`."
                )
                if known
                else _(
                    "There is no wolkvox operation `{operation}` (known: none). An operator "
                    "adds one with `agentbox operation add`."
                )
            )
            return await self._refuse(
                requester, text, reason.format(operation=operation, known=known)
            )
        team = await self._directory.create_team(
            command.name,
            operation=operation,
            agents=command.agents,
            channel_id=command.channel.channel_id,
            approvals_channel_id=command.approvals.channel_id if command.approvals else None,
            change_channels=[c.channel_id for c in command.change_channels]
            if command.change_channels
            else None,
            audit=self._audit(requester, "team.create", text),
        )
        return Reply(_("Created. {team}").format(team=_team_text(team)))

    def _audit(self, requester: Requester, action: str, text: str) -> AuditEntry:
        return AuditEntry.by(requester, action=action, text=text, decision=Decision.ALLOWED)

    async def _refuse(self, requester: Requester, text: str, reason: str) -> Reply:
        await self._directory.audit(
            AuditEntry.by(
                requester, action="admin", text=text, decision=Decision.REFUSED, reason=reason
            )
        )
        return Reply(reason, ok=False)
