"""The grammar of ``/agentbox``: turns the text a user typed into a command, or into a clear error.

A change looks like ``/agentbox hide disposition 1001``; its words may come in any order, in
English or Spanish, in any case, with or without accents (``1001 OCULTAR tipificación`` is the
same command). Each word is one of:

- an *action* word: ``show`` or ``hide`` (exactly one action per command, repeats are fine);
- a *button* word: ``dial``, ``disposition``, ``hungup``, or ``all`` for the three;
- a *target*: an agent id (``1001``, 1 to 15 ASCII digits, leading zeros kept as typed) or an
  inclusive range (``1001-1010``), separated by spaces and/or commas;
- a *range* word (``to``, ``through``, ``thru``, ``a``, ``al``, ``hasta``) standing between two
  agent ids: ``1001 to 1010`` is the range ``1001-1010``, anywhere else it is an error;
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
import heapq
import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import islice

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
    RANGE = "range"


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
    (Lexeme(WordKind.RANGE, "to"), ("to", "through", "thru", "a", "al", "hasta")),
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


# --------------------------------------------------------------------------- messages


def _quote(word: str, limit: int = 40) -> str:
    """Show a user's word in backticks without letting it break out of them or ping anyone:
    Slack needs ``& < >`` escaped in the text we send back, and a backtick would end the span."""
    if len(word) > limit:
        word = word[: limit - 1] + "…"
    escaped = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`" + escaped.replace("`", "'") + "`"


_HELP_HINT = f"Type `{COMMAND} help` for examples."

_SHORTEST_SUGGESTED = 4
"""Words shorter than this get no "did you mean": difflib matches very short words to misleading
ones (``tod`` → ``todo``, which means *all buttons*)."""


def _unknown_word(word: str) -> ParseError:
    norm = normalize(word)
    matches = (
        difflib.get_close_matches(norm, list(_LEXICON), n=1)
        if len(norm) >= _SHORTEST_SUGGESTED
        else []
    )
    suggestion = _SPELLING[matches[0]] if matches else None
    message = f"I don't understand {_quote(word)}"
    if suggestion is not None:
        message += f" — did you mean `{suggestion}`?"
    elif any(ch.isdigit() for ch in word):
        message += ". Agent ids are digits only, like `1001`, and a range is written `1001-1010`."
    elif len(norm) < _SHORTEST_SUGGESTED:
        message += "."
    else:
        message += (
            f". A command looks like `{COMMAND} hide disposition 1001`:"
            " `show` or `hide`, then `dial`, `disposition`, `hungup` or `all`, then agent ids."
        )
    return ParseError(f"{message} {_HELP_HINT}", word=word, suggestion=suggestion)


def _misplaced_range_word(word: str) -> ParseError:
    return ParseError(
        f"{_quote(word)} must stand between two agent ids, like `1001 {word} 1010` "
        f"(or `1001-1010`). {_HELP_HINT}",
        word=word,
    )


USAGE: str = f"""*agentbox* shows or hides buttons in your agents' wolkvox softphone.

*Usage:* `{COMMAND} <show|hide> <buttons> <agents>`
• *action:* `show` (`mostrar`, `ver`, `unhide`) or `hide` (`ocultar`, `esconder`)
• *buttons:* `dial` (`llamar`, `marcar`), `disposition` (`dispo`, `tipificación`), \
`hungup` (`hangup`, `colgar`), or `all` (`todos`) — one or several
• *agents:* ids like `1001`, lists like `1001 1002` or `1001,1002`, ranges like `1001-1010` \
or `1001 to 1010` (at most {MAX_AGENTS} agents per command)

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
        head_text = f"your first {MAX_AGENTS} ids, `{_id(*first)}` to `{_id(*cut)}`"
    if len(tail) <= _LITERAL_RUNS and count - MAX_AGENTS <= MAX_AGENTS:
        tail_text = f"`{' '.join(tail)}`"
    else:
        tail_text = f"the rest, from `{_id(*rest)}`"
    return f"for example {head_text}, then {tail_text}"


def parse_targets(words: Iterable[str]) -> tuple[str, ...] | ParseError:
    """Read target words into de-duplicated agent ids sorted numerically, or explain what is wrong.

    Each word may itself hold several targets separated by spaces or commas, and ``1001 to 1010``
    is the range ``1001-1010``. Ids keep their leading zeros, so ``01001`` and ``1001`` are
    distinct ids (wolkvox ids are strings). The distinct count is computed from merged ranges
    before any is expanded, so a huge range costs no memory.
    """
    by_length: dict[int, list[tuple[int, int]]] = {}
    parts = [Token(raw=part, norm=normalize(part)) for word in words for part in _split(word)]
    for part in _join_ranges(parts):
        if _is_range_word(part):
            return _misplaced_range_word(part.raw)
        span = _span(part.raw)
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
            f"({_split_advice(runs, count)})."
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
    for token in _join_ranges(tokens):
        if _TARGET.fullmatch(token.raw):
            targets.append(token.raw)
            continue
        lexeme = _LEXICON.get(token.norm)
        if lexeme is None:
            return _unknown_word(token.raw)
        if lexeme.kind is WordKind.RANGE:
            return _misplaced_range_word(token.raw)
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
