"""The Bolt app: Slack payloads in, core calls, Block Kit out."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.progress import SlackProgress
from bot.services import Services
from commands.changes import Accepted, Refused
from commands.grammar import USAGE, HelpCommand, ParseError
from storage.changes import Requester
from wolkvox.model import Button, Display

log = logging.getLogger(__name__)

COMMAND = "/agentbox"


def build_app(services: Services) -> AsyncApp:
    """The Bolt app for ``services``; the HTTP server, Socket Mode and the console all drive it."""
    settings = services.settings
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret,
        # The listener acks itself as soon as the change is recorded and hands the calls to a
        # background task, so there is nothing to gain from Bolt's ack-polling mode.
        process_before_response=True,
    )

    @app.command(COMMAND)
    async def agentbox_command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        requester = Requester(
            user_id=body["user_id"],
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
        )
        text = body.get("text") or ""
        try:
            result = await services.changes.submit(
                requester, text, response_url=body.get("response_url")
            )
        except Exception:
            log.exception("could not take a command")
            await ack(
                **render.failure(
                    "agentbox could not record your request right now (its database is not "
                    "answering), so nothing was changed. Please try again in a minute."
                )
            )
            return
        if isinstance(result, HelpCommand):
            await ack(**render.help_message(USAGE))
        elif isinstance(result, ParseError):
            await ack(**render.parse_error(result))
        elif isinstance(result, Refused):
            await ack(**render.refused(result.reason))
        else:
            await ack(**render.accepted(result))
            start_change(
                services,
                client,
                result.change_id,
                requester,
                response_url=body.get("response_url"),
                accepted=result,
            )

    return app


def start_change(
    services: Services,
    client: AsyncWebClient,
    change_id: int,
    requester: Requester,
    *,
    response_url: str | None,
    accepted: Accepted | None = None,
    display: Display | None = None,
    buttons: tuple[Button, ...] = (),
) -> None:
    """Run a recorded change in the background, reporting into its Slack message."""
    if accepted is not None:
        display, buttons = accepted.command.display, accepted.command.buttons
    assert display is not None
    listener = SlackProgress(
        client,
        user_id=requester.user_id,
        channel_id=requester.channel_id,
        response_url=response_url,
        display=display,
        buttons=buttons,
    )
    services.tasks.spawn(services.changes.run(change_id, listener), name=f"change-{change_id}")


async def resume_unfinished(services: Services, client: AsyncWebClient) -> int:
    """Restart the changes a previous process left unfinished; their requesters get the summary."""
    resumed = 0
    for change_id in await services.store.unfinished_change_ids():
        record = await services.store.load_change(change_id)
        if record is None:
            continue
        log.info("resuming change %s", change_id)
        start_change(
            services,
            client,
            change_id,
            record.requester,
            response_url=record.response_url,
            display=Display(record.display),
            buttons=tuple(Button(button) for button in record.buttons),
        )
        resumed += 1
    return resumed
