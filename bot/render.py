"""Block Kit (and plain-text fallbacks) for every message agentbox sends.

Pure functions from the core's results to Slack message payloads; the console prints the ``text``
fallback, so every message's text must stand on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from commands.agents import agent_ranges
from commands.changes import Accepted, ChangeReport, DryRun, NeedsConfirmation, refusal_text
from commands.grammar import ParseError
from commands.timed import describe_duration
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
        f"for {_who(command.agents)}"
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
