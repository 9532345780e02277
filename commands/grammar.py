"""The grammar of ``/agentbox``: turns the text a user typed into a command, or into a clear error.

A change looks like ``/agentbox hide disposition 1001``; its words may come in any order, in
English or Spanish, in any case, with or without accents (``1001 OCULTAR tipificación`` is the
same command). Each word is one of:

- an *action* word: ``show`` or ``hide`` (exactly one action per command, repeats are fine);
- a *button* word: ``dial``, ``disposition``, ``hungup``, or ``all`` for the three;
- a *target*: an agent id (``1001``, 1 to 15 ASCII digits, leading zeros kept as typed) or an
  inclusive range (``1001-1010``), separated by spaces and/or commas;
- a *help* word (``help``, ``ayuda``, ``?``, ``-h``, ``--help``): the whole command becomes help.

Bound: one command reaches at most :data:`MAX_AGENTS` (500) distinct agents. Every agent costs
one wolkvox call per button, and wolkvox allows only one or two calls in flight per token, so a
typo such as ``1-100000`` would otherwise queue hours of calls and starve every other supervisor
of that operation. The size of a target list is computed arithmetically before anything is
expanded, so even ``1-999999999999999`` is refused at once.

:func:`parse` never raises; every input yields a :class:`ChangeCommand`, a :class:`HelpCommand` or a
:class:`ParseError` whose message is ready to show in Slack.

The layers are meant to grow: :func:`tokenize` (where quoting for ``--reason "…"`` will go), the
vocabulary table :data:`VOCABULARY` (where new verbs, flags and aliases go), :func:`parse_targets`
(where ``team:ventas`` will go) and :func:`parse`, which dispatches on the kinds of words it finds.
"""

from __future__ import annotations

import difflib
import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from wolkvox.model import Button, Display

__all__ = [
    "MAX_AGENTS",
    "USAGE",
    "VOCABULARY",
    "ChangeCommand",
    "HelpCommand",
    "Lexeme",
    "ParseError",
    "Parsed",
    "Token",
    "WordKind",
    "normalize",
    "parse",
    "parse_targets",
    "tokenize",
]

MAX_AGENTS: int = 500
"""Most distinct agents one command may reach (see the module docstring for why)."""

MAX_AGENT_ID_DIGITS = 15
"""Longest agent id accepted; longer digit strings are refused rather than sent to wolkvox."""

COMMAND = "/agentbox"

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ChangeCommand:
    """Show or hide some buttons for some agents."""

    display: Display
    buttons: tuple[Button, ...]
    """De-duplicated, in canonical order (DIAL, DISPOSITION, HUNGUP)."""
    agents: tuple[str, ...]
    """De-duplicated agent ids as typed (leading zeros kept), sorted numerically."""


@dataclass(frozen=True)
class HelpCommand:
    """Show :data:`USAGE`."""


@dataclass(frozen=True)
class ParseError:
    """The text is not a command; ``message`` is the complete user-facing explanation (mrkdwn)."""

    message: str
    word: str | None = None
    """The word not understood, exactly as typed (after HTML unescaping), if any."""
    suggestion: str | None = None
    """The closest valid word, if any."""


Parsed = ChangeCommand | HelpCommand | ParseError


# --------------------------------------------------------------------------- vocabulary


class WordKind(Enum):
    """What a vocabulary word does in a command. New verbs and flags get their own kinds."""

    HELP = "help"
    DISPLAY = "display"
    BUTTON = "button"


@dataclass(frozen=True)
class Lexeme:
    """The meaning shared by a set of aliases."""

    kind: WordKind
    canonical: str
    display: Display | None = None
    buttons: tuple[Button, ...] = ()


_ALL_BUTTONS: tuple[Button, ...] = (Button.DIAL, Button.DISPOSITION, Button.HUNGUP)

VOCABULARY: tuple[tuple[Lexeme, tuple[str, ...]], ...] = (
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
)
"""Every word the grammar knows, as (meaning, aliases). Aliases are written as a user would write
them; matching is on :func:`normalize`, so case and accents do not matter. The first alias spelled a
given way is the one suggested for typos."""


def normalize(word: str) -> str:
    """Fold case and accents (``Tipificación`` → ``tipificacion``): aliases match however typed."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _build_lexicon() -> tuple[Mapping[str, Lexeme], Mapping[str, str]]:
    lexicon: dict[str, Lexeme] = {}
    spelling: dict[str, str] = {}
    for lexeme, aliases in VOCABULARY:
        for alias in aliases:
            key = normalize(alias)
            if lexicon.setdefault(key, lexeme) != lexeme:
                raise ValueError(f"alias {alias!r} means both {lexicon[key]} and {lexeme}")
            spelling.setdefault(key, alias)
    return lexicon, spelling


_LEXICON, _SPELLING = _build_lexicon()


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    """One word of the command: ``raw`` as typed (unescaped), ``norm`` as matched."""

    raw: str
    norm: str


_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphen, nb-hyphen, figure/en/em dash, minus
_RANGE_DASH = re.compile(rf"(?<=[0-9])\s*[-{_DASHES}]\s*(?=[0-9])")
_SEPARATORS = re.compile(r"[\s,]+")
_ID = re.compile(r"[0-9]+")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_TARGET = re.compile(r"[0-9]+(?:-[0-9]+)?")


def _clean(text: str) -> str:
    """Undo Slack's HTML escaping and drop invisible format characters (e.g. zero-width spaces
    pasted from spreadsheets), which would otherwise make ``1001`` an unknown word."""
    text = html.unescape(text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _split(text: str) -> list[str]:
    # "1001 - 1010" and "1001<en dash>1010" are ranges; a lone em dash elsewhere is what
    # phones make of "--" (so "—help" is "--help").
    text = _RANGE_DASH.sub("-", text).replace("\u2014", "--")
    return [word for word in _SEPARATORS.split(text) if word]


def tokenize(text: str) -> list[Token]:
    """Split the raw slash-command text into words: HTML-unescaped, separated by spaces/commas."""
    return [Token(raw=word, norm=normalize(word)) for word in _split(_clean(text))]


# --------------------------------------------------------------------------- messages


def _quote(word: str, limit: int = 40) -> str:
    """Show a user's word in backticks without letting it break out of them or ping anyone:
    Slack needs ``& < >`` escaped in the text we send back, and a backtick would end the span."""
    if len(word) > limit:
        word = word[: limit - 1] + "…"
    escaped = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`" + escaped.replace("`", "'") + "`"


_HELP_HINT = f"Type `{COMMAND} help` for examples."


def _unknown_word(word: str) -> ParseError:
    matches = difflib.get_close_matches(normalize(word), list(_LEXICON), n=1)
    suggestion = _SPELLING[matches[0]] if matches else None
    message = f"I don't understand {_quote(word)}"
    if suggestion is not None:
        message += f" — did you mean `{suggestion}`?"
    elif any(ch.isdigit() for ch in word):
        message += ". Agent ids are digits only, like `1001`, and a range is written `1001-1010`."
    else:
        message += (
            f". A command looks like `{COMMAND} hide disposition 1001`:"
            " `show` or `hide`, then `dial`, `disposition`, `hungup` or `all`, then agent ids."
        )
    return ParseError(f"{message} {_HELP_HINT}", word=word, suggestion=suggestion)


USAGE: str = f"""*agentbox* shows or hides buttons in your agents' wolkvox softphone.

*Usage:* `{COMMAND} <show|hide> <buttons> <agents>`
• *action:* `show` (`mostrar`, `ver`, `unhide`) or `hide` (`ocultar`, `esconder`)
• *buttons:* `dial` (`llamar`, `marcar`), `disposition` (`dispo`, `tipificación`), \
`hungup` (`hangup`, `colgar`), or `all` (`todos`) — one or several
• *agents:* ids like `1001`, lists like `1001 1002` or `1001,1002`, ranges like `1001-1010` \
(at most {MAX_AGENTS} agents per command)

*Examples:*
• `{COMMAND} hide disposition 1001`
• `{COMMAND} show all 1001-1010`
• `{COMMAND} hide dial hungup 1001, 1002, 1005`
• `{COMMAND} ocultar tipificación 1001` (words may come in any order, in English or Spanish)
• `{COMMAND} help` — this message"""


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
            return ParseError(
                f"{_quote(word)} is too long for an agent id: ids have at most "
                f"{MAX_AGENT_ID_DIGITS} digits. {_HELP_HINT}",
                word=word,
            )
        return _Span(int(word), int(word), len(word))
    match = _RANGE.fullmatch(word)
    if match is None:
        return _unknown_word(word)
    start, end = match.groups()
    for part in (start, end):
        if len(part) > MAX_AGENT_ID_DIGITS:
            return ParseError(
                f"In the range {_quote(word)}, {_quote(part)} is too long for an agent id: "
                f"ids have at most {MAX_AGENT_ID_DIGITS} digits. {_HELP_HINT}",
                word=word,
            )
    if int(start) > int(end):
        flipped = f"{end}-{start}"
        return ParseError(
            f"The range {_quote(word)} is backwards: a range goes from the lower id to the higher "
            f"one, like `{flipped}`.",
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


def parse_targets(words: Iterable[str]) -> tuple[str, ...] | ParseError:
    """Read target words into de-duplicated agent ids sorted numerically, or explain what is wrong.

    Each word may itself hold several targets separated by spaces or commas. Ids keep their
    leading zeros, so ``01001`` and ``1001`` are distinct ids (wolkvox ids are strings). The
    distinct count is computed from merged ranges before any is expanded, so a huge range costs
    no memory.
    """
    by_length: dict[int, list[tuple[int, int]]] = {}
    for word in words:
        for part in _split(word):
            span = _span(part)
            if isinstance(span, ParseError):
                return span
            for length, low, high in _classes(span):
                by_length.setdefault(length, []).append((low, high))
    if not by_length:
        return ParseError(
            "Say which agents: ids like `1001`, lists like `1001,1002` or ranges like "
            f"`1001-1010`. {_HELP_HINT}"
        )
    runs = {length: _merge(pieces) for length, pieces in by_length.items()}
    count = sum(high - low + 1 for pieces in runs.values() for low, high in pieces)
    if count > MAX_AGENTS:
        return ParseError(
            f"That is {count:,} agents, and one command can change at most {MAX_AGENTS}. "
            f"Split it into several commands of at most {MAX_AGENTS} agents each "
            f"(for example `1-{MAX_AGENTS}`, then `{MAX_AGENTS + 1}-{2 * MAX_AGENTS}`)."
        )
    agents = [
        str(number).zfill(length)
        for length, pieces in runs.items()
        for low, high in pieces
        for number in range(low, high + 1)
    ]
    agents.sort(key=lambda agent: (int(agent), len(agent)))
    return tuple(agents)


# --------------------------------------------------------------------------- commands


def _missing(display: Display | None, buttons: Sequence[Button], targets: Sequence[str]) -> str:
    """Name what a change command lacks, with an example built from what the user did type."""
    parts: list[str] = []
    if display is None:
        parts.append("whether to `show` or `hide`")
    if not buttons:
        parts.append("which button (`dial`, `disposition`, `hungup` or `all`)")
    if not targets:
        parts.append("which agents (like `1001` or `1001-1010`)")
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    example = " ".join(
        [
            COMMAND,
            (display or Display.HIDE).value,
            " ".join(b.value for b in buttons) or Button.DISPOSITION.value,
            " ".join(targets) if 0 < len(" ".join(targets)) <= 40 else "1001",
        ]
    )
    return f"Please say {said}, for example `{example}`. {_HELP_HINT}"


def _parse_change(tokens: Sequence[Token]) -> Parsed:
    """A show/hide command whose words may come in any order."""
    displays: dict[Display, str] = {}
    buttons: set[Button] = set()
    targets: list[str] = []
    for token in tokens:
        if _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
            continue
        lexeme = _LEXICON.get(token.norm)
        if lexeme is None:
            return _unknown_word(token.raw)
        if lexeme.kind is WordKind.DISPLAY and lexeme.display is not None:
            displays.setdefault(lexeme.display, token.raw)
        elif lexeme.kind is WordKind.BUTTON:
            buttons.update(lexeme.buttons)
    if len(displays) > 1:
        first, second = list(displays.values())[:2]
        return ParseError(
            f"The command says both {_quote(first)} and {_quote(second)}: use only one of "
            f"`show` or `hide`, for example `{COMMAND} hide disposition 1001`."
        )
    display = next(iter(displays), None)
    ordered = tuple(b for b in _ALL_BUTTONS if b in buttons)
    # Bad targets are reported before missing parts, so the example in that message is valid.
    agents = parse_targets(targets) if targets else ()
    if isinstance(agents, ParseError):
        return agents
    if display is None or not ordered or not agents:
        return ParseError(_missing(display, ordered, targets))
    return ChangeCommand(display=display, buttons=ordered, agents=agents)


def parse(text: str) -> Parsed:
    """Parse the text after ``/agentbox``. Never raises: the unexpected becomes a ParseError."""
    try:
        tokens = tokenize(text)
        if not tokens or any(
            (lexeme := _LEXICON.get(token.norm)) is not None and lexeme.kind is WordKind.HELP
            for token in tokens
        ):
            return HelpCommand()
        # Later verbs (grant, team, status, …) will be dispatched here on their leading word.
        return _parse_change(tokens)
    except Exception:  # a bug here must not become an error page for the user
        _log.exception("grammar failed on %r", text)
        return ParseError(f"Sorry, I could not read that command. {_HELP_HINT}")
