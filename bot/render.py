"""Block Kit (and plain-text fallbacks) for every message agentbox sends.

Pure functions from the core's results to Slack message payloads; the console prints the ``text``
fallback, so every message's text must stand on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from commands.agents import agent_ranges
from commands.approvals import Requested, slack_time
from commands.changes import Accepted, ChangeReport, DryRun, NeedsConfirmation, refusal_text
from commands.grammar import ParseError
from commands.timed import describe_duration
from storage.approvals import RequestRecord
from wolkvox.model import Button, Display

Message = dict[str, Any]

# A section's text may hold 3000 characters; keep a margin for the closing "and N more" line.
_SECTION_LIMIT = 2800
_MAX_LINES = 40

_BUTTON_NAMES = {
    Button.DIAL: "call button (`dial`)",
    Button.DISPOSITION: "disposition panel (`disposition`)",
    Button.HUNGUP: "hang-up button (`hungup`)",
}
_PAST = {Display.SHOW: "shown", Display.HIDE: "hidden"}
_VERB = {Display.SHOW: "Showing", Display.HIDE: "Hiding"}


def message(text: str, *, mrkdwn: str | None = None) -> Message:
    """A message of one section; ``text`` is the notification and console fallback."""
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn or text}}],
    }


def paragraphs(text: str) -> Message:
    """A long text (the help) as one section per paragraph: a section holds 3000 characters."""
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": part[:3000]}}
            for part in text.split("\n\n")
            if part.strip()
        ],
    }


def parse_error(error: ParseError) -> Message:
    return message(f":warning: {error.message}")


def refused(reason: str) -> Message:
    return message(f":no_entry: {reason}")


def failure(reason: str) -> Message:
    return message(f":x: {reason}")


def _buttons(buttons: Sequence[Button]) -> str:
    return ", ".join(f"`{button.value}`" for button in buttons)


def _who(agents: Sequence[str]) -> str:
    if len(agents) == 1:
        return f"agent {agents[0]}"
    return f"{len(agents)} agents ({agent_ranges(agents)})"


def _targets(teams: Sequence[str], agents: Sequence[str]) -> str:
    """What a command named: its teams, then its agents (``team ventas and agent 1005``)."""
    named = [f"team `{teams[0]}`"] if len(teams) == 1 else []
    if len(teams) > 1:
        named.append("teams " + ", ".join(f"`{team}`" for team in teams))
    if agents:
        named.append(_who(agents))
    return " and ".join(named)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {round(seconds)} s"
    return f"about {round(seconds / 60)} min"


def accepted(result: Accepted) -> Message:
    """The acknowledgement: what will happen, and how long the caller may wait."""
    command = result.command
    text = (
        f":hourglass_flowing_sand: {_VERB[command.display]} {_buttons(command.buttons)} "
        f"for {_targets(command.teams, command.agents)}"
    )
    if result.total_calls > 1:
        text += f": {result.total_calls} calls to wolkvox"
    text += "."
    if result.ahead:
        text += (
            f" Waiting behind {result.ahead} call{'s' if result.ahead != 1 else ''} on this "
            f"operation's wolkvox token (yours start at position {result.ahead + 1})"
        )
        text += (
            f", {_duration(result.estimated_wait)} before they start."
            if result.estimates_measured
            else "."
        )
    if result.total_calls > 1 and result.estimates_measured:
        text += f" Expected to finish in {_duration(result.estimated_duration)}."
    if command.duration is not None:
        length = describe_duration(int(command.duration.total_seconds()))
        text += f" :stopwatch: Timed: agentbox puts it back {length} after it is done."
    return message(text)


def needs_confirmation(result: NeedsConfirmation, confirm: str, cancel: str) -> Message:
    """A partly allowed change: what may run, what may not and why, and the buttons."""
    command = result.command
    lines = [
        f":raised_hand: You may {command.display.value} {_buttons(command.buttons)} for "
        f"{_who(result.allowed_agents)}, but not all you asked for:"
    ]
    lines += [f"• {refusal_text(refusal)}" for refusal in result.refusals]
    lines.append("Nothing has run. Run the allowed part?")
    text = _fit(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "style": "primary",
                    "action_id": confirm,
                    "value": str(result.change_id),
                    "text": {
                        "type": "plain_text",
                        "text": f"Run for {len(result.allowed_agents)} agents",
                    },
                },
                {
                    "type": "button",
                    "action_id": cancel,
                    "value": str(result.change_id),
                    "text": {"type": "plain_text", "text": "Cancel"},
                },
            ],
        },
    ]
    return {"text": text, "blocks": blocks}


def dry_run(result: DryRun) -> Message:
    """What the change would do: the calls per operation and button, and what would not run."""
    command = result.command
    lines = [
        f":mag: Dry run — nothing was sent. `{command.display.value}` would make "
        f"{len(result.calls)} call{'s' if len(result.calls) != 1 else ''} to wolkvox:"
    ]
    groups: dict[tuple[str, Button], list[str]] = defaultdict(list)
    for operation, agent, button in result.calls:
        groups[(operation, button)].append(agent)
    lines += [
        f"• operation `{operation}`, `{button.value}`: {_who(agents)}"
        for (operation, button), agents in groups.items()
    ]
    lines += [f"• {refusal_text(item)}" for item in result.needs_approval]
    lines += [f"• :no_entry: {refusal_text(item)}" for item in result.refusals]
    if command.duration is not None:
        length = describe_duration(int(command.duration.total_seconds()))
        lines.append(f":stopwatch: agentbox would put it back {length} after it is done.")
    return message(_fit(lines))


def duplicate(change_id: int) -> Message:
    return message(
        f":information_source: Already received (change #{change_id}); it runs once. "
        "Its progress is in the message that follows it."
    )


def interrupted(display: Display, buttons: Sequence[Button], done: int, total: int) -> Message:
    return message(
        f":double_vertical_bar: {_VERB[display]} {_buttons(buttons)}: {done}/{total} done. "
        "agentbox is restarting; the remaining calls stay queued and this message is updated "
        "when they are done."
    )


def progress(display: Display, buttons: Sequence[Button], done: int, total: int) -> Message:
    return message(
        f":hourglass_flowing_sand: {_VERB[display]} {_buttons(buttons)}: {done}/{total} done"
    )


def report(result: ChangeReport) -> Message:
    """The summary: per button and outcome, which agents, and wolkvox's message or the reason;
    for a timed change, when it reverts; for its revert, that the time is up."""
    summary = _report(result)
    if result.automatic_revert:
        summary = message(
            f":stopwatch: Time is up for change #{result.reverts_change_id}: putting it back.\n"
            f"{summary['text']}"
        )
    if result.duration_seconds and result.succeeded:
        summary = message(
            f"{summary['text']}\n:stopwatch: agentbox puts it back in "
            f"{describe_duration(result.duration_seconds)}."
        )
    return summary


def _report(result: ChangeReport) -> Message:
    calls = result.calls
    if result.total == 1 and calls:
        call = calls[0]
        name = _BUTTON_NAMES[call.button]
        if call.ok:
            text = (
                f":white_check_mark: Agent {call.agent_id}'s {name} is {_PAST[call.display]}. "
                f"wolkvox: _{call.message}_"
            )
        else:
            text = (
                f":x: Could not {call.display.value} agent {call.agent_id}'s {name}: {call.message}"
            )
        return message(text)

    icon = ":white_check_mark:" if result.failed == 0 else ":warning:"
    headline = f"{icon} {result.display.value.capitalize()}: {result.succeeded}/{result.total} done"
    if result.failed:
        headline += f", {result.failed} failed"

    groups: dict[tuple[Button, bool, str], list[str]] = defaultdict(list)
    for call in calls:
        groups[(call.button, call.ok, call.message)].append(call.agent_id)
    lines: list[str] = []
    for (button, ok, text), agents in sorted(groups.items(), key=lambda g: (not g[0][1], g[0][0])):
        if ok:
            lines.append(
                f":white_check_mark: `{button.value}` {_PAST[result.display]} for "
                f"{_who(agents)}: _{text}_"
            )
        else:
            lines.append(f":x: `{button.value}` failed for {_who(agents)}: {text}")
    body = _fit(lines)
    return message(f"{headline}\n{body}")


def trail(result: ChangeReport) -> Message:
    """The team channel's line: who, what, which agents, the result."""
    agents = [call.agent_id for call in result.calls]
    buttons = list(dict.fromkeys(call.button for call in result.calls))
    verb = {Display.SHOW: "showed", Display.HIDE: "hid"}[result.display]
    outcome = f"{result.succeeded}/{result.total} done"
    if result.failed:
        outcome += f", {result.failed} failed"
    who = f"<@{result.requester.user_id}>"
    if result.automatic_revert:
        who = f":stopwatch: Time is up for {who}'s change #{result.reverts_change_id}: agentbox"
    line = (
        f"{who} {verb} {_buttons(buttons)} for "
        f"{_who(list(dict.fromkeys(agents)))}: {outcome} (change #{result.change_id})"
    )
    if result.duration_seconds and result.succeeded:
        line += f", for {describe_duration(result.duration_seconds)}"
    return message(line)


# --- approval requests (bot/approvals.py) -----------------------------------------------------


def escape(text: str) -> str:
    """User text (a reason) as Slack shows it literally: no mentions, links or broadcasts."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _approvers(count: int) -> str:
    return "1 approver" if count == 1 else f"{count} distinct approvers"


def requested(result: Requested) -> Message:
    """The requester's acknowledgement: the change waits for approval, where, and until when."""
    command = result.command
    return message(
        f":raised_hand: Your request #{result.change_id} to {command.display.value} "
        f"{_buttons(command.buttons)} for {_who(result.agents)} waits for approval in "
        f"<#{result.channel}> ({_approvers(result.approvals_needed)}; "
        f"{'; '.join(result.why)}). It expires at {slack_time(result.expires_at)}. Nothing runs "
        "until it is approved; you will be told here or in a DM."
    )


def describe_request(record: RequestRecord) -> str:
    """``hide `hungup` for 3 agents (1001-1003)``."""
    change = record.change
    buttons = [Button(b) for b in dict.fromkeys(call.button for call in change.calls)]
    agents = list(dict.fromkeys(call.agent_id for call in change.calls))
    return f"{change.display} {_buttons(buttons)} for {_who(agents)}"


def _request_lines(record: RequestRecord) -> list[str]:
    approved = record.approved_by
    lines = [
        f"*Change:* {describe_request(record)}",
        f"*Reason:* {escape(record.reason or '')}",
        f"*Needs:* {_approvers(record.approvals_needed)}"
        + (f"; approved so far by {', '.join(f'<@{a}>' for a in approved)}" if approved else ""),
    ]
    return lines


def request_header(record: RequestRecord) -> str:
    """The request in a line or two, above the progress of its approved change."""
    approved = ", ".join(f"<@{a}>" for a in record.approved_by)
    return (
        f":ballot_box_with_check: Request #{record.id} from <@{record.requester_id}>, approved by "
        f"{approved}: {describe_request(record)}. Reason: {escape(record.reason or '')}"
    )


def approval_request(record: RequestRecord, approve: str, reject: str) -> Message:
    """The message approvers see: the change, who asks and why, who approved, and the buttons."""
    text = "\n".join(
        [
            f":ballot_box_with_check: *Approval request #{record.id}* from "
            f"<@{record.requester_id}>",
            *_request_lines(record),
            f"*Expires:* {slack_time(record.expires_at)} (then nothing runs)",
        ]
    )
    value = str(record.id)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "block_id": f"request-{record.id}",
                "elements": [
                    {
                        "type": "button",
                        "style": "primary",
                        "action_id": approve,
                        "value": value,
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "style": "danger",
                        "action_id": reject,
                        "value": value,
                        "text": {"type": "plain_text", "text": "Reject"},
                    },
                ],
            },
        ],
    }


def with_header(header: str, body: Message) -> Message:
    """``body`` (a progress or summary message) under the request's ``header``."""
    text = f"{header}\n{body['text']}"
    return {**body, "text": text, "blocks": [*message(header)["blocks"], *body["blocks"]]}


def request_closed(record: RequestRecord) -> Message:
    """The request's message once it ends without running: rejected, expired or withdrawn."""
    rejection = record.rejection
    if record.status == "expired":
        headline = (
            f":hourglass: *Request #{record.id} expired* at {slack_time(record.expires_at)}: "
            "not approved in time, so nothing was run."
        )
    elif rejection is not None and rejection.approver_id == record.requester_id:
        headline = f":no_entry_sign: *Request #{record.id} withdrawn* by its requester."
    elif rejection is not None:
        said = f": {escape(rejection.reason)}" if rejection.reason else " (no reason given)"
        headline = (
            f":no_entry_sign: *Request #{record.id} rejected* by <@{rejection.approver_id}>"
            f"{said}. Nothing was run."
        )
    else:
        headline = f":no_entry_sign: *Request #{record.id} withdrawn*: nothing was run."
    return message("\n".join([headline, f"From <@{record.requester_id}>", *_request_lines(record)]))


def request_news(record: RequestRecord) -> Message:
    """What the requester is told when their request is approved, rejected or expires."""
    what = f"Your request #{record.id} ({describe_request(record)})"
    rejection = record.rejection
    if record.status == "expired":
        text = (
            f":hourglass: {what} expired at {slack_time(record.expires_at)}: nobody approved it "
            "in time. Nothing was run; ask again if it is still needed."
        )
    elif rejection is not None and rejection.approver_id == record.requester_id:
        text = f":no_entry_sign: {what} is withdrawn. Nothing was run."
    elif rejection is not None:
        said = f": {escape(rejection.reason)}" if rejection.reason else " (no reason given)"
        text = (
            f":no_entry_sign: {what} was rejected by <@{rejection.approver_id}>{said}. "
            "Nothing was run."
        )
    elif record.status in ("queued", "done"):
        where = f" Its progress is in <#{record.message[0]}>." if record.message else ""
        approved = ", ".join(f"<@{a}>" for a in record.approved_by)
        text = f":white_check_mark: {what} was approved by {approved}; it runs now.{where}"
    else:
        text = f":information_source: {what} is {record.status}."
    return message(text)


def request_outcome(record: RequestRecord, result: ChangeReport) -> Message:
    """The requester's copy of the summary of their approved change."""
    summary = report(result)
    text = f"Your request #{record.id}: {summary['text']}"
    return message(text)


def reject_modal(record: RequestRecord, callback_id: str) -> dict[str, Any]:
    """The modal Reject opens: the request, and an optional reason."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": str(record.id),
        "title": {"type": "plain_text", "text": f"Reject request #{record.id}"[:24]},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"<@{record.requester_id}> asks to {describe_request(record)}.",
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": "Why? (optional, shown to the requester)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": 500,
                },
            },
        ],
    }


def _fit(lines: Sequence[str]) -> str:
    kept: list[str] = []
    size = 0
    for line in lines[:_MAX_LINES]:
        if size + len(line) + 1 > _SECTION_LIMIT:
            break
        kept.append(line)
        size += len(line) + 1
    if len(kept) < len(lines):
        kept.append(f"…and {len(lines) - len(kept)} more lines.")
    return "\n".join(kept)
