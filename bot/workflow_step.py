"""The Workflow Builder step "Set agent buttons" (a custom step: Bolt's ``app.function``).

Admins put it in their own workflows, e.g. an approval form that ends by hiding a button. The step
runs as the person who runs the workflow: its ``user_context`` input, which Slack fills in and a
workflow builder cannot set, so a workflow cannot borrow someone else's permissions. It builds the
slash command's text from its inputs and takes the slash command's path (grammar, permission check,
queue); its progress and summary go to ``channel_id`` if given (else to the user's DM) and to the
teams' channels, like any change. The step completes once every call is answered, with each
agent's result as outputs; it fails, with the reason, when nothing may run.

A retried ``function_executed`` (same ``event_id``) is dropped in memory, and the change's
idempotency key (the function execution id) makes one change even when the retry reaches another
replica.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.complete.async_complete import AsyncComplete
from slack_bolt.context.fail.async_fail import AsyncFail
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.app import _answer, start_change
from bot.change_modal import ChangeForm, plain
from bot.home import RecentEvents
from bot.services import Services
from commands.changes import (
    Accepted,
    CallReport,
    ChangeReport,
    Duplicate,
    NeedsConfirmation,
    Refused,
    refusal_text,
)
from commands.grammar import ParseError
from commands.i18n import N_, _, current_language, use_language
from storage.changes import Requester
from wolkvox.errors import localize
from wolkvox.model import Display

log = logging.getLogger(__name__)

FUNCTION_CALLBACK_ID = "set_agent_buttons"
#: The step's inputs and outputs, as manifest.yml declares them.
INPUTS = (
    "user_context",
    "display",
    "buttons",
    "agents",
    "team",
    "duration",
    "reason",
    "channel_id",
)
OUTPUTS = ("change_id", "succeeded_agents", "failed_agents", "results", "summary")

_PAST = {Display.SHOW: N_("{button} shown"), Display.HIDE: N_("{button} hidden")}


def register(app: AsyncApp, services: Services) -> None:
    recent = RecentEvents()

    @app.function(FUNCTION_CALLBACK_ID)
    async def set_agent_buttons(
        body: dict[str, Any],
        event: dict[str, Any],
        inputs: dict[str, Any],
        complete: AsyncComplete,
        fail: AsyncFail,
    ) -> None:
        if recent.seen(body.get("event_id")):
            return
        step = Step(services, app.client, complete, fail)
        user = (inputs.get("user_context") or {}).get("id")
        if not isinstance(user, str) or not user:
            step.fail(
                _(
                    "This step needs the person who runs the workflow (its user context input): "
                    "agentbox checks their permissions."
                )
            )
            return
        # The event is Slack's, not the user's: the step speaks the language of who runs it.
        step.language = await services.languages.language_for(user)
        with use_language(step.language):
            await _run(services, app, step, body, event, inputs, user)


async def _run(
    services: Services,
    app: AsyncApp,
    step: Step,
    body: dict[str, Any],
    event: dict[str, Any],
    inputs: dict[str, Any],
    user: str,
) -> None:
    """Take the change the step's inputs describe, as ``user``."""
    requester = Requester(
        user_id=user,
        team_id=body.get("team_id"),
        channel_id=str(inputs.get("channel_id") or "") or None,
    )
    team = str(inputs.get("team") or "").removeprefix("team:")
    form = ChangeForm(
        display=str(inputs.get("display") or ""),
        buttons=[str(inputs.get("buttons") or "")],
        teams=[team] if team.strip() else [],
        agents=str(inputs.get("agents") or ""),
        duration=str(inputs.get("duration") or ""),
        reason=str(inputs.get("reason") or ""),
    )
    text = form.command_text()
    if isinstance(text, dict):
        step.fail("; ".join(f"{field}: {plain(message)}" for field, message in text.items()))
        return
    execution = str(event.get("function_execution_id") or "")
    try:
        result = await services.changes.submit(
            requester, text, idempotency_key=f"function:{execution}" if execution else None
        )
    except Exception:
        log.exception("could not take a change from a workflow step")
        step.fail(
            _(
                "agentbox could not record this change (its database is not answering), so "
                "nothing was changed. Run the workflow again in a minute."
            )
        )
        return
    if isinstance(result, ParseError):
        step.fail(plain(result.message))
    elif isinstance(result, Refused):
        step.fail(plain(result.reason))
    elif isinstance(result, NeedsConfirmation):
        # A workflow cannot press "Run for N agents": the held change is cancelled.
        await services.changes.cancel(result.change_id, requester)
        refused = "; ".join(refusal_text(refusal) for refusal in result.refusals)
        step.fail(
            plain(
                _("Only part of this change is allowed ({refused}); nothing was run.").format(
                    refused=refused
                )
            )
        )
    elif isinstance(result, Duplicate):
        log.info("workflow step %s delivered again (change #%s)", execution, result.change_id)
    elif isinstance(result, Accepted):
        start_change(services, app.client, result, then=step.finished)
    else:
        # Whatever else the core answers (it did not run the change), in its own words.
        answer = AsyncAck()  # type: ignore[no-untyped-call]
        await _answer(services, app.client, answer, requester, text, result)
        body_text = answer.response.body if answer.response is not None else ""
        said = json.loads(body_text).get("text", "") if body_text else ""
        step.fail(plain(said) or _("agentbox did not run this change."))


class Step:
    """One run of the step: completes or fails it once, in the background (after the ack)."""

    def __init__(
        self,
        services: Services,
        client: AsyncWebClient,
        complete: AsyncComplete,
        fail: AsyncFail,
    ) -> None:
        self._services = services
        self._client = client
        self._complete = complete
        self._fail = fail
        #: The language of who runs the workflow (set once they are known).
        self.language = current_language()

    def fail(self, error: str) -> None:
        self._services.tasks.spawn(self._send_failure(error), name="workflow-step-fail")

    async def _send_failure(self, error: str) -> None:
        try:
            await self._fail(error=error)
        except Exception:
            log.exception("could not fail a workflow step: %s", error)

    async def finished(self, report: ChangeReport | None) -> None:
        if report is None:
            with use_language(self.language):
                failure = _(
                    "agentbox restarted while this change ran; its calls still run and its "
                    "summary is posted in Slack, but this step cannot wait for them."
                )
            await self._send_failure(failure)
            return
        with use_language(self.language):
            done = outputs(report)
        try:
            await self._complete(outputs=done)
        except Exception:
            log.exception("could not complete the workflow step of change %s", report.change_id)


def outputs(report: ChangeReport) -> dict[str, Any]:
    """Each agent's result: it succeeded when every one of its calls did (in the current
    language)."""
    calls: dict[str, list[CallReport]] = defaultdict(list)
    for call in report.calls:
        calls[call.agent_id].append(call)
    succeeded = [agent for agent, mine in calls.items() if all(call.ok for call in mine)]
    failed = [agent for agent, mine in calls.items() if not all(call.ok for call in mine)]
    results = [
        f"{agent}: "
        + "; ".join(
            _(_PAST[call.display]).format(button=call.button.value)
            if call.ok
            else _("{button} failed ({error})").format(
                button=call.button.value, error=localize(call.message, _)
            )
            for call in mine
        )
        for agent, mine in calls.items()
    ]
    return {
        "change_id": report.change_id,
        "succeeded_agents": ", ".join(succeeded),
        "failed_agents": ", ".join(failed),
        "results": "\n".join(results),
        "summary": plain(render.report(report)["text"]),
    }
