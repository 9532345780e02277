"""The grammar of ``/agentbox``: turns the text a user typed into a command, or into a clear error.

:func:`parse` never raises; every input yields one of the command classes of :data:`Parsed` or a
:class:`ParseError` whose message is ready to show in Slack, in the current language
(commands/i18n.py). Words match in any case, with or without accents, in English or Spanish.

**Changes.** ``/agentbox hide disposition 1001``: words in any order (``1001 OCULTAR tipificación``
is the same command). Each word is one of:

- an *action* word: ``show`` or ``hide`` (exactly one action per command, repeats are fine);
- a *button* word: ``dial``, ``disposition``, ``hungup``, or ``all`` for the three;
- a *target*: an agent id (``1001``, 1 to 15 ASCII digits, leading zeros kept as typed), an
  inclusive range (``1001-1010``), separated by spaces and/or commas, or a team
  (``team:ventas``, several as ``team:ventas,cobranza``; ``team:*`` is refused: a change names
  its teams);
- a *range* word (``to``, ``through``, ``thru``, ``a``, ``al``, ``hasta``) standing between two
  agent ids: ``1001 to 1010`` is the range ``1001-1010``, anywhere else it is an error;
- a *help* word (``help``, ``ayuda``, ``?``, ``-h``, ``--help``): the whole command becomes help,
  whatever the verb;
- a *duration*: ``for`` (``por``, ``durante``) and how long, as ``30m``, ``2h``, ``90s``,
  ``1h30m``, ``1h 30m`` or ``30 minutes`` (units ``s``/``sec``/``seg``…, ``m``/``min``/``minutes``/
  ``minutos``…, ``h``/``hours``/``horas``…), from :data:`MIN_DURATION` (1 minute) to
  :data:`MAX_DURATION` (24 hours): the change reverts by itself when the time is up;
- ``--dry-run`` (``--dryrun``, ``dry-run``, ``--simular``, ``--prueba``): list the calls the
  change would make, and make none;
- ``--reason`` (``--motivo``, ``--razón``) and why: ``--reason "text"``, ``--reason=…`` or
  ``reason:"…"``. The text is what stands between quotes (straight, curly ``“…”`` as phones and
  Macs type them, or single), or, unquoted, every word up to the next flag (``--dry-run``…). It
  is read from the raw text before anything else, so its words mean nothing to the command
  (``--reason "help the client"`` is no help request); Slack's ``&amp; &lt; &gt;`` are
  unescaped, and it holds at most :data:`MAX_REASON_LENGTH` characters. The grammar never
  requires one: the core requires it of requesters.

**Roles and teams** start with a verb, and their words come in a fixed order::

    grant  <@user|@group> <role> [team:…] [buttons:…]     (the optional parts in any order)
    revoke <@user|@group> [<role>] [team:…]
    roles  [<@user|@group>]
    whoami
    team create <name> <agents> <#channel> [approvals:#c] [channels:#c1,#c2] [operation:<name>]
    team add|remove <name> <agents>
    team show <name>
    team list
    team set <name> <setting> <value>   (settings: :data:`TEAM_SETTINGS`)
    undo
    history [<agents>|team:…] [--limit N]
    status <agents>|team:…
    status hidden
    lang [en|es|auto]                   (``idioma``: the language agentbox answers you in)

Spanish verbs: ``otorgar``/``dar``, ``revocar``/``quitar``, ``permisos``, ``quiensoy``/``quién
soy``, ``equipo`` (``crear``, ``agregar``/``añadir``, ``quitar``, ``ver``/``mostrar``,
``listar``), ``deshacer``, ``historial``, ``estado`` (``estado ocultos``). Roles: ``admin``
(``administrador``), ``supervisor``, ``requester`` (``solicitante``), ``viewer`` (``observador``,
``lector``). A verb must be the first word; ``quitar`` is *revoke* there and *remove* after
``team``.

- *Options* are ``key:value``, a list being ``key:a,b`` (no spaces inside; ``key: a`` is read as
  ``key:a``; a repeated option adds to the list). Keys: ``team:`` (``equipo:``), ``buttons:``
  (``botones:``), ``approvals:`` (``aprobaciones:``), ``channels:`` (``canales:``),
  ``operation:`` (``operacion:``), ``limit:`` (``límite:``, as ``--limit N``). Each verb takes
  only its own.
- *Scopes*: ``team:ventas`` / ``team:ventas,cobranza``, or ``team:*`` (``all``, ``todos``) for
  every team. An admin grant takes no scope (admins cover everything); the other roles require
  one. ``buttons:`` (button words, ``all``) narrows a supervisor or requester grant.
- *Team names*: 1 to 40 of ``a-z 0-9 - _``, starting and ending with a letter or digit, compared in
  lowercase with accents folded; never a word agentbox uses (a verb, role, button, action, option
  key, ``all``), and never shaped like an agent id or range (so ``team:ventas,1001`` cannot be
  misread). Operation names follow the same pattern.
- *Mentions* are Slack's own entities, recognised in the raw text before HTML unescaping: a user
  ``<@U…>``/``<@U…|maria>``, a user group ``<!subteam^S…>``/``<!subteam^S…|@sup>``, a channel
  ``<#C…>``/``<#C…|ventas>``. Plain text is never a mention: ``@maria`` typed without Slack's
  autocomplete, or ``&lt;@U1&gt;`` (what Slack sends for a typed ``<@U1>``), is refused with advice.

Bound: one command reaches at most :data:`MAX_AGENTS` (500) distinct agents *by id*. Every agent
costs one wolkvox call per button, and wolkvox allows only one or two calls in flight per token, so
a typo such as ``1-100000`` would otherwise queue hours of calls and starve every other supervisor
of that operation. The size of a target list is computed arithmetically before anything is
expanded, so even ``1-999999999999999`` is refused at once. Teams are expanded later, by the core,
which re-checks the bound; the agents listed by one ``team create|add|remove`` obey it as well.

Help text: :func:`usage` composes the sections (:class:`Section`) a caller may run;
:data:`USAGE` is the change section alone, :data:`ADMIN_USAGE` everything, and
:data:`ROLE_SECTIONS` / :func:`sections_for` say which sections each role's commands belong to.

The layers: :func:`tokenize` (mentions, options, words), the vocabulary tables (:data:`VOCABULARY`
for changes, :data:`VERBS`, :data:`TEAM_VERBS`, :data:`ROLE_WORDS`, :data:`OPTIONS`; new aliases go
there), :func:`parse_targets` (agent ids) and :func:`parse`, which dispatches on the leading verb.
"""

from __future__ import annotations

import difflib
import heapq
import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum, StrEnum
from itertools import islice
from typing import Final

from commands.i18n import N_, _
from wolkvox.model import Button, Display

__all__ = [
    "ADMIN_USAGE",
    "ALL_TEAMS",
    "DEFAULT_HISTORY_LIMIT",
    "DURATION_UNITS",
    "FLAGS",
    "MAX_AGENTS",
    "MAX_DURATION",
    "MAX_HISTORY_LIMIT",
    "MAX_NAME_LENGTH",
    "MAX_REASON_LENGTH",
    "MIN_DURATION",
    "OPTIONS",
    "ROLE_SECTIONS",
    "ROLE_WORDS",
    "STATUS_WORDS",
    "TEAM_SETTINGS",
    "TEAM_VERBS",
    "USAGE",
    "VERBS",
    "VOCABULARY",
    "ChangeCommand",
    "ChannelRef",
    "GrantCommand",
    "GroupRef",
    "HelpCommand",
    "HistoryCommand",
    "LanguageCommand",
    "Lexeme",
    "Mention",
    "ParseError",
    "Parsed",
    "RevokeCommand",
    "Role",
    "RolesCommand",
    "Section",
    "StatusCommand",
    "Subject",
    "TeamAddCommand",
    "TeamCreateCommand",
    "TeamListCommand",
    "TeamRemoveCommand",
    "TeamSetCommand",
    "TeamSetting",
    "TeamShowCommand",
    "Token",
    "UndoCommand",
    "UserRef",
    "WhoamiCommand",
    "WordKind",
    "is_reserved",
    "normalize",
    "parse",
    "parse_targets",
    "sections_for",
    "tokenize",
    "usage",
]

MAX_AGENTS: int = 500
"""Most distinct agents one command may reach by id (see the module docstring for why)."""

MAX_AGENT_ID_DIGITS = 15
"""Longest agent id accepted; longer digit strings are refused rather than sent to wolkvox."""

MAX_NAME_LENGTH: int = 40
"""Longest team or operation name."""

MIN_DURATION: Final = timedelta(minutes=1)
"""Shortest ``for …`` a change may last before it reverts."""

MAX_DURATION: Final = timedelta(hours=24)
"""Longest ``for …`` a change may last before it reverts."""

MAX_REASON_LENGTH: int = 500
"""Longest ``--reason`` text, in characters (after HTML unescaping)."""

DEFAULT_HISTORY_LIMIT: int = 20
"""How many entries ``history`` shows without ``--limit``."""

MAX_HISTORY_LIMIT: int = 200
"""The largest ``--limit`` of ``history``."""

COMMAND = "/agentbox"
"""The slash command (translatable messages spell it out, so translators see whole commands)."""

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- results


class Role(StrEnum):
    """What a grant lets its holder do (the core's permission policy gives each its meaning)."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    REQUESTER = "requester"
    VIEWER = "viewer"


@dataclass(frozen=True)
class UserRef:
    """A Slack user, from a ``<@U…>`` mention."""

    user_id: str


@dataclass(frozen=True)
class GroupRef:
    """A Slack user group, from a ``<!subteam^S…>`` mention."""

    group_id: str


@dataclass(frozen=True)
class ChannelRef:
    """A Slack channel, from a ``<#C…>`` link."""

    channel_id: str


Subject = UserRef | GroupRef
"""Who a grant is for."""

ALL_TEAMS: Final = None
"""The ``teams`` of a grant or revoke that covers every team (``team:*``, or an admin grant)."""


class Section(StrEnum):
    """A part of the help text; :func:`usage` shows the ones the caller may run."""

    CHANGE = "change"
    """``show``/``hide`` and ``undo`` (admins, supervisors, requesters)."""
    VIEWER = "viewer"
    """``whoami``, ``team list``, ``team show``, ``history``, ``status`` (anyone)."""
    GRANTS = "grants"
    """``grant``, ``revoke``, ``roles`` (admins)."""
    TEAMS = "teams"
    """``team create``, ``team add``, ``team remove`` (admins)."""


@dataclass(frozen=True)
class ChangeCommand:
    """Show or hide some buttons for some agents and/or the agents of some teams."""

    display: Display
    buttons: tuple[Button, ...]
    """De-duplicated, in canonical order (DIAL, DISPOSITION, HUNGUP)."""
    agents: tuple[str, ...]
    """Explicit agent ids only, de-duplicated as typed (leading zeros kept), sorted numerically.
    May be empty when ``teams`` is not."""
    teams: tuple[str, ...] = ()
    """Team names from ``team:`` targets, normalized, de-duplicated, sorted. The core expands them
    (and re-checks :data:`MAX_AGENTS` on the union)."""
    duration: timedelta | None = None
    """``for 30m``: revert by itself after this long, from :data:`MIN_DURATION` to
    :data:`MAX_DURATION` inclusive, whole seconds. None: the change stays."""
    dry_run: bool = False
    """``--dry-run``: list the calls the change would make, and make none."""
    reason: str | None = None
    """``--reason "…"``: why, as the user wrote it (HTML-unescaped, stripped, non-empty, at most
    :data:`MAX_REASON_LENGTH` characters). Plain text that may hold ``& < >`` and ``<!channel>``:
    escape it before putting it in a Slack message. None: no reason given (the core requires one
    of requesters)."""


@dataclass(frozen=True)
class HelpCommand:
    """Show the usage text."""

    topic: Section | None = None
    """The section asked about (``team help`` → TEAMS), or None for general help."""


@dataclass(frozen=True)
class ParseError:
    """The text is not a command; ``message`` is the complete user-facing explanation (mrkdwn)."""

    message: str
    word: str | None = None
    """The word not understood, exactly as typed (after HTML unescaping; a Slack mention as its
    entity text, like ``<@U1|maria>``), if any."""
    suggestion: str | None = None
    """The closest valid word, if any."""


@dataclass(frozen=True)
class GrantCommand:
    """Give ``subject`` a role over some teams (and, for supervisors and requesters, buttons)."""

    subject: Subject
    role: Role
    teams: tuple[str, ...] | None
    """Sorted team names, or None (:data:`ALL_TEAMS`): every team. Always None for admin."""
    buttons: tuple[Button, ...] | None = None
    """Canonical order, or None: every button (no ``buttons:``, ``buttons:all``, or all three
    named). Always None for admin and viewer."""


@dataclass(frozen=True)
class RevokeCommand:
    """Take grants away from ``subject``."""

    subject: Subject
    role: Role | None = None
    """None: grants of every role."""
    teams: tuple[str, ...] | None = None
    """Sorted team names, or None: whatever the grants' scopes (no ``team:``, or ``team:*``)."""


@dataclass(frozen=True)
class RolesCommand:
    """List grants: of ``subject``, or of everyone when None."""

    subject: Subject | None = None


@dataclass(frozen=True)
class WhoamiCommand:
    """Tell the caller their own grants."""


@dataclass(frozen=True)
class TeamCreateCommand:
    """Create a team: its agents, its channel, and where approvals and changes happen."""

    name: str
    agents: tuple[str, ...]
    """Non-empty, as :func:`parse_targets` returns them."""
    channel: ChannelRef
    """The team's channel (where its trail is posted)."""
    approvals: ChannelRef | None = None
    """Where requests for approval go; None: the core's default (e.g. ``channel``)."""
    change_channels: tuple[ChannelRef, ...] | None = None
    """The only channels changes to its agents are accepted from, de-duplicated in typed order;
    None: no restriction."""
    operation: str | None = None
    """The wolkvox operation (tenant) the agents belong to, normalized; None: the default."""


@dataclass(frozen=True)
class TeamAddCommand:
    name: str
    agents: tuple[str, ...]


@dataclass(frozen=True)
class TeamRemoveCommand:
    name: str
    agents: tuple[str, ...]


@dataclass(frozen=True)
class TeamShowCommand:
    name: str


@dataclass(frozen=True)
class TeamListCommand:
    pass


class TeamSetting(StrEnum):
    """What ``team set`` changes (the core gives each its meaning: commands/approvals.py)."""

    APPROVALS_CHANNEL = "approvals-channel"
    """Where its requests for approval go: a channel, or None (the team's own channel)."""
    SELF_APPROVAL = "self-approval"
    """Whether a requester who may approve may approve their own request: a bool."""
    APPROVAL_BUTTONS = "approval-buttons"
    """The buttons whose changes always need approval: a tuple of buttons (empty: none)."""
    APPROVAL_OVER = "approval-over"
    """Changes to more than this many of its agents need approval: an int, or None (no limit)."""
    TWO_APPROVERS = "two-approvers"
    """The buttons whose requests need two distinct approvers: a tuple (empty: none)."""
    APPROVAL_TTL = "approval-ttl"
    """How long its requests wait, in whole minutes: an int, or None (the default)."""
    TRAIL = "trail"
    """Whether each executed change leaves a line in its channel: a bool."""


TeamSettingValue = bool | int | tuple[Button, ...] | ChannelRef | None


@dataclass(frozen=True)
class TeamSetCommand:
    """Change one setting of a team (``team set ventas trail off``)."""

    name: str
    setting: TeamSetting
    value: TeamSettingValue
    """Its type follows ``setting`` (see :class:`TeamSetting`)."""


@dataclass(frozen=True)
class UndoCommand:
    """Revert the caller's last change (``undo``, ``deshacer``)."""


@dataclass(frozen=True)
class HistoryCommand:
    """Show the recent trail (``history``, ``historial``), of some agents and/or teams, or of
    everything the caller may see when both are empty."""

    agents: tuple[str, ...] = ()
    """As :func:`parse_targets` returns them (at most :data:`MAX_AGENTS`)."""
    teams: tuple[str, ...] = ()
    """Normalized, de-duplicated, sorted."""
    limit: int = DEFAULT_HISTORY_LIMIT
    """How many entries, 1 to :data:`MAX_HISTORY_LIMIT`."""


@dataclass(frozen=True)
class StatusCommand:
    """Show the last known state of each button per agent (``status``, ``estado``).

    Either some agents and/or teams (at least one), or ``hidden_only`` alone (``status hidden``:
    which agents have hidden buttons right now), never both."""

    agents: tuple[str, ...] = ()
    """As :func:`parse_targets` returns them (at most :data:`MAX_AGENTS`)."""
    teams: tuple[str, ...] = ()
    """Normalized, de-duplicated, sorted."""
    hidden_only: bool = False


@dataclass(frozen=True)
class LanguageCommand:
    """Choose the language agentbox answers the caller in (``lang es``, ``idioma en``), go back to
    their Slack language (``lang auto``), or, with None, say which one it is and why."""

    language: str | None = None
    """``en``, ``es`` (commands/i18n.LANGUAGES), :data:`AUTOMATIC_LANGUAGE`, or None."""


AUTOMATIC_LANGUAGE: Final = "auto"
"""The :class:`LanguageCommand` value that drops the caller's own choice."""


Parsed = (
    ChangeCommand
    | HelpCommand
    | ParseError
    | GrantCommand
    | RevokeCommand
    | RolesCommand
    | WhoamiCommand
    | TeamCreateCommand
    | TeamAddCommand
    | TeamRemoveCommand
    | TeamShowCommand
    | TeamListCommand
    | TeamSetCommand
    | UndoCommand
    | HistoryCommand
    | StatusCommand
    | LanguageCommand
)


# --------------------------------------------------------------------------- vocabulary


class WordKind(Enum):
    """What a vocabulary word does in a command."""

    HELP = "help"
    DISPLAY = "display"
    BUTTON = "button"
    RANGE = "range"
    VERB = "verb"
    """Leads a command: grant, revoke, roles, whoami, team."""
    TEAM_VERB = "team verb"
    """Follows ``team``: create, add, remove, show, list."""
    ROLE = "role"
    OPTION = "option"
    """The key of a ``key:value`` word."""
    DURATION = "duration"
    """Introduces how long a change lasts: ``for 30m``."""
    FLAG = "flag"
    """A ``--word`` (``--dry-run``, ``--reason …``, ``--limit N``)."""
    FILTER = "filter"
    """What ``status`` may list instead of agents: ``hidden``."""
    SETTING = "setting"
    """What ``team set`` changes: ``trail``, ``approval-ttl``…"""


@dataclass(frozen=True)
class Lexeme:
    """The meaning shared by a set of aliases."""

    kind: WordKind
    canonical: str
    display: Display | None = None
    buttons: tuple[Button, ...] = ()
    role: Role | None = None


_ALL_BUTTONS: tuple[Button, ...] = (Button.DIAL, Button.DISPOSITION, Button.HUNGUP)

_Table = tuple[tuple[Lexeme, tuple[str, ...]], ...]

VOCABULARY: _Table = (
    (Lexeme(WordKind.HELP, "help"), ("help", "ayuda", "?", "-h", "--help")),
    (
        Lexeme(WordKind.DISPLAY, "show", display=Display.SHOW),
        ("show", "mostrar", "muestra", "ver", "unhide"),
    ),
    (
        Lexeme(WordKind.DISPLAY, "hide", display=Display.HIDE),
        ("hide", "ocultar", "oculta", "esconder"),
    ),
    (
        Lexeme(WordKind.BUTTON, "dial", buttons=(Button.DIAL,)),
        ("dial", "call", "llamar", "llamada", "marcar"),
    ),
    (
        Lexeme(WordKind.BUTTON, "disposition", buttons=(Button.DISPOSITION,)),
        ("disposition", "dispo", "tipificación", "tipificacion", "tipificar"),
    ),
    (
        Lexeme(WordKind.BUTTON, "hungup", buttons=(Button.HUNGUP,)),
        ("hungup", "hung-up", "hangup", "hang-up", "hang_up", "colgar", "cuelgue"),
    ),
    (Lexeme(WordKind.BUTTON, "all", buttons=_ALL_BUTTONS), ("all", "todo", "todos", "todas")),
    (Lexeme(WordKind.RANGE, "to"), ("to", "through", "thru", "a", "al", "hasta")),
    (Lexeme(WordKind.DURATION, "for"), ("for", "por", "durante")),
)
"""The words of a change (and help), as (meaning, aliases). Aliases are written as a user would
write them; matching is on :func:`normalize`, so case and accents do not matter. The first alias
spelled a given way is the one suggested for typos."""

VERBS: _Table = (
    (Lexeme(WordKind.VERB, "grant"), ("grant", "otorgar", "dar")),
    (Lexeme(WordKind.VERB, "revoke"), ("revoke", "revocar", "quitar")),
    (Lexeme(WordKind.VERB, "roles"), ("roles", "permisos")),
    (Lexeme(WordKind.VERB, "whoami"), ("whoami", "quiensoy", "quién soy")),
    (Lexeme(WordKind.VERB, "team"), ("team", "equipo")),
    (Lexeme(WordKind.VERB, "undo"), ("undo", "deshacer")),
    (Lexeme(WordKind.VERB, "history"), ("history", "historial")),
    (Lexeme(WordKind.VERB, "status"), ("status", "estado")),
    (Lexeme(WordKind.VERB, "lang"), ("lang", "language", "idioma", "lenguaje")),
)
"""Words that lead a command (an alias may be several words, matched word by word)."""

TEAM_VERBS: _Table = (
    (Lexeme(WordKind.TEAM_VERB, "create"), ("create", "crear")),
    (Lexeme(WordKind.TEAM_VERB, "add"), ("add", "agregar", "añadir")),
    (Lexeme(WordKind.TEAM_VERB, "remove"), ("remove", "quitar")),
    (Lexeme(WordKind.TEAM_VERB, "show"), ("show", "ver", "mostrar")),
    (Lexeme(WordKind.TEAM_VERB, "list"), ("list", "listar")),
    (Lexeme(WordKind.TEAM_VERB, "set"), ("set", "configurar")),
)
"""Words that follow ``team``."""

ROLE_WORDS: _Table = (
    (
        Lexeme(WordKind.ROLE, "admin", role=Role.ADMIN),
        ("admin", "administrador", "administradora"),
    ),
    (
        Lexeme(WordKind.ROLE, "supervisor", role=Role.SUPERVISOR),
        ("supervisor", "supervisora"),
    ),
    (Lexeme(WordKind.ROLE, "requester", role=Role.REQUESTER), ("requester", "solicitante")),
    (
        Lexeme(WordKind.ROLE, "viewer", role=Role.VIEWER),
        ("viewer", "observador", "observadora", "lector", "lectora"),
    ),
)

OPTIONS: _Table = (
    (Lexeme(WordKind.OPTION, "team"), ("team", "teams", "equipo", "equipos")),
    (Lexeme(WordKind.OPTION, "buttons"), ("buttons", "button", "botones", "botón")),
    (
        Lexeme(WordKind.OPTION, "approvals"),
        ("approvals", "approval", "aprobaciones", "aprobación"),
    ),
    (Lexeme(WordKind.OPTION, "channels"), ("channels", "channel", "canales", "canal")),
    (Lexeme(WordKind.OPTION, "operation"), ("operation", "operación")),
    (Lexeme(WordKind.OPTION, "reason"), ("reason", "motivo", "razón")),
    (Lexeme(WordKind.OPTION, "limit"), ("limit", "límite")),
)
"""Keys of ``key:value`` words."""

FLAGS: _Table = (
    (
        Lexeme(WordKind.FLAG, "--dry-run"),
        ("--dry-run", "--dryrun", "--dry_run", "dry-run", "dryrun", "--simular", "--prueba"),
    ),
    (Lexeme(WordKind.FLAG, "--reason"), ("--reason", "--motivo", "--razón")),
    (Lexeme(WordKind.FLAG, "--limit"), ("--limit", "--límite")),
)
"""``--`` words. Any run of dashes (``-``, ``—`` as phones type ``--``) reads as ``--``, and a
value may follow ``=`` (``--limit=50``)."""

STATUS_WORDS: _Table = ((Lexeme(WordKind.FILTER, "hidden"), ("hidden", "ocultos", "ocultas")),)
"""Words ``status`` takes instead of agents."""

TEAM_SETTINGS: tuple[tuple[TeamSetting, tuple[str, ...]], ...] = (
    (
        TeamSetting.APPROVALS_CHANNEL,
        ("approvals-channel", "approvals", "canal-aprobaciones", "aprobaciones"),
    ),
    (TeamSetting.SELF_APPROVAL, ("self-approval", "autoaprobación", "auto-aprobación")),
    (TeamSetting.APPROVAL_BUTTONS, ("approval-buttons", "botones-aprobación")),
    (TeamSetting.APPROVAL_OVER, ("approval-over", "aprobación-sobre")),
    (TeamSetting.TWO_APPROVERS, ("two-approvers", "dos-aprobadores")),
    (TeamSetting.APPROVAL_TTL, ("approval-ttl", "vigencia-aprobación", "vigencia")),
    (TeamSetting.TRAIL, ("trail", "rastro")),
)
"""The settings of ``team set``, as (setting, aliases). They are words only after ``team set
<name>``, so they are not reserved: a team may be called ``trail``."""

_SWITCH_WORDS: Mapping[str, bool] = {
    **dict.fromkeys(("on", "yes", "si", "true", "enabled", "activado", "activar"), True),
    **dict.fromkeys(("off", "no", "false", "disabled", "desactivado", "desactivar"), False),
}
"""The values of an on/off setting (normalized)."""

_UNSET_WORDS: frozenset[str] = frozenset(
    ("none", "off", "no", "default", "ninguno", "ninguna", "nada")
)
"""Values that clear a setting: no buttons, no limit, the default TTL, the team's own channel."""

DURATION_UNITS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, ("s", "sec", "secs", "second", "seconds", "seg", "segs", "segundo", "segundos")),
    (60, ("m", "min", "mins", "minute", "minutes", "minuto", "minutos")),
    (3600, ("h", "hr", "hrs", "hour", "hours", "hora", "horas")),
)
"""The units of a duration, as (seconds, aliases)."""

_EVERY_TEAM: tuple[str, ...] = ("*", "all", "todos", "todas")
"""Values of ``team:`` meaning every team."""


def normalize(word: str) -> str:
    """Fold case and accents (``Tipificación`` → ``tipificacion``): aliases match however typed."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _build_lexicon(table: _Table) -> tuple[Mapping[str, Lexeme], Mapping[str, str]]:
    lexicon: dict[str, Lexeme] = {}
    spelling: dict[str, str] = {}
    for lexeme, aliases in table:
        for alias in aliases:
            key = normalize(alias)
            if lexicon.setdefault(key, lexeme) != lexeme:
                raise ValueError(f"alias {alias!r} means both {lexicon[key]} and {lexeme}")
            spelling.setdefault(key, alias)
    return lexicon, spelling


_LEXICON, _SPELLING = _build_lexicon(VOCABULARY)
_VERBS, _VERB_SPELLING = _build_lexicon(VERBS)
_TEAM_VERBS, _TEAM_VERB_SPELLING = _build_lexicon(TEAM_VERBS)
_ROLES, _ROLE_SPELLING = _build_lexicon(ROLE_WORDS)
_OPTIONS, _OPTION_SPELLING = _build_lexicon(OPTIONS)
_FLAGS, _FLAG_SPELLING = _build_lexicon(FLAGS)
_STATUS_WORDS, _STATUS_SPELLING = _build_lexicon(STATUS_WORDS)
_SETTINGS, _SETTING_SPELLING = _build_lexicon(
    tuple((Lexeme(WordKind.SETTING, setting), aliases) for setting, aliases in TEAM_SETTINGS)
)
_UNITS: Mapping[str, int] = {
    normalize(alias): seconds for seconds, aliases in DURATION_UNITS for alias in aliases
}

_RESERVED: frozenset[str] = frozenset(
    normalize(alias)
    for table in (VOCABULARY, VERBS, TEAM_VERBS, ROLE_WORDS, OPTIONS, FLAGS, STATUS_WORDS)
    for _, aliases in table
    for alias in aliases
) | frozenset(_EVERY_TEAM)


def is_reserved(name: str) -> bool:
    """Whether ``name`` is a word agentbox uses, so no team may be called that."""
    return normalize(name) in _RESERVED


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Mention:
    """A Slack entity in the text: ``ref`` is what it names, or None for one agentbox has no use
    for (``@here``, a link, a date); ``label`` is how Slack showed it (``@maria``, ``#ventas``)."""

    ref: UserRef | GroupRef | ChannelRef | None
    label: str


@dataclass(frozen=True)
class Token:
    """One word of the command: ``raw`` as typed (unescaped), ``norm`` as matched.

    A Slack mention is a word of its own (``mention`` set, ``raw`` its entity text such as
    ``<@U1|maria>``). An option word ``key:a,b`` has ``key`` (normalized, without the colon) and
    its items in ``values``; its ``raw`` is ``key:a,b``.
    """

    raw: str
    norm: str
    mention: Mention | None = None
    key: str | None = None
    values: tuple[Token, ...] = ()

    @property
    def plain(self) -> bool:
        """Neither a mention nor an option."""
        return self.mention is None and self.key is None

    @property
    def shown(self) -> str:
        """How the user saw the word: a mention by its label."""
        return self.mention.label if self.mention is not None else self.raw


_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphen, nb-hyphen, figure/en/em dash, minus
_RANGE_DASH = re.compile(rf"(?<=[0-9])\s*[-{_DASHES}]\s*(?=[0-9])")
_SEPARATORS = re.compile(r"[\s,]+")
_SPACES = re.compile(r"\s+")
_ID = re.compile(r"[0-9]+")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_TARGET = re.compile(r"[0-9]+(?:-[0-9]+)?")

# Slack writes entities with literal angle brackets and escapes every `<` a user types as `&lt;`,
# so a raw `<…>` of these shapes can only come from Slack (or from the console, which is trusted).
# Slack ids are upper-case letters and digits; "_" is accepted too, for the fake ids of the
# console and the tests (U_ADMIN), which no real id can collide with.
_ENTITY = re.compile(r"<([@#!][^<>|\s]*|[A-Za-z][A-Za-z0-9+.\-]*:[^<>|\s]*)(?:\|([^<>\n]*))?>")
_USER = re.compile(r"@([A-Z0-9_]+)")
_GROUP = re.compile(r"!subteam\^([A-Z0-9_]+)")
_CHANNEL = re.compile(r"#([A-Z0-9_]+)")
_SPECIAL_LABELS = {"!here": "@here", "!channel": "@channel", "!everyone": "@everyone"}

# Where a mention stood while the rest of the text is unescaped and split: private-use
# characters, removed from the user's own text first so that only ours remain.
_MARK, _MARK_END = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_MARK}([0-9]+){_MARK_END}")
_OPTION = re.compile(r"([^\W\d_]+):(.*)", re.DOTALL)


def _clean(text: str) -> str:
    """Undo Slack's HTML escaping and drop invisible format characters (e.g. zero-width spaces
    pasted from spreadsheets), which would otherwise make ``1001`` an unknown word."""
    text = html.unescape(text)
    return "".join(
        ch for ch in text if unicodedata.category(ch) != "Cf" and ch not in (_MARK, _MARK_END)
    )


def _dashes(text: str) -> str:
    # "1001 - 1010" and "1001<en dash>1010" are ranges; a lone em dash elsewhere is what
    # phones make of "--" (so "—help" is "--help").
    return _RANGE_DASH.sub("-", text).replace("\u2014", "--")


def _split(text: str) -> list[str]:
    return [word for word in _SEPARATORS.split(_dashes(text)) if word]


def _mention(match: re.Match[str]) -> Mention:
    target, label = match.group(1), match.group(2)
    label = html.unescape(label) if label else None
    if user := _USER.fullmatch(target):
        return Mention(UserRef(user.group(1)), "@" + (label or user.group(1)).lstrip("@"))
    if group := _GROUP.fullmatch(target):
        return Mention(GroupRef(group.group(1)), "@" + (label or group.group(1)).lstrip("@"))
    if channel := _CHANNEL.fullmatch(target):
        return Mention(ChannelRef(channel.group(1)), "#" + (label or channel.group(1)).lstrip("#"))
    return Mention(None, label or _SPECIAL_LABELS.get(target, html.unescape(target)))


def _word(raw: str) -> Token:
    return Token(raw=raw, norm=normalize(raw))


def _option(key: str, values: Sequence[Token]) -> Token:
    raw = f"{key}:{','.join(value.raw for value in values)}"
    return Token(raw=raw, norm=normalize(raw), key=normalize(key), values=tuple(values))


def tokenize(text: str) -> list[Token]:
    """Split the raw slash-command text into words.

    Slack mentions are found first, in the escaped text; the rest is HTML-unescaped and split on
    spaces and commas, except that an option word ``key:a,b`` keeps its list (``key: a`` with a
    space reads as ``key:a``).
    """
    pieces: list[str] = []
    mentions: list[Token] = []
    last = 0
    for match in _ENTITY.finditer(text):
        pieces += [_clean(text[last : match.start()]), f"{_MARK}{len(mentions)}{_MARK_END}"]
        raw = html.unescape(match.group(0))
        mentions.append(Token(raw=raw, norm=normalize(raw), mention=_mention(match)))
        last = match.end()
    pieces.append(_clean(text[last:]))

    tokens: list[Token] = []
    key: str | None = None  # the open option, collecting its values
    values: list[Token] = []

    def close() -> None:
        nonlocal key
        if key is not None:
            tokens.append(_option(key, values))
            key = None
            values.clear()

    for chunk in _SPACES.split(_dashes("".join(pieces))):
        parts: list[Token] = []
        for index, piece in enumerate(_PLACEHOLDER.split(chunk)):
            if index % 2:
                parts.append(mentions[int(piece)])
            else:
                parts += [_word(part) for part in piece.split(",") if part]
        if not parts:
            continue
        opens = parts[0].mention is None and _OPTION.fullmatch(parts[0].raw) is not None
        if key is None or values or opens:  # `team: ventas` reads as `team:ventas`
            close()
        for part in parts:
            option = _OPTION.fullmatch(part.raw) if part.mention is None else None
            if option is not None:
                close()
                key = option.group(1)
                if option.group(2):
                    values.append(_word(option.group(2)))
            elif key is not None:
                values.append(part)
            else:
                tokens.append(part)
    close()
    return tokens


def _is_range_word(token: Token) -> bool:
    lexeme = _LEXICON.get(token.norm)
    return lexeme is not None and lexeme.kind is WordKind.RANGE


def _join_ranges(tokens: Sequence[Token]) -> list[Token]:
    """Read ``1001 to 1010`` as the single target ``1001-1010``. A range word that does not
    stand between two agent ids is left in place, for the caller to refuse with
    :func:`_misplaced_range_word`."""
    joined: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (
            _is_range_word(token)
            and joined
            and _ID.fullmatch(joined[-1].raw)
            and following is not None
            and _ID.fullmatch(following.raw)
        ):
            word = f"{joined[-1].raw}-{following.raw}"
            joined[-1] = Token(raw=word, norm=word)
            index += 2
        else:
            joined.append(token)
            index += 1
    return joined


_DASH_CLASS = "[-\u2010-\u2015\u2212]"  # hyphen, dashes (phones make "--" an em dash), minus
_LEADING_DASHES = re.compile(f"{_DASH_CLASS}+")
_DASHED_WORD = re.compile(rf"{_DASH_CLASS}+[^\W\d_]")


@dataclass(frozen=True)
class _Flag:
    """A ``--word`` of :data:`FLAGS` as typed: ``name`` is the flag part (``--limit``), ``value``
    what followed ``=`` (``--limit=50``), if anything did."""

    lexeme: Lexeme
    name: str
    value: str | None


def _flag(token: Token) -> _Flag | None:
    """The flag ``token`` is, if any: ``--dry-run``, ``—dry-run``, ``-dryrun``, ``dry-run``."""
    if not token.plain:
        return None
    dashes = _LEADING_DASHES.match(token.raw)
    body = token.raw[dashes.end() :] if dashes else token.raw
    name, equals, value = body.partition("=")
    lexeme = _FLAGS.get(("--" if dashes else "") + normalize(name))
    if lexeme is None:
        return None
    typed = token.raw[: len(token.raw) - len(value) - len(equals)]
    return _Flag(lexeme, typed, value if equals else None)


@dataclass(frozen=True)
class _Reason:
    """The text of a ``--reason``, and how it was written (for messages)."""

    text: str
    flag: str
    quoted: bool


# `--reason`, `—motivo=`, `reason:`: a word that starts the text or follows a space or a comma.
_REASON_FLAG = re.compile(rf"(?<![^\s,])({_DASH_CLASS}*)([^\W\d_]+)(?:([=:])|(?=\s|$))")
_DOUBLE_QUOTES = '"|\u201c|\u201d|\u201e|\u201f|\u00ab|\u00bb|&quot;|&#0*34;|&#x0*22;'
_SINGLE_QUOTES = "'|\u2018|\u2019|\u201a|\u201b|&#0*39;|&#x0*27;"
_OPEN_QUOTE = re.compile(f"({_DOUBLE_QUOTES})|({_SINGLE_QUOTES})", re.IGNORECASE)
_CLOSE_DOUBLE = re.compile(_DOUBLE_QUOTES, re.IGNORECASE)
_CLOSE_SINGLE = re.compile(_SINGLE_QUOTES, re.IGNORECASE)
_STRAIGHT_DOUBLE = re.compile('"|&quot;|&#0*34;|&#x0*22;', re.IGNORECASE)
_STRAIGHT_SINGLE = re.compile("'|&#0*39;|&#x0*27;", re.IGNORECASE)
_MATCHING_QUOTE: Mapping[str, re.Pattern[str]] = {
    '"': _STRAIGHT_DOUBLE,
    "'": _STRAIGHT_SINGLE,
    "\u201c": re.compile("\u201d"),
    "\u201d": re.compile("\u201d"),
    "\u201e": re.compile("[\u201c\u201d]"),
    "\u201f": re.compile("\u201d"),
    "\u00ab": re.compile("\u00bb"),
    "\u00bb": re.compile("\u00ab"),
    "\u2018": re.compile("\u2019"),
    "\u2019": re.compile("\u2019"),
    "\u201a": re.compile("[\u2018\u2019]"),
    "\u201b": re.compile("\u2019"),
}
"""The quote that closes each opening quote, tried before any quote of the same kind (so that
``"said “hi” twice"`` keeps its inner quotes)."""
_RAW_WORD = re.compile(r"[^\s,]+")
_REASON_EXAMPLE = N_('`--reason "the client asked"`')


def _reason_flag(match: re.Match[str]) -> str | None:
    """The flag as typed, if ``match`` (of :data:`_REASON_FLAG`) is a reason flag."""
    dashes, word, separator = match.groups()
    if dashes:
        lexeme = _FLAGS.get("--" + normalize(word))
        return dashes + word if lexeme is not None and lexeme.canonical == "--reason" else None
    lexeme = _OPTIONS.get(normalize(word))
    if separator == ":" and lexeme is not None and lexeme.canonical == "reason":
        return word + ":"
    return None


def _reason_ends(text: str, start: int, entities: Sequence[tuple[int, int]]) -> int:
    """Where an unquoted reason that starts at ``start`` ends: at the next flag (a word starting
    with dashes, a flag of :data:`FLAGS`, or another ``reason:``), or at the end."""
    for word in _RAW_WORD.finditer(text, start):
        if _inside(word.start(), entities):
            continue
        raw = word.group(0)
        if _DASHED_WORD.match(raw) or _flag(_word(raw)) is not None:
            return word.start()
        reason = _REASON_FLAG.match(text, word.start())
        if reason is not None and _reason_flag(reason) is not None:
            return word.start()
    return len(text)


def _inside(position: int, entities: Sequence[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in entities)


def _closing_quote(
    text: str, opening: re.Match[str], entities: Sequence[tuple[int, int]]
) -> tuple[int, int] | None:
    """Where the quote that ``opening`` opened closes (its start and end), if it does: at a
    quote that ends a word (followed by a space, a comma or the end), outside Slack entities."""
    kind = _CLOSE_DOUBLE if opening.group(1) else _CLOSE_SINGLE
    for closers in (_MATCHING_QUOTE[html.unescape(opening.group(0))], kind):
        for closer in closers.finditer(text, opening.end()):
            after = closer.end()
            if not _inside(closer.start(), entities) and (
                after == len(text) or text[after].isspace() or text[after] == ","
            ):
                return closer.start(), after
    return None


def _reason_text(
    text: str, start: int, flag: str, entities: Sequence[tuple[int, int]]
) -> tuple[_Reason, int] | ParseError:
    """Read the text of a reason whose flag ends at ``start``; return it and where it ends."""
    position = start
    while position < len(text) and text[position].isspace():
        position += 1
    opening = _OPEN_QUOTE.match(text, position)
    if opening is None:
        end = _reason_ends(text, position, entities)
        value, quoted = text[position:end], False
    else:
        closing = _closing_quote(text, opening, entities)
        if closing is not None:
            value, end, quoted = text[opening.end() : closing[0]], closing[1], True
        else:
            return _error(
                _(
                    "The text of {flag} opens a quote and never closes it: write the reason "
                    "between two quotes, like {example}."
                ).format(flag=_quote(flag), example=_(_REASON_EXAMPLE)),
                word=flag,
            )
    reason = html.unescape(value).strip()
    if not reason:
        return _error(
            _("{flag} needs the reason right after it, like {example}.").format(
                flag=_quote(flag), example=_(_REASON_EXAMPLE)
            ),
            word=flag,
        )
    if len(reason) > MAX_REASON_LENGTH:
        return _error(
            _("That reason is {length} characters long; keep it to {limit}.").format(
                length=f"{len(reason):,}", limit=MAX_REASON_LENGTH
            ),
            word=flag,
        )
    return _Reason(reason, flag, quoted), end


def _extract_reason(text: str) -> tuple[str, _Reason | ParseError | None]:
    """Take the ``--reason`` out of the raw text, before it is split into words (its text keeps
    its spaces and commas, and means nothing to the command). Returns the rest of the text, with
    the reason (or why it can't be read, or None when there is none)."""
    entities = [match.span() for match in _ENTITY.finditer(text)]
    rest: list[str] = []
    found: _Reason | ParseError | None = None
    last = position = 0
    while (match := _REASON_FLAG.search(text, position)) is not None:
        position = match.end()
        flag = _reason_flag(match)
        if flag is None or _inside(match.start(), entities):
            continue
        read = _reason_text(text, match.end(), flag, entities)
        if isinstance(read, ParseError):
            found = found if isinstance(found, ParseError) else read
            end = match.end()
        else:
            reason, end = read
            if isinstance(found, _Reason):
                found = _error(
                    _(
                        "Give one reason per command; {flag} starts a second one. To say more, "
                        "put it all in one: {example}."
                    ).format(flag=_quote(flag), example=_(_REASON_EXAMPLE)),
                    word=flag,
                )
            elif found is None:
                found = reason
        rest += [text[last : match.start()], " "]
        last = position = end
    rest.append(text[last:])
    return "".join(rest), found


# --------------------------------------------------------------------------- messages


def _quote(word: str, limit: int = 40) -> str:
    """Show a user's word in backticks without letting it break out of them or ping anyone:
    Slack needs ``& < >`` escaped in the text we send back, and a backtick would end the span."""
    if len(word) > limit:
        word = word[: limit - 1] + "…"
    escaped = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`" + escaped.replace("`", "'") + "`"


def _example(*words: str) -> str:
    """A command to copy, in backticks; it may hold a user's words (a label, a team name)."""
    return _quote(" ".join([COMMAND, *(word for word in words if word)]), limit=200)


_HELP_HINT = N_("Type `/agentbox help` for examples.")

_SHORTEST_SUGGESTED = 4
"""Words shorter than this get no "did you mean": difflib matches very short words to misleading
ones (``tod`` → ``todo``, which means *all buttons*)."""


def _closest(norm: str, spelling: Mapping[str, str]) -> str | None:
    """The alias nearest to ``norm``, as it is best spelled, if any is near enough."""
    if len(norm) < _SHORTEST_SUGGESTED:
        return None
    matches = difflib.get_close_matches(norm, list(spelling), n=1)
    return spelling[matches[0]] if matches else None


def _error(message: str, word: str | None = None, suggestion: str | None = None) -> ParseError:
    return ParseError(f"{message} {_(_HELP_HINT)}", word=word, suggestion=suggestion)


def _unknown_word(word: str, *, first: bool = False) -> ParseError:
    """A word that is nothing in a change; as the first word it may also be a misspelled verb."""
    norm = normalize(word)
    spelling = {**_SPELLING, **_FLAG_SPELLING}
    suggestion = _closest(norm, {**spelling, **_VERB_SPELLING} if first else spelling)
    if suggestion is not None:
        message = _("I don't understand {word} — did you mean `{suggestion}`?")
    elif any(ch.isdigit() for ch in word):
        message = _(
            "I don't understand {word}. Agent ids are digits only, like `1001`, and a range is "
            "written `1001-1010`."
        )
    elif len(norm) < _SHORTEST_SUGGESTED:
        message = _("I don't understand {word}.")
    else:
        message = _(
            "I don't understand {word}. A command looks like `/agentbox hide disposition 1001`: "
            "`show` or `hide`, then `dial`, `disposition`, `hungup` or `all`, then agent ids."
        )
    return _error(
        message.format(word=_quote(word), suggestion=suggestion),
        word=word,
        suggestion=suggestion,
    )


def _misplaced_range_word(word: str) -> ParseError:
    return _error(
        _("{word} must stand between two agent ids, like {example} (or `1001-1010`).").format(
            word=_quote(word), example=_quote(f"1001 {word} 1010")
        ),
        word=word,
    )


# --------------------------------------------------------------------------- usage

_INTRO = N_("*agentbox* shows or hides buttons in your agents' wolkvox softphone.")

_SECTION_TEXT: Mapping[Section, str] = {
    Section.CHANGE: N_(
        """*Usage:* `/agentbox <show|hide> <buttons> <agents>`
• *action:* `show` (`mostrar`, `ver`, `unhide`) or `hide` (`ocultar`, `esconder`)
• *buttons:* `dial` (`llamar`, `marcar`), `disposition` (`dispo`, `tipificación`), \
`hungup` (`hangup`, `colgar`), or `all` (`todos`) — one or several
• *agents:* ids like `1001`, lists like `1001 1002` or `1001,1002`, ranges like `1001-1010` \
or `1001 to 1010`, teams like `team:ventas` or `team:ventas,cobranza` \
(at most {max_agents} agents per command)
• *optional:* `for 30m` (`por`, `durante`; like `90s`, `2h`, `1h30m`, from 1 minute to 24 \
hours) — it reverts by itself when the time is up; `--dry-run` (`--simular`) — list the calls \
it would make, and make none; `--reason "…"` (`--motivo`) — why, required when you request a \
change
• `/agentbox undo` (`deshacer`) — revert your last change
• *approval:* a change that needs it (your role is `requester`, or its team's policy says so) \
is posted as a request in the team's approvals channel, with Approve and Reject buttons; it \
needs `--reason "…"`, runs once approved, and expires if nobody approves it in time

*Examples:*
• `/agentbox hide disposition 1001`
• `/agentbox show all 1001-1010`
• `/agentbox hide dial hungup 1001, 1002, 1005`
• `/agentbox hide dial team:ventas 2001`
• `/agentbox hide dial 1001 for 30m --reason "cliente en espera"`
• `/agentbox hide all team:ventas --dry-run`
• `/agentbox ocultar tipificación 1001` (words may come in any order, in English or Spanish)"""
    ),
    Section.VIEWER: N_(
        """*You and your teams:*
• `/agentbox whoami` (`quién soy`) — your roles and teams
• `/agentbox team list` (`equipo listar`) — every team
• `/agentbox team show ventas` (`equipo ver ventas`) — a team's agents and channels
• `/agentbox history` (`historial`) — the recent changes; narrow it like \
`/agentbox history team:ventas --limit 50` or `/agentbox history 1001`
• `/agentbox status 1001` (`estado`) — the last known state of each button of agents or teams \
(`/agentbox status team:ventas`); `/agentbox status hidden` (`estado ocultos`) — the agents \
with hidden buttons now
• `/agentbox lang es` (`idioma`) — agentbox answers you in Spanish (`es`) or English (`en`); \
`/agentbox lang auto` follows your Slack language again"""
    ),
    Section.GRANTS: N_(
        """*Roles:* `admin` (`administrador`) may do everything; `supervisor` changes \
its teams' agents; `requester` (`solicitante`) asks for changes that need approval; `viewer` \
(`observador`, `lector`) only looks. Pick people and user groups from Slack's autocomplete.
• `/agentbox grant @maria supervisor team:ventas` (`otorgar`, `dar`)
• `/agentbox grant @supervisores requester team:ventas,cobranza buttons:disposition` — \
only those teams and buttons
• `/agentbox grant @luis viewer team:*` — every team
• `/agentbox grant @ana admin` — admins take no `team:`
• `/agentbox revoke @maria supervisor team:ventas` (`revocar`, `quitar`); \
`/agentbox revoke @maria` takes away every role
• `/agentbox roles` (`permisos`) — every grant; `/agentbox roles @maria` — one person's \
or group's"""
    ),
    Section.TEAMS: N_(
        """*Teams* (names: letters, digits, `-` and `_`, up to {max_name_length}):
• `/agentbox team create ventas 1001-1050 #ventas` — name, agents, channel (`equipo crear`)
• then, optionally: `approvals:#ventas-sup` (where requests for approval go), \
`channels:#ventas,#ventas-sup` (the only channels its changes are accepted from), \
`operation:default` (its wolkvox operation)
• `/agentbox team add ventas 1051-1060` (`agregar`, `añadir`), \
`/agentbox team remove ventas 1001` (`quitar`)
• `/agentbox team set ventas approval-buttons hungup` (`equipo configurar`) — one setting at a \
time: `approvals-channel #c` (or `none`: the team's channel), `self-approval on|off`, \
`approval-buttons hungup,dial` (changes to them always need approval; `none`), \
`approval-over 20` (changes to more of its agents need approval; `off`), `two-approvers hungup` \
(two distinct approvers; `none`), `approval-ttl 45m` (how long a request waits; `default`), \
`trail on|off` (a line in its channel for each change)"""
    ),
}

_FOOTER = N_("`/agentbox help` shows this message.")

ROLE_SECTIONS: Mapping[Role, frozenset[Section]] = {
    Role.ADMIN: frozenset(Section),
    Role.SUPERVISOR: frozenset({Section.CHANGE, Section.VIEWER}),
    Role.REQUESTER: frozenset({Section.CHANGE, Section.VIEWER}),
    Role.VIEWER: frozenset({Section.VIEWER}),
}
"""The help sections each role's commands belong to. It chooses help text only: whether a command
may run is decided in the core, on every path."""


def sections_for(roles: Iterable[Role]) -> frozenset[Section]:
    """The help sections for someone holding ``roles`` (VIEWER always: anyone may ask whoami)."""
    return frozenset({Section.VIEWER}).union(*(ROLE_SECTIONS[role] for role in roles))


def usage(sections: Iterable[str]) -> str:
    """The help text for ``sections`` (:class:`Section` values, in any order; an unknown one raises
    ``ValueError``): an intro line, the sections in a fixed order, then how to get help."""
    chosen = {Section(section) for section in sections}
    texts = [
        _(_SECTION_TEXT[section]).format(max_agents=MAX_AGENTS, max_name_length=MAX_NAME_LENGTH)
        for section in Section
        if section in chosen
    ]
    return "\n\n".join([_(_INTRO), *texts, _(_FOOTER)])


USAGE: str = usage({Section.CHANGE})
"""The help for changes alone (what the app showed before roles existed), in English: to show it,
call :func:`usage`, which speaks the current language."""

ADMIN_USAGE: str = usage(Section)
"""The help for every command, in English (see :data:`USAGE`)."""


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Span:
    """Inclusive run of agent numbers written with at least ``width`` digits (zero-padded)."""

    low: int
    high: int
    width: int


def _span(word: str) -> _Span | ParseError:
    """Read one target word (``1001`` or ``1001-1010``) without expanding it."""
    if _ID.fullmatch(word):
        if len(word) > MAX_AGENT_ID_DIGITS:
            return _error(
                _("{word} is too long for an agent id: ids have at most {digits} digits.").format(
                    word=_quote(word), digits=MAX_AGENT_ID_DIGITS
                ),
                word=word,
            )
        return _Span(int(word), int(word), len(word))
    match = _RANGE.fullmatch(word)
    if match is None:
        return _unknown_word(word)
    start, end = match.groups()
    for part in (start, end):
        if len(part) > MAX_AGENT_ID_DIGITS:
            return _error(
                _(
                    "In the range {range}, {part} is too long for an agent id: ids have at most "
                    "{digits} digits."
                ).format(range=_quote(word), part=_quote(part), digits=MAX_AGENT_ID_DIGITS),
                word=word,
            )
    if int(start) > int(end):
        flipped = f"{end}-{start}"
        return ParseError(
            _(
                "The range {range} is backwards: a range goes from the lower id to the higher "
                "one, like `{flipped}`."
            ).format(range=_quote(word), flipped=flipped),
            word=word,
            suggestion=flipped,
        )
    # A range keeps the padding of its start, like `seq -w`: 001-010 is 001, 002, … 010.
    return _Span(int(start), int(end), len(start))


def _classes(span: _Span) -> Iterable[tuple[int, int, int]]:
    """Split a span into (string length, low, high) pieces. Two numbers give the same id string
    exactly when their number and their length agree, so pieces of one length can be merged."""
    for digits in range(1, MAX_AGENT_ID_DIGITS + 1):
        low = max(span.low, 0 if digits == 1 else 10 ** (digits - 1))
        high = min(span.high, 10**digits - 1)
        if low <= high:
            yield max(span.width, digits), low, high


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(pieces):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


_Runs = Mapping[int, Sequence[tuple[int, int]]]
"""Merged inclusive (low, high) runs of agent numbers, keyed by the length of their id strings."""

_LITERAL_RUNS = 3
"""Most runs a part of the split advice may hold to be shown as targets to type."""


def _numbers(length: int, pieces: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    for low, high in pieces:
        for number in range(low, high + 1):
            yield number, length


def _ordered(runs: _Runs) -> Iterator[tuple[int, int]]:
    """Every (number, length) of ``runs`` lazily, in the order agents are sorted in."""
    return heapq.merge(*(_numbers(length, pieces) for length, pieces in runs.items()))


def _id(number: int, length: int) -> str:
    return str(number).zfill(length)


def _render(pieces: Iterable[tuple[int, int, int]]) -> list[str]:
    """Write (length, low, high) pieces as target words. Pieces of unpadded ids (``9``, ``10-99``,
    ``100-500``) that follow each other are joined (``1-500``); padded ones are written alone."""
    natural: list[tuple[int, int]] = []
    padded: list[str] = []
    for length, low, high in pieces:
        if len(str(low)) == length:
            natural.append((low, high))
        elif low == high:
            padded.append(_id(low, length))
        else:
            padded.append(f"{_id(low, length)}-{_id(high, length)}")
    words = [str(low) if low == high else f"{low}-{high}" for low, high in _merge(natural)]
    return words + padded


def _cut(runs: _Runs, cut: tuple[int, int]) -> tuple[list[str], list[str]]:
    """Split ``runs`` after the id ``cut`` (a (number, length) pair, compared as agents are
    sorted) and write both sides as target words, without expanding anything."""
    number, cut_length = cut
    head: list[tuple[int, int, int]] = []
    tail: list[tuple[int, int, int]] = []
    for length, pieces in sorted(runs.items()):
        # An id of this length is at or before the cut up to `last_head`, after it from there on.
        last_head = number if length <= cut_length else number - 1
        for low, high in pieces:
            if low <= min(high, last_head):
                head.append((length, low, min(high, last_head)))
            if max(low, last_head + 1) <= high:
                tail.append((length, max(low, last_head + 1), high))
    return _render(head), _render(tail)


def _split_advice(runs: _Runs, count: int) -> str:
    """Advise how to split an over-the-bound set into commands, built from the user's own ids:
    its first :data:`MAX_AGENTS` ids, then the rest. A part is shown as targets to type when it
    is short, and otherwise by its first ids: never as one wide range, which could reach agents
    the user did not name."""
    ids = list(islice(_ordered(runs), MAX_AGENTS + 1))
    first, cut, rest = ids[0], ids[MAX_AGENTS - 1], ids[MAX_AGENTS]
    head, tail = _cut(runs, cut)
    if len(head) <= _LITERAL_RUNS:
        head_text = f"`{' '.join(head)}`"
    else:
        head_text = _("your first {count} ids, `{first}` to `{last}`").format(
            count=MAX_AGENTS, first=_id(*first), last=_id(*cut)
        )
    if len(tail) <= _LITERAL_RUNS and count - MAX_AGENTS <= MAX_AGENTS:
        tail_text = f"`{' '.join(tail)}`"
    else:
        tail_text = _("the rest, from `{first}`").format(first=_id(*rest))
    return _("for example {first_part}, then {second_part}").format(
        first_part=head_text, second_part=tail_text
    )


def parse_targets(words: Iterable[str]) -> tuple[str, ...] | ParseError:
    """Read target words into de-duplicated agent ids sorted numerically, or explain what is wrong.

    Each word may itself hold several targets separated by spaces or commas, and ``1001 to 1010``
    is the range ``1001-1010``. Ids keep their leading zeros, so ``01001`` and ``1001`` are
    distinct ids (wolkvox ids are strings). The distinct count is computed from merged ranges
    before any is expanded, so a huge range costs no memory.
    """
    return _agents(words, _("one command can change at most {count}").format(count=MAX_AGENTS))


def _agents(words: Iterable[str], bound: str) -> tuple[str, ...] | ParseError:
    """:func:`parse_targets`, with ``bound`` saying what the limit is in this command."""
    by_length: dict[int, list[tuple[int, int]]] = {}
    parts = [_word(part) for word in words for part in _split(word)]
    for part in _join_ranges(parts):
        if _is_range_word(part):
            return _misplaced_range_word(part.raw)
        span = _span(part.raw)
        if isinstance(span, ParseError):
            return span
        for length, low, high in _classes(span):
            by_length.setdefault(length, []).append((low, high))
    if not by_length:
        return _error(
            _(
                "Say which agents: ids like `1001`, lists like `1001,1002` or ranges like "
                "`1001-1010`."
            )
        )
    runs = {length: _merge(pieces) for length, pieces in by_length.items()}
    count = sum(high - low + 1 for pieces in runs.values() for low, high in pieces)
    if count > MAX_AGENTS:
        return ParseError(
            _(
                "That is {count} agents, and {bound}. Split it into several commands of at most "
                "{limit} agents each ({advice})."
            ).format(
                count=f"{count:,}", bound=bound, limit=MAX_AGENTS, advice=_split_advice(runs, count)
            )
        )
    agents = [
        str(number).zfill(length)
        for length, pieces in runs.items()
        for low, high in pieces
        for number in range(low, high + 1)
    ]
    agents.sort(key=lambda agent: (int(agent), len(agent)))
    return tuple(agents)


# --------------------------------------------------------------------------- changes


def _missing(
    display: Display | None, buttons: Sequence[Button], targets: Sequence[str], note: str = ""
) -> str:
    """Name what a change command lacks, with an example built from what the user did type."""
    parts: list[str] = []
    if display is None:
        parts.append(_("whether to `show` or `hide`"))
    if not buttons:
        parts.append(_("which button (`dial`, `disposition`, `hungup` or `all`)"))
    if not targets:
        parts.append(_("which agents (like `1001`, `1001-1010` or `team:ventas`)"))
    said = parts[0]
    if len(parts) > 1:
        said = _("{first} and {last}").format(first=", ".join(parts[:-1]), last=parts[-1])
    example = _example(
        (display or Display.HIDE).value,
        " ".join(b.value for b in buttons) or Button.DISPOSITION.value,
        " ".join(targets) if 0 < len(" ".join(targets)) <= 40 else "1001",
    )
    asked = _("Please say {what}, for example {example}.").format(what=said, example=example)
    return f"{asked}{note} {_(_HELP_HINT)}"


_VERB_EXAMPLES: Mapping[str, str] = {
    "grant": "@maria supervisor team:ventas",
    "revoke": "@maria supervisor team:ventas",
    "roles": "@maria",
    "whoami": "",
    "team": "show ventas",
    "undo": "",
    "history": "team:ventas",
    "status": "1001",
}


def _misplaced_verb(token: Token, verb: Lexeme) -> ParseError:
    example = _example(_VERB_SPELLING[token.norm], _VERB_EXAMPLES[verb.canonical])
    message = _("{word} starts a command of its own, like {example}.").format(
        word=_quote(token.raw), example=example
    )
    if verb.canonical == "team":
        message += " " + _("To reach a team's agents in a change, write `team:ventas` (no space).")
    return _error(message, word=token.raw)


def _mention_in_change(token: Token) -> ParseError:
    return _error(
        _(
            "{word} has no place in a show/hide command, which names agents (`1001`) and teams "
            "(`team:ventas`). To give someone a role: `/agentbox grant @maria supervisor "
            "team:ventas`."
        ).format(word=_quote(token.shown)),
        word=token.raw,
    )


def _change_teams(option: Token) -> tuple[str, ...] | ParseError:
    """The teams of a ``team:`` target in a change (every other option is refused)."""
    lexeme = _OPTIONS.get(option.key or "")
    if lexeme is None:
        return _unknown_option(option, _change_usage())
    if lexeme.canonical == "buttons":
        return _error(
            _(
                "{word}: in a show/hide command the buttons are plain words, like "
                "`/agentbox hide dial disposition 1001` (`buttons:` is for `grant`)."
            ).format(word=_quote(option.raw)),
            word=option.raw,
        )
    if lexeme.canonical != "team":
        return _option_not_here(option, _change_usage())
    scope = _scope([option], every=False)
    assert scope is not None  # every=False never yields "every team"
    return scope


_DURATION_WORD = re.compile(r"(?:[0-9]+[^\W\d_]+)+")
_DURATION_PIECE = re.compile(r"([0-9]+)([^\W\d_]+)")
_DURATION_EXAMPLE = N_("`30m` or `2h`")
_MAX_DURATION_DIGITS = 6
"""Longer numbers are beyond :data:`MAX_DURATION` in any unit (and not worth converting)."""


def _word_seconds(norm: str) -> int | None:
    """The seconds of one duration word (``30m``, ``1h30m``), or None if it is not one."""
    if not _DURATION_WORD.fullmatch(norm):
        return None
    seconds = 0
    for number, unit in _DURATION_PIECE.findall(norm):
        if unit not in _UNITS:
            return None
        if len(number.lstrip("0")) > _MAX_DURATION_DIGITS:
            return int(MAX_DURATION.total_seconds()) + 1
        seconds += int(number) * _UNITS[unit]
    return seconds


def _duration(
    said: Token, tokens: Sequence[Token], start: int
) -> tuple[timedelta, int] | ParseError:
    """The duration after ``for`` (the token ``said``), read from ``tokens[start:]``: words like
    ``30m`` or ``1h30m``, or a number then a unit (``30 minutes``), one or several (``1h 30m``).
    Returns it and the index of the first token after it."""
    seconds, index = 0, start
    while index < len(tokens) and tokens[index].plain:
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (piece := _word_seconds(token.norm)) is not None:
            seconds, index = seconds + piece, index + 1
        elif (
            _ID.fullmatch(token.raw)
            and following is not None
            and following.plain
            and following.norm in _UNITS
        ):
            piece = _word_seconds(token.raw + following.norm)
            assert piece is not None
            seconds, index = seconds + piece, index + 2
        else:
            break
    if index == start:
        if start < len(tokens) and _ID.fullmatch(tokens[start].raw):
            number = tokens[start].raw
            return _error(
                _("{words} needs a unit: `{number}m` for minutes or `{number}h` for hours.").format(
                    words=_quote(said.raw + " " + number), number=number
                ),
                word=f"{said.raw} {number}",
            )
        return _error(
            _("{word} needs a duration like {durations}, like {example}.").format(
                word=_quote(said.raw),
                durations=_(_DURATION_EXAMPLE),
                example=_example("hide dial 1001", said.raw, "30m"),
            ),
            word=said.raw,
        )
    typed = " ".join(token.raw for token in tokens[start - 1 : index])
    if seconds < MIN_DURATION.total_seconds():
        return _error(
            _("{words} is too short: a change lasts at least 1 minute (`1m`).").format(
                words=_quote(typed)
            ),
            word=typed,
        )
    after = tokens[index] if index < len(tokens) else None
    last_unit = _DURATION_PIECE.findall(tokens[index - 1].norm)
    in_hours = _UNITS.get(last_unit[-1][1] if last_unit else tokens[index - 1].norm) == 3600
    if (
        in_hours
        and after is not None
        and after.plain
        and _ID.fullmatch(after.raw)
        and int(after.raw) < 60
    ):
        # `for 1h 30`: minutes without their unit, or agent 30? Never guess which agents.
        return _error(
            _(
                "In {words}, is {number} a number of minutes or an agent? Write the minutes with "
                "their unit, {minutes}, or put the agents before {word}."
            ).format(
                words=_quote(typed + " " + after.raw),
                number=_quote(after.raw),
                minutes=_quote(f"{typed} {after.raw}m"),
                word=_quote(said.raw),
            ),
            word=after.raw,
        )
    if seconds > MAX_DURATION.total_seconds():
        return _error(
            _(
                "{words} is too long: a change lasts at most 24 hours (`24h`). For longer, change "
                "it without a duration, and change it back later."
            ).format(words=_quote(typed)),
            word=typed,
        )
    return timedelta(seconds=seconds), index


def _flag_in_change(token: Token, flag: _Flag) -> ParseError | None:
    """None for ``--dry-run``; why any other flag has no place in a change."""
    if flag.lexeme.canonical == "--dry-run":
        if flag.value is None:
            return None
        return _error(
            _("{word}: {flag} takes no value; write it alone.").format(
                word=_quote(token.raw), flag=f"`{flag.name}`"
            ),
            word=token.raw,
        )
    if flag.lexeme.canonical == "--limit":
        return _error(
            _(
                "{word} goes with `history`, like `/agentbox history team:ventas --limit 50`; a "
                "change takes `--dry-run` and `--reason`."
            ).format(word=_quote(token.raw)),
            word=token.raw,
        )
    return _stray(token, _change_usage())


def _parse_change(tokens: Sequence[Token], reason: _Reason | None = None) -> Parsed:
    """A show/hide command whose words may come in any order."""
    displays: dict[Display, str] = {}
    buttons: set[Button] = set()
    targets: list[str] = []
    teams: set[str] = set()
    typed: list[str] = []
    duration: tuple[timedelta, str] | None = None
    dry_run = False
    joined = _join_ranges(tokens)
    index = 0
    while index < len(joined):
        token = joined[index]
        index += 1
        if token.mention is not None:
            return _mention_in_change(token)
        if token.key is not None:
            names = _change_teams(token)
            if isinstance(names, ParseError):
                return names
            teams.update(names)
            typed.append(token.raw)
            continue
        if _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
            typed.append(token.raw)
            continue
        if (flag := _flag(token)) is not None:
            refused = _flag_in_change(token, flag)
            if refused is not None:
                return refused
            dry_run = True
            continue
        lexeme = _LEXICON.get(token.norm)
        if lexeme is None:
            verb = _VERBS.get(token.norm)
            if verb is not None:
                return _misplaced_verb(token, verb)
            if _word_seconds(token.norm) is not None:
                return _error(
                    _(
                        "To make the change revert by itself after {word}, write `for {duration}`, "
                        "like `/agentbox hide dial 1001 for 30m`."
                    ).format(word=_quote(token.raw), duration=token.raw),
                    word=token.raw,
                )
            previous = joined[index - 2] if index > 1 else None
            return _spaced_list(previous, token) or _unknown_word(token.raw, first=index == 1)
        if lexeme.kind is WordKind.RANGE:
            return _misplaced_range_word(token.raw)
        if lexeme.kind is WordKind.DURATION:
            found = _duration(token, joined, index)
            if isinstance(found, ParseError):
                return found
            length, after = found
            said = " ".join(t.raw for t in joined[index - 1 : after])
            index = after
            if duration is not None and duration[0] != length:
                return _error(
                    _("A change lasts one time: {first} and {second} are two.").format(
                        first=_quote(duration[1]), second=_quote(said)
                    ),
                    word=said,
                )
            duration = (length, said)
        elif lexeme.kind is WordKind.DISPLAY and lexeme.display is not None:
            displays.setdefault(lexeme.display, token.raw)
        elif lexeme.kind is WordKind.BUTTON:
            buttons.update(lexeme.buttons)
    if len(displays) > 1:
        first, second = list(displays.values())[:2]
        return ParseError(
            _(
                "The command says both {first} and {second}: use only one of `show` or `hide`, "
                "for example `/agentbox hide disposition 1001`."
            ).format(first=_quote(first), second=_quote(second))
        )
    display = next(iter(displays), None)
    ordered = tuple(b for b in _ALL_BUTTONS if b in buttons)
    # Bad targets are reported before missing parts, so the example in that message is valid.
    agents = parse_targets(targets) if targets else ()
    if isinstance(agents, ParseError):
        return agents
    if display is None or not ordered or not (agents or teams):
        note = ""
        if reason is not None and not reason.quoted:
            note = " " + _(
                "Without quotes, {flag} takes every word up to the next flag: put the reason "
                "between quotes, like {example}."
            ).format(flag=_quote(reason.flag), example=f'`{reason.flag} "…"`')
        return ParseError(_missing(display, ordered, typed, note))
    return ChangeCommand(
        display=display,
        buttons=ordered,
        agents=agents,
        teams=tuple(sorted(teams)),
        duration=duration[0] if duration is not None else None,
        dry_run=dry_run,
        reason=reason.text if reason is not None else None,
    )


# --------------------------------------------------------------------------- parts of commands


@dataclass(frozen=True)
class _Usage:
    """What a command takes, for messages about words that do not belong in it."""

    verb: str
    """As the user said it (``otorgar``, ``team create``)."""
    example: str
    """A whole command to copy, already in backticks."""
    options: tuple[str, ...]
    """Canonical keys of the options it takes."""
    takes: str
    """What may come where the stray word stood, as a clause (in the current language)."""


def _change_usage() -> _Usage:
    return _Usage(
        "show/hide",
        _example("hide dial team:ventas 1001"),
        ("team",),
        _("a change takes only `team:…`"),
    )


_BUTTON_SPELLING = {
    key: alias for key, alias in _SPELLING.items() if _LEXICON[key].kind is WordKind.BUTTON
}
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")
"""A team or operation name: it starts and ends with a letter or digit, since ``piso1-`` followed by
`` 2`` would read as the range ``1-2``."""


def _unknown_option(option: Token, usage: _Usage) -> ParseError:
    value = option.raw.partition(":")[2]
    spelling = {k: v for k, v in _OPTION_SPELLING.items() if _OPTIONS[k].canonical in usage.options}
    closest = _closest(option.key or "", spelling)
    suggestion = f"{_OPTIONS[normalize(closest)].canonical}:{value}" if closest else None
    if suggestion is not None:
        message = _("I don't understand {word} — did you mean {suggestion}?").format(
            word=_quote(option.raw), suggestion=_quote(suggestion)
        )
    else:
        message = _("I don't understand {word}: {takes}, like {example}.").format(
            word=_quote(option.raw), takes=usage.takes, example=usage.example
        )
    return _error(message, word=option.raw, suggestion=suggestion)


def _option_not_here(option: Token, usage: _Usage) -> ParseError:
    return _error(
        _("{word} has no place in {verb}: {takes}, like {example}.").format(
            word=_quote(option.raw),
            verb=f"`{usage.verb}`",
            takes=usage.takes,
            example=usage.example,
        ),
        word=option.raw,
    )


def _options(tokens: Sequence[Token], usage: _Usage) -> dict[str, list[Token]] | ParseError:
    """Group option words by canonical key; anything else is an error."""
    found: dict[str, list[Token]] = {}
    for index, token in enumerate(tokens):
        if token.key is None:
            return _spaced_list(tokens[index - 1] if index else None, token) or _stray(token, usage)
        lexeme = _OPTIONS.get(token.key)
        if lexeme is None:
            return _unknown_option(token, usage)
        if lexeme.canonical not in usage.options:
            return _option_not_here(token, usage)
        found.setdefault(lexeme.canonical, []).append(token)
    return found


def _spaced_list(option: Token | None, token: Token) -> ParseError | None:
    """``team:ventas, cobranza``: a list continued after a space, which ends an option."""
    if option is None or option.key is None or not option.values or not token.plain:
        return None
    lexeme = _OPTIONS.get(option.key)
    if lexeme is None:
        return None
    button = _LEXICON.get(token.norm)
    if (
        lexeme.canonical == "team" and _NAME.fullmatch(token.norm) and token.norm not in _RESERVED
    ) or (lexeme.canonical == "buttons" and button is not None and button.kind is WordKind.BUTTON):
        joined = f"{option.raw},{token.raw}"
        return _error(
            _(
                "Write a list without spaces, {list}: after a space, {word} is no longer part of "
                "{option}."
            ).format(list=_quote(joined), word=_quote(token.raw), option=_quote(option.raw)),
            word=token.raw,
        )
    return None


def _stray(token: Token, usage: _Usage) -> ParseError:
    """A word where the command takes something else: say what, with a hint when we can guess."""
    shown, norm = token.shown, token.norm
    lexeme = _LEXICON.get(norm)
    after = _("{word} has no place here: {takes}, like {example}.")
    if token.mention is not None:
        if isinstance(token.mention.ref, UserRef | GroupRef):
            message = _(
                "Name one person or user group per command; {word} is another one. Run {verb} "
                "again for it."
            )
        else:
            message = after
    elif token.key is not None:
        message = after
    elif lexeme is not None and lexeme.kind is WordKind.BUTTON:
        message = (
            _(
                "Write the buttons as `buttons:{button}`, not {word} alone "
                "(`buttons:dial,disposition` for several)."
            )
            if "buttons" in usage.options
            else after
        )
    elif norm in _ROLES:
        message = _("One role per command: {word} is a second one. Run {verb} again.")
    elif "team" in usage.options and _TARGET.fullmatch(token.raw):
        message = _(
            "{word}: roles are given over teams, not agent ids. Put the agents in a team "
            "(`/agentbox team create`) and write `team:` and its name."
        )
    elif "team" in usage.options and _NAME.fullmatch(norm) and norm not in _RESERVED:
        message = _(
            "Write the team as `team:{team}` (no space), not {word} alone (`team:{team},otro` "
            "for several)."
        )
    else:
        message = _("I don't understand {word} here: {takes}, like {example}.")
    return _error(
        message.format(
            word=_quote(shown),
            verb=f"`{usage.verb}`",
            takes=usage.takes,
            example=usage.example,
            button=lexeme.canonical if lexeme is not None else "",
            team=norm,
        ),
        word=token.raw,
    )


def _subject(token: Token | None, verb: str, rest: str) -> Subject | ParseError:
    """The person or user group a grant, revoke or roles command is about."""
    example = _example(verb, "@maria", rest)
    if token is None:
        return _error(
            _(
                "Say who: type `@` and pick the person or user group from Slack's autocomplete, "
                "like {example}."
            ).format(example=example)
        )
    shown = _quote(token.shown)
    if token.mention is not None:
        ref = token.mention.ref
        if isinstance(ref, UserRef | GroupRef):
            return ref
        if isinstance(ref, ChannelRef):
            message = _(
                "{word} is a channel: {verb} is about a person or a user group, like {example}."
            )
        else:
            message = _(
                "{word} is not one person or user group: {verb} is about a person or a user "
                "group, like {example}."
            )
        return _error(message.format(word=shown, verb=f"`{verb}`", example=example), word=token.raw)
    if token.plain and token.norm in _ROLES:
        return _error(
            _("Say who before the role {role}, like {example}.").format(
                role=shown, example=example
            ),
            word=token.raw,
        )
    lexeme = _LEXICON.get(token.norm) if token.plain else None
    if (lexeme is not None and lexeme.kind in (WordKind.DISPLAY, WordKind.BUTTON)) or (
        token.plain and _TARGET.fullmatch(token.raw)
    ):
        return _error(
            _(
                "{verb} is about people's roles, so {word} can't follow it. To show or hide "
                "buttons, write `/agentbox hide dial 1001` (`ocultar`, `mostrar`)."
            ).format(verb=f"`{verb}`", word=shown),
            word=token.raw,
        )
    return _error(
        _(
            "{word} is not a mention: type `@` and pick the person or user group from Slack's "
            "autocomplete, so that it becomes one (typing the name is not enough), like "
            "{example}."
        ).format(word=shown, example=example),
        word=token.raw,
    )


_ROLE_LIST = N_("`admin`, `supervisor`, `requester` or `viewer`")


def _role(token: Token, verb: str, subject: str) -> Role | ParseError:
    lexeme = _ROLES.get(token.norm) if token.plain else None
    if lexeme is not None and lexeme.role is not None:
        return lexeme.role
    example = _example(verb, subject, "supervisor team:ventas")
    if token.mention is not None and isinstance(token.mention.ref, UserRef | GroupRef):
        return _error(
            _(
                "Name one person or user group per command; {word} is another one. After the "
                "first comes the role, like {example}."
            ).format(word=_quote(token.shown), example=example),
            word=token.raw,
        )
    if token.key is not None:
        return _error(
            _("Say the role before {word}: {roles}, like {example}.").format(
                word=_quote(token.raw), roles=_(_ROLE_LIST), example=example
            ),
            word=token.raw,
        )
    suggestion = _closest(token.norm, _ROLE_SPELLING) if token.plain else None
    if suggestion:
        message = _("{word} is not a role — did you mean `{suggestion}`?")
    else:
        message = _("{word} is not a role.")
    roles = _("The roles are {roles} (`administrador`, `solicitante`, `observador`).")
    return _error(
        message.format(word=_quote(token.shown), suggestion=suggestion)
        + " "
        + roles.format(roles=_(_ROLE_LIST)),
        word=token.raw,
        suggestion=suggestion,
    )


def _name(token: Token, *, team: bool = True) -> str | ParseError:
    """A team name (or, with ``team=False``, an operation name), normalized, or why the word
    can't be one."""
    word, shown = token.raw, _quote(token.shown)
    if token.mention is not None:
        if team:
            message = _("{word} is a mention; a team is named by a plain word, like `ventas`.")
        else:
            message = _(
                "{word} is a mention; an operation is named by a plain word, like `ventas`."
            )
        return _error(message.format(word=shown), word=word)
    if token.key is not None:
        if team:
            message = _("Write just the team's name, like `ventas`, not {word}.")
        else:
            message = _("Write just the operation's name, like `ventas`, not {word}.")
        return _error(message.format(word=shown), word=word)
    name = token.norm
    if not _NAME.fullmatch(name):
        if team:
            message = _(
                "{word} is not a valid team name: use letters, digits, `-` and `_`, starting "
                "and ending with a letter or a digit, like `ventas` or `ventas-2`."
            )
        else:
            message = _(
                "{word} is not a valid operation name: use letters, digits, `-` and `_`, "
                "starting and ending with a letter or a digit, like `ventas` or `ventas-2`."
            )
        return _error(message.format(word=shown), word=word)
    if len(name) > MAX_NAME_LENGTH:
        if team:
            message = _("{word} is too long for a team name: at most {limit} characters.")
        else:
            message = _("{word} is too long for an operation name: at most {limit} characters.")
        return _error(message.format(word=shown, limit=MAX_NAME_LENGTH), word=word)
    if team and _TARGET.fullmatch(name):
        return _error(
            _(
                "{word} looks like an agent id or range, so it can't name a team: give the name "
                "a letter, like `ventas` or `piso-2`."
            ).format(word=shown),
            word=word,
        )
    if team and name in _RESERVED:
        return _error(
            _(
                "{word} can't name a team: agentbox uses that word. Pick another, like `ventas`."
            ).format(word=shown),
            word=word,
        )
    return name


def _scope(options: Sequence[Token], *, every: bool) -> tuple[str, ...] | ParseError | None:
    """The teams of ``team:`` options, sorted; None (every team) for ``team:*`` when allowed."""
    names: set[str] = set()
    all_teams: Token | None = None
    for option in options:
        if not option.values:
            if every:
                message = _(
                    "{option} needs a team name right after it, like `team:ventas` or `team:*` "
                    "for every team."
                )
            else:
                message = _("{option} needs a team name right after it, like `team:ventas`.")
            return _error(message.format(option=_quote(option.raw)), word=option.raw)
        for value in option.values:
            if value.plain and value.norm in _EVERY_TEAM:
                if not every:
                    return _error(
                        _(
                            "{option} would reach the agents of every team: a show/hide command "
                            "names its teams, like `team:ventas` or `team:ventas,cobranza`."
                        ).format(option=_quote(option.raw)),
                        word=option.raw,
                    )
                all_teams = value
                continue
            name = _name(value)
            if isinstance(name, ParseError):
                return name
            names.add(name)
    if all_teams is not None:
        if names:
            return _error(
                _(
                    "{word} already means every team: write `team:*` alone, or name the teams."
                ).format(word=_quote(all_teams.raw)),
                word=all_teams.raw,
            )
        return ALL_TEAMS
    return tuple(sorted(names))


def _button_scope(options: Sequence[Token]) -> tuple[Button, ...] | ParseError | None:
    """The buttons of ``buttons:`` options, or None when they are all of them."""
    chosen: set[Button] = set()
    for option in options:
        if not option.values:
            return _error(
                _("{option} needs buttons right after it, like `buttons:dial,disposition`.").format(
                    option=_quote(option.raw)
                ),
                word=option.raw,
            )
        for value in option.values:
            lexeme = _LEXICON.get(value.norm) if value.plain else None
            if lexeme is None or lexeme.kind is not WordKind.BUTTON:
                suggestion = _closest(value.norm, _BUTTON_SPELLING) if value.plain else None
                message = _not_a_button(value, suggestion) + " "
                message += _("The buttons are `dial`, `disposition`, `hungup`, or `all`.")
                return _error(message, word=value.raw, suggestion=suggestion)
            chosen.update(lexeme.buttons)
    if chosen == set(_ALL_BUTTONS):
        return None
    return tuple(b for b in _ALL_BUTTONS if b in chosen)


def _not_a_button(token: Token, suggestion: str | None) -> str:
    if suggestion:
        message = _("{word} is not a button — did you mean `{suggestion}`?")
    else:
        message = _("{word} is not a button.")
    return message.format(word=_quote(token.shown), suggestion=suggestion)


def _channels(option: Token) -> list[ChannelRef] | ParseError:
    """The channels of an option like ``approvals:#c`` or ``channels:#a,#b``."""
    key = normalize(option.raw.partition(":")[0])
    if not option.values:
        return _error(
            _("{option} needs a channel right after it, like `{key}:#ventas`.").format(
                option=_quote(option.raw), key=key
            ),
            word=option.raw,
        )
    channels: list[ChannelRef] = []
    for value in option.values:
        if value.mention is not None and isinstance(value.mention.ref, ChannelRef):
            channels.append(value.mention.ref)
        else:
            return _not_a_channel(value)
    return channels


def _not_a_channel(token: Token) -> ParseError:
    return _error(
        _(
            "{word} is not a link to a channel: type `#` and pick the channel from Slack's "
            "autocomplete, so that it becomes one (typing the name is not enough)."
        ).format(word=_quote(token.shown)),
        word=token.raw,
    )


# --------------------------------------------------------------------------- commands


def _parse_grant(verb: str, args: Sequence[Token]) -> Parsed:
    subject = _subject(args[0] if args else None, verb, "supervisor team:ventas")
    if isinstance(subject, ParseError):
        return subject
    label = args[0].shown
    if len(args) < 2:
        return _error(
            _("Say which role to give: {roles}, like {example}.").format(
                roles=_(_ROLE_LIST), example=_example(verb, label, "supervisor team:ventas")
            )
        )
    role = _role(args[1], verb, label)
    if isinstance(role, ParseError):
        return role
    example = _example(verb, label, role.value, "team:ventas buttons:dial")
    usage = _Usage(
        verb, example, ("team", "buttons"), _("after the role come `team:…` and `buttons:…`")
    )
    options = _options(args[2:], usage)
    if isinstance(options, ParseError):
        return options
    team_options, button_options = options.get("team", []), options.get("buttons", [])
    if role is Role.ADMIN:
        if team_options or button_options:
            word = (team_options or button_options)[0].raw
            return _error(
                _(
                    "Admins may do everything on every team, so an `admin` grant takes no "
                    "{word}: {example}. For less, grant `supervisor`, `requester` or `viewer` "
                    "with `team:`."
                ).format(word=_quote(word), example=_example(verb, label, "admin")),
                word=word,
            )
        return GrantCommand(subject, Role.ADMIN, ALL_TEAMS, None)
    if not team_options:
        return _error(
            _("Say which teams: `team:ventas` or `team:*` for all, like {example}.").format(
                example=_example(verb, label, role.value, "team:ventas")
            )
        )
    if button_options and role is Role.VIEWER:
        word = button_options[0].raw
        return _error(
            _(
                "Viewers change no buttons, so a `viewer` grant takes no {word}; `buttons:` "
                "narrows a `supervisor` or `requester` grant."
            ).format(word=_quote(word)),
            word=word,
        )
    teams = _scope(team_options, every=True)
    if isinstance(teams, ParseError):
        return teams
    buttons = _button_scope(button_options) if button_options else None
    if isinstance(buttons, ParseError):
        return buttons
    return GrantCommand(subject, role, teams, buttons)


def _parse_revoke(verb: str, args: Sequence[Token]) -> Parsed:
    subject = _subject(args[0] if args else None, verb, "supervisor team:ventas")
    if isinstance(subject, ParseError):
        return subject
    label, rest = args[0].shown, args[1:]
    role: Role | None = None
    if rest and rest[0].key is None:
        found = _role(rest[0], verb, label)
        if isinstance(found, ParseError):
            return found
        role, rest = found, rest[1:]
    example = _example(verb, label, role.value if role else "supervisor", "team:ventas")
    usage = _Usage(verb, example, ("team",), _("after the role comes only `team:…`"))
    options = _options(rest, usage)
    if isinstance(options, ParseError):
        return options
    team_options = options.get("team", [])
    if role is Role.ADMIN and team_options:
        word = team_options[0].raw
        return _error(
            _("Admins hold every team, so taking `admin` away takes no {word}: {example}.").format(
                word=_quote(word), example=_example(verb, label, "admin")
            ),
            word=word,
        )
    teams = _scope(team_options, every=True) if team_options else ALL_TEAMS
    if isinstance(teams, ParseError):
        return teams
    return RevokeCommand(subject, role, teams)


def _parse_roles(verb: str, args: Sequence[Token]) -> Parsed:
    if not args:
        return RolesCommand(None)
    subject = _subject(args[0], verb, "")
    if isinstance(subject, ParseError):
        return subject
    if len(args) > 1:
        takes = _("{verb} takes one person or group").format(verb=f"`{verb}`")
        usage = _Usage(verb, _example(verb, "@maria"), (), takes)
        return _stray(args[1], usage)
    return RolesCommand(subject)


def _parse_whoami(verb: str, args: Sequence[Token]) -> Parsed:
    if args:
        return _stray(args[0], _Usage(verb, _example(verb), (), _nothing_more(verb)))
    return WhoamiCommand()


def _nothing_more(verb: str) -> str:
    return _("{verb} takes nothing more").format(verb=f"`{verb}`")


_TEAM_ACTIONS = N_("`create`, `add`, `remove`, `show` or `list` (or `set` a team's settings)")


def _parse_team(verb: str, args: Sequence[Token]) -> Parsed:
    if not args:
        return _error(
            _("Say what to do with teams: {actions}, like {example}.").format(
                actions=_(_TEAM_ACTIONS), example=_example(verb, "show ventas")
            )
        )
    head, rest = args[0], args[1:]
    lexeme = _TEAM_VERBS.get(head.norm) if head.plain else None
    if lexeme is None:
        if rest and rest[0].plain and rest[0].norm in _TEAM_VERBS:
            action = _TEAM_VERB_SPELLING[rest[0].norm]
            return _error(
                _("Say what to do before the team's name: {example}.").format(
                    example=_example(verb, action, head.shown)
                )
            )
        suggestion = _closest(head.norm, _TEAM_VERB_SPELLING) if head.plain else None
        if suggestion:
            message = _("I don't understand {word} after {verb} — did you mean `{suggestion}`?")
        else:
            message = _("I don't understand {word} after {verb}.")
        say = _("Say {actions}, like {example}.").format(
            actions=_(_TEAM_ACTIONS), example=_example(verb, "show ventas")
        )
        return _error(
            message.format(word=_quote(head.shown), verb=f"`{verb}`", suggestion=suggestion)
            + " "
            + say,
            word=head.raw,
            suggestion=suggestion,
        )
    action = lexeme.canonical
    said = f"{verb} {_TEAM_VERB_SPELLING[head.norm]}"
    if action == "list":
        if rest:
            return _stray(rest[0], _Usage(said, _example(said), (), _nothing_more(said)))
        return TeamListCommand()
    examples = {
        "create": "ventas 1001-1050 #ventas",
        "add": "ventas 1051-1060",
        "remove": "ventas 1001",
        "show": "ventas",
        "set": "ventas trail off",
    }
    example = _example(said, examples[action])
    if not rest:
        return _error(_("Say which team, like {example}.").format(example=example))
    name = _name(rest[0])
    if isinstance(name, ParseError):
        return name
    if action == "show":
        if len(rest) > 1:
            takes = _("{verb} takes only a team's name").format(verb=f"`{said}`")
            return _stray(rest[1], _Usage(said, example, (), takes))
        return TeamShowCommand(name)
    if action == "create":
        return _parse_team_create(said, name, rest[1:])
    if action == "set":
        return _parse_team_set(said, name, rest[1:])
    usage = _Usage(said, example, (), _("after the team's name come only agent ids and ranges"))
    agents = _members(rest[1:], usage)
    if isinstance(agents, ParseError):
        return agents
    return TeamAddCommand(name, agents) if action == "add" else TeamRemoveCommand(name, agents)


_TEAM_BOUND = N_("one command can name at most {count} agents for a team")


def _members(tokens: Sequence[Token], usage: _Usage) -> tuple[str, ...] | ParseError:
    """The agent ids of ``team add|remove``: ids, ranges and range words, nothing else."""
    targets: list[str] = []
    for token in _join_ranges(tokens):
        if token.plain and _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
        elif token.plain and _is_range_word(token):
            return _misplaced_range_word(token.raw)
        else:
            return _stray(token, usage)
    if not targets:
        return _error(_("Say which agents, like {example}.").format(example=usage.example))
    return _agents(targets, _(_TEAM_BOUND).format(count=MAX_AGENTS))


def _parse_team_create(said: str, name: str, tokens: Sequence[Token]) -> Parsed:
    example = _example(said, name, "1001-1050 #ventas")
    usage = _Usage(
        said,
        example,
        ("approvals", "channels", "operation"),
        _(
            "after the name come its agents, its `#channel`, and optionally "
            "`approvals:#channel`, `channels:#a,#b` and `operation:name`"
        ),
    )
    targets: list[str] = []
    homes: list[Token] = []
    approvals: ChannelRef | None = None
    change_channels: list[ChannelRef] | None = None
    operation: str | None = None
    for token in _join_ranges(tokens):
        if token.mention is not None:
            if isinstance(token.mention.ref, ChannelRef):
                homes.append(token)
                continue
            if isinstance(token.mention.ref, UserRef | GroupRef):
                return _error(
                    _(
                        "{word}: a team is agents and channels; people get roles with `grant`, "
                        "like {example}."
                    ).format(
                        word=_quote(token.shown),
                        example=_example("grant @maria supervisor", f"team:{name}"),
                    ),
                    word=token.raw,
                )
            return _stray(token, usage)
        if token.key is not None:
            lexeme = _OPTIONS.get(token.key)
            if lexeme is None:
                return _unknown_option(token, usage)
            if lexeme.canonical not in usage.options:
                return _option_not_here(token, usage)
            if lexeme.canonical == "operation":
                if len(token.values) != 1:
                    return _error(
                        _("{option}: say one operation, like `operation:default`.").format(
                            option=_quote(token.raw)
                        ),
                        word=token.raw,
                    )
                found = _name(token.values[0], team=False)
                if isinstance(found, ParseError):
                    return found
                if operation is not None and found != operation:
                    return _error(
                        _("A team belongs to one operation; {option} names a second.").format(
                            option=_quote(token.raw)
                        ),
                        word=token.raw,
                    )
                operation = found
                continue
            channels = _channels(token)
            if isinstance(channels, ParseError):
                return channels
            if lexeme.canonical == "channels":
                change_channels = change_channels or []
                for channel in channels:
                    if channel not in change_channels:
                        change_channels.append(channel)
                continue
            if len(set(channels)) > 1 or (approvals is not None and approvals != channels[0]):
                return _error(
                    _("A team has one approvals channel; {option} names another.").format(
                        option=_quote(token.raw)
                    ),
                    word=token.raw,
                )
            approvals = channels[0]
            continue
        if _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
        elif _is_range_word(token):
            return _misplaced_range_word(token.raw)
        elif token.raw.startswith("#"):
            return _not_a_channel(token)
        else:
            return _stray(token, usage)
    if not targets:
        return _error(
            _("Say which agents are in the team, like {example}.").format(example=example)
        )
    agents = _agents(targets, _(_TEAM_BOUND).format(count=MAX_AGENTS))
    if isinstance(agents, ParseError):
        return agents
    if not homes:
        return _error(
            _(
                "Say the team's channel: type `#` and pick it from Slack's autocomplete, like "
                "{example}."
            ).format(example=example)
        )
    home = homes[0].mention.ref if homes[0].mention else None
    assert isinstance(home, ChannelRef)
    for other in homes[1:]:
        if other.mention is not None and other.mention.ref != home:
            return _error(
                _(
                    "A team has one channel, and {first} and {second} are two. For more channels "
                    "that may change its agents, add `channels:#a,#b`."
                ).format(first=_quote(homes[0].shown), second=_quote(other.shown)),
                word=other.raw,
            )
    return TeamCreateCommand(
        name=name,
        agents=agents,
        channel=home,
        approvals=approvals,
        change_channels=tuple(change_channels) if change_channels is not None else None,
        operation=operation,
    )


_SETTING_EXAMPLES: Mapping[TeamSetting, str] = {
    TeamSetting.APPROVALS_CHANNEL: "approvals-channel #ventas-sup",
    TeamSetting.SELF_APPROVAL: "self-approval on",
    TeamSetting.APPROVAL_BUTTONS: "approval-buttons hungup,dial",
    TeamSetting.APPROVAL_OVER: "approval-over 20",
    TeamSetting.TWO_APPROVERS: "two-approvers hungup",
    TeamSetting.APPROVAL_TTL: "approval-ttl 45m",
    TeamSetting.TRAIL: "trail off",
}
_SETTING_LIST = ", ".join(f"`{setting.value}`" for setting in TeamSetting)
MAX_APPROVAL_TTL_MINUTES = 24 * 60


def _parse_team_set(said: str, name: str, tokens: Sequence[Token]) -> Parsed:
    """``team set <name> <setting> <value>``: one setting per command."""
    if not tokens:
        return _error(
            _("Say which setting: {settings}, like {example}.").format(
                settings=_SETTING_LIST, example=_example(said, name, "approval-ttl 45m")
            )
        )
    head, values = tokens[0], tokens[1:]
    lexeme = _SETTINGS.get(head.norm) if head.plain else None
    if lexeme is None:
        suggestion = _closest(head.norm, _SETTING_SPELLING) if head.plain else None
        if suggestion:
            message = _("{word} is not a team setting — did you mean `{suggestion}`?")
        else:
            message = _("{word} is not a team setting.")
        settings = _("The settings are {settings}.").format(settings=_SETTING_LIST)
        return _error(
            message.format(word=_quote(head.shown), suggestion=suggestion) + " " + settings,
            word=head.raw,
            suggestion=suggestion,
        )
    setting = TeamSetting(lexeme.canonical)
    typed = _SETTING_SPELLING[head.norm]
    example = _example(said, name, _SETTING_EXAMPLES[setting])
    value = _setting_value(setting, typed, values, example)
    if isinstance(value, ParseError):
        return value
    return TeamSetCommand(name, setting, value)


def _setting_value(
    setting: TeamSetting, typed: str, values: Sequence[Token], example: str
) -> TeamSettingValue | ParseError:
    words = [token.norm for token in values if token.plain]
    unset = len(values) == 1 and words == [values[0].norm] and words[0] in _UNSET_WORDS
    if not values:
        return _error(
            _("Say the value of {setting}, like {example}.").format(
                setting=f"`{typed}`", example=example
            )
        )
    if setting in (TeamSetting.TRAIL, TeamSetting.SELF_APPROVAL):
        if len(values) == 1 and values[0].plain and values[0].norm in _SWITCH_WORDS:
            return _SWITCH_WORDS[values[0].norm]
        return _error(
            _("{setting} is `on` or `off`, not {value}: like {example}.").format(
                setting=f"`{typed}`",
                value=_quote(" ".join(t.shown for t in values)),
                example=example,
            ),
            word=values[0].raw,
        )
    if setting is TeamSetting.APPROVALS_CHANNEL:
        if unset:
            return None
        ref = values[0].mention.ref if values[0].mention is not None else None
        if len(values) == 1 and isinstance(ref, ChannelRef):
            return ref
        if len(values) > 1:
            return _error(
                _("A team has one approvals channel, like {example}.").format(example=example),
                word=values[1].raw,
            )
        return _not_a_channel(values[0])
    if setting in (TeamSetting.APPROVAL_BUTTONS, TeamSetting.TWO_APPROVERS):
        if unset:
            return ()
        chosen: set[Button] = set()
        for token in values:
            lexeme = _LEXICON.get(token.norm) if token.plain else None
            if lexeme is None or lexeme.kind is not WordKind.BUTTON:
                suggestion = _closest(token.norm, _BUTTON_SPELLING) if token.plain else None
                message = _not_a_button(token, suggestion) + " "
                message += _(
                    "{setting} takes `dial`, `disposition`, `hungup` or `all` (or `none`), like "
                    "{example}."
                ).format(setting=f"`{typed}`", example=example)
                return _error(message, word=token.raw, suggestion=suggestion)
            chosen.update(lexeme.buttons)
        return tuple(b for b in _ALL_BUTTONS if b in chosen)
    if setting is TeamSetting.APPROVAL_OVER:
        if unset:
            return None
        if len(values) == 1 and values[0].plain and _ID.fullmatch(values[0].raw):
            number = int(values[0].raw) if len(values[0].raw) <= 6 else MAX_AGENTS + 1
            if number <= MAX_AGENTS:
                return number
        return _error(
            _(
                "{setting} takes a number of agents from 0 to {limit} (or `off`), not {value}: "
                "like {example}."
            ).format(
                setting=f"`{typed}`",
                limit=MAX_AGENTS,
                value=_quote(" ".join(t.shown for t in values)),
                example=example,
            ),
            word=values[0].raw,
        )
    if unset:
        return None
    joined = "".join(words) if len(words) == len(values) else ""
    seconds = _word_seconds(joined) if joined else None
    shown = _quote(" ".join(t.shown for t in values))
    if seconds is None or seconds % 60:
        return _error(
            _(
                "{setting} takes whole minutes or hours, like `45m` or `2h` (or `default`), not "
                "{value}: like {example}."
            ).format(setting=f"`{typed}`", value=shown, example=example),
            word=values[0].raw,
        )
    if not 1 <= seconds // 60 <= MAX_APPROVAL_TTL_MINUTES:
        return _error(
            _("{value} is out of range: a request waits from 1 minute to 24 hours.").format(
                value=shown
            ),
            word=values[0].raw,
        )
    return seconds // 60


def _parse_undo(verb: str, args: Sequence[Token]) -> Parsed:
    if args:
        flag = _flag(args[0])
        if flag is not None and flag.lexeme.canonical == "--dry-run":
            return _error(
                _(
                    "{verb} has no dry run: see your last change first with `/agentbox history`, "
                    "then {example}. ({flag} goes with a show/hide change.)"
                ).format(verb=f"`{verb}`", example=_example(verb), flag=_quote(args[0].raw)),
                word=args[0].raw,
            )
        return _stray(args[0], _Usage(verb, _example(verb), (), _nothing_more(verb)))
    return UndoCommand()


@dataclass(frozen=True)
class _Query:
    """The targets (and ``--limit``) of ``history`` or ``status``."""

    agents: tuple[str, ...]
    teams: tuple[str, ...]
    limit: int | None


_LIMIT_EXAMPLE = "`--limit 50`"


def _limit(word: str, value: str | None, previous: int | None) -> int | ParseError:
    """The number of ``--limit N`` (``word`` as typed, for messages)."""
    if value is None or not _ID.fullmatch(value) or not 1 <= int(value) <= MAX_HISTORY_LIMIT:
        return _error(
            _("{word} takes a number from 1 to {limit}, like {example}.").format(
                word=_quote(word), limit=MAX_HISTORY_LIMIT, example=_LIMIT_EXAMPLE
            ),
            word=word,
        )
    if previous is not None and previous != int(value):
        return _error(
            _("Say one limit; {word} is a second one.").format(word=_quote(word)), word=word
        )
    return int(value)


def _query(tokens: Sequence[Token], usage: _Usage, *, limit: bool) -> _Query | ParseError:
    """Agent ids and ranges, ``team:`` (no ``team:*``) and, with ``limit``, ``--limit N``."""
    targets: list[str] = []
    teams: set[str] = set()
    count: int | None = None
    joined = _join_ranges(tokens)
    index = 0
    while index < len(joined):
        token = joined[index]
        index += 1
        if token.plain and _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
            continue
        if token.plain and _is_range_word(token):
            return _misplaced_range_word(token.raw)
        flag = _flag(token)
        if flag is not None and flag.lexeme.canonical == "--limit" and limit:
            value = flag.value
            if value is None and index < len(joined) and joined[index].plain:
                value, index = joined[index].raw, index + 1
            found = _limit(token.raw if flag.value is not None else flag.name, value, count)
            if isinstance(found, ParseError):
                return found
            count = found
            continue
        if flag is not None and flag.lexeme.canonical == "--dry-run":
            return _error(
                _("{word} goes with a show/hide change; {verb} changes nothing anyway.").format(
                    word=_quote(token.raw), verb=f"`{usage.verb}`"
                ),
                word=token.raw,
            )
        if token.key is not None:
            lexeme = _OPTIONS.get(token.key)
            if lexeme is None:
                return _unknown_option(token, usage)
            if lexeme.canonical not in usage.options:
                return _option_not_here(token, usage)
            if lexeme.canonical == "limit":
                value = token.values[0].raw if len(token.values) == 1 else None
                found = _limit(token.raw, value, count)
                if isinstance(found, ParseError):
                    return found
                count = found
                continue
            if any(value.plain and value.norm in _EVERY_TEAM for value in token.values):
                if limit:
                    message = _(
                        "{option}: without a target, {verb} already covers every team you may see."
                    )
                else:
                    message = _(
                        "{option}: {verb} names its agents or teams; for every agent with hidden "
                        "buttons, {example}."
                    )
                return _error(
                    message.format(
                        option=_quote(token.raw),
                        verb=f"`{usage.verb}`",
                        example=_example(usage.verb, "hidden"),
                    ),
                    word=token.raw,
                )
            names = _scope([token], every=False)
            if isinstance(names, ParseError):
                return names
            assert names is not None  # every=False never yields "every team"
            teams.update(names)
            continue
        previous = joined[index - 2] if index > 1 else None
        if (spaced := _spaced_list(previous, token)) is not None:
            return spaced
        if token.plain and (token.norm in _ROLES or _LEXICON.get(token.norm) is not None):
            return _error(
                _("I don't understand {word} here: {takes}, like {example}.").format(
                    word=_quote(token.raw), takes=usage.takes, example=usage.example
                ),
                word=token.raw,
            )
        return _stray(token, usage)
    bound = _("one command can name at most {count}").format(count=MAX_AGENTS)
    agents = _agents(targets, bound) if targets else ()
    if isinstance(agents, ParseError):
        return agents
    return _Query(agents, tuple(sorted(teams)), count)


def _parse_history(verb: str, args: Sequence[Token]) -> Parsed:
    usage = _Usage(
        verb,
        _example(verb, "team:ventas --limit 50"),
        ("team", "limit"),
        _("{verb} takes agent ids, `team:…` and `--limit N`").format(verb=f"`{verb}`"),
    )
    query = _query(args, usage, limit=True)
    if isinstance(query, ParseError):
        return query
    limit = DEFAULT_HISTORY_LIMIT if query.limit is None else query.limit
    return HistoryCommand(query.agents, query.teams, limit)


def _parse_status(verb: str, args: Sequence[Token]) -> Parsed:
    hidden = [arg for arg in args if arg.plain and arg.norm in _STATUS_WORDS]
    if hidden:
        said = f"{verb} {hidden[0].raw}"
        others = [arg for arg in args if arg is not hidden[0]]
        if others:
            return _error(
                _(
                    "{command} lists every agent with hidden buttons and takes nothing more, so "
                    "{word} has no place in it. For some agents' buttons: {agents} or {team}."
                ).format(
                    command=_quote(said),
                    word=_quote(others[0].shown),
                    agents=_example(verb, "1001"),
                    team=_example(verb, "team:ventas"),
                ),
                word=others[0].raw,
            )
        return StatusCommand(hidden_only=True)
    usage = _Usage(
        verb,
        _example(verb, "1001"),
        ("team",),
        _("{verb} takes agent ids and `team:…`, or `hidden` alone").format(verb=f"`{verb}`"),
    )
    query = _query(args, usage, limit=False)
    if isinstance(query, ParseError):
        return query
    if not query.agents and not query.teams:
        return _error(
            _(
                "Say which agents or team, like {agents} or {team}; {hidden} lists every agent "
                "with hidden buttons."
            ).format(
                agents=_example(verb, "1001"),
                team=_example(verb, "team:ventas"),
                hidden=_example(verb, "hidden"),
            )
        )
    return StatusCommand(query.agents, query.teams)


LANGUAGE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("en", ("en", "english", "inglés")),
    ("es", ("es", "español", "spanish", "castellano")),
    (AUTOMATIC_LANGUAGE, ("auto", "automático", "slack")),
)
"""What ``lang`` takes, as (value, aliases)."""

_LANGUAGES: Mapping[str, str] = {
    normalize(alias): value for value, aliases in LANGUAGE_WORDS for alias in aliases
}


def _parse_lang(verb: str, args: Sequence[Token]) -> Parsed:
    if not args:
        return LanguageCommand()
    word = args[0]
    language = _LANGUAGES.get(word.norm) if word.plain else None
    if language is None:
        return ParseError(
            _(
                "agentbox speaks `en` (English) and `es` (español), not {word}. Say {example}, "
                "or {auto} to follow your Slack language again."
            ).format(
                word=_quote(word.shown), example=_example(verb, "es"), auto=_example(verb, "auto")
            ),
            word=word.raw,
        )
    if len(args) > 1:
        return ParseError(
            _("{verb} takes one language, like {example}; {word} has no place in it.").format(
                verb=f"`{verb}`", example=_example(verb, "es"), word=_quote(args[1].shown)
            ),
            word=args[1].raw,
        )
    return LanguageCommand(language)


_PARSERS = {
    "grant": _parse_grant,
    "revoke": _parse_revoke,
    "roles": _parse_roles,
    "whoami": _parse_whoami,
    "team": _parse_team,
    "undo": _parse_undo,
    "history": _parse_history,
    "status": _parse_status,
    "lang": _parse_lang,
}
_TOPICS = {
    "grant": Section.GRANTS,
    "revoke": Section.GRANTS,
    "roles": Section.GRANTS,
    "whoami": Section.VIEWER,
    "team": Section.TEAMS,
    "undo": Section.CHANGE,
    "history": Section.VIEWER,
    "status": Section.VIEWER,
    "lang": Section.VIEWER,
}


def _leading_verb(tokens: Sequence[Token]) -> tuple[Lexeme, int, str] | None:
    """The verb the command starts with, the number of words it took, and its best spelling."""
    for length in (2, 1):  # the longest alias first: `quién soy`
        words = tokens[:length]
        if len(words) == length and all(word.plain for word in words):
            key = " ".join(word.norm for word in words)
            if (lexeme := _VERBS.get(key)) is not None:
                return lexeme, length, _VERB_SPELLING[key]
    return None


def parse(text: str) -> Parsed:
    """Parse the text after ``/agentbox``. Never raises: the unexpected becomes a ParseError."""
    try:
        rest, reason = _extract_reason(text)  # first: its words are no part of the command
        tokens = tokenize(rest)
        verb = _leading_verb(tokens)
        if (not tokens and reason is None) or any(
            token.plain
            and (lexeme := _LEXICON.get(token.norm)) is not None
            and lexeme.kind is WordKind.HELP
            for token in tokens
        ):
            return HelpCommand(_TOPICS[verb[0].canonical] if verb else None)
        if isinstance(reason, ParseError):
            return reason
        if verb is None:
            return _parse_change(tokens, reason)
        lexeme, length, said = verb
        if reason is not None:
            return _error(
                _(
                    "{flag} goes with a show/hide change, like {example}; {verb} takes no reason."
                ).format(
                    flag=_quote(reason.flag),
                    example=f'`{COMMAND} hide dial 1001 {reason.flag} "…"`',
                    verb=f"`{said}`",
                ),
                word=reason.flag,
            )
        return _PARSERS[lexeme.canonical](said, tokens[length:])
    except Exception:  # a bug here must not become an error page for the user
        _log.exception("grammar failed on %r", text)
        return ParseError(_("Sorry, I could not read that command.") + " " + _(_HELP_HINT))
