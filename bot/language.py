"""Which language each Slack user is answered in, set for every request before its listener runs.

In order: the language the user chose (``/agentbox lang es|en``, storage/settings_store.py), else
their Slack language (``users.info`` with ``include_locale``, remembered for an hour), else the
workspace default ``AGENTBOX_LANGUAGE``, else English. Work that runs outside any request (a change
followed after a restart or by another replica, a timed change's revert) asks
:meth:`Languages.language_for` for its requester's; bot/progress.py does so for every change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from commands.i18n import Language, Source, activate, normalize_language
from storage.settings_store import UserSettings

log = logging.getLogger(__name__)

#: How stale another replica's ``/agentbox lang`` may be here (this process's own: never).
CHOICES_MAX_AGE = 1.0
#: How long a user's Slack language is remembered (Slack's own setting rarely changes).
LOCALE_TTL = 3600.0
#: After Slack did not tell a user's language, how long before asking again.
LOCALE_RETRY_AFTER = 60.0
#: The most a request waits for Slack's answer (a user's first command in an hour): the reply
#: must not keep Slack waiting; a later answer is still remembered for the next one.
LOCALE_WAIT = 1.0
#: The most one users.info call may take at all.
LOCALE_DEADLINE = 10.0


class Languages:
    """Resolves a user's language: their choice, their Slack language, the default."""

    def __init__(
        self,
        settings: UserSettings,
        slack: AsyncWebClient,
        default: str,
        *,
        locale_wait: float = LOCALE_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._slack = slack
        self.default = normalize_language(default) or "en"
        self._locale_wait = locale_wait
        self._clock = clock
        self._choices: tuple[float, dict[str, str]] | None = None
        self._choices_lock = asyncio.Lock()
        self._locales: dict[str, tuple[float, str | None]] = {}  # user -> (until, language)
        self._lookups: dict[str, asyncio.Task[str | None]] = {}
        settings.on_change.append(self.invalidate)

    def invalidate(self) -> None:
        """Forget the choices read (this process just changed one)."""
        self._choices = None

    async def resolve(self, user_id: str | None) -> Language:
        """The language to answer ``user_id`` in, and where it came from. Never raises."""
        if not user_id:
            return Language(self.default, Source.DEFAULT, default=self.default)
        chosen, slack = await asyncio.gather(self._chosen(user_id), self._slack_language(user_id))
        if chosen is not None:
            return Language(chosen, Source.CHOICE, slack, self.default)
        if slack is not None:
            return Language(slack, Source.SLACK, slack, self.default)
        return Language(self.default, Source.DEFAULT, None, self.default)

    async def language_for(self, user_id: str) -> str:
        """The language code for ``user_id`` (for work that runs outside their request)."""
        return (await self.resolve(user_id)).code

    async def _chosen(self, user_id: str) -> str | None:
        """The user's own choice, from a copy of every choice at most a second old.

        Like commands/snapshot.py: a burst of commands costs one read, not one each.
        """
        current = self._choices
        if current is None or self._clock() - current[0] >= CHOICES_MAX_AGE:
            async with self._choices_lock:
                current = self._choices
                if current is None or self._clock() - current[0] >= CHOICES_MAX_AGE:
                    taken = self._clock()
                    try:
                        current = (taken, await self._settings.languages())
                    except Exception:
                        # The request itself reports a database that does not answer.
                        log.warning("cannot read the users' languages", exc_info=True)
                        return None
                    self._choices = current
        return normalize_language(current[1].get(user_id))

    async def _slack_language(self, user_id: str) -> str | None:
        remembered = self._locales.get(user_id)
        if remembered is not None and remembered[0] > self._clock():
            return remembered[1]
        lookup = self._lookups.get(user_id)
        if lookup is None:
            lookup = asyncio.create_task(self._ask_slack(user_id), name=f"locale-{user_id}")
            self._lookups[user_id] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(user_id, None))
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), self._locale_wait)
        except TimeoutError:
            log.info("Slack did not tell %s's language in time; using the default", user_id)
            return None

    async def _ask_slack(self, user_id: str) -> str | None:
        language: str | None = None
        ttl = LOCALE_RETRY_AFTER
        try:
            async with asyncio.timeout(LOCALE_DEADLINE):
                answer = await self._slack.users_info(user=user_id, include_locale=True)
            user = answer.get("user")
            locale = user.get("locale") if isinstance(user, dict) else None
            language = normalize_language(locale if isinstance(locale, str) else None)
            ttl = LOCALE_TTL
        except Exception as error:
            log.warning("cannot read %s's Slack language: %s", user_id, error)
        self._locales[user_id] = (self._clock() + ttl, language)
        return language

    async def aclose(self) -> None:
        """Stop the users.info calls still running."""
        lookups = list(self._lookups.values())
        for lookup in lookups:
            lookup.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)


Next = Callable[[], Awaitable[BoltResponse | None]]


def language_middleware(
    languages: Languages,
) -> Callable[[AsyncBoltContext, Next], Awaitable[None]]:
    """A Bolt global middleware that sets the request's language (commands/i18n.py).

    Bolt runs every middleware and then the listener in the same task, one task per request
    (aiohttp's, Socket Mode's), so the language is set here without a ``with`` block and holds for
    the listener and every task it starts.
    """

    async def set_language(context: AsyncBoltContext, next_: Next) -> None:
        activate(await languages.resolve(context.user_id))
        await next_()

    return set_language
