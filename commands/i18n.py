"""Spanish and English: gettext catalogs, and the language of whoever is being answered.

English is the source language. Every user-facing string is written in English inside ``_()``
(``ngettext`` for plurals, ``pgettext`` where one English word needs two translations, ``N_`` to
mark a string that is translated later, where it is shown), with named placeholders filled by
``str.format`` *after* translation::

    _("There is no team named `{name}`.").format(name=name)

The translations are the gettext PO files
``commands/locale/<lang>/LC_MESSAGES/agentbox.po`` (package data: installed with the app), read
with Babel the first time a language is used: there is no compiled ``.mo`` file that could fall
behind the ``.po``. ``make messages`` extracts the strings into them; tests/test_i18n.py fails
while one lacks a translation.

The language belongs to the task, not the process: a ContextVar that bot/language.py sets for each
Slack request (and that the background tasks a request starts inherit), and that work starting
outside any request sets with :func:`use_language`.
"""

from __future__ import annotations

import functools
import gettext
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

DOMAIN: Final = "agentbox"
LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"
"""The catalogs, inside this package so that they are installed with it (package data)."""

ENGLISH: Final = "en"
SPANISH: Final = "es"
LANGUAGES: Final = (ENGLISH, SPANISH)
"""Every language agentbox speaks; English is the source (its catalog is the msgids)."""
DEFAULT_LANGUAGE: Final = ENGLISH


class Source(StrEnum):
    """Where the language of a request came from."""

    CHOICE = "choice"
    """The user's own ``/agentbox lang es|en``."""
    SLACK = "slack"
    """The user's Slack language (their locale)."""
    DEFAULT = "default"
    """The workspace default, ``AGENTBOX_LANGUAGE``."""


@dataclass(frozen=True)
class Language:
    """The language of the current task, where it came from, and what applies without a choice."""

    code: str = DEFAULT_LANGUAGE
    source: Source = Source.DEFAULT
    slack: str | None = None
    """The user's Slack language, when Slack told it and agentbox speaks it."""
    default: str = DEFAULT_LANGUAGE
    """The workspace's default (``AGENTBOX_LANGUAGE``)."""

    @property
    def automatic(self) -> str:
        """The language the user gets without a choice of their own."""
        return self.slack or self.default


_ENGLISH_BY_DEFAULT: Final = Language()  # frozen: safe to share as the ContextVar's default
_current: ContextVar[Language] = ContextVar("agentbox_language", default=_ENGLISH_BY_DEFAULT)


def normalize_language(value: str | None) -> str | None:
    """``es``, ``es-LA``, ``ES_co``, ``es-419`` → ``es``; None for a language agentbox lacks."""
    if not value:
        return None
    code = value.strip().replace("_", "-").split("-", 1)[0].casefold()
    return code if code in LANGUAGES else None


def current_language() -> str:
    return _current.get().code


def current() -> Language:
    """The language of this task, with where it came from."""
    return _current.get()


@contextmanager
def use_language(
    language: str | Language, *, source: Source = Source.DEFAULT
) -> Iterator[Language]:
    """Speak ``language`` in the block (and in the tasks started in it)."""
    if isinstance(language, str):
        code = normalize_language(language) or DEFAULT_LANGUAGE
        language = Language(code, source, default=code)
    token = _current.set(language)
    try:
        yield language
    finally:
        _current.reset(token)


def activate(language: Language) -> None:
    """Speak ``language`` until the current task ends (and in the tasks it starts from here on).

    For the entry point of a request (bot/language.py); elsewhere, :func:`use_language`.
    """
    _current.set(language)


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog of ``language``, read from its .po file once per process.

    Fuzzy and empty entries are left out, so they show in English. A missing or broken catalog is
    logged as an error and the language falls back to English rather than failing a request.
    """
    if language == ENGLISH or language not in LANGUAGES:
        return gettext.NullTranslations()
    path = catalog_path(language)
    try:
        with path.open("rb") as po:
            catalog = read_po(po, locale=language, domain=DOMAIN, abort_invalid=True)
        compiled = io.BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        return gettext.GNUTranslations(compiled)
    except Exception:
        log.exception("cannot read the %s catalog %s: answering in English", language, path)
        return gettext.NullTranslations()


def _(message: str) -> str:
    """``message`` in the current language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for ``count``, in the current language."""
    return translations(current_language()).ngettext(singular, plural, count)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, where ``context`` tells apart its meanings."""
    return translations(current_language()).pgettext(context, message)


def language_name(code: str) -> str:
    """``es`` → ``Spanish``, in the current language."""
    names = {ENGLISH: pgettext("language", "English"), SPANISH: pgettext("language", "Spanish")}
    return names.get(code, code)


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now (translate it with ``_``)."""
    return message
