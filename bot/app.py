"""The Bolt app: Slack payloads in, core calls, Block Kit out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import actions, approvals, home, render
from bot.admission import QUIET_WAIT_SECONDS
from bot.language import language_middleware
from bot.oauth import in_workspace, team_middleware
from bot.progress import SlackProgress
from bot.services import Services
from bot.timers import run_when_due
from commands.approvals import Requested
from commands.changes import (
    Accepted,
    ChangeReport,
    DryRun,
    Duplicate,
    NeedsConfirmation,
    NotAChange,
    Refused,
    SubmitResult,
)
from commands.grammar import HelpCommand, ParseError
from commands.i18n import _
from storage.changes import ChangeRecord, Requester
from wolkvox.model import Button, Display

log = logging.getLogger(__name__)

COMMAND = "/agentbox"
CONFIRM_ACTION = "agentbox_confirm_change"
CANCEL_ACTION = "agentbox_cancel_change"
#: How often the timer loop looks for timed changes that other replicas just made.
TIMER_CHECK_SECONDS = 5.0


def build_app(services: Services) -> AsyncApp:
    """The Bolt app for ``services``; the HTTP server, Socket Mode and the console all drive it."""
    settings = services.settings
    app = AsyncApp(
        client=services.slack,
        signing_secret=settings.slack_signing_secret,
        # The listener acks itself as soon as the change is recorded; the calls are sent by the
        # dispatcher and the progress is followed in a background task, so there is nothing to
        # gain from Bolt's ack-polling mode.
        process_before_response=True,
        # Several workspaces (OAuth): each request is authorized with its workspace's bot token.
        oauth_flow=services.oauth_flow,
    )
    if services.oauth_flow is not None:
        app.use(team_middleware)  # what it starts posts with its workspace's token
    app.use(language_middleware(services.languages))  # each request in its user's language

    @app.command(COMMAND)
    async def agentbox_command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        with services.admission.enter() as admitted:
            if admitted:
                await _take_command(services, ack, body, client)
            else:
                await ack(
                    **render.failure(
                        _(
                            "agentbox is taking too many commands at once to answer yours in "
                            "time, so nothing was recorded. Please send it again in a few seconds."
                        )
                    )
                )

    @app.action(CONFIRM_ACTION)
    async def confirm_change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        requester = actions.clicker(body)
        respond = AsyncWebhookClient(body["response_url"]) if body.get("response_url") else None
        change_id = actions.change_id(body)
        result = await services.changes.confirm(change_id, requester) if change_id else None
        if isinstance(result, Accepted):
            message = render.accepted(result)
            for operation in result.operations:
                services.dispatcher.wake(operation)
            services.tasks.spawn(
                _load_and_follow(services, client, result.change_id),
                name=f"change-{result.change_id}",
            )
        else:
            reason = result.reason if result else _("That button does not name a change.")
            message = render.refused(reason)
        if respond is not None:
            await respond.send_dict({"replace_original": isinstance(result, Accepted), **message})

    @app.action(CANCEL_ACTION)
    async def cancel_change(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        requester = actions.clicker(body)
        change_id = actions.change_id(body)
        cancelled = bool(change_id) and await services.changes.cancel(change_id, requester)
        if body.get("response_url"):
            text = (
                _("Cancelled: nothing was changed.")
                if cancelled
                else _("This change is not waiting for you (already confirmed or cancelled).")
            )
            await AsyncWebhookClient(body["response_url"]).send_dict(
                {"replace_original": cancelled, **render.message(text)}
            )

    # App Home, the "Change agent buttons" modal and the Workflow Builder step (they use this
    # module's helpers, so they are imported here).
    from bot import change_modal, workflow_step

    approvals.register(app, services)
    home.register(app, services)
    change_modal.register(app, services)
    workflow_step.register(app, services)
    return app


async def _take_command(
    services: Services, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
) -> None:
    """Record a slash command (or answer it) and acknowledge it with the answer."""
    requester = Requester(
        user_id=body["user_id"],
        team_id=body.get("team_id"),
        channel_id=body.get("channel_id"),
    )
    trigger_id = body.get("trigger_id")
    text = body.get("text") or ""
    try:
        result = await services.changes.submit(
            requester,
            text,
            response_url=body.get("response_url"),
            # A slash command delivered twice carries the same trigger_id: one change.
            idempotency_key=f"slash:{trigger_id}" if trigger_id else None,
        )
    except Exception:
        log.exception("could not take a command")
        await ack(
            **render.failure(
                _(
                    "agentbox could not record your request right now (its database is not "
                    "answering), so nothing was changed. Please try again in a minute."
                )
            )
        )
        return
    await _answer(services, client, ack, requester, text, result)


async def _load_and_follow(
    services: Services, client: AsyncWebClient, change_id: int
) -> ChangeReport | None:
    # The calls are already on their way (the dispatcher was woken); reporting them can wait
    # for the acks of the commands arriving with this one.
    await services.admission.quiet(at_most=QUIET_WAIT_SECONDS)
    try:
        record = await services.changes.load(change_id)
    except Exception:
        # The change is recorded; with no reporter it is adopted when its lease runs out.
        log.exception("could not load change %s to follow it", change_id)
        return None
    if record is None:
        return None
    with in_workspace(record.requester.team_id):  # multi-workspace: post with its team's token
        return await home.refreshed_after(
            services,
            client,
            services.changes.follow(change_id, _listener(services, client, record)),
        )


def start_change(
    services: Services,
    client: AsyncWebClient,
    result: Accepted,
    *,
    first: Callable[[], Awaitable[None]] | None = None,
    then: Callable[[ChangeReport | None], Awaitable[None]] | None = None,
) -> None:
    """Send an accepted change's calls and follow its progress, in the background.

    ``first`` runs before anything is reported (the modal's acknowledgement); ``then`` gets the
    summary, or None when this process stopped following (shutdown, another replica took over).
    """
    for operation in result.operations:
        services.dispatcher.wake(operation)

    async def run() -> None:
        if first is not None:
            try:
                await first()
            except Exception:
                log.exception("could not acknowledge change %s", result.change_id)
        report = await _load_and_follow(services, client, result.change_id)
        if then is not None:
            await then(report)

    services.tasks.spawn(run(), name=f"change-{result.change_id}")


def follow_change(services: Services, client: AsyncWebClient, record: ChangeRecord) -> None:
    """Report a recorded change's progress into its Slack message, in the background."""
    following = services.changes.follow(record.id, _listener(services, client, record))
    with in_workspace(record.requester.team_id):  # multi-workspace: post with its team's token
        services.tasks.spawn(
            home.refreshed_after(services, client, following), name=f"change-{record.id}"
        )


def _listener(services: Services, client: AsyncWebClient, record: ChangeRecord) -> SlackProgress:
    change_id = record.id

    async def remember(channel: str, ts: str) -> None:
        await services.changes.remember_progress_message(change_id, channel, ts)

    return SlackProgress(
        client,
        user_id=record.requester.user_id,
        channel_id=record.requester.channel_id,
        response_url=record.response_url,
        display=Display(record.display),
        buttons=tuple(Button(button) for button in record.buttons),
        posted=record.progress_message,
        on_posted=remember,
        languages=services.languages,  # the requester's, whichever task follows the change
    )


async def adopt_changes(
    services: Services, client: AsyncWebClient, *, ignore_leases: bool = False
) -> int:
    """Follow the changes whose reporter went away (a previous process, a dead replica).

    Their calls need nothing from here: the dispatcher sends queued calls whoever took them.
    """
    adopted = await services.changes.adopt(ignore_leases=ignore_leases)
    for record in adopted:
        log.info("following change %s (its reporter went away)", record.id)
        for operation in record.operations:
            services.dispatcher.serve(operation)
        follow_change(services, client, record)
    return len(adopted)


async def revert_due_changes(services: Services, client: AsyncWebClient) -> int:
    """Put back the timed changes whose time is up, and follow each revert like any change."""
    reverts = await services.timed.revert_due()
    for revert in reverts:
        for operation in revert.operations:
            services.dispatcher.wake(operation)
        services.tasks.spawn(
            _load_and_follow(services, client, revert.change_id),
            name=f"change-{revert.change_id}",
        )
    return len(reverts)


async def revert_when_due(services: Services, client: AsyncWebClient) -> None:
    """Put back timed changes as their time comes (this replica's or a dead one's), until
    cancelled; the runners (serve, console) keep it going."""
    await run_when_due(
        lambda: revert_due_changes(services, client),
        services.timed.seconds_until_next,
        at_most=TIMER_CHECK_SECONDS,
        what="look for timed changes to put back",
    )


async def resume_unfinished(services: Services, client: AsyncWebClient) -> int:
    """At start: take over every change a previous process left unreported.

    On SQLite there is one process, so whatever is unreported is ours at once; on PostgreSQL other
    replicas may be alive, so only changes whose reporter's lease ran out are taken.
    """
    return await adopt_changes(
        services, client, ignore_leases=services.database.dialect == "sqlite"
    )


async def _answer(
    services: Services,
    client: AsyncWebClient,
    ack: AsyncAck,
    requester: Requester,
    text: str,
    result: SubmitResult,
) -> None:
    """Acknowledge a slash command with its answer, and start what it started."""
    if isinstance(result, HelpCommand):
        await ack(**render.paragraphs((await services.admin.help(requester, result)).text))
    elif isinstance(result, ParseError):
        await ack(**render.parse_error(result))
    elif isinstance(result, Refused):
        await ack(**render.refused(result.reason))
    elif isinstance(result, Duplicate):
        await ack(**render.duplicate(result.change_id))
    elif isinstance(result, NotAChange):
        reply = await services.admin.handle(requester, text, result.command)
        await ack(**(render.message(reply.text) if reply.ok else render.refused(reply.text)))
    elif isinstance(result, DryRun):
        await ack(**render.dry_run(result))
    elif isinstance(result, NeedsConfirmation):
        await ack(**render.needs_confirmation(result, CONFIRM_ACTION, CANCEL_ACTION))
    elif isinstance(result, Requested):
        await ack(**render.requested(result))
        services.tasks.spawn(
            approvals.post_request(services, client, result), name=f"request-{result.change_id}"
        )
    else:
        await ack(**render.accepted(result))
        for operation in result.operations:
            services.dispatcher.wake(operation)
        services.tasks.spawn(
            _load_and_follow(services, client, result.change_id),
            name=f"change-{result.change_id}",
        )
