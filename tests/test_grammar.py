"""Tests for the /agentbox grammar: one example per rule, then properties over generated text."""

from __future__ import annotations

import re
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.grammar import (
    MAX_AGENTS,
    USAGE,
    ChangeCommand,
    HelpCommand,
    Parsed,
    ParseError,
    parse,
    parse_targets,
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


# --------------------------------------------------------------------------- properties


def check_invariants(result: Parsed) -> None:
    assert isinstance(result, ChangeCommand | HelpCommand | ParseError)
    if isinstance(result, ChangeCommand):
        assert isinstance(result.display, Display)
        assert result.buttons
        assert result.buttons == tuple(b for b in ALL if b in result.buttons)
        assert 0 < len(result.agents) <= MAX_AGENTS
        assert len(set(result.agents)) == len(result.agents)
        assert all(DIGITS.fullmatch(agent) for agent in result.agents)
        assert list(result.agents) == sorted(result.agents, key=lambda a: (int(a), len(a)))
    elif isinstance(result, ParseError):
        assert result.message
        assert "could not read" not in result.message  # the never-raise net caught a bug
        word = result.word
        if word is not None and len(word) < 30 and not set(word) & set("&<>`"):
            assert f"`{word}`" in result.message


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

numbers = st.integers(min_value=0, max_value=10**17).map(str)
ranges = st.tuples(numbers, numbers).map(lambda pair: f"{pair[0]}-{pair[1]}")
small_ranges = st.tuples(st.integers(0, 2000), st.integers(0, 2000)).map(lambda p: f"{p[0]}-{p[1]}")
junk_words = st.one_of(
    st.sampled_from(VOCABULARY_WORDS),
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
