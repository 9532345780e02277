"""Block Kit (and plain-text fallbacks) for every message agentbox sends.

Pure functions from the core's results to Slack message payloads; the console prints the ``text``
fallback, so every message's text must stand on its own. Every message is in the language of the
task that renders it (commands/i18n.py): the caller sets it for a reader other than the one asking.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from commands.agents import agent_ranges
from commands.approvals import Requested, slack_time
from commands.changes import Accepted, ChangeReport, DryRun, NeedsConfirmation, refusal_text
from commands.grammar import ParseError
from commands.i18n import N_, _, ngettext
from commands.reads import _status_word
from commands.timed import describe_duration
from storage.approvals import RequestRecord
from wolkvox import errors
from wolkvox.model import Button, Display

Message = dict[str, Any]

# A section's text may hold 3000 characters; keep a margin for the closing "and N more" line.
_SECTION_LIMIT = 2800
_MAX_LINES = 40

_BUTTON_NAMES = {
    Button.DIAL: N_("call button (`dial`)"),
    Button.DISPOSITION: N_("disposition panel (`disposition`)"),
    Button.HUNGUP: N_("hang-up button (`hungup`)"),
}
_VERB = {Display.SHOW: N_("Showing"), Display.HIDE: N_("Hiding")}


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
        return _("agent {agent}").format(agent=agents[0])
    return ngettext("{count} agent ({agents})", "{count} agents ({agents})", len(agents)).format(
        count=len(agents), agents=agent_ranges(agents)
    )


def _targets(teams: Sequence[str], agents: Sequence[str]) -> str:
    """What a command named: its teams, then its agents (``team ventas and agent 1005``)."""
    named = ""
    if len(teams) == 1:
        named = _("team `{name}`").format(name=teams[0])
    elif teams:
        named = _("teams {names}").format(names=", ".join(f"`{team}`" for team in teams))
    if not agents:
        return named
    if not named:
        return _who(agents)
    return _("{teams} and {agents}").format(teams=named, agents=_who(agents))


def _duration(seconds: float) -> str:
    if seconds < 1:
        return _("under a second")
    if seconds < 90:
        return _("about {seconds} s").format(seconds=round(seconds))
    return _("about {minutes} min").format(minutes=round(seconds / 60))


def _done(succeeded: int, total: int, failed: int) -> str:
    """``3/4 done, 1 failed``."""
    text = _("{done}/{total} done").format(done=succeeded, total=total)
    if failed:
        text += ngettext(", {count} failed", ", {count} failed", failed).format(count=failed)
    return text


def accepted(result: Accepted) -> Message:
    """The acknowledgement: what will happen, and how long the caller may wait."""
    command = result.command
    text = _(":hourglass_flowing_sand: {verb} {buttons} for {targets}").format(
        verb=_(_VERB[command.display]),
        buttons=_buttons(command.buttons),
        targets=_targets(command.teams, command.agents),
    )
    if result.total_calls > 1:
        text += ngettext(
            ": {count} call to wolkvox", ": {count} calls to wolkvox", result.total_calls
        ).format(count=result.total_calls)
    text += "."
    if result.ahead:
        waiting = ngettext(
            "Waiting behind {count} call on this operation's wolkvox token "
            "(yours start at position {position})",
            "Waiting behind {count} calls on this operation's wolkvox token "
            "(yours start at position {position})",
            result.ahead,
        ).format(count=result.ahead, position=result.ahead + 1)
        if result.estimates_measured:
            waiting = _("{waiting}, {wait} before they start.").format(
                waiting=waiting, wait=_duration(result.estimated_wait)
            )
        else:
            waiting += "."
        text += " " + waiting
    if result.total_calls > 1 and result.estimates_measured:
        text += " " + _("Expected to finish in {duration}.").format(
            duration=_duration(result.estimated_duration)
        )
    if command.duration is not None:
        length = describe_duration(int(command.duration.total_seconds()))
        text += " " + _(
            ":stopwatch: Timed: agentbox puts it back {length} after it is done."
        ).format(length=length)
    return message(text)


def needs_confirmation(result: NeedsConfirmation, confirm: str, cancel: str) -> Message:
    """A partly allowed change: what may run, what may not and why, and the buttons."""
    command = result.command
    may = (
        _(":raised_hand: You may show {buttons} for {agents}, but not all you asked for:")
        if command.display == Display.SHOW
        else _(":raised_hand: You may hide {buttons} for {agents}, but not all you asked for:")
    )
    lines = [may.format(buttons=_buttons(command.buttons), agents=_who(result.allowed_agents))]
    lines += [f"• {refusal_text(refusal)}" for refusal in result.refusals]
    lines.append(_("Nothing has run. Run the allowed part?"))
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
                        # Always "agents" (the English tests read "Run for 1 agents").
                        "text": _("Run for {count} agents").format(
                            count=len(result.allowed_agents)
                        ),
                    },
                },
                {
                    "type": "button",
                    "action_id": cancel,
                    "value": str(result.change_id),
                    "text": {"type": "plain_text", "text": _("Cancel")},
                },
            ],
        },
    ]
    return {"text": text, "blocks": blocks}


def dry_run(result: DryRun) -> Message:
    """What the change would do: the calls per operation and button, and what would not run."""
    command = result.command
    lines = [
        ngettext(
            ":mag: Dry run — nothing was sent. `{display}` would make {count} call to wolkvox:",
            ":mag: Dry run — nothing was sent. `{display}` would make {count} calls to wolkvox:",
            len(result.calls),
        ).format(display=command.display.value, count=len(result.calls))
    ]
    groups: dict[tuple[str, Button], list[str]] = defaultdict(list)
    for operation, agent, button in result.calls:
        groups[(operation, button)].append(agent)
    lines += [
        _("• operation `{operation}`, `{button}`: {agents}").format(
            operation=operation, button=button.value, agents=_who(agents)
        )
        for (operation, button), agents in groups.items()
    ]
    lines += [f"• {refusal_text(item)}" for item in result.needs_approval]
    lines += [f"• :no_entry: {refusal_text(item)}" for item in result.refusals]
    if command.duration is not None:
        length = describe_duration(int(command.duration.total_seconds()))
        lines.append(
            _(":stopwatch: agentbox would put it back {length} after it is done.").format(
                length=length
            )
        )
    return message(_fit(lines))


def duplicate(change_id: int) -> Message:
    return message(
        _(
            ":information_source: Already received (change #{change_id}); it runs once. "
            "Its progress is in the message that follows it."
        ).format(change_id=change_id)
    )


def interrupted(display: Display, buttons: Sequence[Button], done: int, total: int) -> Message:
    return message(
        _(
            ":double_vertical_bar: {verb} {buttons}: {done}/{total} done. "
            "agentbox is restarting; the remaining calls stay queued and this message is updated "
            "when they are done."
        ).format(verb=_(_VERB[display]), buttons=_buttons(buttons), done=done, total=total)
    )


def progress(display: Display, buttons: Sequence[Button], done: int, total: int) -> Message:
    return message(
        _(":hourglass_flowing_sand: {verb} {buttons}: {done}/{total} done").format(
            verb=_(_VERB[display]), buttons=_buttons(buttons), done=done, total=total
        )
    )


def report(result: ChangeReport) -> Message:
    """The summary: per button and outcome, which agents, and wolkvox's message or the reason;
    for a timed change, when it reverts; for its revert, that the time is up, and when one
    failed, whether agentbox tries again."""
    summary = _report(result)
    if result.automatic_revert:
        time_up = _(":stopwatch: Time is up for change #{change_id}: putting it back.").format(
            change_id=result.reverts_change_id
        )
        summary = message(f"{time_up}\n{summary['text']}")
        if result.failed and result.revert_again_in is not None:
            again = _(":repeat: agentbox tries again in {length}.").format(
                length=describe_duration(result.revert_again_in)
            )
            summary = message(f"{summary['text']}\n{again}")
        elif result.failed:
            stop = _(":warning: agentbox stops trying: put the rest back by hand.")
            summary = message(f"{summary['text']}\n{stop}")
    if result.duration_seconds and result.succeeded:
        back = _(":stopwatch: agentbox puts it back in {length}.").format(
            length=describe_duration(result.duration_seconds)
        )
        summary = message(f"{summary['text']}\n{back}")
    return summary


def _report(result: ChangeReport) -> Message:
    calls = result.calls
    if result.total == 1 and calls:
        call = calls[0]
        name = _(_BUTTON_NAMES[call.button])
        said = errors.localize(call.message, _)
        if call.ok:
            text = (
                _(":white_check_mark: Agent {agent}'s {button} is shown. wolkvox: _{message}_")
                if call.display == Display.SHOW
                else _(
                    ":white_check_mark: Agent {agent}'s {button} is hidden. wolkvox: _{message}_"
                )
            )
        else:
            text = (
                _(":x: Could not show agent {agent}'s {button}: {message}")
                if call.display == Display.SHOW
                else _(":x: Could not hide agent {agent}'s {button}: {message}")
            )
        return message(text.format(agent=call.agent_id, button=name, message=said))

    icon = ":white_check_mark:" if result.failed == 0 else ":warning:"
    headline = (
        _("Show: {outcome}") if result.display == Display.SHOW else _("Hide: {outcome}")
    ).format(outcome=_done(result.succeeded, result.total, result.failed))

    groups: dict[tuple[Button, bool, str], list[str]] = defaultdict(list)
    for call in calls:
        groups[(call.button, call.ok, call.message)].append(call.agent_id)
    lines: list[str] = []
    for (button, ok, text), agents in sorted(groups.items(), key=lambda g: (not g[0][1], g[0][0])):
        if ok:
            line = (
                _(":white_check_mark: `{button}` shown for {agents}: _{message}_")
                if result.display == Display.SHOW
                else _(":white_check_mark: `{button}` hidden for {agents}: _{message}_")
            )
        else:
            line = _(":x: `{button}` failed for {agents}: {message}")
        lines.append(
            line.format(button=button.value, agents=_who(agents), message=errors.localize(text, _))
        )
    body = _fit(lines)
    return message(f"{icon} {headline}\n{body}")


def trail(result: ChangeReport) -> Message:
    """The team channel's line: who, what, which agents, the result."""
    agents = [call.agent_id for call in result.calls]
    buttons = list(dict.fromkeys(call.button for call in result.calls))
    show = result.display == Display.SHOW
    if result.automatic_revert:
        line = (
            _(
                ":stopwatch: Time is up for <@{user}>'s change #{reverted}: agentbox showed "
                "{buttons} for {agents}: {outcome} (change #{change_id})"
            )
            if show
            else _(
                ":stopwatch: Time is up for <@{user}>'s change #{reverted}: agentbox hid "
                "{buttons} for {agents}: {outcome} (change #{change_id})"
            )
        )
    else:
        line = (
            _("<@{user}> showed {buttons} for {agents}: {outcome} (change #{change_id})")
            if show
            else _("<@{user}> hid {buttons} for {agents}: {outcome} (change #{change_id})")
        )
    text = line.format(
        user=result.requester.user_id,
        reverted=result.reverts_change_id,
        buttons=_buttons(buttons),
        agents=_who(list(dict.fromkeys(agents))),
        outcome=_done(result.succeeded, result.total, result.failed),
        change_id=result.change_id,
    )
    if result.duration_seconds and result.succeeded:
        text += _(", for {length}").format(length=describe_duration(result.duration_seconds))
    return message(text)


# --- approval requests (bot/approvals.py) -----------------------------------------------------


def escape(text: str) -> str:
    """User text (a reason) as Slack shows it literally: no mentions, links or broadcasts."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _approvers(count: int) -> str:
    return ngettext("{count} approver", "{count} distinct approvers", count).format(count=count)


def _mentions(users: Sequence[str]) -> str:
    return ", ".join(f"<@{user}>" for user in users)


def requested(result: Requested) -> Message:
    """The requester's acknowledgement: the change waits for approval, where, and until when."""
    command = result.command
    text = (
        _(
            ":raised_hand: Your request #{change_id} to show {buttons} for {agents} waits for "
            "approval in <#{channel}> ({approvers}; {why}). It expires at {time}. Nothing runs "
            "until it is approved; you will be told here or in a DM."
        )
        if command.display == Display.SHOW
        else _(
            ":raised_hand: Your request #{change_id} to hide {buttons} for {agents} waits for "
            "approval in <#{channel}> ({approvers}; {why}). It expires at {time}. Nothing runs "
            "until it is approved; you will be told here or in a DM."
        )
    )
    return message(
        text.format(
            change_id=result.change_id,
            buttons=_buttons(command.buttons),
            agents=_who(result.agents),
            channel=result.channel,
            approvers=_approvers(result.approvals_needed),
            why="; ".join(result.why),
            time=slack_time(result.expires_at),
        )
    )


def describe_request(record: RequestRecord) -> str:
    """``hide `hungup` for 3 agents (1001-1003)``."""
    change = record.change
    buttons = [Button(b) for b in dict.fromkeys(call.button for call in change.calls)]
    agents = list(dict.fromkeys(call.agent_id for call in change.calls))
    text = (
        _("show {buttons} for {agents}")
        if change.display == Display.SHOW
        else _("hide {buttons} for {agents}")
    )
    described = text.format(buttons=_buttons(buttons), agents=_who(agents))
    if change.duration_seconds:
        described += _(" for {duration} (then agentbox puts it back)").format(
            duration=describe_duration(change.duration_seconds)
        )
    return described


def _request_lines(record: RequestRecord) -> list[str]:
    approved = record.approved_by
    needs = _("*Needs:* {approvers}").format(approvers=_approvers(record.approvals_needed))
    if approved:
        needs += _("; approved so far by {users}").format(users=_mentions(approved))
    return [
        _("*Change:* {change}").format(change=describe_request(record)),
        _("*Reason:* {reason}").format(reason=escape(record.reason or "")),
        needs,
    ]


def request_header(record: RequestRecord) -> str:
    """The request in a line or two, above the progress of its approved change."""
    return _(
        ":ballot_box_with_check: Request #{change_id} from <@{requester}>, approved by "
        "{approvers}: {change}. Reason: {reason}"
    ).format(
        change_id=record.id,
        requester=record.requester_id,
        approvers=_mentions(record.approved_by),
        change=describe_request(record),
        reason=escape(record.reason or ""),
    )


def approval_request(record: RequestRecord, approve: str, reject: str) -> Message:
    """The message approvers see: the change, who asks and why, who approved, and the buttons."""
    text = "\n".join(
        [
            _(":ballot_box_with_check: *Approval request #{change_id}* from <@{requester}>").format(
                change_id=record.id, requester=record.requester_id
            ),
            *_request_lines(record),
            _("*Expires:* {time} (then nothing runs)").format(time=slack_time(record.expires_at)),
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
                        "text": {"type": "plain_text", "text": _("Approve")},
                    },
                    {
                        "type": "button",
                        "style": "danger",
                        "action_id": reject,
                        "value": value,
                        "text": {"type": "plain_text", "text": _("Reject")},
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
        headline = _(
            ":hourglass: *Request #{change_id} expired* at {time}: "
            "not approved in time, so nothing was run."
        ).format(change_id=record.id, time=slack_time(record.expires_at))
    elif rejection is not None and rejection.approver_id == record.requester_id:
        headline = _(":no_entry_sign: *Request #{change_id} withdrawn* by its requester.").format(
            change_id=record.id
        )
    elif rejection is not None:
        headline = (
            _(
                ":no_entry_sign: *Request #{change_id} rejected* by <@{approver}>: {reason}. "
                "Nothing was run."
            )
            if rejection.reason
            else _(
                ":no_entry_sign: *Request #{change_id} rejected* by <@{approver}> "
                "(no reason given). Nothing was run."
            )
        ).format(
            change_id=record.id,
            approver=rejection.approver_id,
            reason=escape(rejection.reason or ""),
        )
    else:
        headline = _(":no_entry_sign: *Request #{change_id} withdrawn*: nothing was run.").format(
            change_id=record.id
        )
    asked = _("From <@{requester}>").format(requester=record.requester_id)
    return message("\n".join([headline, asked, *_request_lines(record)]))


def request_news(record: RequestRecord) -> Message:
    """What the requester is told when their request is approved, rejected or expires."""
    what = _("Your request #{change_id} ({change})").format(
        change_id=record.id, change=describe_request(record)
    )
    rejection = record.rejection
    if record.status == "expired":
        text = _(
            ":hourglass: {what} expired at {time}: nobody approved it in time. Nothing was run; "
            "ask again if it is still needed."
        ).format(what=what, time=slack_time(record.expires_at))
    elif rejection is not None and rejection.approver_id == record.requester_id:
        text = _(":no_entry_sign: {what} is withdrawn. Nothing was run.").format(what=what)
    elif rejection is not None:
        text = (
            _(":no_entry_sign: {what} was rejected by <@{approver}>: {reason}. Nothing was run.")
            if rejection.reason
            else _(
                ":no_entry_sign: {what} was rejected by <@{approver}> (no reason given). "
                "Nothing was run."
            )
        ).format(what=what, approver=rejection.approver_id, reason=escape(rejection.reason or ""))
    elif record.status in ("queued", "done"):
        approved = _mentions(record.approved_by)
        if record.message:
            text = _(
                ":white_check_mark: {what} was approved by {approvers}; it runs now. "
                "Its progress is in <#{channel}>."
            ).format(what=what, approvers=approved, channel=record.message[0])
        else:
            text = _(":white_check_mark: {what} was approved by {approvers}; it runs now.").format(
                what=what, approvers=approved
            )
    else:
        text = _(":information_source: {what} is {status}.").format(
            what=what, status=_status_word(record.status)
        )
    return message(text)


def request_outcome(record: RequestRecord, result: ChangeReport) -> Message:
    """The requester's copy of the summary of their approved change."""
    summary = report(result)
    text = _("Your request #{change_id}: {summary}").format(
        change_id=record.id, summary=summary["text"]
    )
    return message(text)


def reject_modal(record: RequestRecord, callback_id: str) -> dict[str, Any]:
    """The modal Reject opens: the request, and an optional reason."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": str(record.id),
        "title": {
            "type": "plain_text",
            "text": _("Reject request #{change_id}").format(change_id=record.id)[:24],
        },
        "submit": {"type": "plain_text", "text": _("Reject")},
        "close": {"type": "plain_text", "text": _("Cancel")},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _("<@{requester}> asks to {change}.").format(
                        requester=record.requester_id, change=describe_request(record)
                    ),
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {
                    "type": "plain_text",
                    "text": _("Why? (optional, shown to the requester)"),
                },
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
        left = len(lines) - len(kept)
        kept.append(
            ngettext("…and {count} more line.", "…and {count} more lines.", left).format(count=left)
        )
    return "\n".join(kept)
