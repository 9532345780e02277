"""Who may change which agent's buttons: the decision, as a pure function of the grants.

A decision is taken per agent and button, from the caller's grants (their own and their user
groups') and the teams the agents belong to:

- ``AGENTBOX_ADMINS`` and ``admin`` grants cover everything;
- a ``supervisor`` grant covers the agents of its teams (every team's, and agents in no team, when
  its scope is all teams) and its buttons;
- a ``requester`` grant covers the same way, but its changes need approval;
- a ``viewer`` grant covers no change at all.

A team that restricts the channels changes are accepted from refuses its agents' changes elsewhere,
whoever asks. Every decision names the grant it used, and every refusal says why in words the
caller can act on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from commands.grammar import Role
from commands.i18n import N_, _
from storage.directory import GrantRecord, TeamRecord
from wolkvox.model import Button

ENV_ADMIN = N_("agentbox admin (AGENTBOX_ADMINS)")
"""How an ``AGENTBOX_ADMINS`` admin's change is explained (translated where it is used)."""


@dataclass(frozen=True)
class Actor:
    """The caller: who, their Slack user groups, and where they typed the command."""

    user_id: str
    groups: frozenset[str] = frozenset()
    channel_id: str | None = None
    team_id: str | None = None


@dataclass(frozen=True)
class Target:
    """An agent, the operation whose token changes it, and its team there (if any)."""

    agent_id: str
    operation: str
    team: str | None


@dataclass(frozen=True)
class Refusal:
    """Some agents and buttons the caller may not change, and why (one reason, one group)."""

    agents: tuple[str, ...]
    buttons: tuple[Button, ...]
    reason: str


@dataclass(frozen=True)
class ChangeDecision:
    allowed: tuple[tuple[Target, Button], ...]
    needs_approval: tuple[tuple[Target, Button], ...]
    refusals: tuple[Refusal, ...]
    grants_used: tuple[str, ...] = field(default=())

    @property
    def everything_allowed(self) -> bool:
        return not self.needs_approval and not self.refusals


def describe(grant: GrantRecord) -> str:
    """A grant in words: ``supervisor of ventas, cobranza (dial, disposition) [grant #4]``.

    Role and button names are command words, and stay as typed in every language.
    """
    if grant.role == Role.ADMIN:
        text = grant.role
    elif grant.teams is None:
        text = _("{role} of every team").format(role=grant.role)
    else:
        text = _("{role} of {teams}").format(role=grant.role, teams=", ".join(grant.teams))
    if grant.buttons:
        text += f" ({', '.join(grant.buttons)})"
    if grant.subject_type == "usergroup":
        text = _("{grant} via {group}").format(grant=text, group=f"<!subteam^{grant.subject_id}>")
    return _("{grant} [grant #{id}]").format(grant=text, id=grant.id)


def roles_of(actor: Actor, grants: Iterable[GrantRecord], env_admins: frozenset[str]) -> set[Role]:
    roles = {Role(grant.role) for grant in grants if holds(actor, grant)}
    if actor.user_id in env_admins:
        roles.add(Role.ADMIN)
    return roles


def holds(actor: Actor, grant: GrantRecord) -> bool:
    if grant.subject_type == "user":
        return grant.subject_id == actor.user_id
    return grant.subject_id in actor.groups


def _covers(grant: GrantRecord, target: Target, button: Button) -> bool:
    if grant.role == Role.ADMIN:
        return True
    if grant.buttons is not None and button.value not in grant.buttons:
        return False
    if grant.teams is None:
        return True
    return target.team is not None and target.team in grant.teams


def decide_change(
    actor: Actor,
    targets: Sequence[Target],
    buttons: Sequence[Button],
    *,
    grants: Sequence[GrantRecord],
    teams: Mapping[str, TeamRecord],
    env_admins: frozenset[str],
) -> ChangeDecision:
    """Decide every (agent, button) of a change; see the module docstring for the rules."""
    held = [grant for grant in grants if holds(actor, grant)]
    env_admin = actor.user_id in env_admins
    allowed: list[tuple[Target, Button]] = []
    approval: list[tuple[Target, Button]] = []
    refused: dict[str, list[tuple[Target, Button]]] = defaultdict(list)
    used: dict[str, None] = {}
    for target in targets:
        team = teams.get(target.team) if target.team else None
        restricted = team is not None and team.change_channels
        if team is not None and restricted and actor.channel_id not in team.change_channels:
            channels = ", ".join(f"<#{channel}>" for channel in team.change_channels)
            why = _("changes to team {team}'s agents are accepted only in {channels}").format(
                team=team.name, channels=channels
            )
            for button in buttons:
                refused[why].append((target, button))
            continue
        for button in buttons:
            if env_admin:
                allowed.append((target, button))
                used[_(ENV_ADMIN)] = None
                continue
            changing = [
                g for g in held
                if g.role in (Role.ADMIN, Role.SUPERVISOR) and _covers(g, target, button)
            ]  # fmt: skip
            if changing:
                allowed.append((target, button))
                used[describe(changing[0])] = None
                continue
            asking = [g for g in held if g.role == Role.REQUESTER and _covers(g, target, button)]
            if asking:
                approval.append((target, button))
                used[describe(asking[0])] = None
                continue
            refused[_why_not(held, target, button)].append((target, button))
    return ChangeDecision(
        allowed=tuple(allowed),
        needs_approval=tuple(approval),
        refusals=tuple(
            Refusal(
                agents=tuple(dict.fromkeys(t.agent_id for t, _ in pairs)),
                buttons=tuple(dict.fromkeys(b for _, b in pairs)),
                reason=reason,
            )
            for reason, pairs in refused.items()
        ),
        grants_used=tuple(used),
    )


def _why_not(held: Sequence[GrantRecord], target: Target, button: Button) -> str:
    changing = [g for g in held if g.role in (Role.SUPERVISOR, Role.REQUESTER)]
    if not held:
        return _("you have no role in agentbox; ask an admin for one")
    if not changing:
        return _("your role is viewer: status and history only")
    where = _("in team {team}").format(team=target.team) if target.team else _("in no team")
    scopes = sorted({team for g in changing if g.teams for team in g.teams})
    in_scope = [g for g in changing if g.teams is None or (target.team in (g.teams or ()))]
    if not in_scope:
        if not scopes:
            return _("{where}; you supervise no team").format(where=where)
        return _("{where}; you supervise {teams}").format(where=where, teams=", ".join(scopes))
    covered = sorted({b for g in in_scope if g.buttons for b in g.buttons})
    return _("your grant covers only {covered}, not `{button}`").format(
        covered=", ".join(f"`{b}`" for b in covered), button=button.value
    )
