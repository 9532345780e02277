"""The Slack side of approval requests: the request message, its Approve and Reject buttons, the
reject modal, and the updates when a request runs, is rejected or expires.

Every decision is taken in the core (commands/approvals.py) against the database; this module
only reads the button's change id and answers. The request message is found from the database
(never from the payload), so a click from App Home or a forged payload updates the right message
or none. Clicks that change nothing are answered to the clicker alone (ephemeral, or a DM where
Slack gives no response_url).

Languages: the request's message in the approvals channel is read by many, so it is in the
workspace default (like a trail line); what goes to one person is in theirs — the clicker's (the
request's own), or the requester's, looked up for DMs about their request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import actions, render
from bot.oauth import in_workspace
from bot.progress import SlackProgress
from bot.timers import run_when_due
from commands.approvals import NotDecided, Requested
from commands.changes import ChangeReport
from commands.i18n import _, ngettext, use_language
from storage.approvals import RequestRecord
from storage.changes import Requester
from storage.models import ChangeStatus
from wolkvox.model import Button, Display

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

APPROVE_ACTION = "agentbox_approve"
REJECT_ACTION = "agentbox_reject"
#: The reject modal's callback id (its private_metadata is the change id).
REJECT_VIEW = "agentbox_reject_reason"

#: The expiry sweep looks at least this often (each replica; the transition happens once).
SWEEP_SECONDS = 15.0


def register(app: AsyncApp, services: Services) -> None:
    @app.action(APPROVE_ACTION)
    async def approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = actions.clicker(body)
        result = await services.approvals.approve(actions.change_id(body), user)
        if isinstance(result, NotDecided):
            await _refused(services, client, body, user, result)
            return
        record = result.request
        if result.runs:
            start_approved(services, client, record)
            await _tell_requester(services, client, record, render.request_news)
            note = _("You approved request #{change_id}; it runs now.").format(change_id=record.id)
        else:
            # Read it again just before showing it: a second approval may have run it meanwhile,
            # and its progress must not be overwritten by this older "waiting" view.
            current = await services.approvals.load(record.id)
            if current is not None and current.status == ChangeStatus.AWAITING_APPROVAL:
                with use_language(services.languages.default):  # the approvals channel's
                    waiting = render.approval_request(current, APPROVE_ACTION, REJECT_ACTION)
                await _update(client, current, waiting)
            left = record.approvals_needed - len(record.approved_by)
            note = ngettext(
                "You approved request #{change_id}; it needs {count} more approver before it runs.",
                "You approved request #{change_id}; it needs {count} more approvers "
                "before it runs.",
                left,
            ).format(change_id=record.id, count=left)
        if result.self_approved:
            note += " " + _(
                "(Your own request: self-approval is on for its team, and it is audited.)"
            )
        await _answer(client, body, user, render.message(f":white_check_mark: {note}"))

    @app.action(REJECT_ACTION)
    async def reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = actions.clicker(body)
        change_id = actions.change_id(body)
        checked = await services.approvals.check_reject(change_id, user)
        if isinstance(checked, NotDecided):
            await _refused(services, client, body, user, checked)
            return
        try:
            await client.views_open(
                trigger_id=str(body.get("trigger_id") or ""),
                view=render.reject_modal(checked, REJECT_VIEW),
            )
            return
        except Exception:
            log.warning(
                "could not open the reject modal; rejecting without a reason", exc_info=True
            )
        result = await services.approvals.reject(change_id, user, None)
        if isinstance(result, NotDecided):
            await _refused(services, client, body, user, result)
        else:
            await _closed(services, client, result.request)

    @app.view(REJECT_VIEW)
    async def reject_reason(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        metadata = str(view.get("private_metadata") or "")
        user = Requester(user_id=body["user"]["id"], team_id=(body.get("team") or {}).get("id"))
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get("reason") or {}).get("reason") or {}).get("value")
        result = await services.approvals.reject(
            int(metadata) if metadata.isdigit() else 0, user, reason
        )
        if isinstance(result, NotDecided):
            # The modal stays open and says why; nothing was rejected.
            await ack(response_action="errors", errors={"reason": result.reason[:150]})
            if result.expired_now and result.request is not None:
                await _closed(services, client, result.request)
            return
        await ack()
        await _closed(services, client, result.request)


async def post_request(services: Services, client: AsyncWebClient, result: Requested) -> None:
    """Post a new request in its approvals channel and remember the message; a request that
    cannot be posted is withdrawn (nobody could approve it) and its requester told why."""
    record = await services.approvals.load(result.change_id)
    if record is None:
        return
    with use_language(services.languages.default):  # the approvals channel's
        request = render.approval_request(record, APPROVE_ACTION, REJECT_ACTION)
    try:
        posted = await client.chat_postMessage(channel=result.channel, **request)
    except Exception as error:
        why = _slack_error(error)
        log.warning("cannot post request #%s in %s: %s", result.change_id, result.channel, why)
        await services.approvals.withdraw(
            result.change_id, f"could not post it in <#{result.channel}>: {why}"
        )
        # Still the request's task (bot/app.py spawned it): the requester's language.
        text = _(
            ":x: Your request #{change_id} could not be posted in <#{channel}> "
            "(Slack says `{error}`), so it is withdrawn and nothing will run. Invite agentbox to "
            "that channel, or ask an admin to set the team's approvals channel, then ask again."
        ).format(change_id=result.change_id, channel=result.channel, error=why)
        response_url = record.change.response_url
        if response_url:
            await _send(response_url, render.message(text))
        else:
            await _tell(client, record.requester_id, render.message(text))
        return
    await services.approvals.remember_message(
        result.change_id, str(posted["channel"]), str(posted["ts"])
    )


def start_approved(services: Services, client: AsyncWebClient, record: RequestRecord) -> None:
    """Send an approved request's calls, and report its progress in the request's message."""
    for operation in record.change.operations:
        services.dispatcher.wake(operation)
    services.tasks.spawn(
        services.changes.follow(record.id, RequestProgress(services, client, record)),
        name=f"change-{record.id}",
    )


class RequestProgress(SlackProgress):
    """Progress and summary of an approved request, in its request message under a line that
    says whose request it was and who approved it; the requester also gets the summary."""

    def __init__(self, services: Services, client: AsyncWebClient, record: RequestRecord) -> None:
        change_id = record.id

        async def remember(channel: str, ts: str) -> None:
            await services.changes.remember_progress_message(change_id, channel, ts)

        super().__init__(
            client,
            user_id=record.requester_id,
            channel_id=record.change.requester.channel_id,
            response_url=record.change.response_url,
            display=Display(record.change.display),
            buttons=tuple(Button(b) for b in record.change.buttons),
            posted=record.message,
            on_posted=remember,
            languages=services.languages,  # the requester's, as for any change
        )
        self._services = services
        self._record = record
        with use_language(services.languages.default):
            self._header = render.request_header(record)

    # The request's message is in the approvals channel: its progress and summary are in the
    # workspace default language, like the request itself (the requester's copy is theirs).
    async def _requester_language(self) -> str:
        return self._services.languages.default

    def _language_now(self) -> str:
        return self._services.languages.default

    async def _show(self, message: render.Message) -> bool:
        return await super()._show(render.with_header(self._header, message))

    async def on_finished(self, report: ChangeReport) -> None:
        await super().on_finished(report)
        await _tell_requester(
            self._services,
            self._client,
            self._record,
            lambda record: render.request_outcome(record, report),
        )


async def expire_requests(services: Services) -> int:
    """Expire the requests whose time is up: update their messages, tell their requesters."""
    expired = await services.approvals.expire_due()
    for record in expired:
        # Multi-workspace installs: post with the token of the workspace the request came from.
        with in_workspace(record.change.requester.team_id):
            await _closed(services, services.slack, record)
    return len(expired)


async def sweep_forever(services: Services) -> None:
    """Expire requests as their time comes (this replica's or anyone's), until cancelled."""
    await run_when_due(
        lambda: expire_requests(services),
        services.approvals.seconds_until_next,
        at_most=SWEEP_SECONDS,
        what="look for expired approval requests",
    )


async def _closed(services: Services, client: AsyncWebClient, record: RequestRecord) -> None:
    """A request ended without running: say so in its message and to its requester."""
    with use_language(services.languages.default):  # the approvals channel's
        closed = render.request_closed(record)
    await _update(client, record, closed)
    await _tell_requester(services, client, record, render.request_news)


async def _tell_requester(
    services: Services,
    client: AsyncWebClient,
    record: RequestRecord,
    render_for: Callable[[RequestRecord], render.Message],
) -> None:
    """A DM to the request's requester, in their language (whoever clicked)."""
    with use_language(await services.languages.language_for(record.requester_id)):
        message = render_for(record)
    await _tell(client, record.requester_id, message)


async def _refused(
    services: Services,
    client: AsyncWebClient,
    body: dict[str, Any],
    user: Requester,
    result: NotDecided,
) -> None:
    """Answer a click that changed nothing; if it found the request expired, say so there too."""
    await _answer(client, body, user, render.refused(result.reason))
    if result.expired_now and result.request is not None:
        await _closed(services, client, result.request)


async def _update(client: AsyncWebClient, record: RequestRecord, message: render.Message) -> None:
    if record.message is None:
        return
    channel, ts = record.message
    try:
        await client.chat_update(channel=channel, ts=ts, **message)
    except Exception as error:
        log.warning("cannot update request #%s's message: %s", record.id, _slack_error(error))


async def _answer(
    client: AsyncWebClient, body: dict[str, Any], user: Requester, message: render.Message
) -> None:
    """To the clicker alone: ephemeral through the click's response_url, else a DM (App Home)."""
    response_url = body.get("response_url")
    if response_url:
        await _send(str(response_url), message)
    else:
        await _tell(client, user.user_id, message)


async def _send(response_url: str, message: render.Message) -> None:
    try:
        await AsyncWebhookClient(response_url).send_dict(
            {"response_type": "ephemeral", "replace_original": False, **message}
        )
    except Exception:
        log.exception("response_url delivery failed")


async def _tell(client: AsyncWebClient, user_id: str, message: render.Message) -> None:
    """A DM from agentbox to ``user_id``; a failure is logged (the channel message still says)."""
    try:
        opened = await client.conversations_open(users=user_id)
        await client.chat_postMessage(channel=str(opened["channel"]["id"]), **message)
    except Exception as error:
        log.warning("cannot tell %s in a DM: %s", user_id, _slack_error(error))


def _slack_error(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        data = error.response.data
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return f"HTTP {error.response.status_code}"
    return type(error).__name__
