"""The grammar in Spanish and English: its parse errors, hints, suggestions and help.

- Every message commands/grammar.py marks for translation is rendered, by some command of
  :data:`CORPUS` (or the help), in English as its msgid says and in Spanish as the catalog says.
- The main messages, word for word in both languages.
- Through Slack: a user who chose ``/agentbox lang es`` gets the errors and the help in Spanish,
  and another user, at the same time, in English.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file

from commands.grammar import (
    ADMIN_USAGE,
    USAGE,
    ParseError,
    Section,
    parse,
    parse_targets,
    tokenize,
    usage,
)
from commands.grammar import _name as name_of
from commands.i18n import translations, use_language
from tests.harness import ADMIN, STRANGER, Harness, ack_text

GRAMMAR = Path(__file__).resolve().parent.parent / "commands" / "grammar.py"

CORPUS = [
    # reasons
    'hide dial 1001 --reason "never closed',
    "hide dial 1001 --reason",
    "hide dial 1001 --reason " + "x" * 501,
    'hide dial 1001 --reason "a" --reason "b"',
    "undo --reason why",
    # unknown words and targets
    "hide dispositon 1001",
    "hide dial 1001 x12",
    "hide dial 1001 zz",
    "hide dial 1001 banana",
    "hide dial to 1001",
    "hide dial 1234567890123456",
    "hide dial 1-1234567890123456",
    "hide dial 1010-1001",
    "hide dial 1-2000",
    "hide dial 1-100 200-300 400-500 600-700 800-900 1000-1100",
    # changes
    "hide",
    "dial 1001",
    "hide dial 1001 team ventas",
    "hide dial 1001 <@U1|maria>",
    "hide dial 1001 buttons:dial",
    "hide dial 1001 for 30",
    "hide dial 1001 for",
    "hide dial 1001 for 10s",
    "hide dial for 1h 30",
    "hide dial 1001 for 25h",
    "hide dial 1001 --dry-run=yes",
    "hide dial 1001 --limit 5",
    "hide dial 1001 30m",
    "hide dial 1001 for 30m for 1h",
    "hide show dial 1001",
    "hide dial --reason because",
    "hide dial 1001 tema:ventas",
    "hide dial 1001 xyzzy:ventas",
    "hide dial 1001 approvals:<#C1>",
    "hide dial team:ventas, cobranza",
    "hide dial team:",
    "hide dial team:*",
    # grants and revokes
    "grant",
    "grant <#C1|ventas>",
    "grant <!here>",
    "grant supervisor",
    "grant 1001",
    "grant maria",
    "grant <@U1|maria>",
    "grant <@U1|maria> <@U2|luis>",
    "grant <@U1|maria> team:ventas",
    "grant <@U1|maria> superviser",
    "grant <@U1|maria> zz",
    "grant <@U1|maria> supervisor",
    "grant <@U1|maria> supervisor team:ventas <@U2|luis>",
    "grant <@U1|maria> supervisor team:ventas dial",
    "grant <@U1|maria> supervisor team:ventas supervisor",
    "grant <@U1|maria> supervisor 1001",
    "grant <@U1|maria> supervisor ventas",
    "grant <@U1|maria> supervisor team:ventas !!",
    "grant <@U1|maria> supervisor team:",
    "grant <@U1|maria> supervisor team:*,ventas",
    "grant <@U1|maria> supervisor team:ventas buttons:",
    "grant <@U1|maria> supervisor team:ventas buttons:dail",
    "grant <@U1|maria> supervisor team:ventas buttons:zz",
    "grant <@U1|maria> admin team:ventas",
    "grant <@U1|maria> viewer team:ventas buttons:dial",
    "revoke <@U1|maria> admin team:ventas",
    "revoke <@U1|maria> supervisor <#C1|ventas>",
    "roles <@U1|maria> <#C1|ventas>",
    "whoami now",
    # teams
    "team",
    "team ventas show",
    "team craete",
    "team zz",
    "team list now",
    "team show",
    "team show ventas now",
    "team show team:ventas",
    "team add ventas maria",
    "team add ventas",
    "team add ventas 1-600",
    "team create <@U1|maria> 1001 <#C1>",
    "team create -x 1001 <#C1>",
    "team create " + "a" * 41 + " 1001 <#C1>",
    "team create 1001 1001 <#C1>",
    "team create hide 1001 <#C1>",
    "team create ventas 1001 <#C1> operation:<@U1|maria>",
    "team create ventas 1001 <#C1> operation:-x",
    "team create ventas 1001 <#C1> operation:" + "a" * 41,
    "team create ventas 1001 <#C1> operation:a,b",
    "team create ventas 1001 <#C1> operation:a operation:b",
    "team create ventas 1001 <#C1> approvals:",
    "team create ventas 1001 <#C1> approvals:<#C2> approvals:<#C3>",
    "team create ventas 1001 <#C1> <@U1|maria>",
    "team create ventas 1001 <#C1> <#C2>",
    "team create ventas 1001 <#C1> banana",
    "team create ventas 1001 #ventas",
    "team create ventas <#C1>",
    "team create ventas 1001",
    "team set ventas",
    "team set ventas trial on",
    "team set ventas zz on",
    "team set ventas trail",
    "team set ventas trail maybe",
    "team set ventas approvals-channel <#C1> <#C2>",
    "team set ventas approval-buttons dail",
    "team set ventas approval-buttons zz",
    "team set ventas approval-over 600",
    "team set ventas approval-ttl 30s",
    "team set ventas approval-ttl 25h",
    # undo, history, status, lang
    "undo --dry-run",
    "undo now",
    "history --limit 0",
    "history --limit 5 --limit 6",
    "history --dry-run",
    "history team:*",
    "history dial",
    "history 1-600",
    "status",
    "status team:*",
    "status banana",
    "status hidden 1001",
    "status <#C1|ventas>",
    "idioma fr",
    "lang es en",
]
"""Commands that are not understood, together reaching every message of the grammar."""


def _message(parsed: object) -> str:
    assert isinstance(parsed, ParseError), parsed
    return parsed.message


RENDERS: list[Callable[[], str]] = [
    *(lambda text=text: _message(parse(text)) for text in CORPUS),
    lambda: usage(Section),
    lambda: _message(parse_targets([])),  # what the change modal's agents field may get
    # A team's name may be an option word (`team show team:ventas`); an operation's never is.
    lambda: _message(name_of(tokenize("operation:x")[0], team=False)),
    lambda: _message(parse(None)),  # type: ignore[arg-type]  # a bug in the grammar
]


@cache
def rendered(language: str) -> tuple[str, ...]:
    with use_language(language):
        return tuple(render() for render in RENDERS)


def grammar_messages() -> list[str]:
    """Every msgid commands/grammar.py marks, as ``make messages`` extracts them."""
    found: list[str] = []
    for _line, message, _comments, _context in extract_from_file("python", str(GRAMMAR)):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid not in found:
            found.append(msgid)
    return found


def pattern(template: str) -> re.Pattern[str]:
    """The texts ``template.format(...)`` may give: its words as written, anything for a field."""
    parts = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+?")
    return re.compile("".join(parts), re.DOTALL)


@pytest.mark.parametrize("msgid", grammar_messages())
def test_every_grammar_message_is_rendered_in_both_languages(msgid: str) -> None:
    spanish = translations("es").gettext(msgid)
    assert spanish != msgid, "no Spanish translation (see tests/test_i18n.py)"

    english_texts = [text for text in rendered("en") if pattern(msgid).search(text)]
    spanish_texts = [text for text in rendered("es") if pattern(spanish).search(text)]

    assert english_texts, f"no command of CORPUS renders {msgid!r}: add one"
    assert spanish_texts, f"no command of CORPUS renders {msgid!r} in Spanish"


def test_the_check_above_catches_a_message_left_in_english() -> None:
    """The pattern of the Spanish text does not match what an untranslated message shows."""
    msgid = "{word} is not a team setting."
    spanish = pattern(translations("es").gettext(msgid))
    assert not spanish.search("`zz` is not a team setting.")
    assert spanish.search("`zz` no es un ajuste de equipo.")


def test_no_error_reads_the_same_in_spanish_and_english() -> None:
    same = [
        text
        for text, spanish in zip(rendered("en"), rendered("es"), strict=True)
        if text == spanish
    ]
    assert not same


def test_english_is_what_everyone_gets_without_a_language() -> None:
    assert tuple(render() for render in RENDERS) == rendered("en")
    assert usage({Section.CHANGE}) == USAGE and usage(Section) == ADMIN_USAGE


MESSAGES: list[tuple[str, str, str]] = [
    # (command, English, Spanish): the whole message a user reads.
    (
        "hide dispositon 1001",
        "I don't understand `dispositon` — did you mean `disposition`? "
        "Type `/agentbox help` for examples.",
        "No entiendo `dispositon`. ¿Quisiste decir `disposition`? "
        "Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "hide dial",
        "Please say which agents (like `1001`, `1001-1010` or `team:ventas`), for example "
        "`/agentbox hide dial 1001`. Type `/agentbox help` for examples.",
        "Indica qué agentes (como `1001`, `1001-1010` o `team:ventas`), por ejemplo "
        "`/agentbox hide dial 1001`. Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "hide",
        "Please say which button (`dial`, `disposition`, `hungup` or `all`) and which agents "
        "(like `1001`, `1001-1010` or `team:ventas`), for example "
        "`/agentbox hide disposition 1001`. Type `/agentbox help` for examples.",
        "Indica qué botón (`dial`, `disposition`, `hungup` o `all`) y qué agentes "
        "(como `1001`, `1001-1010` o `team:ventas`), por ejemplo "
        "`/agentbox hide disposition 1001`. Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "hide dial 1010-1001",
        "The range `1010-1001` is backwards: a range goes from the lower id to the higher one, "
        "like `1001-1010`.",
        "El rango `1010-1001` está al revés: un rango va del id menor al mayor, como `1001-1010`.",
    ),
    (
        "hide dial 1-2000",
        "That is 2,000 agents, and one command can change at most 500. Split it into several "
        "commands of at most 500 agents each (for example `1-500`, then the rest, from `501`).",
        "Son 2,000 agentes, y un comando puede cambiar como máximo 500. Divídelo en varios "
        "comandos de 500 agentes como máximo cada uno (por ejemplo `1-500`, y luego el resto, "
        "desde `501`).",
    ),
    (
        "hide dial 1001 for 25h",
        "`for 25h` is too long: a change lasts at most 24 hours (`24h`). For longer, change it "
        "without a duration, and change it back later. Type `/agentbox help` for examples.",
        "`for 25h` es demasiado: un cambio dura como máximo 24 horas (`24h`). Para más tiempo, "
        "haz el cambio sin duración y reviértelo después. Escribe `/agentbox help` para ver "
        "ejemplos.",
    ),
    (
        "grant <@U1|maria> superviser",
        "`superviser` is not a role — did you mean `supervisor`? The roles are `admin`, "
        "`supervisor`, `requester` or `viewer` (`administrador`, `solicitante`, `observador`). "
        "Type `/agentbox help` for examples.",
        "`superviser` no es un rol. ¿Quisiste decir `supervisor`? Los roles son `admin`, "
        "`supervisor`, `requester` o `viewer` (`administrador`, `solicitante`, `observador`). "
        "Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "grant maria",
        "`maria` is not a mention: type `@` and pick the person or user group from Slack's "
        "autocomplete, so that it becomes one (typing the name is not enough), like "
        "`/agentbox grant @maria supervisor team:ventas`. Type `/agentbox help` for examples.",
        "`maria` no es una mención: escribe `@` y elige a la persona o el grupo de usuarios en "
        "el autocompletado de Slack, para que se convierta en una (no basta con escribir el "
        "nombre), como `/agentbox grant @maria supervisor team:ventas`. Escribe "
        "`/agentbox help` para ver ejemplos.",
    ),
    (
        "team craete",
        "I don't understand `craete` after `team` — did you mean `create`? Say `create`, `add`, "
        "`remove`, `show` or `list` (or `set` a team's settings), like "
        "`/agentbox team show ventas`. Type `/agentbox help` for examples.",
        "No entiendo `craete` después de `team`. ¿Quisiste decir `create`? Indica `create`, "
        "`add`, `remove`, `show` o `list` (o `set` para los ajustes de un equipo), como "
        "`/agentbox team show ventas`. Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "team create ventas 1001 <#C1> operation:-x",
        "`-x` is not a valid operation name: use letters, digits, `-` and `_`, starting and "
        "ending with a letter or a digit, like `ventas` or `ventas-2`. "
        "Type `/agentbox help` for examples.",
        "`-x` no es un nombre de operación válido: usa letras, dígitos, `-` y `_`, empezando y "
        "terminando con una letra o un dígito, como `ventas` o `ventas-2`. "
        "Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "team set ventas approval-ttl 25h",
        "`25h` is out of range: a request waits from 1 minute to 24 hours. "
        "Type `/agentbox help` for examples.",
        "`25h` está fuera de rango: una solicitud espera de 1 minuto a 24 horas. "
        "Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "history --limit 0",
        "`--limit` takes a number from 1 to 200, like `--limit 50`. "
        "Type `/agentbox help` for examples.",
        "`--limit` lleva un número de 1 a 200, como `--limit 50`. "
        "Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "status hidden 1001",
        "`status hidden` lists every agent with hidden buttons and takes nothing more, so "
        "`1001` has no place in it. For some agents' buttons: `/agentbox status 1001` or "
        "`/agentbox status team:ventas`. Type `/agentbox help` for examples.",
        "`status hidden` lista todos los agentes con botones ocultos y no lleva nada más, así "
        "que `1001` no va ahí. Para los botones de algunos agentes: `/agentbox status 1001` o "
        "`/agentbox status team:ventas`. Escribe `/agentbox help` para ver ejemplos.",
    ),
    (
        "undo --reason why",
        '`--reason` goes with a show/hide change, like `/agentbox hide dial 1001 --reason "…"`; '
        "`undo` takes no reason. Type `/agentbox help` for examples.",
        '`--reason` va con un cambio show/hide, como `/agentbox hide dial 1001 --reason "…"`; '
        "`undo` no lleva motivo. Escribe `/agentbox help` para ver ejemplos.",
    ),
]


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize(("text", "english", "spanish"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_each_main_message_in_both_languages(
    text: str, english: str, spanish: str, language: str
) -> None:
    with use_language(language):
        parsed = parse(text)

    assert isinstance(parsed, ParseError)
    assert parsed.message == (english if language == "en" else spanish)


def test_the_suggestion_and_the_word_stay_as_typed_in_spanish() -> None:
    with use_language("es"):
        parsed = parse("ocultar tipificacion 1010-1001")

    assert parsed == ParseError(
        "El rango `1010-1001` está al revés: un rango va del id menor al mayor, como `1001-1010`.",
        word="1010-1001",
        suggestion="1001-1010",
    )


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_help_in_both_languages(language: str) -> None:
    with use_language(language):
        text = usage(Section)

    if language == "en":
        assert text == ADMIN_USAGE
        assert text.startswith(
            "*agentbox* shows or hides buttons in your agents' wolkvox softphone."
        )
        assert text.endswith("`/agentbox help` shows this message.")
    else:
        assert text.startswith(
            "*agentbox* muestra u oculta botones en el softphone de wolkvox de tus agentes."
        )
        for heading in ("*Uso:*", "*Ejemplos:*", "*Tú y tus equipos:*", "*Roles:*", "*Equipos*"):
            assert heading in text
        assert "(como máximo 500 agentes por comando)" in text
        assert "(nombres: letras, dígitos, `-` y `_`, hasta 40)" in text
        assert text.endswith("`/agentbox help` muestra este mensaje.")
    # The commands to copy are the same in both: command words are never translated.
    assert _examples(text) == _examples(ADMIN_USAGE)


def _examples(text: str) -> list[str]:
    """The commands to copy (not the syntax line, whose ``<buttons>`` are words to translate)."""
    return re.findall(r"`/agentbox [^`<]*`", text)


# --------------------------------------------------------------------------- through Slack


async def test_a_spanish_user_gets_parse_errors_and_help_in_spanish_and_others_in_english(
    agentbox: Harness,
) -> None:
    assert ack_text(await agentbox.slash("lang es", user=ADMIN)).startswith("Desde ahora")

    spanish_error = ack_text(await agentbox.slash("hide dispositon 1001", user=ADMIN))
    english_error = ack_text(await agentbox.slash("hide dispositon 1001", user=STRANGER))
    spanish_help = await agentbox.slash("ayuda", user=ADMIN)
    english_help = await agentbox.slash("help", user=STRANGER)

    assert spanish_error == (
        ":warning: No entiendo `dispositon`. ¿Quisiste decir `disposition`? "
        "Escribe `/agentbox help` para ver ejemplos."
    )
    assert english_error == (
        ":warning: I don't understand `dispositon` — did you mean `disposition`? "
        "Type `/agentbox help` for examples."
    )
    # An admin sees every section, in one Slack section per paragraph; without a role, only
    # how a change is written.
    assert ack_text(spanish_help) == usage_in("es", Section)
    assert "*Tú y tus equipos:*" in ack_text(spanish_help)
    assert any(
        block["text"]["text"].startswith("*Roles:* `admin` (`administrador`) puede hacerlo todo")
        for block in spanish_help.json()["blocks"]
    )
    assert ack_text(english_help) == usage_in("en", {Section.CHANGE})
    assert agentbox.simulator.calls == []


async def test_team_help_in_spanish_shows_the_teams_section(agentbox: Harness) -> None:
    await agentbox.slash("idioma es", user=ADMIN)

    text = ack_text(await agentbox.slash("equipo ayuda", user=ADMIN))

    assert text == usage_in("es", {Section.TEAMS})
    assert "*Equipos* (nombres: letras, dígitos, `-` y `_`, hasta 40)" in text


def usage_in(language: str, sections: set[Section] | type[Section]) -> str:
    with use_language(language):
        return usage(sections)
