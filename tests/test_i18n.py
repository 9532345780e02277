"""Spanish and English: the catalog is complete, the language follows the user, messages translate.

- The catalog: every string marked in the source (Babel's own extractor, as ``make messages`` runs
  it) has a Spanish translation that is not empty, not fuzzy and has the same placeholders, and
  the catalog holds nothing the source no longer says.
- The language: a signed slash command is answered in the user's chosen language, else their
  Slack locale (users.info), else ``AGENTBOX_LANGUAGE``; ``/agentbox lang`` chooses and explains.
- The messages converted so far, each rendered in English (unchanged) and in Spanish.
"""

from __future__ import annotations

import ast
import string
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.fake_slack import FakeSlack
from commands import i18n
from commands.agents import agent_ranges
from commands.grammar import LanguageCommand, ParseError, parse
from commands.i18n import LOCALE_DIR, SPANISH, _, catalog_path, use_language
from commands.reads import _status_word
from commands.roles import Actor, Target, decide_change, describe
from storage.directory import GrantRecord, TeamRecord
from storage.models import ChangeStatus
from tests.harness import ADMIN, STRANGER, Harness, ack_text, start_harness
from wolkvox import errors
from wolkvox.model import Button
from wolkvox.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
Key = tuple[str | None, str]  # (msgctxt, msgid)


# --------------------------------------------------------------------------- the catalog


def source_strings(root: Path = ROOT) -> dict[Key, str]:
    """Every translatable string under ``root`` (per its babel.cfg), with where it is."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found: dict[Key, str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        root, method_map, options_map
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault((context, msgid), f"{filename}:{lineno}")
    return found


def spanish_catalog() -> Catalog:
    with catalog_path(SPANISH).open("rb") as po:
        return read_po(po, locale=SPANISH)


def _entries(catalog: Catalog) -> Iterator[tuple[Key, Message]]:
    for message in catalog:
        if message.id:
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            yield (message.context, msgid), message


def _forms(message: Message) -> list[str]:
    """The translation's forms (one, or one per plural form)."""
    if message.string is None:
        return []
    return [message.string] if isinstance(message.string, str) else list(message.string)


def untranslated(strings: dict[Key, str], catalog: Catalog) -> list[str]:
    """The strings without a usable translation (absent, empty or fuzzy), with where they are."""
    entries = dict(_entries(catalog))
    problems = []
    for key, where in sorted(strings.items(), key=lambda item: item[1]):
        entry = entries.get(key)
        forms = [] if entry is None else _forms(entry)
        if entry is None or not forms or not all(forms):
            problems.append(f"{where}: {key[1]!r} has no Spanish translation")
        elif entry.fuzzy:
            problems.append(f"{where}: {key[1]!r} is fuzzy; check the translation, drop the flag")
    return problems


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_string_in_the_source_has_a_spanish_translation() -> None:
    problems = untranslated(source_strings(), spanish_catalog())
    assert not problems, "run `make messages`, then translate:\n" + "\n".join(problems)


def test_the_check_catches_a_string_nobody_translated(tmp_path: Path) -> None:
    """The check above is not vacuous: a new marked string fails it."""
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "new.py").write_text(
        'from commands.i18n import _\n\nMESSAGE = _("A sentence nobody has translated yet.")\n'
    )

    problems = untranslated(source_strings(tmp_path), spanish_catalog())

    assert len(problems) == 1
    assert "A sentence nobody has translated yet." in problems[0]
    assert "commands/new.py:3" in problems[0]


def test_the_catalog_holds_no_string_the_source_no_longer_says() -> None:
    stale = set(dict(_entries(spanish_catalog()))) - set(source_strings())
    assert not stale, f"run `make messages` to drop: {sorted(key[1] for key in stale)}"


def test_translations_keep_the_placeholders_of_the_english() -> None:
    wrong = []
    for (_context, msgid), message in _entries(spanish_catalog()):
        # Every plural form says the plural's placeholders (Spanish's singular keeps {count}).
        expected = _fields(msgid if isinstance(message.id, str) else message.id[1])
        wrong += [
            f"{msgid!r} → {form!r}"
            for form in _forms(message)
            if form and _fields(form) != expected
        ]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_no_f_string_is_given_to_gettext() -> None:
    """``_(f"…")`` is never in the catalog, so it would always show in English."""
    calls = {"_", "N_", "ngettext", "pgettext"}
    found = []
    for package in ("bot", "commands", "storage", "wolkvox"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in calls
                    and any(isinstance(arg, ast.JoinedStr) for arg in node.args)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"use _('… {{name}} …').format(name=…) instead: {found}"


def test_the_spanish_catalog_is_read_from_the_po_file() -> None:
    i18n.translations.cache_clear()
    with use_language("es"):
        assert _("No changes yet.") == "Todavía no hay cambios."
    assert _("No changes yet.") == "No changes yet."


# --------------------------------------------------------------------------- the language


async def test_a_user_whose_slack_speaks_spanish_is_answered_in_spanish(
    agentbox: Harness,
) -> None:
    agentbox.slack.locales[STRANGER] = "es-LA"

    text = ack_text(await agentbox.slash("status 1001", user=STRANGER))

    assert text == ":no_entry: Todavía no tienes un rol en agentbox; pídeselo a un administrador."
    lookups = agentbox.slack.calls_to("users.info")
    assert [call.payload.get("user") for call in lookups] == [STRANGER]
    assert lookups[0].payload.get("include_locale") in ("1", "true", True)


async def test_lang_en_switches_a_spanish_user_back_and_lang_auto_follows_slack_again(
    agentbox: Harness,
) -> None:
    agentbox.slack.locales[STRANGER] = "es-ES"
    assert "Todavía no tienes un rol" in ack_text(
        await agentbox.slash("status 1001", user=STRANGER)
    )

    chosen = ack_text(await agentbox.slash("lang en", user=STRANGER))
    refused = ack_text(await agentbox.slash("status 1001", user=STRANGER))
    explained = ack_text(await agentbox.slash("idioma", user=STRANGER))

    assert chosen.startswith("From now on agentbox answers you in English.")
    assert refused == ":no_entry: You have no role in agentbox yet; ask an admin."
    assert explained.startswith("agentbox answers you in English (`en`): you chose it.")

    back = ack_text(await agentbox.slash("lang auto", user=STRANGER))
    assert back == (
        "agentbox vuelve a seguir el idioma de tu Slack: te responde en español (`es`)."
    )
    assert "Todavía no tienes un rol" in ack_text(
        await agentbox.slash("status 1001", user=STRANGER)
    )
    explained = ack_text(await agentbox.slash("lang", user=STRANGER))
    assert explained.startswith("agentbox te responde en español (`es`), el idioma de tu Slack.")


async def test_a_user_may_choose_spanish_without_any_role(agentbox: Harness) -> None:
    agentbox.slack.locales[STRANGER] = "en-US"

    chosen = ack_text(await agentbox.slash("idioma español", user=STRANGER))

    assert chosen.startswith("Desde ahora agentbox te responde en español.")
    assert "Todavía no tienes un rol" in ack_text(await agentbox.slash("history", user=STRANGER))


async def test_an_unknown_language_is_refused_and_nothing_is_stored(agentbox: Harness) -> None:
    text = ack_text(await agentbox.slash("lang fr", user=STRANGER))

    assert text == (
        ":warning: agentbox speaks `en` (English) and `es` (español), not `fr`. Say "
        "`/agentbox lang es`, or `/agentbox lang auto` to follow your Slack language again."
    )
    assert await agentbox.services.languages.language_for(STRANGER) == "en"
    explained = ack_text(await agentbox.slash("lang", user=STRANGER))
    assert "this workspace's default (`AGENTBOX_LANGUAGE`)" in explained


async def test_agentbox_language_applies_to_a_user_without_a_slack_locale(
    database_url: str, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBOX_LANGUAGE", "es")
    async with start_harness(database_url=database_url, simulator=simulator) as agentbox:
        agentbox.slack.locales["U_ENGLISH"] = "en-GB"

        nobody = ack_text(await agentbox.slash("status 1001", user=STRANGER))
        english = ack_text(await agentbox.slash("status 1001", user="U_ENGLISH"))
        explained = ack_text(await agentbox.slash("lang", user=STRANGER))

    assert nobody == ":no_entry: Todavía no tienes un rol en agentbox; pídeselo a un administrador."
    assert english == ":no_entry: You have no role in agentbox yet; ask an admin."
    assert explained.startswith(
        "agentbox te responde en español (`es`), el idioma predeterminado de este espacio de "
        "trabajo (`AGENTBOX_LANGUAGE`)"
    )


async def test_the_choice_outlives_a_restart_and_beats_the_slack_locale(
    database_url: str, simulator: Simulator, slack: FakeSlack
) -> None:
    slack.locales[STRANGER] = "en-US"
    async with start_harness(database_url=database_url, simulator=simulator, slack=slack) as first:
        await first.slash("lang es", user=STRANGER)

    async with start_harness(database_url=database_url, simulator=simulator, slack=slack) as again:
        text = ack_text(await again.slash("status 1001", user=STRANGER))
        # What work outside any request (a change followed after a restart, a revert) asks:
        assert await again.services.languages.language_for(STRANGER) == "es"
        assert await again.services.languages.language_for("U_NOBODY") == "en"

    assert "Todavía no tienes un rol" in text


async def test_the_slack_locale_is_asked_once_and_a_slack_outage_falls_back_to_the_default(
    agentbox: Harness,
) -> None:
    agentbox.slack.locales[STRANGER] = "es-LA"
    for _attempt in range(3):
        assert "Todavía" in ack_text(await agentbox.slash("status 1001", user=STRANGER))
    assert len(agentbox.slack.calls_to("users.info")) == 1

    agentbox.slack.web_api_down = True
    agentbox.slack.locales["U_OTHER"] = "es-LA"
    text = ack_text(await agentbox.slash("status 1001", user="U_OTHER"))

    assert text == ":no_entry: You have no role in agentbox yet; ask an admin."


# --------------------------------------------------------------------------- the messages

LANGUAGES = ["en", "es"]


def _grant(
    id_: int,
    role: str,
    teams: tuple[str, ...] | None = None,
    buttons: tuple[str, ...] | None = None,
    *,
    group: bool = False,
) -> GrantRecord:
    return GrantRecord(
        id=id_,
        subject_type="usergroup" if group else "user",
        subject_id="S_SUP" if group else "U_MARIA",
        role=role,
        teams=teams,
        buttons=buttons,
        created_by=ADMIN,
        created_at=datetime(2026, 11, 2, tzinfo=UTC),
    )


def _team(name: str, agents: tuple[str, ...], channels: tuple[str, ...] = ()) -> TeamRecord:
    return TeamRecord(name, "default", f"C_{name}", None, channels, agents)


def _refusal(grants: list[GrantRecord], agent: str, team: str | None, button: Button) -> str:
    teams = {"ventas": _team("ventas", ("1001",)), "cobranza": _team("cobranza", ("2001",))}
    teams["piso"] = _team("piso", ("3001",), channels=("C_PISO",))
    decision = decide_change(
        Actor("U_MARIA", frozenset({"S_SUP"}), channel_id="C_OPS"),
        [Target(agent, "default", team)],
        [button],
        grants=grants,
        teams=teams,
        env_admins=frozenset({ADMIN}),
    )
    assert len(decision.refusals) == 1
    return decision.refusals[0].reason


def _env_admin_grant() -> str:
    decision = decide_change(
        Actor(ADMIN),
        [Target("1001", "default", None)],
        [Button.DIAL],
        grants=[],
        teams={},
        env_admins=frozenset({ADMIN}),
    )
    return decision.grants_used[0]


def _parse_error(text: str) -> str:
    parsed = parse(text)
    assert isinstance(parsed, ParseError), parsed
    return parsed.message


MESSAGES: dict[str, tuple[Callable[[], str], str, str]] = {
    "agents beyond the limit": (
        lambda: agent_ranges([str(n) for n in range(1000, 3000, 2)], max_chars=50),
        "1000, 1002, 1004, 1006, 1008, 1010, 1012, 1014 and 992 more",
        "1000, 1002, 1004, 1006, 1008, 1010, 1012, 1014 y 992 más",
    ),
    "a grant over teams and buttons": (
        lambda: describe(_grant(4, "supervisor", ("cobranza", "ventas"), ("dial",))),
        "supervisor of cobranza, ventas (dial) [grant #4]",
        "supervisor de cobranza, ventas (dial) [permiso #4]",
    ),
    "a group's grant over every team": (
        lambda: describe(_grant(5, "viewer", group=True)),
        "viewer of every team via <!subteam^S_SUP> [grant #5]",
        "viewer de todos los equipos a través de <!subteam^S_SUP> [permiso #5]",
    ),
    "an AGENTBOX_ADMINS admin's change": (
        _env_admin_grant,
        "agentbox admin (AGENTBOX_ADMINS)",
        "administrador de agentbox (AGENTBOX_ADMINS)",
    ),
    "refused: no role": (
        lambda: _refusal([], "1001", "ventas", Button.DIAL),
        "you have no role in agentbox; ask an admin for one",
        "no tienes un rol en agentbox; pídele uno a un administrador",
    ),
    "refused: viewer": (
        lambda: _refusal([_grant(1, "viewer")], "1001", "ventas", Button.DIAL),
        "your role is viewer: status and history only",
        "tu rol es viewer (observador): solo puedes consultar estado e historial",
    ),
    "refused: another team": (
        lambda: _refusal([_grant(1, "supervisor", ("ventas",))], "2001", "cobranza", Button.DIAL),
        "in team cobranza; you supervise ventas",
        "en el equipo cobranza; tú supervisas ventas",
    ),
    "refused: an agent in no team": (
        lambda: _refusal([_grant(1, "requester", ("ventas",))], "9001", None, Button.DIAL),
        "in no team; you supervise ventas",
        "en ningún equipo; tú supervisas ventas",
    ),
    "refused: a grant of no team": (
        lambda: _refusal([_grant(1, "supervisor", ())], "9001", None, Button.DIAL),
        "in no team; you supervise no team",
        "en ningún equipo; no supervisas ningún equipo",
    ),
    "refused: another button": (
        lambda: _refusal(
            [_grant(1, "supervisor", ("ventas",), ("disposition",))], "1001", "ventas", Button.DIAL
        ),
        "your grant covers only `disposition`, not `dial`",
        "tu permiso cubre solo `disposition`, no `dial`",
    ),
    "refused: another channel": (
        lambda: _refusal([_grant(1, "supervisor")], "3001", "piso", Button.DIAL),
        "changes to team piso's agents are accepted only in <#C_PISO>",
        "los cambios a los agentes del equipo piso solo se aceptan en <#C_PISO>",
    ),
    "a change waiting for confirmation, in history": (
        lambda: _status_word(ChangeStatus.AWAITING_CONFIRMATION),
        "awaiting confirmation",
        "esperando confirmación",
    ),
    "a change waiting for approval, in history": (
        lambda: _status_word(ChangeStatus.AWAITING_APPROVAL),
        "awaiting approval",
        "esperando aprobación",
    ),
    "a rejected change": (
        lambda: _status_word(ChangeStatus.REJECTED),
        "rejected",
        "rechazado",
    ),
    "an expired request": (lambda: _status_word(ChangeStatus.EXPIRED), "expired", "vencido"),
    "a queued change": (lambda: _status_word(ChangeStatus.QUEUED), "queued", "en cola"),
    "a cancelled change": (lambda: _status_word(ChangeStatus.CANCELLED), "cancelled", "cancelado"),
    "lang with an unknown language": (
        lambda: _parse_error("idioma fr"),
        "agentbox speaks `en` (English) and `es` (español), not `fr`. Say `/agentbox idioma es`, "
        "or `/agentbox idioma auto` to follow your Slack language again.",
        "agentbox habla `en` (English) y `es` (español), no `fr`. Escribe `/agentbox idioma es`, "
        "o `/agentbox idioma auto` para volver a seguir el idioma de tu Slack.",
    ),
    "lang with two languages": (
        lambda: _parse_error("lang es en"),
        "`lang` takes one language, like `/agentbox lang es`; `en` has no place in it.",
        "`lang` lleva un solo idioma, como `/agentbox lang es`; `en` no va ahí.",
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_each_message_in_both_languages(name: str, language: str) -> None:
    render, english, spanish = MESSAGES[name]
    with use_language(language):
        text = render()
    assert text == (english if language == "en" else spanish)
    assert language == "en" or text != english


def test_lang_parses_its_aliases() -> None:
    assert parse("lang") == LanguageCommand()
    assert parse("idioma Español") == LanguageCommand("es")
    assert parse("language english") == LanguageCommand("en")
    assert parse("lang slack") == LanguageCommand("auto")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "error",
    [
        errors.BadRequest,
        errors.MissingToken,
        errors.InvalidToken,
        errors.UnusableToken,
        errors.QuotaExceeded,
        errors.TooManySimultaneous,
        errors.Maintenance,
        errors.Timeout,
        errors.ConnectionFailed,
        errors.ServerError,
        errors.UnexpectedAnswer,
        errors.InvalidServer,
        errors.WolkvoxError,
    ],
)
def test_each_wolkvox_error_in_both_languages(
    error: type[errors.WolkvoxError], language: str
) -> None:
    stored = error("TOKEN LIMIT EXCEEDED").user_message  # as calls.message keeps it
    assert stored == f"{error.explanation} (TOKEN LIMIT EXCEEDED)"  # English, whoever asked

    with use_language(language):
        shown = errors.localize(stored, _)
        plain = errors.localize(error().user_message, _)

    assert shown.endswith(" (TOKEN LIMIT EXCEEDED)")  # wolkvox's own words, as it said them
    if language == "en":
        assert (shown, plain) == (stored, error.explanation)
    else:
        assert plain != error.explanation and shown == f"{plain} (TOKEN LIMIT EXCEEDED)"
        assert plain == i18n.translations("es").gettext(error.explanation)


def test_wolkvox_answers_are_shown_as_wolkvox_gave_them() -> None:
    with use_language("es"):
        assert errors.localize("Agentbox has been hide", _) == "Agentbox has been hide"


READS = [
    # (command, user, English, Spanish): what status and history say, read back from the app.
    (
        "status hidden",
        ADMIN,
        "No agent has a hidden button right now (as far as agentbox set them).",
        "Ahora mismo ningún agente tiene botones ocultos (según lo que agentbox configuró).",
    ),
    ("history", ADMIN, "No changes yet.", "Todavía no hay cambios."),
    (
        "status team:nadie",
        ADMIN,
        "There is no team named `nadie`. `/agentbox team list` lists them.",
        "No hay ningún equipo llamado `nadie`. `/agentbox team list` los muestra todos.",
    ),
    (
        "history",
        STRANGER,
        "You have no role in agentbox yet; ask an admin.",
        "Todavía no tienes un rol en agentbox; pídeselo a un administrador.",
    ),
]
READS_AFTER_A_CHANGE = [
    (
        "status hidden",
        "*Hidden right now* (the last call agentbox made for each):\n"
        "• `dial`: 3 agents (1001-1003)",
        "*Ocultos ahora mismo* (según la última solicitud que agentbox hizo para cada uno):\n"
        "• `dial`: 3 agentes (1001-1003)",
    ),
    ("status 1004", "• 1004: nothing set by agentbox yet", "• 1004: agentbox todavía no ha"),
    ("status 1001", "• 1001: `dial` hidden by <@U_ADMIN> at ", "• 1001: `dial` ocultado por"),
    ("history", "`hide dial 1001-1003` — 3/3 done", "`hide dial 1001-1003` — 3/3 hechas"),
]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_status_and_history_in_both_languages(agentbox: Harness, language: str) -> None:
    for user in (ADMIN, STRANGER):
        agentbox.slack.locales[user] = "es-LA" if language == "es" else "en-US"

    for command, user, english, spanish in READS:
        text = ack_text(await agentbox.slash(command, user=user))
        assert text.endswith(english if language == "en" else spanish), (command, text)
        assert language == "en" or english not in text

    await agentbox.slash("hide dial 1001-1003")
    await agentbox.idle()
    for command, english, spanish in READS_AFTER_A_CHANGE:
        text = ack_text(await agentbox.slash(command))
        assert (english if language == "en" else spanish) in text, (command, text)
        assert language == "en" or english not in text


def test_the_catalogs_are_installed_with_the_package() -> None:
    """An installed agentbox (a wheel, not a checkout) speaks Spanish too: each catalog the app
    reads is package data of the package it sits in."""
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    package_data: dict[str, list[str]] = pyproject["tool"]["setuptools"]["package-data"]
    package = Path(i18n.__file__).parent
    catalogs = sorted(LOCALE_DIR.rglob("*.po"))
    assert catalogs, "no catalog found"
    for catalog in catalogs:
        assert catalog.is_relative_to(package), f"{catalog} is outside the commands package"
        inside = catalog.relative_to(package).as_posix()
        assert any(fnmatch(inside, pattern) for pattern in package_data["commands"]), inside
