"""The one Slack message that follows a change from queued to its summary.

It is posted in the channel where the command was typed and then updated in place (chat.update);
a response_url cannot update the ephemeral reply to a slash command. Where the bot may not post
(a private channel it is not in, someone else's DM) it goes to the user's DM with the app, and if
the Web API fails altogether, the summary goes back through the command's response_url.

It speaks the requester's language, asked once per change of ``languages`` (bot/language.py), so a
change followed after a restart, by another replica or as a timed revert reads like one followed
from its request; the trail lines in teams' channels, read by everyone, are in the default one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import render
from commands.changes import ChangeReport
from commands.i18n import current_language, use_language
from wolkvox.model import Button, Display

log = logging.getLogger(__name__)

#: Progress is shown at most this often; the final summary is always shown.
MIN_UPDATE_INTERVAL = 1.0


class UserLanguages(Protocol):
    """Who reads which language (bot/language.Languages)."""

    default: str

    async def language_for(self, user_id: str) -> str: ...


class SlackProgress:
    """A :class:`commands.changes.ProgressListener` that renders into one Slack message."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        user_id: str,
        channel_id: str | None,
        response_url: str | None,
        display: Display,
        buttons: Sequence[Button],
        posted: tuple[str, str] | None = None,
        on_posted: Callable[[str, str], Awaitable[None]] | None = None,
        min_interval: float = MIN_UPDATE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        languages: UserLanguages | None = None,
    ) -> None:
        """``posted``: the (channel, ts) of the message if an earlier process already posted it;
        ``on_posted`` is told when the message is first posted, so that it can be stored;
        without ``languages``, messages are in the language of the task that reports. With it,
        the requester's language is looked up at once (so in a running loop), to be ready when
        the first message is shown."""
        self._client = client
        self._user_id = user_id
        self._channel_id = channel_id
        self._response_url = response_url
        self._display = display
        self._buttons = tuple(buttons)
        self._min_interval = min_interval
        self._clock = clock
        self._posted = posted  # (channel, ts)
        self._on_posted = on_posted
        self._last_update = float("-inf")
        self._languages = languages
        self._language: asyncio.Task[str] | None = None
        if languages is not None:
            self._language = asyncio.get_running_loop().create_task(
                _language_of(languages, user_id), name=f"language-{user_id}"
            )

    async def _requester_language(self) -> str:
        return current_language() if self._language is None else await self._language

    def _language_now(self) -> str:
        """The requester's language if known already, else this task's: shutdown cannot wait."""
        if self._language is not None and self._language.done() and not self._language.cancelled():
            return self._language.result()
        return current_language()

    async def on_progress(self, done: int, total: int) -> None:
        if total <= 1 or done >= total:
            return  # the summary follows at once
        now = self._clock()
        if now - self._last_update < self._min_interval:
            return
        self._last_update = now
        with use_language(await self._requester_language()):
            message = render.progress(self._display, self._buttons, done, total)
        await self._show(message)

    async def on_interrupted(self, done: int, total: int) -> None:
        with use_language(self._language_now()):
            message = render.interrupted(self._display, self._buttons, done, total)
        await self._show(message)

    async def on_finished(self, report: ChangeReport) -> None:
        with use_language(await self._requester_language()):
            summary = render.report(report)
        summary["text"] = f"<@{self._user_id}>: {summary['text']}"
        summary["blocks"][0]["text"]["text"] = summary["text"]
        if not await self._show(summary):
            await self._respond(summary)
        await self._post_trail(report)

    async def _post_trail(self, report: ChangeReport) -> None:
        """One concise line in each touched team's channel (not where the message already is)."""
        default = self._languages.default if self._languages else current_language()
        with use_language(default):
            line = render.trail(report)
        for channel in report.trail_channels:
            if self._posted is not None and self._posted[0] == channel:
                continue
            try:
                await self._client.chat_postMessage(channel=channel, **line)
            except Exception as error:
                log.warning("cannot post the trail line in %s: %s", channel, error)

    async def _show(self, message: render.Message) -> bool:
        """Post or update the message; False when the Web API would take it nowhere."""
        if self._posted is not None:
            channel, ts = self._posted
            try:
                await self._client.chat_update(channel=channel, ts=ts, **message)
                return True
            except SlackApiError as error:
                # The message is gone (deleted?): post a new one below.
                log.warning("chat.update failed: %s", _reason(error))
            except Exception:
                log.exception("Slack Web API unreachable")
        if self._channel_id and await self._post(self._channel_id, message):
            return True
        dm = await self._open_dm()
        return dm is not None and await self._post(dm, message)

    async def _post(self, channel: str, message: render.Message) -> bool:
        try:
            response = await self._client.chat_postMessage(channel=channel, **message)
        except SlackApiError as error:
            log.info("cannot post to %s: %s", channel, _reason(error))
            return False
        except Exception:
            log.exception("Slack Web API unreachable")
            return False
        self._posted = (str(response["channel"]), str(response["ts"]))
        if self._on_posted is not None:
            try:
                await self._on_posted(*self._posted)
            except Exception:
                log.exception("could not store where the progress message is")
        return True

    async def _open_dm(self) -> str | None:
        try:
            opened = await self._client.conversations_open(users=self._user_id)
        except SlackApiError as error:
            log.info("cannot open a DM with %s: %s", self._user_id, _reason(error))
            return None
        except Exception:
            log.exception("Slack Web API unreachable")
            return None
        return str(opened["channel"]["id"])

    async def _respond(self, message: render.Message) -> None:
        if not self._response_url:
            log.error("could not deliver the summary of a change to %s", self._user_id)
            return
        try:
            await AsyncWebhookClient(self._response_url).send_dict(
                {"response_type": "ephemeral", **message}
            )
        except Exception:
            log.exception("response_url delivery failed")


async def _language_of(languages: UserLanguages, user_id: str) -> str:
    try:
        return await languages.language_for(user_id)
    except Exception:
        log.exception("cannot tell %s's language", user_id)
        return current_language()


def _reason(error: SlackApiError) -> object:
    """Slack's error code, or the HTTP status when the answer was not Slack's JSON."""
    data = error.response.data
    return data.get("error") if isinstance(data, dict) else error.response.status_code
