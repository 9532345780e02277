"""Tests for the /agentbox grammar: one example per rule, then properties over generated text."""

from __future__ import annotations

import re
import time
import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.grammar import (
    ADMIN_USAGE,
    ALL_TEAMS,
    DEFAULT_HISTORY_LIMIT,
    MAX_AGENTS,
    MAX_DURATION,
    MAX_HISTORY_LIMIT,
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MIN_DURATION,
    ROLE_SECTIONS,
    USAGE,
    ChangeCommand,
    ChannelRef,
    GrantCommand,
    GroupRef,
    HelpCommand,
    HistoryCommand,
    Parsed,
    ParseError,
    RevokeCommand,
    Role,
    RolesCommand,
    Section,
    StatusCommand,
    TeamAddCommand,
    TeamCreateCommand,
    TeamListCommand,
    TeamRemoveCommand,
    TeamShowCommand,
    UndoCommand,
    UserRef,
    WhoamiCommand,
    is_reserved,
    normalize,
    parse,
    parse_targets,
    sections_for,
    tokenize,
    usage,
)
from wolkvox.model import Button, Display

DIAL, DISPO, HUNG = Button.DIAL, Button.DISPOSITION, Button.HUNGUP
ALL = (DIAL, DISPO, HUNG)

# The aliases the product promises, written out here (not read from the module) so that dropping
# one from the vocabulary table fails a test.
DISPLAY_ALIASES: dict[Display, tuple[str, ...]] = {
    Display.SHOW: ("show", "mostrar", "muestra", "ver", "unhide"),
    Display.HIDE: ("hide", "ocultar", "oculta", "esconder"),
}
BUTTON_ALIASES: dict[tuple[Button, ...], tuple[str, ...]] = {
    (DIAL,): ("dial", "call", "llamar", "llamada", "marcar"),
    (DISPO,): ("disposition", "dispo", "tipificacion", "tipificación", "tipificar"),
    (HUNG,): ("hungup", "hung-up", "hangup", "hang-up", "hang_up", "colgar", "cuelgue"),
    ALL: ("all", "todo", "todos", "todas"),
}
HELP_ALIASES = ("help", "ayuda", "?", "-h", "--help")
RANGE_WORDS = ("to", "through", "thru", "a", "al", "hasta")
DIGITS = re.compile(r"[0-9]{1,15}")


def change(text: str) -> ChangeCommand:
    result = parse(text)
    assert isinstance(result, ChangeCommand), result
    return result


def error(text: str) -> ParseError:
    result = parse(text)
    assert isinstance(result, ParseError), result
    assert result.message
    return result


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    ("alias", "display"),
    [(alias, display) for display, aliases in DISPLAY_ALIASES.items() for alias in aliases],
)
def test_action_aliases(alias: str, display: Display) -> None:
    assert change(f"{alias} dial 1001") == ChangeCommand(display, (DIAL,), ("1001",))


@pytest.mark.parametrize(
    ("alias", "buttons"),
    [(alias, buttons) for buttons, aliases in BUTTON_ALIASES.items() for alias in aliases],
)
def test_button_aliases(alias: str, buttons: tuple[Button, ...]) -> None:
    assert change(f"hide {alias} 1001").buttons == buttons


@pytest.mark.parametrize(
    "text",
    [
        "OCULTAR Tipificación 1001",
        "ocultar TIPIFICACIÓN 1001",
        "Ócultar tipificacion 1001",
        "HiDe DiSpOsItIoN 1001",
        "esconder dispo 1001",
    ],
)
def test_case_and_accent_insensitive(text: str) -> None:
    assert change(text) == ChangeCommand(Display.HIDE, (DISPO,), ("1001",))


def test_accented_show_alias() -> None:
    assert change("MOSTRÁR colgar 7").display is Display.SHOW


# --------------------------------------------------------------------------- order and repeats


@pytest.mark.parametrize(
    "text", ["hide dial 1001", "1001 hide dial", "dial ocultar 1001", "dial 1001 hide"]
)
def test_words_in_any_order(text: str) -> None:
    assert change(text) == ChangeCommand(Display.HIDE, (DIAL,), ("1001",))


def test_several_buttons_in_canonical_order() -> None:
    assert change("hide hungup dial 1001").buttons == (DIAL, HUNG)
    assert change("hide dial disposition 1001").buttons == (DIAL, DISPO)


def test_duplicate_buttons_collapse() -> None:
    assert change("hide dial llamar DIAL 1001").buttons == (DIAL,)
    assert change("show all dial colgar 1001").buttons == ALL


def test_same_action_repeated_is_fine() -> None:
    assert change("hide ocultar dial hide 1001").display is Display.HIDE


def test_two_actions_name_both() -> None:
    err = error("show hide dial 1001")
    assert "`show`" in err.message
    assert "`hide`" in err.message
    err = error("mostrar dial ocultar 1001")
    assert "`mostrar`" in err.message
    assert "`ocultar`" in err.message


# --------------------------------------------------------------------------- missing parts


def test_missing_button() -> None:
    err = error("hide 1001")
    assert "button" in err.message
    assert "agents" not in err.message
    assert "`/agentbox hide disposition 1001`" in err.message  # example keeps what was typed


def test_missing_targets() -> None:
    err = error("hide dial")
    assert "agents" in err.message
    assert "button" not in err.message
    assert "`/agentbox hide dial 1001`" in err.message


def test_missing_action() -> None:
    err = error("dial 1001-1003")
    assert "`show` or `hide`" in err.message
    assert "`/agentbox hide dial 1001-1003`" in err.message


def test_missing_two_parts_names_both() -> None:
    err = error("ocultar")
    assert "button" in err.message
    assert "agents" in err.message


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    "text",
    [
        "hide dial 1001 1002 1003",
        "hide dial 1001,1002,1003",
        "hide dial 1001, 1002, 1003",
        "hide dial 1001 ,1002 , 1003,",
        "hide dial 1001-1003",
        "hide dial 1001 - 1003",
        "hide dial 1001–1003",  # noqa: RUF001 - an en dash, as phones and word processors type it
        "hide dial 1003 1001-1002 1002",
        "hide,dial,1001,1002,1003",
    ],
)
def test_target_lists_and_ranges(text: str) -> None:
    assert change(text).agents == ("1001", "1002", "1003")


def test_targets_sorted_numerically_not_lexically() -> None:
    assert change("hide dial 100 20 3").agents == ("3", "20", "100")


def test_leading_zeros_kept() -> None:
    assert change("hide dial 007").agents == ("007",)
    assert change("hide dial 0098-0101").agents == ("0098", "0099", "0100", "0101")
    # Ids are strings: 07 and 7 are different ids and are both kept.
    assert change("hide dial 7 07").agents == ("7", "07")


@pytest.mark.parametrize("word", [*RANGE_WORDS, "TO", "Thru", "HASTA", "á", "Al", "thrú"])
def test_range_words_between_two_ids(word: str) -> None:
    assert change(f"hide dial 1001 {word} 1010") == change("hide dial 1001-1010")


def test_range_word_never_means_all_buttons() -> None:
    # `hide dial 1001 to 1010` once answered "did you mean `todo`?" (all buttons).
    assert change("hide dial 1001 to 1010") == ChangeCommand(
        Display.HIDE, (DIAL,), tuple(str(n) for n in range(1001, 1011))
    )


def test_range_words_mix_with_lists_ranges_and_order() -> None:
    assert change("1001 hasta 1003, 1005 ocultar 1007 a 1008 dial 1010-1011").agents == (
        "1001",
        "1002",
        "1003",
        "1005",
        "1007",
        "1008",
        "1010",
        "1011",
    )
    assert change("hide dial 001 to 003").agents == ("001", "002", "003")
    assert change("hide dial 1001,to,1002").agents == ("1001", "1002")


@pytest.mark.parametrize(
    "text",
    [
        "hide dial to 1010",
        "hide dial 1001 to",
        "hide to dial 1001",
        "hide dial 1001 to to 1010",
        "hide dial 1 to 5 to 9",
        "hide dial 1001-1005 to 1010",
        "hide dial 1001 to 1010-1020",
        "hide 1001 to dial 1010",
        "to",
    ],
)
def test_range_word_not_between_two_ids_is_an_error(text: str) -> None:
    err = error(text)
    assert err.word == "to"
    assert "`to` must stand between two agent ids, like `1001 to 1010`" in err.message
    assert err.suggestion is None


def test_misplaced_range_word_is_named_as_typed() -> None:
    err = error("ocultar dial HASTA 1001")
    assert err.word == "HASTA"
    assert "`HASTA` must stand between two agent ids, like `1001 HASTA 1010`" in err.message


def test_backwards_range_with_range_word() -> None:
    err = error("hide dial 1010 to 1001")
    assert "backwards" in err.message
    assert err.suggestion == "1001-1010"


def test_parse_targets_reads_range_words() -> None:
    assert parse_targets(["1001 to 1003"]) == ("1001", "1002", "1003")
    assert parse_targets(["1001", "al", "1002"]) == ("1001", "1002")
    misplaced = parse_targets(["thru 1003"])
    assert isinstance(misplaced, ParseError)
    assert misplaced.word == "thru"


def test_single_id_range() -> None:
    assert change("hide dial 5-5").agents == ("5",)


def test_backwards_range_is_an_error() -> None:
    err = error("hide dial 1010-1001")
    assert "`1010-1001`" in err.message
    assert "backwards" in err.message
    assert "`1001-1010`" in err.message
    assert err.word == "1010-1001"
    assert err.suggestion == "1001-1010"


def test_id_length_bound() -> None:
    assert change("hide dial 123456789012345").agents == ("123456789012345",)
    err = error("hide dial 1234567890123456")
    assert "`1234567890123456`" in err.message
    assert "15" in err.message
    err = error("hide dial 1-1234567890123456")
    assert "`1234567890123456`" in err.message


def test_bound_exactly_max_is_accepted() -> None:
    assert len(change(f"hide dial 1-{MAX_AGENTS}").agents) == MAX_AGENTS


def test_bound_exceeded_is_refused_with_count_bound_and_advice() -> None:
    err = error(f"hide dial 1-{MAX_AGENTS} {MAX_AGENTS + 1}")
    assert f"{MAX_AGENTS + 1}" in err.message
    assert f"at most {MAX_AGENTS}" in err.message
    assert "split" in err.message.lower()


@pytest.mark.parametrize(
    ("targets", "advice"),
    [
        ("1001-1600", "for example `1001-1500`, then `1501-1600`"),
        ("1001 to 1600", "for example `1001-1500`, then `1501-1600`"),
        ("1-300 1000-1300", "for example `1-300 1000-1199`, then `1200-1300`"),
        # Never one wide range: `600-700` would reach 99 agents nobody named.
        ("1-500 600 700", "for example `1-500`, then `600 700`"),
        ("1-300 201-501", "for example `1-500`, then `501`"),
        ("0001-0600", "for example `0001-0500`, then `0501-0600`"),
        ("1-499 7 07 08", "for example `1-498 07-08`, then `499`"),
        ("1-1001", "for example `1-500`, then the rest, from `501`"),
        ("5000-999999999999999", "for example `5000-5499`, then the rest, from `5500`"),
        (
            " ".join(str(n) for n in range(0, 1300, 2)),
            "for example your first 500 ids, `0` to `998`, then the rest, from `1000`",
        ),
    ],
)
def test_bound_advice_is_built_from_the_users_targets(targets: str, advice: str) -> None:
    err = error(f"hide dial {targets}")
    assert advice in err.message
    assert len(err.message) < 400


def test_bound_advice_no_longer_fixed() -> None:
    err = error("hide dial 1001-1600")
    assert "`1-500`" not in err.message
    assert "`501-1000`" not in err.message


def test_bound_counts_distinct_agents_not_words() -> None:
    assert len(change("hide dial 1-400 1-400 100-400").agents) == 400
    err = error("hide dial 1-300 201-501")
    assert "501" in err.message


def test_huge_range_refused_quickly() -> None:
    start = time.perf_counter()
    err = error("hide dial 1-999999999999999")
    assert time.perf_counter() - start < 0.5
    assert "999,999,999,999,999" in err.message


def test_many_overlapping_ranges_are_quick() -> None:
    start = time.perf_counter()
    assert len(change("hide dial " + "1-500 " * 2000).agents) == 500
    assert time.perf_counter() - start < 2


def test_parse_targets_directly() -> None:
    assert parse_targets(["1003", "1001,1002", "1004 - 1005"]) == (
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
    )
    empty = parse_targets([])
    assert isinstance(empty, ParseError)
    assert "agents" in empty.message
    bad = parse_targets(["12x"])
    assert isinstance(bad, ParseError)
    assert bad.word == "12x"


# --------------------------------------------------------------------------- escaping and help


def test_html_is_unescaped() -> None:
    err = error("hide dial 1001 &amp;")
    assert err.word == "&"
    err = error("hide dial 1001 &lt;!channel&gt;")
    assert err.word == "<!channel>"
    # Echoed back escaped, so Slack neither mis-renders nor pings the channel.
    assert "`&lt;!channel&gt;`" in err.message
    assert "<!channel>" not in err.message


def test_backtick_in_word_cannot_break_formatting() -> None:
    err = error("hide dial 1001 a`b")
    assert err.word == "a`b"
    assert "`a'b`" in err.message


def test_invisible_characters_are_ignored() -> None:
    assert change("hide dial 1001\u200b").agents == ("1001",)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t", *HELP_ALIASES, "AYUDA", "--HELP", "—help", "hide dial 1001 help", "?? ?"],
)
def test_help(text: str) -> None:
    assert parse(text) == HelpCommand()


def test_help_wins_over_unknown_words() -> None:
    assert parse("ayuda con dispositon") == HelpCommand()


def test_usage_has_examples() -> None:
    assert "/agentbox hide disposition 1001" in USAGE
    assert "1001-1010" in USAGE
    for word in ("show", "hide", "dial", "disposition", "hungup", "all", str(MAX_AGENTS)):
        assert word in USAGE


# --------------------------------------------------------------------------- unknown words


def test_unknown_word_with_suggestion() -> None:
    err = error("hide dispositon 1001")
    assert "`dispositon`" in err.message
    assert "did you mean `disposition`?" in err.message
    assert err.word == "dispositon"
    assert err.suggestion == "disposition"


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("hdie", "hide"),
        ("mostar", "mostrar"),
        ("hangpu", "hangup"),
        ("ayudo", "ayuda"),
        ("throuhg", "through"),
    ],
)
def test_suggestions_cover_every_kind_of_word(typo: str, suggestion: str) -> None:
    err = error(f"{typo} dial 1001")
    assert err.word == typo
    assert err.suggestion == suggestion
    assert f"did you mean `{suggestion}`?" in err.message


@pytest.mark.parametrize(
    "word", ["10a1", "abc-def", "1001-1002-1003", "xyzzy", "-5", "\uff11\uff10\uff10\uff11"]
)
def test_unknown_words_without_suggestion(word: str) -> None:
    err = error(f"hide dial {word}")
    assert err.word == word
    assert f"`{word}`" in err.message
    assert err.suggestion is None
    assert "did you mean" not in err.message


@pytest.mark.parametrize("word", ["hid", "tod", "tu", "di", "x", "sho", "ña"])
def test_short_unknown_words_get_no_suggestion(word: str) -> None:
    # difflib on very short words misleads: `tod` is closest to `todo`, which means all buttons.
    err = error(f"hide dial 1001 {word} 1010")
    assert err.word == word
    assert err.suggestion is None
    assert "did you mean" not in err.message
    assert f"`{word}`" in err.message
    assert "`/agentbox help`" in err.message
    for vocabulary in ("`todo`", "`all`", "`hide`", "`show`", "`dial`"):
        assert vocabulary not in err.message


def test_first_unknown_word_is_reported() -> None:
    assert error("hide foo bar 1001").word == "foo"


def test_very_long_word_is_truncated_in_message() -> None:
    err = error("hide dial " + "x" * 5000)
    assert err.word == "x" * 5000
    assert len(err.message) < 1000


# --------------------------------------------------------------------------- mentions

MARIA = UserRef("U0123ABC")
SUPS = GroupRef("S0123ABC")


def grant(text: str) -> GrantCommand:
    result = parse(text)
    assert isinstance(result, GrantCommand), result
    return result


@pytest.mark.parametrize(
    ("entity", "subject"),
    [
        ("<@U0123ABC>", MARIA),
        ("<@U0123ABC|maria>", MARIA),
        ("<@U0123ABC|maria lopez>", MARIA),  # a label with a space is still one word
        ("<@W0123ABC|maria>", UserRef("W0123ABC")),  # enterprise user ids
        ("<!subteam^S0123ABC>", SUPS),
        ("<!subteam^S0123ABC|@supervisores>", SUPS),
    ],
)
def test_slack_entities_are_subjects(entity: str, subject: UserRef | GroupRef) -> None:
    assert grant(f"grant {entity} supervisor team:ventas").subject == subject


@pytest.mark.parametrize("typed", ["&lt;@U0123ABC&gt;", "&lt;@U0123ABC|maria&gt;", "<@U1"])
def test_escaped_angle_brackets_are_never_a_mention(typed: str) -> None:
    # A user who types `<@U1>` gets `&lt;@U1&gt;` from Slack: text, not a mention.
    err = error(f"grant {typed} supervisor team:ventas")
    assert "not a mention" in err.message
    assert "autocomplete" in err.message


def test_entities_are_found_before_unescaping() -> None:
    (token,) = tokenize("<#C1|ventas&amp;co>")
    assert token.mention is not None
    assert token.mention.ref == ChannelRef("C1")
    assert token.mention.label == "#ventas&co"
    (text,) = tokenize("&lt;#C1|ventas&gt;")
    assert text.mention is None
    assert text.raw == "<#C1|ventas>"


def test_private_use_characters_cannot_forge_a_mention() -> None:
    # The tokenizer marks mentions with private-use characters; typed ones are dropped first.
    assert [t.mention for t in tokenize("\ue0000\ue001 <@U1>")] == [
        None,
        tokenize("<@U1>")[0].mention,
    ]
    assert change("hide dial \ue0000\ue001 1001").agents == ("0", "1001")


def test_bare_at_name_asks_for_autocomplete() -> None:
    err = error("grant @maria supervisor team:ventas")
    assert err.word == "@maria"
    assert "`@maria` is not a mention" in err.message
    assert "autocomplete" in err.message


@pytest.mark.parametrize(
    ("entity", "what"),
    [("<#C1|ventas>", "`#ventas` is a channel"), ("<!here>", "`@here` is not one person")],
)
def test_subject_must_be_a_person_or_group(entity: str, what: str) -> None:
    err = error(f"grant {entity} supervisor team:ventas")
    assert what in err.message
    assert err.word == entity


def test_mentions_are_echoed_by_label_without_pinging() -> None:
    err = error("hide dial 1001 <!channel>")
    assert "`@channel`" in err.message
    assert "<!channel>" not in err.message


# --------------------------------------------------------------------------- grant

ROLE_ALIASES: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: ("admin", "administrador", "ADMINISTRADORA"),
    Role.SUPERVISOR: ("supervisor", "supervisora", "Supervisor"),
    Role.REQUESTER: ("requester", "solicitante"),
    Role.VIEWER: ("viewer", "observador", "lector", "lectora"),
}
GRANT_VERBS = ("grant", "otorgar", "dar", "OTORGAR")
REVOKE_VERBS = ("revoke", "revocar", "quitar")


@pytest.mark.parametrize("verb", GRANT_VERBS)
def test_grant_verbs(verb: str) -> None:
    assert grant(f"{verb} <@U0123ABC|maria> supervisor team:ventas") == GrantCommand(
        MARIA, Role.SUPERVISOR, ("ventas",), None
    )


@pytest.mark.parametrize(
    ("alias", "role"),
    [(alias, role) for role, aliases in ROLE_ALIASES.items() for alias in aliases],
)
def test_role_aliases(alias: str, role: Role) -> None:
    scope = "" if role is Role.ADMIN else " team:*"
    assert grant(f"grant <@U0123ABC> {alias}{scope}").role is role


def test_grant_with_teams_and_buttons_in_any_order() -> None:
    expected = GrantCommand(MARIA, Role.REQUESTER, ("cobranza", "ventas"), (DIAL, DISPO))
    for text in (
        "grant <@U0123ABC> requester team:ventas,cobranza buttons:dial,disposition",
        "grant <@U0123ABC> requester buttons:disposition,dial team:Cobranza,VENTAS",
        "grant <@U0123ABC> requester team:ventas buttons:dial team:cobranza buttons:dispo",
        "dar <@U0123ABC> solicitante equipo:ventas,cobranza botones:llamar,tipificación",
        "grant <@U0123ABC> requester team: ventas,cobranza buttons: dial,disposition",
    ):
        assert grant(text) == expected, text


@pytest.mark.parametrize("every", ["*", "all", "todos", "ALL"])
def test_every_team(every: str) -> None:
    assert grant(f"grant <@U0123ABC> viewer team:{every}").teams is ALL_TEAMS


def test_all_buttons_is_none() -> None:
    assert grant("grant <@U0123ABC> supervisor team:x buttons:all").buttons is None
    assert grant("grant <@U0123ABC> supervisor team:x buttons:dial,hungup,dispo").buttons is None
    assert grant("grant <@U0123ABC> supervisor team:x buttons:hangup,dial").buttons == (DIAL, HUNG)


def test_admin_takes_no_scope() -> None:
    assert grant("grant <@U0123ABC> admin") == GrantCommand(MARIA, Role.ADMIN, None, None)
    for extra in ("team:ventas", "team:*", "buttons:dial"):
        err = error(f"grant <@U0123ABC> admin {extra}")
        assert f"`{extra}`" in err.message
        assert "admin" in err.message


@pytest.mark.parametrize("role", ["supervisor", "requester", "viewer"])
def test_other_roles_need_a_scope(role: str) -> None:
    err = error(f"grant <@U0123ABC|maria> {role}")
    assert "Say which teams: `team:ventas` or `team:*` for all" in err.message
    assert f"`/agentbox grant @maria {role} team:ventas`" in err.message


def test_viewers_take_no_buttons() -> None:
    err = error("grant <@U0123ABC> viewer team:ventas buttons:dial")
    assert "`buttons:dial`" in err.message
    assert "`supervisor` or `requester`" in err.message


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("grant", None, "Say who"),
        ("grant <@U0123ABC>", None, "Say which role"),
        ("grant supervisor <@U0123ABC> team:x", "supervisor", "before the role"),
        ("grant <@U0123ABC> supervsor team:x", "supervsor", "did you mean `supervisor`?"),
        ("grant <@U0123ABC> team:x", "team:x", "Say the role before `team:x`"),
        ("grant <@U0123ABC> <@U2> supervisor", "<@U2>", "one person or user group"),
        ("grant <@U0123ABC> supervisor viewer team:x", "viewer", "One role per command"),
        ("grant <@U0123ABC> supervisor ventas", "ventas", "`team:ventas` (no space)"),
        ("grant <@U0123ABC> supervisor team:x dial", "dial", "`buttons:dial`"),
        ("grant <@U0123ABC> supervisor 1001", "1001", "not agent ids"),
        ("grant <@U0123ABC> supervisor team:x, y", "y", "`team:x,y`"),
        ("grant <@U0123ABC> supervisor team:x buttons:dial, hungup", "hungup", "without spaces"),
        ("grant <@U0123ABC> supervisor tema:ventas", "tema:ventas", "did you mean `team:ventas`?"),
        ("grant <@U0123ABC> supervisor team:x approvals:<#C1>", "approvals:<#C1>", "no place"),
        ("grant <@U0123ABC> supervisor team:", "team:", "needs a team name"),
        ("grant <@U0123ABC> supervisor team:*,x", "*", "already means every team"),
        ("grant <@U0123ABC> supervisor team:x,1001", "1001", "looks like an agent id"),
        ("grant <@U0123ABC> supervisor team:x buttons:dail", "dail", "did you mean `dial`?"),
        ("grant <@U0123ABC> supervisor team:x buttons:hide", "hide", "is not a button"),
        ("quitar dial 1001", "dial", "`ocultar`"),
    ],
)
def test_grant_and_revoke_errors_are_specific(text: str, word: str | None, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


# --------------------------------------------------------------------------- revoke, roles, whoami


@pytest.mark.parametrize("verb", REVOKE_VERBS)
def test_revoke_forms(verb: str) -> None:
    subject = "<@U0123ABC|maria>"
    assert parse(f"{verb} {subject}") == RevokeCommand(MARIA, None, None)
    assert parse(f"{verb} {subject} lector") == RevokeCommand(MARIA, Role.VIEWER, None)
    assert parse(f"{verb} {subject} team:y,x") == RevokeCommand(MARIA, None, ("x", "y"))
    assert parse(f"{verb} {subject} supervisor team:x") == RevokeCommand(
        MARIA, Role.SUPERVISOR, ("x",)
    )
    assert parse(f"{verb} {subject} supervisor team:*") == RevokeCommand(
        MARIA, Role.SUPERVISOR, ALL_TEAMS
    )
    assert parse(f"{verb} <!subteam^S0123ABC> admin") == RevokeCommand(SUPS, Role.ADMIN, None)


def test_revoke_refuses_what_it_cannot_mean() -> None:
    assert "`team:x`" in error("revoke <@U0123ABC> admin team:x").message
    err = error("revoke <@U0123ABC> supervisor buttons:dial")
    assert "`buttons:dial` has no place in `revoke`" in err.message
    assert "Say who" in error("revocar").message


def test_roles_and_whoami() -> None:
    assert parse("roles") == RolesCommand(None)
    assert parse("PERMISOS <@U0123ABC|maria>") == RolesCommand(MARIA)
    assert parse("roles <!subteam^S0123ABC|@supervisores>") == RolesCommand(SUPS)
    for text in ("whoami", "WhoAmI", "quiensoy", "quién soy", "Quien   Soy"):
        assert parse(text) == WhoamiCommand(), text
    assert error("whoami now").word == "now"
    assert error("quién soy yo").word == "yo"
    assert error("roles <@U0123ABC> <@U2>").word == "<@U2>"
    assert "not a mention" in error("roles maria").message


# --------------------------------------------------------------------------- teams

CREATE = "team create ventas 1001-1003 <#C0123ABC|ventas>"
VENTAS_CHANNEL = ChannelRef("C0123ABC")


def test_team_create() -> None:
    assert parse(CREATE) == TeamCreateCommand(
        "ventas", ("1001", "1002", "1003"), VENTAS_CHANNEL, None, None, None
    )


def test_team_create_with_everything_in_any_order() -> None:
    expected = TeamCreateCommand(
        name="ventas",
        agents=("1001", "1002", "1003", "1010"),
        channel=VENTAS_CHANNEL,
        approvals=ChannelRef("C2"),
        change_channels=(ChannelRef("C0123ABC"), ChannelRef("C3")),
        operation="principal",
    )
    for text in (
        "team create ventas 1001-1003 1010 <#C0123ABC|ventas> approvals:<#C2|ventas-sup> "
        "channels:<#C0123ABC>,<#C3> operation:principal",
        "equipo crear Ventas operación:Principal canales:<#C0123ABC>,<#C3>,<#C0123ABC> "
        "<#C0123ABC|ventas> 1001 a 1003, 1010 aprobaciones: <#C2>",
        "team create ventas channels:<#C0123ABC> 1001-1003 <#C0123ABC> channels:<#C3> "
        "approvals:<#C2> 1010 approvals:<#C2> operation:principal",
    ):
        assert parse(text) == expected, text


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("team create ventas 1001-1003", None, "Say the team's channel"),
        ("team create ventas <#C1>", None, "Say which agents"),
        ("team create ventas 1001 #ventas", "#ventas", "autocomplete"),
        ("team create ventas 1001 <#C1> <#C2|otro>", "<#C2|otro>", "`#otro` are two"),
        ("team create ventas 1001 <#C1> <@U1|maria>", "<@U1|maria>", "with `grant`"),
        ("team create ventas 1001 <#C1> approvals:<#C2>,<#C3>", "approvals:<#C2>,<#C3>", "one"),
        ("team create ventas 1001 <#C1> approvals:ventas", "ventas", "not a link to a channel"),
        ("team create ventas 1001 <#C1> channels:", "channels:", "needs a channel"),
        ("team create ventas 1001 <#C1> operation:a,b", "operation:a,b", "one operation"),
        ("team create ventas 1001 <#C1> team:x", "team:x", "no place in `team create`"),
        ("team create ventas 1001 <#C1> hola", "hola", "its agents, its `#channel`"),
        ("team create ventas to 1001 <#C1>", "to", "between two agent ids"),
        ("team create", None, "Say which team"),
        ("team add ventas", None, "Say which agents"),
        ("team add ventas <#C1>", "<#C1>", "only agent ids and ranges"),
        ("team remove ventas team:x", "team:x", "only agent ids and ranges"),
        ("team show", None, "Say which team"),
        ("team show ventas cobranza", "cobranza", "takes only a team's name"),
        ("team show team:ventas", "team:ventas", "just the team's name"),
        ("team list ventas", "ventas", "takes nothing more"),
        ("team", None, "`create`, `add`, `remove`, `show` or `list`"),
        ("team crate ventas", "crate", "did you mean `create`?"),
        ("team ventas show", None, "`/agentbox team show ventas`"),
    ],
)
def test_team_errors_are_specific(text: str, word: str | None, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("show", "agentbox uses that word"),
        ("ALL", "agentbox uses that word"),
        ("todos", "agentbox uses that word"),
        ("grant", "agentbox uses that word"),
        ("supervisor", "agentbox uses that word"),
        ("dial", "agentbox uses that word"),
        ("tipificación", "agentbox uses that word"),
        ("team", "agentbox uses that word"),
        ("1001", "looks like an agent id"),
        ("1001-1050", "looks like an agent id"),
        ("-ventas", "not a valid team name"),
        ("ventas!", "not a valid team name"),
        ("ventas-", "not a valid team name"),
        ("_ventas", "not a valid team name"),
        ("x" * (MAX_NAME_LENGTH + 1), "too long"),
    ],
)
def test_bad_team_names(name: str, says: str) -> None:
    err = error(f"team create {name} 1001 <#C1>")
    assert says in err.message
    assert err.word == name
    if not is_reserved(name) or normalize(name) not in ("all", "todos"):  # those mean every team
        assert says in error(f"hide dial team:{name}").message


def test_team_names_fold_case_and_accents() -> None:
    assert parse("team show Canción_2") == TeamShowCommand("cancion_2")
    assert parse("team show 2do-PISO") == TeamShowCommand("2do-piso")
    assert parse(f"team show {'x' * MAX_NAME_LENGTH}") == TeamShowCommand("x" * MAX_NAME_LENGTH)


def test_team_actions_and_spanish() -> None:
    assert parse("team add ventas 1051-1052") == TeamAddCommand("ventas", ("1051", "1052"))
    assert parse("equipo agregar ventas 1051 a 1052") == TeamAddCommand("ventas", ("1051", "1052"))
    assert parse("EQUIPO Añadir ventas 7") == TeamAddCommand("ventas", ("7",))
    assert parse("team remove ventas 1001") == TeamRemoveCommand("ventas", ("1001",))
    # Inside `team`, `quitar` removes agents; as the first word it revokes a role.
    assert parse("equipo quitar ventas 1001") == TeamRemoveCommand("ventas", ("1001",))
    assert isinstance(parse("quitar <@U0123ABC>"), RevokeCommand)
    for show in ("show", "ver", "mostrar"):
        assert parse(f"team {show} ventas") == TeamShowCommand("ventas")
    assert parse("team list") == parse("equipo listar") == TeamListCommand()


def test_team_agents_obey_the_bound() -> None:
    err = error(f"team add ventas 1-{MAX_AGENTS + 1}")
    assert f"at most {MAX_AGENTS} agents for a team" in err.message
    assert len(error("team create ventas 1-999999999999999 <#C1>").message) < 400


# --------------------------------------------------------------------------- team targets


def test_change_with_teams() -> None:
    assert change("hide dial team:ventas") == ChangeCommand(Display.HIDE, (DIAL,), (), ("ventas",))
    assert change("hide dial 1002, team:ventas, 1001 equipo:Cobranza team:ventas") == (
        ChangeCommand(Display.HIDE, (DIAL,), ("1001", "1002"), ("cobranza", "ventas"))
    )
    assert change("team:y,x ocultar todo").teams == ("x", "y")
    assert change("hide dial 1001").teams == ()


def test_bound_still_applies_to_ids_next_to_teams() -> None:
    err = error(f"hide dial team:ventas 1-{MAX_AGENTS + 1}")
    assert f"at most {MAX_AGENTS}" in err.message


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("hide dial team:*", "team:*", "names its teams"),
        ("hide dial team:todos", "team:todos", "names its teams"),
        ("hide dial team ventas", "team", "`team:ventas` (no space)"),
        ("hide dial team:ventas, cobranza", "cobranza", "`team:ventas,cobranza`"),
        ("hide dial team:", "team:", "needs a team name"),
        ("hide dial team:ventas,1001", "1001", "looks like an agent id"),
        ("hide buttons:dial 1001", "buttons:dial", "buttons are plain words"),
        ("hide dial 1001 approvals:<#C1>", "approvals:<#C1>", "no place in `show/hide`"),
        ("hide dial 1001 <@U0123ABC|maria>", "<@U0123ABC|maria>", "`@maria` has no place"),
        ("hide dial 1001 grant", "grant", "starts a command of its own"),
        ("grnat <@U1> supervisor team:x", "grnat", "did you mean `grant`?"),
    ],
)
def test_team_target_errors(text: str, word: str, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


def test_missing_parts_mention_teams() -> None:
    err = error("hide team:ventas")
    assert "button" in err.message
    assert "`/agentbox hide disposition team:ventas`" in err.message
    assert "`team:ventas`" in error("hide dial").message


# --------------------------------------------------------------------------- help and usage


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("team help", Section.TEAMS),
        ("equipo crear ?", Section.TEAMS),
        ("grant <@U1> ayuda", Section.GRANTS),
        ("roles --help", Section.GRANTS),
        ("quién soy ?", Section.VIEWER),
        ("help team", None),
        ("hide help", None),
    ],
)
def test_help_topics(text: str, topic: Section | None) -> None:
    assert parse(text) == HelpCommand(topic)


def test_usage_sections() -> None:
    assert usage([]) == usage(set())
    viewer = usage({"viewer"})
    assert "/agentbox whoami" in viewer
    assert "/agentbox grant" not in viewer
    assert "/agentbox hide" not in viewer
    assert "/agentbox team create" not in viewer
    assert usage(["teams", "change"]) == usage([Section.CHANGE, Section.TEAMS])
    assert usage(["change"]) == USAGE
    for section in Section:  # each section's text, between the intro and the footer
        body = usage([section]).split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
        assert body in ADMIN_USAGE
        assert body not in usage(set(Section) - {section})
    assert ADMIN_USAGE.index("*Usage:*") < ADMIN_USAGE.index("*Roles:*")
    with pytest.raises(ValueError):
        usage({"nonsense"})


def test_sections_for_roles() -> None:
    assert sections_for([]) == {Section.VIEWER}
    assert sections_for([Role.ADMIN]) == set(Section)
    assert sections_for([Role.VIEWER, Role.REQUESTER]) == {Section.CHANGE, Section.VIEWER}
    assert set(ROLE_SECTIONS) == set(Role)


def _as_slack_sends(command: str) -> str:
    """A help example as Slack would deliver it: names picked from autocomplete are entities."""
    command = re.sub(r"@([a-z]+)", r"<@U1|\1>", command)
    return re.sub(r"#([a-z-]+)", r"<#C1|\1>", command)


def test_every_usage_example_parses() -> None:
    examples = re.findall(r"`/agentbox ([^`<]*)`", ADMIN_USAGE)
    assert len(examples) > 15
    for example in examples:
        result = parse(_as_slack_sends(example))
        assert not isinstance(result, ParseError), (example, result)


def test_usage_shows_the_new_syntax() -> None:
    change_help = usage({Section.CHANGE})
    for word in ("for 30m", "--dry-run", "--reason", "/agentbox undo", "deshacer"):
        assert word in change_help, word
    viewer = usage({Section.VIEWER})
    for word in ("/agentbox history", "--limit", "/agentbox status 1001", "status hidden"):
        assert word in viewer, word


# --------------------------------------------------------------------------- durations

HIDE_DIAL = ChangeCommand(Display.HIDE, (DIAL,), ("1001",))


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("hide dial 1001 for 30m", timedelta(minutes=30)),
        ("hide dial 1001 for 2h", timedelta(hours=2)),
        ("hide dial 1001 for 90s", timedelta(seconds=90)),
        ("hide dial 1001 for 1h30m", timedelta(hours=1, minutes=30)),
        ("hide dial 1001 for 1h 30m", timedelta(hours=1, minutes=30)),
        ("hide dial 1001 for 1 h 30 min", timedelta(hours=1, minutes=30)),
        ("hide dial 1001 por 30m", timedelta(minutes=30)),
        ("hide dial 1001 durante 30 minutos", timedelta(minutes=30)),
        ("hide dial 1001 FOR 2 Horas", timedelta(hours=2)),
        ("hide dial 1001 for 45 mins", timedelta(minutes=45)),
        ("hide dial 1001 for 3 hours", timedelta(hours=3)),
        ("hide dial 1001 for 10minutes", timedelta(minutes=10)),
        ("for 30m hide dial 1001", timedelta(minutes=30)),
        ("hide for 30m dial 1001", timedelta(minutes=30)),
        ("hide dial for 30m 1001", timedelta(minutes=30)),
        ("hide dial 1001 for 1m", MIN_DURATION),
        ("hide dial 1001 for 60s", MIN_DURATION),
        ("hide dial 1001 for 24h", MAX_DURATION),
        ("hide dial 1001 for 1440m", MAX_DURATION),
        ("hide dial 1001 for 23h60m", MAX_DURATION),
        ("hide dial 1001 for 030m", timedelta(minutes=30)),
        ("hide dial 1001 for 2h for 2h", timedelta(hours=2)),  # said twice, the same
    ],
)
def test_durations(text: str, duration: timedelta) -> None:
    assert change(text) == ChangeCommand(Display.HIDE, (DIAL,), ("1001",), duration=duration)


def test_duration_does_not_change_the_rest() -> None:
    assert change("show all 1001-1003 team:ventas for 2h") == ChangeCommand(
        Display.SHOW, ALL, ("1001", "1002", "1003"), ("ventas",), duration=timedelta(hours=2)
    )
    assert change("hide dial 1001").duration is None


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("hide dial 1001 for", "for", "`for` needs a duration like `30m` or `2h`"),
        ("hide dial 1001 por", "por", "`por` needs a duration like `30m` or `2h`"),
        ("hide dial 1001 for ever", "for", "needs a duration like `30m` or `2h`"),
        ("hide dial 1001 for 30x", "for", "needs a duration like `30m` or `2h`"),
        ("hide dial 1001 for --dry-run", "for", "needs a duration"),
        ("hide dial 1001 for 30", "for 30", "`for 30` needs a unit: `30m`"),
        ("hide dial 1001 for 30s", "for 30s", "at least 1 minute"),
        ("hide dial 1001 for 59s", "for 59s", "at least 1 minute"),
        ("hide dial 1001 for 0m", "for 0m", "at least 1 minute"),
        ("hide dial 1001 for 25h", "for 25h", "at most 24 hours"),
        ("hide dial 1001 for 24h1s", "for 24h1s", "at most 24 hours"),
        ("hide dial 1001 for 1441m", "for 1441m", "at most 24 hours"),
        ("hide dial 1001 for 99999999999999999999999999h", None, "at most 24 hours"),
        ("hide dial 1001 for " + "9" * 5000 + "m", None, "at most 24 hours"),
        ("hide dial 1001 for 2h for 3h", "for 3h", "`for 2h` and `for 3h` are two"),
        ("hide dial 1001 30m", "30m", "write `for 30m`"),
        ("hide dial for 1h 30 1001", "30", "a number of minutes or an agent"),
    ],
)
def test_duration_errors(text: str, word: str | None, says: str) -> None:
    err = error(text)
    assert err.word == (word or text.removeprefix("hide dial 1001 "))
    assert says in err.message


# --------------------------------------------------------------------------- dry run

DRY_RUN_ALIASES = ("--dry-run", "--dryrun", "dry-run", "--simular", "--prueba", "--DRY-RUN")


@pytest.mark.parametrize("alias", [*DRY_RUN_ALIASES, "—dry-run", "–dry-run", "-dryrun"])  # noqa: RUF001
@pytest.mark.parametrize("where", range(4))
def test_dry_run_anywhere(alias: str, where: int) -> None:
    words = ["hide", "dial", "1001"]
    words.insert(where, alias)
    assert change(" ".join(words)) == ChangeCommand(Display.HIDE, (DIAL,), ("1001",), dry_run=True)


def test_dry_run_with_everything_else() -> None:
    assert change("--dry-run hide all team:ventas for 30m --reason x --dry-run") == ChangeCommand(
        Display.HIDE, ALL, (), ("ventas",), timedelta(minutes=30), True, "x"
    )


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("hide dial 1001 --dry-run=yes", "--dry-run=yes", "takes no value"),
        ("hide dial 1001 --dry-rn", "--dry-rn", "did you mean `--dry-run`?"),
        ("hide dial 1001 --limit 5", "--limit", "goes with `history`"),
        ("hide dial 1001 -LIMIT=", "-LIMIT=", "goes with `history`"),
        ("hide dial 1001 limit:5", "limit:5", "no place in `show/hide`"),
        ("history --dry-run", "--dry-run", "goes with a show/hide change"),
        ("undo --dry-run", "--dry-run", "`undo` has no dry run"),
    ],
)
def test_dry_run_errors(text: str, word: str, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


# --------------------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('hide dial 1001 --reason "cliente en espera"', "cliente en espera"),
        ("hide dial 1001 --reason \u201ccliente en espera\u201d", "cliente en espera"),
        ("hide dial 1001 --reason \u201dcliente en espera\u201d", "cliente en espera"),
        ("hide dial 1001 --reason \u201ecliente en espera\u201c", "cliente en espera"),
        ("hide dial 1001 --reason 'it\u2019s urgent'", "it\u2019s urgent"),
        ("hide dial 1001 --reason 'it's urgent'", "it's urgent"),
        ("hide dial 1001 --reason \u2018urgente\u2019", "urgente"),
        ('hide dial 1001 --reason="cliente, urgente"', "cliente, urgente"),
        ("hide dial 1001 --reason=urgente", "urgente"),
        ('hide dial 1001 reason:"cliente en espera"', "cliente en espera"),
        ('hide dial 1001 reason: "cliente en espera"', "cliente en espera"),
        ('hide dial 1001 --motivo "cliente en espera"', "cliente en espera"),
        ('hide dial 1001 motivo:"x"', "x"),
        ('hide dial 1001 --razón "x"', "x"),
        ('hide dial 1001 \u2014reason "x"', "x"),  # a phone's "--"
        ('hide dial 1001 --REASON "x"', "x"),
        ("hide dial 1001 --reason cliente en espera", "cliente en espera"),
        ('--reason "cliente en espera" hide dial 1001', "cliente en espera"),
        ('hide --reason "a, b;  c" dial 1001', "a, b;  c"),
        ('hide dial 1001 --reason "  padded  "', "padded"),
        ('hide dial 1001 --reason "Tom &amp; Jerry &lt;3 &gt;"', "Tom & Jerry <3 >"),
        ("hide dial 1001 --reason &quot;quoted by Slack&quot;", "quoted by Slack"),
        ('hide dial 1001 --reason "said \u201chi\u201d to me"', "said \u201chi\u201d to me"),
        ('hide dial 1001 --reason \u201csaid "hi" to me\u201d', 'said "hi" to me'),
        ('hide dial 1001 --reason \u201cclosed straight"', "closed straight"),
        ('hide dial 1001 --reason "llamar a <@U1|maria>"', "llamar a <@U1|maria>"),
        ('hide dial 1001 --reason "need help, ayuda"', "need help, ayuda"),  # not a help request
        ('hide dial 1001 --reason "grant team:x 5-9 for 1s"', "grant team:x 5-9 for 1s"),
        ('hide dial 1001 --reason "see --reason"', "see --reason"),
        ("hide dial 1001 --reason " + "x" * MAX_REASON_LENGTH, "x" * MAX_REASON_LENGTH),
    ],
)
def test_reasons(text: str, reason: str) -> None:
    assert change(text) == ChangeCommand(Display.HIDE, (DIAL,), ("1001",), reason=reason)


def test_unquoted_reason_ends_at_the_next_flag() -> None:
    for text in (
        "hide dial 1001 --reason cliente, en espera --dry-run",
        "hide dial 1001 --reason cliente, en espera dry-run",
        "hide dial 1001 --reason cliente, en espera \u2014simular",
    ):
        assert change(text) == ChangeCommand(
            Display.HIDE, (DIAL,), ("1001",), dry_run=True, reason="cliente, en espera"
        ), text


def test_reason_unescaping_happens_once() -> None:
    # A user who types `&lt;` gets `&amp;lt;` from Slack: the reason is the text they typed.
    assert change('hide dial 1001 --reason "a &amp;lt; b"').reason == "a &lt; b"


def test_reason_inside_a_mention_is_no_reason() -> None:
    err = error("hide dial 1001 <@U1|x --reason y>")
    assert err.word == "<@U1|x --reason y>"


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("hide dial 1001 --reason", "--reason", "needs the reason right after it"),
        ('hide dial 1001 --reason ""', "--reason", "needs the reason right after it"),
        ("hide dial 1001 --reason \u201c \u201d", "--reason", "needs the reason"),
        ("hide dial 1001 --reason --dry-run", "--reason", "needs the reason right after it"),
        ("hide dial 1001 --reason=", "--reason", "needs the reason right after it"),
        ('hide dial 1001 --reason "never closed', "--reason", "never closes it"),
        ('hide dial 1001 reason:"x" --motivo y', "--motivo", "one reason per command"),
        (
            "hide dial 1001 --reason " + "x" * (MAX_REASON_LENGTH + 1),
            "--reason",
            f"keep it to {MAX_REASON_LENGTH}",
        ),
        ('grant <@U1> admin --reason "x"', "--reason", "`grant` takes no reason"),
        ('undo --reason "x"', "--reason", "`undo` takes no reason"),
        ('team create v 1 <#C1> reason:"x"', "reason:", "goes with a show/hide change"),
    ],
)
def test_reason_errors(text: str, word: str, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


def test_reason_limit_counts_unescaped_characters() -> None:
    assert change("hide dial 1001 --reason " + "&amp;" * MAX_REASON_LENGTH).reason == (
        "&" * MAX_REASON_LENGTH
    )


def test_unquoted_reason_that_took_the_targets_says_so() -> None:
    err = error("hide dial --reason cliente en espera 1001")
    assert "which agents" in err.message
    assert "between quotes" in err.message
    assert "between quotes" not in error('hide dial --reason "cliente en espera"').message


def test_help_wins_over_a_bad_reason() -> None:
    assert parse("help --reason") == HelpCommand()
    assert isinstance(parse("--reason x"), ParseError)  # a reason alone is no request for help


# --------------------------------------------------------------------------- undo, history, status


@pytest.mark.parametrize("text", ["undo", "UNDO", "deshacer", "Deshacer"])
def test_undo(text: str) -> None:
    assert parse(text) == UndoCommand()


def test_undo_takes_nothing_more() -> None:
    err = error("undo 1001")
    assert err.word == "1001"
    assert "takes nothing more" in err.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("history", HistoryCommand()),
        ("historial", HistoryCommand((), (), DEFAULT_HISTORY_LIMIT)),
        ("history 1001", HistoryCommand(("1001",))),
        ("history 1001-1003, 1005", HistoryCommand(("1001", "1002", "1003", "1005"))),
        ("history 1001 to 1002", HistoryCommand(("1001", "1002"))),
        ("history team:ventas", HistoryCommand((), ("ventas",))),
        ("history team:Ventas,cobranza 7", HistoryCommand(("7",), ("cobranza", "ventas"))),
        ("history --limit 50", HistoryCommand(limit=50)),
        ("history --limit=50", HistoryCommand(limit=50)),
        ("history limit:50", HistoryCommand(limit=50)),
        ("historial --límite 5 equipo:ventas", HistoryCommand((), ("ventas",), 5)),
        ("history \u2014limit 1", HistoryCommand(limit=1)),
        (f"history --limit {MAX_HISTORY_LIMIT}", HistoryCommand(limit=MAX_HISTORY_LIMIT)),
        ("history --limit 9 limit:9", HistoryCommand(limit=9)),
    ],
)
def test_history(text: str, expected: HistoryCommand) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("history --limit", "--limit", "a number from 1 to 200"),
        ("history --limit 0", "--limit", "a number from 1 to 200"),
        ("history --limit 201", "--limit", "a number from 1 to 200"),
        ("history --limit=x", "--limit=x", "a number from 1 to 200"),
        ("history limit:", "limit:", "a number from 1 to 200"),
        ("history limit:1,2", "limit:1,2", "a number from 1 to 200"),
        ("history --limit 5 --limit 6", "--limit", "one limit"),
        ("history team:*", "team:*", "already covers every team"),
        ("history ventas", "ventas", "`team:ventas` (no space)"),
        ("history team:ventas, cobranza", "cobranza", "without spaces"),
        ("history dial", "dial", "`history` takes agent ids"),
        ("history buttons:dial", "buttons:dial", "no place in `history`"),
        ("history <@U1|maria>", "<@U1|maria>", "one person"),
        ("history to 1001", "to", "between two agent ids"),
        ("history tema:x", "tema:x", "did you mean `team:x`?"),
    ],
)
def test_history_errors(text: str, word: str, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


def test_history_and_status_obey_the_bound() -> None:
    assert f"at most {MAX_AGENTS}" in error(f"history 1-{MAX_AGENTS + 1}").message
    assert f"at most {MAX_AGENTS}" in error(f"status 1-{MAX_AGENTS + 1}").message
    assert len(error("status 1-999999999999999").message) < 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status 1001", StatusCommand(("1001",))),
        ("estado 1001,1002", StatusCommand(("1001", "1002"))),
        ("status team:ventas 1001", StatusCommand(("1001",), ("ventas",))),
        ("status hidden", StatusCommand(hidden_only=True)),
        ("STATUS Hidden", StatusCommand(hidden_only=True)),
        ("estado ocultos", StatusCommand(hidden_only=True)),
        ("estado ocultas", StatusCommand(hidden_only=True)),
    ],
)
def test_status(text: str, expected: StatusCommand) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("status", None, "Say which agents or team"),
        ("status hidden 1001", "1001", "takes nothing more"),
        ("status team:ventas ocultos", "team:ventas", "takes nothing more"),
        ("status team:*", "team:*", "`/agentbox status hidden`"),
        ("status --limit 5", "--limit", "`status` takes agent ids"),
        ("status limit:5", "limit:5", "no place in `status`"),
        ("status supervisor", "supervisor", "`status` takes agent ids"),
    ],
)
def test_status_errors(text: str, word: str | None, says: str) -> None:
    err = error(text)
    assert err.word == word
    assert says in err.message


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("undo help", Section.CHANGE),
        ("history ?", Section.VIEWER),
        ("estado ayuda", Section.VIEWER),
    ],
)
def test_new_help_topics(text: str, topic: Section) -> None:
    assert parse(text) == HelpCommand(topic)


@pytest.mark.parametrize("verb", ["undo", "history", "status"])
def test_new_verbs_inside_a_change(verb: str) -> None:
    err = error(f"hide dial 1001 {verb}")
    assert err.word == verb
    assert "starts a command of its own" in err.message


@pytest.mark.parametrize(
    "name", ["undo", "historial", "status", "hidden", "for", "durante", "reason", "motivo"]
)
def test_new_words_are_reserved(name: str) -> None:
    assert is_reserved(name)
    assert "agentbox uses that word" in error(f"team create {name} 1001 <#C1>").message


# --------------------------------------------------------------------------- properties


TEAM_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]{0,38}[a-z0-9])?")
SLACK_ID = re.compile(r"[A-Z0-9]+")


def check_teams(teams: tuple[str, ...] | None, *, empty: bool = False) -> None:
    if teams is not None:
        assert teams or empty
        assert list(teams) == sorted(set(teams))
        assert all(TEAM_NAME.fullmatch(team) and not is_reserved(team) for team in teams)
        assert not any(re.fullmatch(r"[0-9]+(-[0-9]+)?", team) for team in teams)


def check_agents(agents: tuple[str, ...]) -> None:
    assert len(agents) <= MAX_AGENTS
    assert len(set(agents)) == len(agents)
    assert all(DIGITS.fullmatch(agent) for agent in agents)
    assert list(agents) == sorted(agents, key=lambda a: (int(a), len(a)))


def check_subject(subject: object) -> None:
    assert isinstance(subject, UserRef | GroupRef)
    assert SLACK_ID.fullmatch(subject.user_id if isinstance(subject, UserRef) else subject.group_id)


def check_invariants(result: Parsed) -> None:
    if isinstance(result, ChangeCommand):
        assert isinstance(result.display, Display)
        assert result.buttons
        assert result.buttons == tuple(b for b in ALL if b in result.buttons)
        assert result.agents or result.teams
        check_agents(result.agents)
        check_teams(result.teams, empty=True)
        assert result.duration is None or MIN_DURATION <= result.duration <= MAX_DURATION
        assert isinstance(result.dry_run, bool)
        if result.reason is not None:
            assert 0 < len(result.reason) <= MAX_REASON_LENGTH
            assert result.reason == result.reason.strip()
    elif isinstance(result, HistoryCommand):
        check_agents(result.agents)
        check_teams(result.teams, empty=True)
        assert 1 <= result.limit <= MAX_HISTORY_LIMIT
    elif isinstance(result, StatusCommand):
        check_agents(result.agents)
        check_teams(result.teams, empty=True)
        assert result.hidden_only != bool(result.agents or result.teams)
    elif isinstance(result, GrantCommand):
        check_subject(result.subject)
        check_teams(result.teams)
        if result.role in (Role.ADMIN, Role.VIEWER):
            assert result.buttons is None
        if result.role is Role.ADMIN:
            assert result.teams is ALL_TEAMS
        if result.buttons is not None:
            assert result.buttons
            assert result.buttons == tuple(b for b in ALL if b in result.buttons) != ALL
    elif isinstance(result, RevokeCommand):
        check_subject(result.subject)
        check_teams(result.teams)
        assert result.role is None or isinstance(result.role, Role)
    elif isinstance(result, RolesCommand):
        if result.subject is not None:
            check_subject(result.subject)
    elif isinstance(result, TeamCreateCommand | TeamAddCommand | TeamRemoveCommand):
        check_teams((result.name,))
        assert result.agents
        check_agents(result.agents)
        if isinstance(result, TeamCreateCommand):
            assert isinstance(result.channel, ChannelRef)
            assert result.change_channels is None or len(set(result.change_channels)) == len(
                result.change_channels
            )
            assert result.operation is None or TEAM_NAME.fullmatch(result.operation)
    elif isinstance(result, TeamShowCommand):
        check_teams((result.name,))
    elif isinstance(result, ParseError):
        assert result.message
        assert "could not read" not in result.message  # the never-raise net caught a bug
        word = result.word
        if word is not None and len(word) < 30 and not set(word) & set("&<>`"):
            assert f"`{word}`" in result.message
    else:
        assert isinstance(result, HelpCommand | WhoamiCommand | TeamListCommand | UndoCommand)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    check_invariants(parse(text))


VOCABULARY_WORDS = [
    word
    for table in (DISPLAY_ALIASES, BUTTON_ALIASES)
    for aliases in table.values()
    for word in aliases
] + list(HELP_ALIASES + RANGE_WORDS)

# The words of durations, dry runs, reasons, undo, history and status, and the pieces that
# could confuse their readers (quotes of every kind, dangling flags, units alone).
FEATURE_WORDS = [
    *("for", "por", "durante", "30m", "1h30m", "90s", "25h", "30s", "2", "h", "min", "horas"),
    *("--dry-run", "dry-run", "—dry-run", "--dryrun=x", "--simular", "-", "--", "=", "—"),
    *("--reason", "--reason=", "--reason=x", "reason:", "motivo:", "--motivo", "—reason"),
    *('"', "'", "\u201c", "\u201d", "\u2018", "\u2019", "\u201e", "&quot;", "&#39;", '""'),
    *("--limit", "--limit=5", "limit:5", "limit:", "--limit=999", "límite:0"),
    *("undo", "deshacer", "history", "historial", "status", "estado", "hidden", "ocultos"),
]

numbers = st.integers(min_value=0, max_value=10**17).map(str)
ranges = st.tuples(numbers, numbers).map(lambda pair: f"{pair[0]}-{pair[1]}")
small_ranges = st.tuples(st.integers(0, 2000), st.integers(0, 2000)).map(lambda p: f"{p[0]}-{p[1]}")
junk_words = st.one_of(
    st.sampled_from(VOCABULARY_WORDS),
    st.sampled_from(FEATURE_WORDS),
    numbers,
    ranges,
    small_ranges,
    st.sampled_from([",", "-", "?", "&amp;", "&lt;", "&gt;", "`", "*", "—", "–", "--", "&#x27;"]),  # noqa: RUF001
    st.text(max_size=8),
)
separators = st.sampled_from([" ", "  ", ",", ", ", " , ", "\t", "\n", "-", " - "])


@st.composite
def mixtures(draw: st.DrawFn) -> str:
    words = draw(st.lists(junk_words, max_size=12))
    out = ""
    for word in words:
        out += draw(separators) + word
    return out


@settings(max_examples=300, deadline=None)
@given(mixtures())
def test_mixtures_never_raise(text: str) -> None:
    check_invariants(parse(text))


@st.composite
def spelled(draw: st.DrawFn, word: str) -> str:
    """The word with random case and, sometimes, accents on vowels, as users type in a hurry."""
    out = []
    for ch in unicodedata.normalize("NFC", word):
        ch = ch.upper() if draw(st.booleans()) else ch.lower()
        if ch.lower() in "aeiou" and draw(st.integers(0, 5)) == 0:
            ch = unicodedata.normalize("NFC", ch + "\u0301")
        out.append(ch)
    return "".join(out)


@st.composite
def valid_commands(draw: st.DrawFn) -> tuple[str, Display, tuple[Button, ...], tuple[str, ...]]:
    """A valid command in words in a random order, with what it must parse to."""
    display = draw(st.sampled_from(list(Display)))
    words = [draw(spelled(draw(st.sampled_from(DISPLAY_ALIASES[display]))))]
    if draw(st.booleans()):  # the same action, said twice
        words.append(draw(spelled(draw(st.sampled_from(DISPLAY_ALIASES[display])))))

    button_sets = draw(st.lists(st.sampled_from(list(BUTTON_ALIASES)), min_size=1, max_size=4))
    chosen = {button for group in button_sets for button in group}
    for group in button_sets:
        words.append(draw(spelled(draw(st.sampled_from(BUTTON_ALIASES[group])))))

    agents: set[str] = set()
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            agent = draw(st.from_regex(r"\A[0-9]{1,15}\Z"))
            agents.add(agent)
            words.append(agent)
        else:
            low = draw(st.integers(0, 10**15 - 60))
            high = low + draw(st.integers(0, 50))
            agents.update(str(n) for n in range(low, high + 1))
            dash = draw(st.sampled_from(["-", " - ", "–", " to ", " A ", " hasta ", ", thru "]))  # noqa: RUF001
            words.append(f"{low}{dash}{high}")

    words = draw(st.permutations(words))
    text = words[0]
    for word in words[1:]:
        text += draw(st.sampled_from([" ", "  ", ", ", ",", "\t"])) + word
    expected_buttons = tuple(b for b in ALL if b in chosen)
    expected_agents = tuple(sorted(agents, key=lambda a: (int(a), len(a))))
    return text, display, expected_buttons, expected_agents


@settings(max_examples=300, deadline=None)
@given(valid_commands())
def test_valid_commands_round_trip(
    case: tuple[str, Display, tuple[Button, ...], tuple[str, ...]],
) -> None:
    text, display, buttons, agents = case
    assert parse(text) == ChangeCommand(display, buttons, agents)


ADVICE = re.compile(
    r"for example (?:`([^`]*)`|your first [0-9]+ ids, `([0-9]+)` to `([0-9]+)`), "
    r"then (?:`([^`]*)`|the rest, from `([0-9]+)`)"
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1200), st.integers(0, 300), st.integers(1, 5)),
        min_size=1,
        max_size=4,
    )
)
def test_bound_advice_splits_the_users_own_set(spans: list[tuple[int, int, int]]) -> None:
    """Following the advice reaches exactly the ids typed: the first MAX_AGENTS, then the rest."""
    words = [f"{str(low).zfill(width)}-{low + size}" for low, size, width in spans]
    everything = sorted(
        {str(n).zfill(width) for low, size, width in spans for n in range(low, low + size + 1)},
        key=lambda a: (int(a), len(a)),
    )
    result = parse_targets(words)
    if len(everything) <= MAX_AGENTS:
        assert result == tuple(everything)
        return
    assert isinstance(result, ParseError)
    match = ADVICE.search(result.message)
    assert match is not None, result.message
    head, first, last, tail, rest_from = match.groups()
    if head is not None:
        assert parse_targets([head]) == tuple(everything[:MAX_AGENTS])
    else:
        assert (first, last) == (everything[0], everything[MAX_AGENTS - 1])
    if tail is not None:
        assert parse_targets([tail]) == tuple(everything[MAX_AGENTS:])
    else:
        assert rest_from == everything[MAX_AGENTS]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 400)), min_size=1, max_size=6))
def test_parse_targets_matches_expansion(spans: list[tuple[int, int]]) -> None:
    words = [f"{low}-{low + size}" for low, size in spans]
    expected = {str(n) for low, size in spans for n in range(low, low + size + 1)}
    result = parse_targets(words)
    if len(expected) > MAX_AGENTS:
        assert isinstance(result, ParseError)
        assert f"{len(expected):,}" in result.message
    else:
        assert result == tuple(sorted(expected, key=int))


# ------------------------------------------------------------------- properties: roles and teams

VERB_WORDS = [*GRANT_VERBS, *REVOKE_VERBS, "roles", "permisos", "whoami", "quiensoy", "quién soy"]
VERB_WORDS += ["undo", "deshacer", "history", "historial", "status", "estado", "estado ocultos"]
TEAM_WORDS = ["team", "equipo"]
TEAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "create": ("create", "crear"),
    "add": ("add", "agregar", "añadir"),
    "remove": ("remove", "quitar"),
    "show": ("show", "ver", "mostrar"),
    "list": ("list", "listar"),
}
TEAM_KEYS = ("team", "equipo", "teams", "equipos")
OPTION_KEYS = [*TEAM_KEYS, "buttons", "botones", "approvals", "aprobaciones", "channels"]
OPTION_KEYS += ["canales", "operation", "operación", "tema", "x", "Team", "BUTTONS"]
OPTION_KEYS += ["reason", "motivo", "limit", "límite"]

slack_ids = st.from_regex(r"\A[A-Z0-9]{1,11}\Z")
labels = st.from_regex(r"\A[a-z][a-z0-9._ -]{0,10}\Z")
team_names = (
    st.from_regex(r"\A[a-z0-9]([a-z0-9_-]{0,13}[a-z0-9])?\Z")
    .filter(lambda name: not re.fullmatch(r"[0-9]+(-[0-9]+)?", name))
    .filter(lambda name: not is_reserved(name))
)


@st.composite
def users(draw: st.DrawFn) -> tuple[str, UserRef]:
    user_id = draw(st.sampled_from("UW")) + draw(slack_ids)
    label = draw(st.none() | labels)
    return (f"<@{user_id}>" if label is None else f"<@{user_id}|{label}>"), UserRef(user_id)


@st.composite
def groups(draw: st.DrawFn) -> tuple[str, GroupRef]:
    group_id = "S" + draw(slack_ids)
    label = draw(st.none() | labels)
    entity = f"<!subteam^{group_id}>" if label is None else f"<!subteam^{group_id}|@{label}>"
    return entity, GroupRef(group_id)


@st.composite
def channels(draw: st.DrawFn) -> tuple[str, ChannelRef]:
    channel_id = draw(st.sampled_from("CG")) + draw(slack_ids)
    label = draw(st.none() | labels.map(lambda label: label.replace(" ", "-")))
    entity = f"<#{channel_id}>" if label is None else f"<#{channel_id}|{label}>"
    return entity, ChannelRef(channel_id)


subjects = st.one_of(users(), groups())
entities = st.one_of(
    subjects.map(lambda pair: pair[0]),
    channels().map(lambda pair: pair[0]),
    st.sampled_from(
        [
            "<!here>",
            "<!channel|channel>",
            "<https://example.com|link>",
            "<mailto:a@b.c>",
            "<!date^1392734382^{date}|Feb 18, 2014>",
            "&lt;@U1&gt;",
            "@maria",
            "#ventas",
            "<@U1",
            "<>",
            "<|>",
            "<@>",
            "\ue0000\ue001",
        ]
    ),
)
new_words = st.one_of(
    st.sampled_from(
        VERB_WORDS
        + TEAM_WORDS
        + [alias for aliases in TEAM_ACTIONS.values() for alias in aliases]
        + [alias for aliases in ROLE_ALIASES.values() for alias in aliases]
        + ["*", "todos", "quién", "soy"]
    ),
    team_names,
    entities,
    junk_words,
)


@st.composite
def options(draw: st.DrawFn) -> str:
    """A ``key:a,b`` word, with any key and any values."""
    values = draw(st.lists(new_words, max_size=3))
    return f"{draw(st.sampled_from(OPTION_KEYS))}:" + draw(st.sampled_from([",", ", "])).join(
        values
    )


leads = st.one_of(
    st.just(""),
    st.sampled_from(VERB_WORDS),
    st.tuples(st.sampled_from(TEAM_WORDS), st.sampled_from(list(TEAM_ACTIONS))).map(" ".join),
)


@st.composite
def new_mixtures(draw: st.DrawFn) -> str:
    """Text that often starts like a roles or teams command, then anything."""
    out = draw(leads)
    for word in draw(st.lists(st.one_of(new_words, options()), max_size=8)):
        out += draw(st.sampled_from([" ", "  ", ",", ", ", "\t", ""])) + word
    return out


@settings(max_examples=500, deadline=None)
@given(new_mixtures())
def test_roles_and_teams_mixtures_never_raise(text: str) -> None:
    check_invariants(parse(text))


spaces = st.sampled_from([" ", "  ", "\t", " \n "])


@st.composite
def joined(draw: st.DrawFn, words: list[str]) -> str:
    text = words[0]
    for word in words[1:]:
        text += draw(spaces) + word
    return text


@st.composite
def team_scope(draw: st.DrawFn) -> tuple[list[str], tuple[str, ...] | None]:
    """``team:`` words naming some teams, or every team, and the teams they mean."""
    if draw(st.booleans()):
        every = draw(st.sampled_from(["*", "all", "todos", "ALL"]))
        return [f"{draw(st.sampled_from(TEAM_KEYS))}:{every}"], ALL_TEAMS
    names = draw(st.lists(team_names, min_size=1, max_size=5))
    cut = draw(st.integers(1, len(names)))
    words = [
        f"{draw(st.sampled_from(TEAM_KEYS))}:" + ",".join(draw(spelled(name)) for name in part)
        for part in (names[:cut], names[cut:])
        if part
    ]
    return words, tuple(sorted(set(names)))


@st.composite
def grant_commands(draw: st.DrawFn) -> tuple[str, GrantCommand]:
    subject_text, subject = draw(subjects)
    role = draw(st.sampled_from(list(Role)))
    head = [
        draw(spelled(draw(st.sampled_from(GRANT_VERBS)))),
        subject_text,
        draw(spelled(draw(st.sampled_from(ROLE_ALIASES[role])))),
    ]
    optional: list[str] = []
    teams: tuple[str, ...] | None = ALL_TEAMS
    buttons: tuple[Button, ...] | None = None
    if role is not Role.ADMIN:
        optional, teams = draw(team_scope())
    if role in (Role.SUPERVISOR, Role.REQUESTER) and draw(st.booleans()):
        button_sets = draw(st.lists(st.sampled_from(list(BUTTON_ALIASES)), min_size=1, max_size=3))
        chosen = {button for group in button_sets for button in group}
        buttons = None if chosen == set(ALL) else tuple(b for b in ALL if b in chosen)
        spelled_buttons = [
            draw(spelled(draw(st.sampled_from(BUTTON_ALIASES[group])))) for group in button_sets
        ]
        key = draw(st.sampled_from(["buttons", "botones", "Button", "botón"]))
        optional.append(f"{key}:{','.join(spelled_buttons)}")
    text = draw(joined(head + list(draw(st.permutations(optional)))))
    return text, GrantCommand(subject, role, teams, buttons)


@settings(max_examples=300, deadline=None)
@given(grant_commands())
def test_grant_commands_round_trip(case: tuple[str, GrantCommand]) -> None:
    text, expected = case
    assert parse(text) == expected
    # What a user types as `<@U…>` reaches us escaped, and must never become a grant.
    escaped = parse(text.replace("<", "&lt;").replace(">", "&gt;"))
    assert isinstance(escaped, ParseError)
    check_invariants(escaped)


@st.composite
def revoke_commands(draw: st.DrawFn) -> tuple[str, RevokeCommand]:
    subject_text, subject = draw(subjects)
    words = [draw(spelled(draw(st.sampled_from(REVOKE_VERBS)))), subject_text]
    role = draw(st.none() | st.sampled_from(list(Role)))
    if role is not None:
        words.append(draw(spelled(draw(st.sampled_from(ROLE_ALIASES[role])))))
    teams: tuple[str, ...] | None = ALL_TEAMS
    if role is not Role.ADMIN and draw(st.booleans()):
        scope, teams = draw(team_scope())
        words += scope
    return draw(joined(words)), RevokeCommand(subject, role, teams)


@settings(max_examples=200, deadline=None)
@given(revoke_commands())
def test_revoke_commands_round_trip(case: tuple[str, RevokeCommand]) -> None:
    text, expected = case
    assert parse(text) == expected


@st.composite
def agent_targets(draw: st.DrawFn) -> tuple[list[str], tuple[str, ...]]:
    """Target words (ids, ranges, ``a to b``) and the agents they mean, sorted."""
    words: list[str] = []
    agents: set[str] = set()
    for _ in range(draw(st.integers(1, 6))):
        low = draw(st.integers(0, 10**6))
        high = low + draw(st.integers(0, 20))
        if low == high and draw(st.booleans()):
            words.append(str(low))
        else:
            dash = draw(st.sampled_from(["-", " - ", "–", " to ", " A ", " hasta "]))  # noqa: RUF001
            words.append(f"{low}{dash}{high}")
        agents.update(str(n) for n in range(low, high + 1))
    return words, tuple(sorted(agents, key=lambda a: (int(a), len(a))))


@st.composite
def team_commands(
    draw: st.DrawFn,
) -> tuple[str, TeamCreateCommand | TeamAddCommand | TeamRemoveCommand]:
    action = draw(st.sampled_from(["create", "add", "remove"]))
    name = draw(team_names)
    head = [
        draw(spelled(draw(st.sampled_from(TEAM_WORDS)))),
        draw(spelled(draw(st.sampled_from(TEAM_ACTIONS[action])))),
        draw(spelled(name)),
    ]
    targets, agents = draw(agent_targets())
    if action == "add":
        return draw(joined(head + targets)), TeamAddCommand(name, agents)
    if action == "remove":
        return draw(joined(head + targets)), TeamRemoveCommand(name, agents)
    channel_text, channel = draw(channels())
    rest = [*targets, channel_text]
    approvals: ChannelRef | None = None
    change_channels: tuple[ChannelRef, ...] | None = None
    operation: str | None = None
    if draw(st.booleans()):
        approvals_text, approvals = draw(channels())
        rest.append(f"{draw(st.sampled_from(['approvals', 'aprobaciones']))}:{approvals_text}")
    if draw(st.booleans()):
        picked = draw(st.lists(channels(), min_size=1, max_size=3))
        change_channels = tuple(dict.fromkeys(ref for _, ref in picked))
        rest.append(f"{draw(st.sampled_from(['channels', 'canales']))}:")
        rest[-1] += ",".join(entity for entity, _ in picked)
    if draw(st.booleans()):
        operation = draw(team_names)
        rest.append(f"operation:{draw(spelled(operation))}")
    command = TeamCreateCommand(name, agents, channel, approvals, change_channels, operation)
    return draw(joined(head + list(draw(st.permutations(rest))))), command


@settings(max_examples=300, deadline=None)
@given(team_commands())
def test_team_commands_round_trip(
    case: tuple[str, TeamCreateCommand | TeamAddCommand | TeamRemoveCommand],
) -> None:
    text, expected = case
    assert parse(text) == expected


@st.composite
def changes_with_teams(draw: st.DrawFn) -> tuple[str, ChangeCommand]:
    text, display, buttons, agents = draw(valid_commands())
    names = draw(st.lists(team_names, min_size=1, max_size=4))
    words = [f"{draw(st.sampled_from(TEAM_KEYS))}:{draw(spelled(name))}" for name in names]
    text = draw(joined([*words, text] if draw(st.booleans()) else [text, *words]))
    return text, ChangeCommand(display, buttons, agents, tuple(sorted(set(names))))


@settings(max_examples=200, deadline=None)
@given(changes_with_teams())
def test_changes_with_teams_round_trip(case: tuple[str, ChangeCommand]) -> None:
    text, expected = case
    assert parse(text) == expected


# ------------------------------------------------------ properties: durations, dry runs, reasons

UNIT_ALIASES: dict[int, tuple[str, ...]] = {
    3600: ("h", "hr", "hrs", "hour", "hours", "hora", "horas"),
    60: ("m", "min", "mins", "minute", "minutes", "minuto", "minutos"),
    1: ("s", "sec", "secs", "seconds", "seg", "segundos"),
}
DURATION_WORDS = ("for", "por", "durante")
QUOTES = (('"', '"'), ("\u201c", "\u201d"), ("\u201d", "\u201d"), ("'", "'"), ("&quot;", "&quot;"))
QUOTE_CHARS = "\"'\u201c\u201d\u201e\u201f\u00ab\u00bb\u2018\u2019\u201a\u201b"


def as_slack_sends(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def durations(draw: st.DrawFn) -> tuple[str, int]:
    """``for 1h30m``, ``durante 2 horas 5 min``…, and how many seconds that is."""
    units = draw(st.lists(st.sampled_from(list(UNIT_ALIASES)), min_size=1, max_size=3))
    pieces: list[str] = []
    seconds = 0
    attached = True
    for unit in units:
        value = draw(st.integers(0, 30 if unit == 3600 else 200))
        seconds += value * unit
        alias = draw(spelled(draw(st.sampled_from(UNIT_ALIASES[unit]))))
        if draw(st.booleans()):
            pieces.append(f"{value}{alias}")
        else:
            pieces.append(f"{value} {alias}")
            attached = False
    together = attached and draw(st.booleans())
    said = draw(spelled(draw(st.sampled_from(DURATION_WORDS))))
    return f"{said} {('' if together else ' ').join(pieces)}", seconds


@settings(max_examples=300, deadline=None)
@given(durations())
def test_durations_are_read_and_bounded(case: tuple[str, int]) -> None:
    text, seconds = case
    result = parse(f"hide dial 1001 {text}")
    if MIN_DURATION.total_seconds() <= seconds <= MAX_DURATION.total_seconds():
        assert result == ChangeCommand(
            Display.HIDE, (DIAL,), ("1001",), duration=timedelta(seconds=seconds)
        )
    else:
        assert isinstance(result, ParseError)
        assert ("at least 1 minute" if seconds < 60 else "at most 24 hours") in result.message
        check_invariants(result)


reason_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Co"), blacklist_characters=QUOTE_CHARS
    ),
    min_size=1,
    max_size=60,
).filter(lambda text: text.strip() != "")
reason_words = st.from_regex(r"\A[a-zA-Z0-9áéíñÑü.!?¿;&<>@#()/*_]{1,10}\Z").filter(
    lambda word: normalize(word) not in ("dryrun",)
)


@st.composite
def reasons(draw: st.DrawFn) -> tuple[str, str, bool]:
    """A ``--reason`` as Slack would send it, the reason it gives, and whether it was quoted
    (an unquoted reason runs to the next flag, so it must come last)."""
    flag = draw(st.sampled_from(["--reason", "--motivo", "--razón", "—reason", "reason:"]))
    flag = draw(spelled(flag))
    if draw(st.booleans()):
        words = draw(st.lists(reason_words, min_size=1, max_size=6))
        separator = "=" if flag.startswith(("-", "—")) and draw(st.booleans()) else " "
        reason = " ".join(words)
        return f"{flag}{separator}{as_slack_sends(reason)}", reason, False
    text = draw(reason_text)
    opening, closing = draw(st.sampled_from(QUOTES))
    separator = draw(st.sampled_from([" ", "", "="] if flag.startswith(("-", "—")) else [" ", ""]))
    if separator == "" and flag.startswith(("-", "—")):
        separator = " "
    quoted = f"{opening}{as_slack_sends(text)}{closing}"
    return f"{flag}{separator}{quoted}", text.strip(), True


@st.composite
def changes_with_extras(draw: st.DrawFn) -> tuple[str, ChangeCommand]:
    """A valid change with, in any order, a duration, a dry run and a reason, each or not."""
    text, display, buttons, agents = draw(valid_commands())
    expected = ChangeCommand(display, buttons, agents)
    extras: list[str] = []
    duration: str | None = None
    if draw(st.booleans()):
        duration, seconds = draw(durations().filter(lambda case: 60 <= case[1] <= 86400))
        extras.append(duration)
        expected = ChangeCommand(**{**vars(expected), "duration": timedelta(seconds=seconds)})
    dry_run = None
    if draw(st.booleans()):
        dry_run = draw(spelled(draw(st.sampled_from([*DRY_RUN_ALIASES, "—dry-run"]))))
        expected = ChangeCommand(**{**vars(expected), "dry_run": True})
    unquoted: str | None = None
    if draw(st.booleans()):
        reason, meant, quoted = draw(reasons())
        expected = ChangeCommand(**{**vars(expected), "reason": meant})
        if quoted:
            extras.append(reason)
        else:
            unquoted = reason
    if dry_run is not None and (unquoted is None or draw(st.booleans())):
        extras.append(dry_run)
        dry_run = None
    extras = list(draw(st.permutations(extras)))
    # Agents never come right after a duration: `for 1h 30` would be refused as ambiguous.
    last = extras.index(duration) if duration is not None else len(extras)
    extras.insert(draw(st.integers(0, last)), text)
    extras += [word for word in (unquoted, dry_run) if word is not None]
    return draw(joined(extras)), expected


@settings(max_examples=400, deadline=None)
@given(changes_with_extras())
def test_changes_with_durations_dry_runs_and_reasons_round_trip(
    case: tuple[str, ChangeCommand],
) -> None:
    text, expected = case
    assert parse(text) == expected


@st.composite
def history_commands(draw: st.DrawFn) -> tuple[str, HistoryCommand]:
    words = [draw(spelled(draw(st.sampled_from(["history", "historial"]))))]
    agents: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    extras: list[str] = []
    if draw(st.booleans()):
        targets, agents = draw(agent_targets())
        extras += targets
    if draw(st.booleans()):
        names = draw(st.lists(team_names, min_size=1, max_size=3))
        extras.append(f"{draw(st.sampled_from(TEAM_KEYS))}:{','.join(names)}")
        teams = tuple(sorted(set(names)))
    limit = DEFAULT_HISTORY_LIMIT
    if draw(st.booleans()):
        limit = draw(st.integers(1, MAX_HISTORY_LIMIT))
        form = draw(st.sampled_from(["--limit {}", "--limit={}", "limit:{}", "—límite {}"]))
        extras.append(form.format(limit))
    return draw(joined(words + list(draw(st.permutations(extras))))), HistoryCommand(
        agents, teams, limit
    )


@settings(max_examples=200, deadline=None)
@given(history_commands())
def test_history_commands_round_trip(case: tuple[str, HistoryCommand]) -> None:
    text, expected = case
    assert parse(text) == expected


feature_pieces = st.one_of(
    st.sampled_from(FEATURE_WORDS),
    durations().map(lambda case: case[0]),
    reasons().map(lambda case: case[0]),
    junk_words,
    options(),
)


@st.composite
def feature_mixtures(draw: st.DrawFn) -> str:
    """Text that often starts like a change, undo, history or status, then anything."""
    out = draw(st.sampled_from(["", "hide dial 1001", "undo", "history", "status", "estado"]))
    for word in draw(st.lists(feature_pieces, max_size=8)):
        out += draw(st.sampled_from([" ", "  ", ",", ", ", "\t", "", "="])) + word
    return out


@settings(max_examples=500, deadline=None)
@given(feature_mixtures())
def test_feature_mixtures_never_raise(text: str) -> None:
    check_invariants(parse(text))
