"""Configuration as code: ``agentbox apply agentbox.yml [--dry-run] [--prune]``.

A YAML file declares wolkvox operations, teams and grants. ``apply`` compares it with the
database, lists the differences (the *plan*) and carries them out through
:class:`storage.directory.Directory`, one audited step at a time. Applying the same file again
finds nothing to do and writes nothing (not even an audit row). ``--dry-run`` shows the plan and
writes nothing. A token is never written in the file, never shown in a plan and never logged: the
file names the environment variable that holds it, and the plan says only "token changed".

The file (see ``agentbox.example.yml``)::

    operations:                        # optional: wolkvox operations (tenants) stored in the db
      - name: bogota                   # team-name rules; not "default" (that one is the
        server: "0042"                 #   WOLKVOX_SERVER/WOLKVOX_TOKEN of the environment)
        token_env: WOLKVOX_TOKEN_BOGOTA  # the environment variable holding the token
        concurrency: 1                 # optional, 1 (default) or 2 calls in flight per token
    teams:                             # optional
      - name: ventas
        operation: bogota              # optional: default "default"
        agents: ["1001-1050", "1060"]  # ids and inclusive ranges (a list, or one "a, b-c" text)
        channel: C0123VENTAS           # Slack channel id: the team's trail
        approvals: C0123SUPS           # optional: where requests for approval go
        change_channels: [C0123OPS]    # optional: the only channels its changes are accepted from
        # The policy, as `team set` sets it; every key optional, left out: its default.
        trail: on                      # on (default) or off: a line in channel per change
        self_approval: off             # on or off (default): may approvers approve their own
        approval_buttons: [hungup]     # changes to these need approval (default none)
        approval_over: 20              # …and changes to more of its agents: 0-500 (default off)
        two_approvers: [hungup]        # requests touching these need two approvers (default none)
        approval_ttl: 45m              # how long a request waits: 1m-24h, whole minutes (45m, 2h,
                                       #   1h30m); default: AGENTBOX_APPROVAL_TTL_MINUTES
    grants:                            # optional
      - user: U0123ABC                 # or  usergroup: S0123ABC
        role: supervisor               # admin, supervisor, requester, viewer (or a Spanish alias)
        teams: [ventas]                # or "*" (quoted) for every team; admin grants take none
        buttons: [dial, disposition]   # optional, supervisor and requester only; default all

**What is reconciled.** The file is the desired state of what it names:

- an *operation* in the file is created, or updated when its server, concurrency or token differ;
  operations the file does not name are left alone (none is ever deleted);
- a *team* in the file is created, or brought to exactly the file's agents, channels and policy
  (agents not listed are removed from it, ``approvals``/``change_channels`` left out mean none, and
  a policy key left out means its default: ``trail`` on, ``self_approval`` off, no
  ``approval_buttons``, no ``approval_over``, no ``two_approvers``, the deployment's
  ``approval_ttl``; so a setting made with ``team set`` on a team the file names is undone by the
  next apply unless the file declares it too); teams the file does not name are left alone (none
  is ever deleted), and a team cannot move to another operation;
- a *grant* in the file is added when no identical grant (same subject, role, teams and buttons)
  exists. Grants not in the file are kept, unless ``--prune``: then every grant not in the file is
  removed (only ``AGENTBOX_ADMINS``, which is not a grant, survives it). Changing a grant's teams in
  the file therefore adds a second grant unless ``--prune`` is given. So that a file without grants
  cannot revoke everyone by accident, ``--prune`` requires a ``grants:`` section (``grants: []``
  to really remove every grant).

A team or grant may refer to an operation or team stored already, not only to those in the file.

**Validation.** Everything is checked before anything is written, and every problem is reported
with its line (``agentbox.yml:12: team 'ventas': agent range '1050-1001' runs backwards …``):
YAML syntax, unknown and missing keys, names (the rules of ``team create``: letters, digits, ``-``
and ``_``, not a word agentbox uses, not shaped like an agent id), Slack ids, agent ids and ranges
(at most :data:`~commands.grammar.MAX_AGENTS` agents per range entry, so a typo cannot expand to
millions), unknown operations and teams, an agent in two teams of one operation (in the file, or in
the file and a stored team the file does not name), a token variable that is unset, concurrency,
a team's policy (the values and limits of ``team set``: ``on``/``off`` or ``true``/``false``;
buttons by name or alias, ``none`` or ``[]`` for none; ``approval_over`` a whole number from 0 to
:data:`~commands.grammar.MAX_AGENTS`, or ``off``; ``approval_ttl`` whole minutes from ``1m`` to
``24h``, like ``45m``, ``2h`` or ``1h30m``, or ``default``), and the rules of roles (``admin``
takes no teams nor buttons; the others need teams; ``viewer`` takes no buttons). With any error,
nothing is applied.

**Order and failure.** The plan runs in this order: operations; agents removed from teams; teams
created; agents added; team channels updated; team policies set; grants added; grants removed.
Removing first lets agents move between teams of the file. A team's policy is a step of its own
(``set policy of team 'ventas': approval-over none → 20; trail on → off``), written as ``team set``
writes it; a team the file creates starts with the default policy, so it gets this step too when
the file declares anything else. Each step is its own transaction with its own audit row (actions
``operation.put``, ``team.create``, ``team.remove``, ``team.add``, ``team.update``, ``team.set``,
``grant.add``, ``grant.remove``; decision ``allowed``; the actor as user id). Should a step fail
(another admin changed a team meanwhile), :class:`ApplyFailed` says which steps were done; applying
the file again finishes the work.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from commands.grammar import (
    _SWITCH_WORDS,
    _UNSET_WORDS,
    MAX_AGENTS,
    MAX_APPROVAL_TTL_MINUTES,
    MAX_NAME_LENGTH,
    ROLE_WORDS,
    VOCABULARY,
    ParseError,
    Role,
    TeamSetting,
    WordKind,
    _word_seconds,
    is_reserved,
    normalize,
    parse_targets,
)
from commands.operations import DEFAULT_OPERATION
from commands.timed import describe_duration
from storage.audit import AuditEntry
from storage.directory import (
    Directory,
    DirectoryError,
    GrantRecord,
    OperationRecord,
    TeamPolicy,
    TeamRecord,
)
from storage.models import Decision
from storage.secrets import SecretsError
from wolkvox.dispatcher import MAX_CONCURRENCY
from wolkvox.model import Button

__all__ = [
    "DEFAULT_ACTOR",
    "ApplyFailed",
    "ConfigError",
    "ConfigInvalid",
    "PlanStep",
    "apply_file",
    "default_actor",
    "format_plan",
    "plan_file",
]

_log = logging.getLogger(__name__)

DEFAULT_ACTOR: Final = "config-file"
"""The audit user id of changes made from a configuration file when no one better is known."""

_ACTOR_LENGTH = 32
"""The audit and grant tables keep at most this many characters of a user id."""


def default_actor() -> str:
    """``config-file:<OS user>`` (or ``config-file``), short enough for the audit table."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container: the constant will do
        return DEFAULT_ACTOR
    return f"{DEFAULT_ACTOR}:{user}"[:_ACTOR_LENGTH]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ConfigError:
    """One problem in the file: its 1-based line (0: the file as a whole) and what is wrong."""

    line: int
    message: str

    def render(self, path: str | Path) -> str:
        """``agentbox.yml:12: message``, the way compilers report."""
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


class ConfigInvalid(Exception):
    """The file has errors (all of them, sorted by line); nothing was applied."""

    def __init__(self, path: Path, errors: Sequence[ConfigError]) -> None:
        self.path = path
        self.errors: list[ConfigError] = sorted(errors, key=lambda error: error.line)
        super().__init__(self.render())

    def render(self) -> str:
        """One line per error, ready to print."""
        return "\n".join(error.render(self.path) for error in self.errors)


@dataclass(frozen=True)
class PlanStep:
    """One difference between the file and the database; ``description`` holds no secret."""

    kind: str
    """``operation.create``, ``operation.update``, ``team.create``, ``team.remove``,
    ``team.add``, ``team.update``, ``team.set`` (its policy), ``grant.add`` or ``grant.remove``."""
    description: str

    @property
    def symbol(self) -> str:
        """``+`` adds, ``-`` takes away, ``~`` changes."""
        if self.kind.endswith((".create", ".add")):
            return "+"
        return "-" if self.kind.endswith(".remove") else "~"


class ApplyFailed(Exception):
    """A step could not be carried out; the steps in ``done`` were."""

    def __init__(self, done: Sequence[PlanStep], step: PlanStep, reason: str) -> None:
        self.done = list(done)
        self.step = step
        self.reason = reason
        super().__init__(
            f"Could not {step.description}: {reason} ({len(self.done)} earlier change(s) were "
            "applied; fix the cause and apply the file again to finish)."
        )


def format_plan(steps: Sequence[PlanStep], *, applied: bool) -> str:
    """The plan as lines to print: what would change (``--dry-run``) or what changed."""
    if not steps:
        return "No changes: the database already matches the file."
    count = f"{len(steps)} change{'s' if len(steps) != 1 else ''}"
    lines = [f"Applied {count}:" if applied else f"Would apply {count} (dry run):"]
    lines += [f"  {step.symbol} {step.description}" for step in steps]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the desired state


@dataclass(frozen=True)
class _OperationSpec:
    name: str
    server: str
    token_env: str
    token: str = field(repr=False)
    concurrency: int
    line: int


@dataclass(frozen=True)
class _TeamSpec:
    name: str
    operation: str
    agent_lines: Mapping[str, int]
    """Each agent id, with the line of the entry that lists it first."""
    channel: str
    approvals: str | None
    change_channels: tuple[str, ...]
    """Sorted; empty: changes accepted from anywhere."""
    policy: TeamPolicy
    """Its buttons sorted, as :class:`~storage.directory.Directory` stores them."""
    line: int

    @property
    def agents(self) -> frozenset[str]:
        return frozenset(self.agent_lines)


_GrantKey = tuple[str, str, str, tuple[str, ...] | None, tuple[str, ...] | None]
"""(subject type, subject id, role, sorted teams or None, sorted buttons or None)."""


@dataclass(frozen=True)
class _GrantSpec:
    key: _GrantKey
    line: int


@dataclass(frozen=True)
class _Reference:
    """A name the file uses that must exist, in the file or in the database."""

    label: str
    """Who uses it: ``team 'ventas'``, ``grant of user U1``."""
    name: str
    line: int
    team: str | None = None
    """For an operation: the team it is the operation of (None if the team's name is wrong)."""


@dataclass
class _Config:
    operations: list[_OperationSpec] = field(default_factory=list)
    teams: list[_TeamSpec] = field(default_factory=list)
    grants: list[_GrantSpec] = field(default_factory=list)
    declared_operations: set[str] = field(default_factory=set)
    """Every operation name the file declares, even one whose entry has errors."""
    declared_teams: dict[str, int] = field(default_factory=dict)
    """Every team name the file declares, even one whose entry has errors, with its line."""
    has_grants: bool = False
    """Whether the file has a ``grants:`` section (``--prune`` needs one)."""
    operation_refs: list[_Reference] = field(default_factory=list)
    """The operation of every team, even one whose entry has other errors."""
    team_refs: list[_Reference] = field(default_factory=list)
    """The teams of every grant, even one with other errors."""


# --------------------------------------------------------------------------- reading the YAML

_NULL = "tag:yaml.org,2002:null"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")  # as commands.grammar's team names
_AGENT_LIKE = re.compile(r"[0-9]+(?:-[0-9]+)?")
_AGENT = re.compile(r"[0-9]+")
_AGENT_RANGE = re.compile(r"([0-9]+)\s*-\s*([0-9]+)")
_MAX_AGENT_ID_DIGITS = 15  # as commands.grammar
_SERVER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as wolkvox.client: it becomes part of a host name
_TOKEN = re.compile(r"[\x21-\x7e]+")  # as wolkvox.client: visible ASCII, it travels in a header
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_USER = re.compile(r"[UW][A-Z0-9]{1,31}")  # the tables keep 32 characters of a Slack id
_USERGROUP = re.compile(r"S[A-Z0-9]{1,31}")
_CHANNEL = re.compile(r"[CG][A-Z0-9]{1,31}")
_EVERY_TEAM = ("*", "all")

_ROLES: Mapping[str, Role] = {
    normalize(alias): lexeme.role
    for lexeme, aliases in ROLE_WORDS
    if lexeme.role is not None
    for alias in aliases
}
_BUTTONS: Mapping[str, tuple[Button, ...]] = {
    normalize(alias): lexeme.buttons
    for lexeme, aliases in VOCABULARY
    if lexeme.kind is WordKind.BUTTON
    for alias in aliases
}
_ALL_BUTTONS: tuple[str, ...] = tuple(sorted(button.value for button in Button))

_TOP_KEYS = ("operations", "teams", "grants")
_OPERATION_KEYS = ("name", "server", "token_env", "concurrency")
_POLICY_KEYS = (
    "trail",
    "self_approval",
    "approval_buttons",
    "approval_over",
    "two_approvers",
    "approval_ttl",
)
"""A team's policy, as ``team set`` sets it (trail, self-approval, approval-buttons, …)."""
_TEAM_KEYS = (
    "name",
    "operation",
    "agents",
    "channel",
    "approvals",
    "change_channels",
    *_POLICY_KEYS,
)
_GRANT_KEYS = ("user", "usergroup", "role", "teams", "buttons")
_KEY_HINTS = {
    "token": "never write a token in the file: put it in an environment variable and name the "
    "variable with token_env",
}


def _line(node: Node) -> int:
    mark = node.start_mark
    return mark.line + 1 if mark is not None else 0


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "empty" if node.tag == _NULL else "a single value"


def _cut(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _shown(value: str) -> str:
    """A value of the file in quotes, cut short."""
    return repr(_cut(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _agent_order(agent: str) -> tuple[int, int]:
    return int(agent), len(agent)


def _runs(agents: Iterable[str], limit: int = 12) -> str:
    """``1001-1050, 1060``: ids of consecutive numbers (and equal width) written as ranges."""
    runs: list[list[str]] = []
    for agent in sorted(agents, key=_agent_order):
        last = runs[-1][-1] if runs else None
        if last is not None and int(agent) == int(last) + 1 and len(agent) == len(last):
            runs[-1].append(agent)
        else:
            runs.append([agent])
    words = [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]
    more = f" and {len(words) - limit} more" if len(words) > limit else ""
    return ", ".join(words[:limit]) + more


def _label(node: Node, what: str, keys: Sequence[str]) -> str:
    """How messages name an entry: by its name or subject as written, else by its kind alone."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key not in keys or not isinstance(value_node, ScalarNode):
                continue
            value = str(value_node.value).strip()
            if value_node.tag == _NULL or not value:
                continue
            if key == "name":
                return f"{what} {_shown(normalize(value))}"
            return f"{what} of {key} {_cut(value)}"
    return what


class _Reader:
    """Walks the composed YAML tree into specs, recording every error with its line."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[ConfigError] = []
        self.config = _Config()

    def error(self, where: Node | int, message: str) -> None:
        line = where if isinstance(where, int) else _line(where)
        self.errors.append(ConfigError(line, message))

    # --- generic shapes

    def fields(
        self,
        node: Node,
        what: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> dict[str, Node] | None:
        """The keys of a mapping (unknown, repeated and missing ones are errors)."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping of keys like `name: …`, not {_kind(node)}")
            return None
        found: dict[str, Node] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, f"{what}: a key must be a plain word, not {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in found:
                self.error(key_node, f"{what}: {key!r} is given twice (first on line {lines[key]})")
                continue
            if key not in allowed:
                self.error(key_node, f"{what}: {self.unknown_key(key, allowed)}")
                continue
            found[key], lines[key] = value_node, _line(key_node)
        for key in required:
            if key not in found:
                self.error(node, f"{what}: {key!r} is missing")
        return found

    @staticmethod
    def unknown_key(key: str, allowed: Sequence[str]) -> str:
        if key in _KEY_HINTS:
            return f"{key!r} is not allowed: {_KEY_HINTS[key]}"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "the keys are " + ", ".join(allowed)
        return f"unknown key {_shown(key)}: {hint}"

    def items(self, node: Node, what: str) -> list[Node]:
        """The entries of a list (an empty value is an empty list)."""
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return []
        self.error(node, f"{what} must be a list (entries start with `- `), not {_kind(node)}")
        return []

    def scalars(self, node: Node, what: str) -> list[ScalarNode]:
        """A list of single values, or one single value standing for a list of one."""
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            return [node]
        found: list[ScalarNode] = []
        for item in self.items(node, what):
            if isinstance(item, ScalarNode) and item.tag != _NULL:
                found.append(item)
            else:
                self.error(item, f"{what}: each entry must be a single value, not {_kind(item)}")
        return found

    def text(self, node: Node, what: str) -> str | None:
        """A single value as written (``0042`` stays ``0042``: the raw text, not YAML's number)."""
        if not isinstance(node, ScalarNode):
            self.error(node, f"{what} must be a single value, not {_kind(node)}")
            return None
        value = str(node.value).strip()
        if node.tag == _NULL or not value:
            self.error(node, f"{what} is empty")
            return None
        return value

    def name(self, node: Node, what: str, *, team: bool) -> str | None:
        """A team or operation name (the rules of ``team create``), lowercased."""
        raw = self.text(node, what)
        if raw is None:
            return None
        name = normalize(raw)
        if not _NAME.fullmatch(name):
            self.error(
                node,
                f"{what} {_shown(raw)} is not a valid name: use letters, digits, '-' and '_', "
                "starting and ending with a letter or a digit, like 'ventas' or 'piso-2'",
            )
        elif len(name) > MAX_NAME_LENGTH:
            self.error(node, f"{what} {_shown(raw)} is longer than {MAX_NAME_LENGTH} characters")
        elif team and _AGENT_LIKE.fullmatch(name):
            self.error(
                node,
                f"{what} {_shown(raw)} looks like an agent id or range: give it a letter, "
                "like 'piso-2'",
            )
        elif team and is_reserved(name):
            self.error(
                node, f"{what} {_shown(raw)} is a word agentbox uses; pick another, like 'ventas'"
            )
        else:
            return name
        return None

    def slack_id(self, node: Node, what: str, pattern: re.Pattern[str], example: str) -> str | None:
        value = self.text(node, what)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            self.error(
                node,
                f"{what} {_shown(value)} is not a Slack id: write the id, like {example!r} "
                "(Slack shows it at the bottom of the channel's or member's details), not a name",
            )
            return None
        return value

    # --- the file

    def read(self, root: Node | None) -> None:
        if root is None:
            return  # an empty file declares nothing
        top = self.fields(root, "the file", _TOP_KEYS)
        if top is None:
            return
        if "operations" in top:
            for node in self.items(top["operations"], "operations"):
                self.operation(node)
        if "teams" in top:
            for node in self.items(top["teams"], "teams"):
                self.team(node)
        if "grants" in top:
            self.config.has_grants = True
            for node in self.items(top["grants"], "grants"):
                self.grant(node)
        self.agent_conflicts()

    def operation(self, node: Node) -> None:
        label = _label(node, "operation", ("name",))
        fields = self.fields(node, label, _OPERATION_KEYS, ("name", "server", "token_env"))
        if fields is None:
            return
        name = self.name(fields["name"], "operation name", team=False) if "name" in fields else None
        ok = name is not None
        if name is not None:
            if name == DEFAULT_OPERATION:
                self.error(
                    fields["name"],
                    f"{label} is the one of WOLKVOX_SERVER and WOLKVOX_TOKEN; teams may use it, "
                    "but the file cannot declare it: give this operation another name",
                )
                ok = False
            elif name in self.config.declared_operations:
                self.error(fields["name"], f"{label} is declared twice")
                ok = False
            else:
                self.config.declared_operations.add(name)
        server = self.text(fields["server"], f"{label}: server") if "server" in fields else None
        if server is not None and not _SERVER.fullmatch(server):
            self.error(
                fields["server"],
                f"{label}: server {_shown(server)} is not a wolkvox server code: letters, digits, "
                "'-' and '_', like \"0042\"",
            )
            server = None
        env = self.token_env(fields["token_env"], label) if "token_env" in fields else None
        token = self.token(fields["token_env"], label, env) if env is not None else None
        concurrency = 1
        if "concurrency" in fields:
            found = self.concurrency(fields["concurrency"], label)
            ok = ok and found is not None
            concurrency = found or 1
        if ok and name is not None and server is not None and env is not None and token:
            line = _line(node)
            self.config.operations.append(
                _OperationSpec(name, server, env, token, concurrency, line)
            )

    def token_env(self, node: Node, label: str) -> str | None:
        value = self.text(node, f"{label}: token_env")
        if value is not None and not _ENV_NAME.fullmatch(value):
            # Not echoed: what stands there may well be the token itself.
            self.error(
                node,
                f"{label}: token_env must be the name of an environment variable, in capitals, "
                "digits and '_' (like WOLKVOX_TOKEN_BOGOTA); the token itself never goes in "
                "the file",
            )
            return None
        return value

    def token(self, node: Node, label: str, env: str) -> str | None:
        value = self.environ.get(env)
        if value is None:
            self.error(node, f"{label}: the environment variable {env} (token_env) is not set")
            return None
        token = value.strip()
        if not token:
            self.error(node, f"{label}: the environment variable {env} (token_env) is empty")
            return None
        if not _TOKEN.fullmatch(token):
            self.error(
                node,
                f"{label}: the environment variable {env} holds characters a wolkvox token "
                "cannot have (only visible ASCII, no spaces inside)",
            )
            return None
        return token

    def concurrency(self, node: Node, label: str) -> int | None:
        value = self.text(node, f"{label}: concurrency")
        if value is None:
            return None
        if not value.isdecimal() or not 1 <= int(value) <= MAX_CONCURRENCY:
            self.error(
                node,
                f"{label}: concurrency {_shown(value)} must be a whole number from 1 to "
                f"{MAX_CONCURRENCY} (wolkvox's limit of calls in flight per token)",
            )
            return None
        return int(value)

    def team(self, node: Node) -> None:
        label = _label(node, "team", ("name",))
        fields = self.fields(node, label, _TEAM_KEYS, ("name", "agents", "channel"))
        if fields is None:
            return
        name = self.name(fields["name"], "team name", team=True) if "name" in fields else None
        ok = name is not None
        if name is not None:
            if name in self.config.declared_teams:
                first = self.config.declared_teams[name]
                self.error(fields["name"], f"{label} is declared twice (first on line {first})")
                ok = False
            else:
                self.config.declared_teams[name] = _line(node)
        operation: str | None = DEFAULT_OPERATION
        if "operation" in fields:
            operation = self.name(fields["operation"], f"{label}: operation", team=False)
        if operation is not None:
            line = _line(fields.get("operation", node))
            self.config.operation_refs.append(_Reference(label, operation, line, name))
        agents = self.agents(fields["agents"], label) if "agents" in fields else None
        channel = (
            self.slack_id(fields["channel"], f"{label}: channel", _CHANNEL, "C0123ABC")
            if "channel" in fields
            else None
        )
        approvals: str | None = None
        if "approvals" in fields:
            approvals = self.slack_id(
                fields["approvals"], f"{label}: approvals", _CHANNEL, "C0123ABC"
            )
            ok = ok and approvals is not None
        change_channels: list[str] = []
        if "change_channels" in fields:
            what = f"{label}: change_channels"
            nodes = self.scalars(fields["change_channels"], what)
            for item in nodes:
                found = self.slack_id(item, what, _CHANNEL, "C0123ABC")
                ok = ok and found is not None
                if found is not None:
                    change_channels.append(found)
        policy = self.policy(fields, label)
        if (
            ok
            and name is not None
            and operation
            and agents
            and channel is not None
            and policy is not None
        ):
            self.config.teams.append(
                _TeamSpec(
                    name=name,
                    operation=operation,
                    agent_lines=agents,
                    channel=channel,
                    approvals=approvals,
                    change_channels=tuple(sorted(set(change_channels))),
                    policy=policy,
                    line=_line(node),
                )
            )

    # --- a team's policy: the values and limits of `team set` (commands/grammar.py)

    def policy(self, fields: Mapping[str, Node], label: str) -> TeamPolicy | None:
        """The team's policy; a key left out is its default. None if any value is wrong."""
        default = TeamPolicy()
        ok = True
        trail, self_approval = default.trail_enabled, default.self_approval
        if "trail" in fields:
            found = self.switch(fields["trail"], f"{label}: trail")
            ok = ok and found is not None
            trail = found if found is not None else trail
        if "self_approval" in fields:
            found = self.switch(fields["self_approval"], f"{label}: self_approval")
            ok = ok and found is not None
            self_approval = found if found is not None else self_approval
        buttons: dict[str, tuple[str, ...]] = {}
        for key in ("approval_buttons", "two_approvers"):
            if key in fields:
                chosen = self.policy_buttons(fields[key], f"{label}: {key}")
                ok = ok and chosen is not None
                buttons[key] = chosen or ()
        over, over_ok = (
            self.approval_over(fields["approval_over"], f"{label}: approval_over")
            if "approval_over" in fields
            else (None, True)
        )
        ttl, ttl_ok = (
            self.approval_ttl(fields["approval_ttl"], f"{label}: approval_ttl")
            if "approval_ttl" in fields
            else (None, True)
        )
        if not (ok and over_ok and ttl_ok):
            return None
        return TeamPolicy(
            trail_enabled=trail,
            self_approval=self_approval,
            approval_buttons=buttons.get("approval_buttons", ()),
            approval_over_agents=over,
            two_approvers_buttons=buttons.get("two_approvers", ()),
            approval_ttl_minutes=ttl,
        )

    def switch(self, node: Node, what: str) -> bool | None:
        """``on``/``off`` (or ``true``/``false``, ``yes``/``no``: what ``team set`` takes)."""
        value = self.text(node, what)
        if value is None:
            return None
        found = _SWITCH_WORDS.get(normalize(value))
        if found is None:
            self.error(node, f"{what} is on or off (or true or false), not {_shown(value)}")
        return found

    def policy_buttons(self, node: Node, what: str) -> tuple[str, ...] | None:
        """Buttons, sorted (``all`` is every one; empty, ``[]`` or ``none``: none)."""
        entries = self.scalars(node, what)
        if len(entries) == 1 and normalize(str(entries[0].value).strip()) in _UNSET_WORDS:
            return ()
        chosen, ok = self.button_names(entries, what, " (or none)")
        return tuple(sorted(chosen)) if ok else None

    def button_names(
        self, entries: Sequence[ScalarNode], what: str, or_else: str = ""
    ) -> tuple[set[str], bool]:
        """The buttons ``entries`` name (``all``: every one), and whether each names some."""
        chosen: set[str] = set()  # plain values: a StrEnum hashes unlike its value
        ok = True
        for entry in entries:
            value = str(entry.value).strip()
            buttons = _BUTTONS.get(normalize(value))
            if buttons is None:
                self.error(
                    entry,
                    f"{what}: {_shown(value)} is not a button: dial, disposition, hungup or "
                    f"all{or_else}",
                )
                ok = False
            else:
                chosen.update(button.value for button in buttons)
        return chosen, ok

    def approval_over(self, node: Node, what: str) -> tuple[int | None, bool]:
        """A number of agents, 0 to :data:`MAX_AGENTS` (None: ``off``), and whether it is one."""
        value = self.text(node, what)
        if value is None:
            return None, False
        if normalize(value) in _UNSET_WORDS:
            return None, True
        if _AGENT.fullmatch(value) and len(value) <= 6 and int(value) <= MAX_AGENTS:
            return int(value), True  # (six digits: as the grammar, never a huge int to convert)
        self.error(
            node,
            f"{what} {_shown(value)} must be a whole number of agents from 0 to {MAX_AGENTS}, "
            "or off",
        )
        return None, False

    def approval_ttl(self, node: Node, what: str) -> tuple[int | None, bool]:
        """How long a request waits, in whole minutes (None: ``default``), and whether it is."""
        value = self.text(node, what)
        if value is None:
            return None, False
        word = normalize("".join(value.split()))  # "1h 30m" as "1h30m", like `team set`
        if word in _UNSET_WORDS:
            return None, True
        seconds = _word_seconds(word)
        if seconds is None or seconds % 60:
            if _AGENT.fullmatch(value):
                advice = f"needs a unit: '{value}m' for minutes or '{value}h' for hours"
            else:
                advice = (
                    "is not whole minutes or hours: write it like 45m, 2h or 1h30m (or default)"
                )
            self.error(node, f"{what} {_shown(value)} {advice}")
            return None, False
        minutes = seconds // 60
        if not 1 <= minutes <= MAX_APPROVAL_TTL_MINUTES:
            self.error(
                node,
                f"{what} {_shown(value)} is out of range: a request waits from 1 minute to "
                f"{MAX_APPROVAL_TTL_MINUTES // 60} hours",
            )
            return None, False
        return minutes, True

    def agents(self, node: Node, label: str) -> dict[str, int] | None:
        """Every agent id of a team, with the line of its entry; None if any entry is wrong."""
        what = f"{label}: agents"
        entries = self.scalars(node, what)
        if not entries:
            self.error(node, f'{what}: list at least one agent, like ["1001-1050", "1060"]')
            return None
        found: dict[str, int] = {}
        ok = True
        for entry in entries:
            pieces = [piece.strip() for piece in str(entry.value).split(",")]
            for piece in pieces:
                agents = self.agent_piece(entry, label, piece)
                if agents is None:
                    ok = False
                    continue
                for agent in agents:
                    found.setdefault(agent, _line(entry))
        return found if ok else None

    def agent_piece(self, entry: Node, label: str, piece: str) -> tuple[str, ...] | None:
        if not piece:
            self.error(entry, f"{label}: an agent entry is empty")
            return None
        single = _AGENT.fullmatch(piece)
        match = _AGENT_RANGE.fullmatch(piece)
        if single is None and match is None:
            self.error(
                entry,
                f"{label}: {_shown(piece)} is not an agent id or range: ids are digits, like "
                '1060, and a range is written "1001-1050"',
            )
            return None
        low, high = (piece, piece) if match is None else match.groups()
        if max(len(low), len(high)) > _MAX_AGENT_ID_DIGITS:
            self.error(
                entry,
                f"{label}: {_shown(piece)} is too long for an agent id "
                f"(at most {_MAX_AGENT_ID_DIGITS} digits)",
            )
            return None
        if int(low) > int(high):
            self.error(
                entry,
                f"{label}: agent range {_shown(piece)} runs backwards: write "
                f"'{high}-{low}', from the lower id to the higher",
            )
            return None
        if int(high) - int(low) + 1 > MAX_AGENTS:
            self.error(
                entry,
                f"{label}: agent range {_shown(piece)} holds {int(high) - int(low) + 1:,} agents; "
                f"one entry may hold at most {MAX_AGENTS} (split it into several entries)",
            )
            return None
        # The grammar's own reading, so ids (and their leading zeros) are what `team add` stores.
        parsed = parse_targets([piece if match is None else f"{low}-{high}"])
        if isinstance(parsed, ParseError):
            self.error(entry, f"{label}: {parsed.message}")
            return None
        return parsed

    def grant(self, node: Node) -> None:
        label = _label(node, "grant", ("user", "usergroup"))
        fields = self.fields(node, label, _GRANT_KEYS, ("role",))
        if fields is None:
            return
        subject: tuple[str, str] | None = None
        subjects = [key for key in ("user", "usergroup") if key in fields]
        if len(subjects) != 1:
            self.error(
                node,
                f"{label}: say whom it is for with exactly one of 'user: U0123ABC' or "
                "'usergroup: S0123ABC'",
            )
        else:
            kind = subjects[0]
            pattern, example = (_USER, "U0123ABC") if kind == "user" else (_USERGROUP, "S0123ABC")
            found = self.slack_id(fields[kind], f"grant: {kind}", pattern, example)
            if found is not None:
                subject = (kind, found)
        role = self.role(fields["role"], label) if "role" in fields else None
        teams, ok = self.grant_teams(fields, label, role)
        buttons, buttons_ok = self.grant_buttons(fields, label, role)
        if subject is None or role is None or not ok or not buttons_ok:
            return
        key: _GrantKey = (subject[0], subject[1], role.value, teams, buttons)
        self.config.grants.append(_GrantSpec(key, _line(node)))

    def role(self, node: Node, label: str) -> Role | None:
        value = self.text(node, f"{label}: role")
        if value is None:
            return None
        role = _ROLES.get(normalize(value))
        if role is None:
            self.error(
                node,
                f"{label}: {_shown(value)} is not a role: admin, supervisor, requester or viewer",
            )
        return role

    def grant_teams(
        self, fields: Mapping[str, Node], label: str, role: Role | None
    ) -> tuple[tuple[str, ...] | None, bool]:
        """The grant's teams, sorted (None: every team), and whether all is well."""
        node = fields.get("teams")
        if role is Role.ADMIN:
            if node is not None:
                self.error(node, f"{label}: an admin grant covers every team and takes no teams")
                return None, False
            return None, True
        if node is None:
            if role is not None:
                self.error(
                    fields["role"],
                    f"{label}: a {role.value} grant needs teams: a list like [ventas], "
                    'or "*" for every team',
                )
            return None, False
        entries = self.scalars(node, f"{label}: teams")
        words = [str(entry.value).strip().lower() for entry in entries]
        if any(word in _EVERY_TEAM for word in words):
            if len(entries) > 1:
                self.error(node, f'{label}: "*" already means every team; write it alone')
                return None, False
            return None, True
        if not entries:
            self.error(node, f'{label}: teams is empty: name some, or "*" for every team')
            return None, False
        names: set[str] = set()
        ok = True
        for entry in entries:
            name = self.name(entry, f"{label}: team", team=True)
            if name is None:
                ok = False
            elif name not in names:
                names.add(name)
                self.config.team_refs.append(_Reference(label, name, _line(entry)))
        return tuple(sorted(names)), ok

    def grant_buttons(
        self, fields: Mapping[str, Node], label: str, role: Role | None
    ) -> tuple[tuple[str, ...] | None, bool]:
        """The grant's buttons, sorted (None: every button), and whether all is well."""
        node = fields.get("buttons")
        if node is None:
            return None, True
        if role in (Role.ADMIN, Role.VIEWER):
            article = "an" if role is Role.ADMIN else "a"
            self.error(
                node,
                f"{label}: {article} {role.value} grant takes no buttons (they narrow a "
                "supervisor or requester grant)",
            )
            return None, False
        entries = self.scalars(node, f"{label}: buttons")
        if not entries:
            self.error(node, f"{label}: buttons is empty: leave it out for every button")
            return None, False
        chosen, ok = self.button_names(entries, label)
        if len(chosen) == len(_ALL_BUTTONS):
            return None, ok
        return tuple(sorted(chosen)), ok

    def agent_conflicts(self) -> None:
        """An agent belongs to at most one team per operation, in the file too."""
        owner: dict[tuple[str, str], _TeamSpec] = {}
        for team in self.config.teams:
            clashes: dict[str, list[str]] = {}
            for agent in sorted(team.agent_lines, key=_agent_order):
                other = owner.setdefault((team.operation, agent), team)
                if other is not team:
                    clashes.setdefault(other.name, []).append(agent)
            for other_name, agents in clashes.items():
                other = owner[(team.operation, agents[0])]
                line = min(team.agent_lines[agent] for agent in agents)
                self.error(
                    line,
                    f"team {team.name!r}: {_plural(len(agents), 'agent')} ({_runs(agents)}) "
                    f"also in team {other_name!r} (line {other.line}); an agent belongs to at "
                    f"most one team per operation ({team.operation!r})",
                )


def _read(path: Path, environ: Mapping[str, str]) -> tuple[_Config, list[ConfigError]]:
    """The file's desired state and its errors (those that need no database).

    A file that cannot be read, or is not YAML, raises :class:`ConfigInvalid` at once.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigInvalid(path, [ConfigError(0, f"cannot read the file: {reason}")]) from None
    except UnicodeDecodeError:
        raise ConfigInvalid(path, [ConfigError(0, "the file is not UTF-8 text")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        message = f"not valid YAML: {error.problem or error.context}"
        if "alias" in f"{error.context} {error.problem}":
            message += ' (for every team write "*" in quotes)'
        raise ConfigInvalid(path, [ConfigError(line, message)]) from None
    except yaml.YAMLError as error:
        raise ConfigInvalid(path, [ConfigError(0, f"not valid YAML: {error}")]) from None
    reader = _Reader(environ)
    reader.read(root)
    return reader.config, reader.errors


# --------------------------------------------------------------------------- the database


@dataclass(frozen=True)
class _State:
    operations: Mapping[str, OperationRecord]
    teams: Mapping[str, TeamRecord]
    grants: Sequence[GrantRecord]


async def _load_state(directory: Directory) -> _State:
    return _State(
        operations={op.name: op for op in await directory.operations()},
        teams={team.name: team for team in await directory.teams()},
        grants=await directory.grants(),
    )


def _check_state(config: _Config, state: _State) -> list[ConfigError]:
    """Errors that depend on what the database holds already."""
    errors: list[ConfigError] = []
    known_operations = config.declared_operations | set(state.operations) | {DEFAULT_OPERATION}
    known_teams = set(config.declared_teams) | set(state.teams)
    moved: set[str] = set()
    for ref in config.operation_refs:
        stored = state.teams.get(ref.team) if ref.team is not None else None
        if ref.name not in known_operations:
            message = (
                f"operation {ref.name!r} is neither declared under operations, nor stored, "
                f"nor {DEFAULT_OPERATION!r}"
            )
            errors.append(ConfigError(ref.line, f"{ref.label}: {message}"))
        elif stored is not None and stored.operation != ref.name:
            errors.append(
                ConfigError(
                    ref.line,
                    f"{ref.label} belongs to operation {stored.operation!r}; a team cannot move "
                    f"to another operation ({ref.name!r}): keep {stored.operation!r} or give "
                    "the team a new name",
                )
            )
            moved.add(stored.name)
    for team in config.teams:
        if team.name in moved:
            continue
        for other in state.teams.values():
            if other.operation != team.operation or other.name in config.declared_teams:
                continue  # teams of the file give their agents up as the file says
            taken = sorted(team.agents & set(other.agents), key=_agent_order)
            if taken:
                errors.append(
                    ConfigError(
                        min(team.agent_lines[agent] for agent in taken),
                        f"team {team.name!r}: {_plural(len(taken), 'agent')} ({_runs(taken)}) "
                        f"already in team {other.name!r}, which this file does not declare; an "
                        "agent belongs to at most one team per operation: remove them from "
                        f"{other.name!r} first, or declare {other.name!r} in the file",
                    )
                )
    for ref in config.team_refs:
        if ref.name not in known_teams:
            message = f"team {ref.name!r} is neither declared under teams nor stored"
            errors.append(ConfigError(ref.line, f"{ref.label}: {message}"))
    return errors


# --------------------------------------------------------------------------- the plan

_Run = Callable[[AuditEntry], Awaitable[object]]


@dataclass(frozen=True)
class _Step:
    step: PlanStep
    action: str
    """The audit action."""
    run: _Run = field(repr=False)  # may hold a token


def _put_operation(directory: Directory, spec: _OperationSpec) -> _Run:
    async def run(audit: AuditEntry) -> None:
        await directory.put_operation(
            spec.name, spec.server, spec.token, concurrency=spec.concurrency, audit=audit
        )

    return run


def _create_team(directory: Directory, spec: _TeamSpec) -> _Run:
    async def run(audit: AuditEntry) -> None:
        await directory.create_team(
            spec.name,
            operation=spec.operation,
            agents=sorted(spec.agents, key=_agent_order),
            channel_id=spec.channel,
            approvals_channel_id=spec.approvals,
            change_channels=spec.change_channels or None,
            audit=audit,
        )

    return run


def _update_team(directory: Directory, spec: _TeamSpec) -> _Run:
    async def run(audit: AuditEntry) -> None:
        await directory.update_team(
            spec.name,
            channel_id=spec.channel,
            approvals_channel_id=spec.approvals,
            change_channels=spec.change_channels or None,
            audit=audit,
        )

    return run


def _set_policy(directory: Directory, spec: _TeamSpec) -> _Run:
    async def run(audit: AuditEntry) -> None:
        # `team set`'s own write: the team's row locked, its approvals channel kept as it is.
        await directory.configure_team(
            spec.name, lambda team: replace(team, policy=spec.policy), audit=audit
        )

    return run


def _move_agents(directory: Directory, team: str, agents: list[str], *, add: bool) -> _Run:
    async def run(audit: AuditEntry) -> None:
        if add:
            await directory.add_agents(team, agents, audit=audit)
        else:
            await directory.remove_agents(team, agents, audit=audit)

    return run


def _add_grant(directory: Directory, key: _GrantKey) -> _Run:
    subject_type, subject_id, role, teams, buttons = key

    async def run(audit: AuditEntry) -> None:
        await directory.add_grant(
            subject_type=subject_type,
            subject_id=subject_id,
            role=role,
            teams=teams,
            buttons=buttons,
            created_by=audit.user_id,
            audit=audit,
        )

    return run


def _remove_grant(directory: Directory, grant_id: int) -> _Run:
    async def run(audit: AuditEntry) -> None:
        await directory.remove_grants([grant_id], audit=audit)

    return run


def _record_key(grant: GrantRecord) -> _GrantKey:
    teams = tuple(sorted(grant.teams)) if grant.teams is not None else None
    buttons = tuple(sorted(grant.buttons)) if grant.buttons is not None else None
    if buttons == _ALL_BUTTONS:
        buttons = None  # every button, spelled out
    return grant.subject_type, grant.subject_id, grant.role, teams, buttons


def _describe_grant(key: _GrantKey) -> str:
    subject_type, subject_id, role, teams, buttons = key
    text = f"{subject_type} {subject_id} {role}"
    if teams is None and role != Role.ADMIN.value:
        text += " over every team"
    elif teams is not None:
        text += f" over team{'s' if len(teams) > 1 else ''} {', '.join(teams)}"
    if buttons is not None:
        text += f" (buttons {', '.join(buttons)})"
    return text


def _channels_text(channels: Sequence[str]) -> str:
    return ", ".join(channels) if channels else "any"


def _ttl_text(minutes: int | None) -> str:
    """``45m``, ``2h``, ``1h30m``; ``default``: the deployment's (AGENTBOX_APPROVAL_TTL_MINUTES)."""
    return "default" if minutes is None else describe_duration(minutes * 60)


_POLICY_TEXTS: tuple[tuple[TeamSetting, Callable[[TeamPolicy], str]], ...] = (
    (TeamSetting.TRAIL, lambda policy: "on" if policy.trail_enabled else "off"),
    (TeamSetting.SELF_APPROVAL, lambda policy: "on" if policy.self_approval else "off"),
    (
        TeamSetting.APPROVAL_BUTTONS,
        lambda policy: ", ".join(sorted(policy.approval_buttons)) or "none",
    ),
    (
        TeamSetting.APPROVAL_OVER,
        lambda policy: (
            "none" if policy.approval_over_agents is None else str(policy.approval_over_agents)
        ),
    ),
    (
        TeamSetting.TWO_APPROVERS,
        lambda policy: ", ".join(sorted(policy.two_approvers_buttons)) or "none",
    ),
    (TeamSetting.APPROVAL_TTL, lambda policy: _ttl_text(policy.approval_ttl_minutes)),
)
"""Each policy setting, by its ``team set`` name, as the plan shows its value. Each text stands
for one value only, so two policies differ exactly where their texts do."""


def _policy_changes(current: TeamPolicy, wanted: TeamPolicy) -> list[str]:
    """``approval-over none → 20``, ``trail on → off``: the settings that differ."""
    changes: list[str] = []
    for setting, text in _POLICY_TEXTS:
        old, new = text(current), text(wanted)
        if old != new:
            changes.append(f"{setting.value} {old} → {new}")
    return changes


async def _plan(
    config: _Config, state: _State, directory: Directory, *, prune: bool
) -> list[_Step]:
    steps: list[_Step] = []
    for op in config.operations:
        stored = state.operations.get(op.name)
        run = _put_operation(directory, op)
        if stored is None:
            description = (
                f"create operation {op.name!r}: server {op.server}, concurrency "
                f"{op.concurrency}, token from ${op.token_env}"
            )
            steps.append(_Step(PlanStep("operation.create", description), "operation.put", run))
            continue
        changes: list[str] = []
        if stored.server != op.server:
            changes.append(f"server {stored.server} → {op.server}")
        if stored.concurrency != op.concurrency:
            changes.append(f"concurrency {stored.concurrency} → {op.concurrency}")
        secret = await directory.operation_secret(op.name)
        if secret is None or secret[1] != op.token:
            changes.append(f"token changed (from ${op.token_env})")
        if changes:
            description = f"update operation {op.name!r}: {'; '.join(changes)}"
            steps.append(_Step(PlanStep("operation.update", description), "operation.put", run))

    removals: list[_Step] = []
    creations: list[_Step] = []
    additions: list[_Step] = []
    updates: list[_Step] = []
    policies: list[_Step] = []
    for team in config.teams:
        label = f"team {team.name!r}"
        current = state.teams.get(team.name)
        # A team is created with the default policy; the file's is then set like `team set`.
        settings = _policy_changes(current.policy if current else TeamPolicy(), team.policy)
        if settings:
            description = f"set policy of {label}: {'; '.join(settings)}"
            run = _set_policy(directory, team)
            policies.append(_Step(PlanStep("team.set", description), "team.set", run))
        if current is None:
            details = [
                f"operation {team.operation!r}",
                f"{_plural(len(team.agents), 'agent')} ({_runs(team.agents)})",
                f"channel {team.channel}",
            ]
            if team.approvals is not None:
                details.append(f"approvals {team.approvals}")
            if team.change_channels:
                details.append(f"change channels {_channels_text(team.change_channels)}")
            description = f"create {label}: {', '.join(details)}"
            creations.append(
                _Step(
                    PlanStep("team.create", description),
                    "team.create",
                    _create_team(directory, team),
                )
            )
            continue
        gone = sorted(set(current.agents) - team.agents, key=_agent_order)
        new = sorted(team.agents - set(current.agents), key=_agent_order)
        if gone:
            description = f"remove {_plural(len(gone), 'agent')} from {label}: {_runs(gone)}"
            run = _move_agents(directory, team.name, gone, add=False)
            removals.append(_Step(PlanStep("team.remove", description), "team.remove", run))
        if new:
            description = f"add {_plural(len(new), 'agent')} to {label}: {_runs(new)}"
            run = _move_agents(directory, team.name, new, add=True)
            additions.append(_Step(PlanStep("team.add", description), "team.add", run))
        changes = []
        if current.channel_id != team.channel:
            changes.append(f"channel {current.channel_id} → {team.channel}")
        if current.approvals_channel_id != team.approvals:
            changes.append(
                f"approvals {current.approvals_channel_id or 'none'} → {team.approvals or 'none'}"
            )
        if tuple(sorted(current.change_channels)) != team.change_channels:
            changes.append(
                f"change channels {_channels_text(current.change_channels)} → "
                f"{_channels_text(team.change_channels)}"
            )
        if changes:
            description = f"update {label}: {'; '.join(changes)}"
            run = _update_team(directory, team)
            updates.append(_Step(PlanStep("team.update", description), "team.update", run))
    steps += removals + creations + additions + updates + policies

    existing = {_record_key(grant) for grant in state.grants}
    wanted: set[_GrantKey] = set()
    for grant in config.grants:
        if grant.key not in existing and grant.key not in wanted:
            description = f"grant {_describe_grant(grant.key)}"
            run = _add_grant(directory, grant.key)
            steps.append(_Step(PlanStep("grant.add", description), "grant.add", run))
        wanted.add(grant.key)
    if prune:
        for record in state.grants:
            key = _record_key(record)
            if key not in wanted:
                description = f"revoke grant #{record.id}: {_describe_grant(key)}"
                run = _remove_grant(directory, record.id)
                steps.append(_Step(PlanStep("grant.remove", description), "grant.remove", run))
    return steps


def _duplicate_grants(config: _Config) -> list[ConfigError]:
    first: dict[_GrantKey, int] = {}
    errors: list[ConfigError] = []
    for grant in config.grants:
        line = first.setdefault(grant.key, grant.line)
        if line != grant.line:
            errors.append(
                ConfigError(grant.line, f"grant {_describe_grant(grant.key)}: same as line {line}")
            )
    return errors


async def _prepare(
    path: Path, directory: Directory, *, environ: Mapping[str, str], prune: bool
) -> list[_Step]:
    config, errors = _read(path, environ)
    state = await _load_state(directory)
    errors += _duplicate_grants(config) + _check_state(config, state)
    if prune and not config.has_grants and not errors:
        message = (
            "--prune removes every grant the file does not list, and this file has no grants "
            "section: add one (`grants: []` to remove every grant), or leave --prune out"
        )
        errors.append(ConfigError(0, message))
    if errors:
        raise ConfigInvalid(path, errors)
    return await _plan(config, state, directory, prune=prune)


# --------------------------------------------------------------------------- entry points


async def plan_file(
    path: Path, directory: Directory, *, environ: Mapping[str, str], prune: bool
) -> list[PlanStep]:
    """What applying ``path`` would change (``--dry-run``); writes nothing.

    Raises :class:`ConfigInvalid` with every error of the file.
    """
    return [step.step for step in await _prepare(path, directory, environ=environ, prune=prune)]


async def apply_file(
    path: Path,
    directory: Directory,
    *,
    environ: Mapping[str, str],
    prune: bool,
    actor: str,
) -> list[PlanStep]:
    """Bring the database to what ``path`` declares; returns the steps carried out (none when it
    matches already). ``actor`` is the audit user id (see :func:`default_actor`).

    Raises :class:`ConfigInvalid` (nothing written) or :class:`ApplyFailed` (some steps written).
    """
    steps = await _prepare(path, directory, environ=environ, prune=prune)
    done: list[PlanStep] = []
    for step in steps:
        entry = AuditEntry(
            user_id=actor[:_ACTOR_LENGTH],
            action=step.action,
            text=step.step.description,
            decision=Decision.ALLOWED,
            reason=f"agentbox apply {path.name}",
        )
        try:
            await step.run(entry)
        except (DirectoryError, SecretsError) as error:
            raise ApplyFailed(done, step.step, str(error)) from error
        _log.info("applied %s: %s", path.name, step.step.description)
        done.append(step.step)
    return done
