"""The progress message: one Slack message, updated at most once per interval, then the summary."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.fake_slack import FakeSlack
from bot.progress import SlackProgress
from commands.changes import CallReport, ChangeReport
from storage.changes import Requester
from wolkvox.model import Button, Display


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress(slack: FakeSlack, clock: Clock) -> SlackProgress:
    return SlackProgress(
        AsyncWebClient(token="xoxb-test", base_url=slack.api_url),
        user_id="U1",
        channel_id="C1",
        response_url=slack.new_response_url(),
        display=Display.HIDE,
        buttons=(Button.DIAL,),
        min_interval=1.0,
        clock=clock,
    )


def _call(agent: int, ok: bool) -> CallReport:
    if ok:
        return CallReport(
            str(agent), Button.DIAL, Display.HIDE, True, "Agentbox has been hide", None, 1
        )
    return CallReport(
        str(agent),
        Button.DIAL,
        Display.HIDE,
        False,
        "wolkvox had an internal error.",
        "server_error",
        3,
    )


def _report(agents: range, failed: frozenset[int] | set[int] = frozenset()) -> ChangeReport:
    return ChangeReport(
        change_id=1,
        requester=Requester("U1", "T1", "C1"),
        display=Display.HIDE,
        calls=tuple(_call(agent, agent not in failed) for agent in agents),
    )


async def test_progress_is_throttled_and_the_summary_replaces_it(slack: FakeSlack) -> None:
    clock = Clock()
    progress = _progress(slack, clock)

    await progress.on_progress(1, 40)
    await progress.on_progress(2, 40)  # same instant: not shown
    clock.now = 1.5
    await progress.on_progress(12, 40)
    await progress.on_finished(_report(range(1001, 1041), failed={1040}))

    (message,) = slack.messages_in("C1")
    texts = [version["text"] for version in message.history]
    assert "1/40 done" in texts[0]
    assert "12/40 done" in texts[1]
    assert len(texts) == 3
    summary = texts[2]
    assert "39/40 done, 1 failed" in summary
    assert "1001-1039" in summary and "Agentbox has been hide" in summary
    assert "1040" in summary and "internal error" in summary
    assert "<@U1>" in summary


async def test_a_single_call_shows_only_its_result(slack: FakeSlack) -> None:
    progress = _progress(slack, Clock())

    await progress.on_progress(1, 1)
    await progress.on_finished(_report(range(1001, 1002)))

    (message,) = slack.messages_in("C1")
    assert len(message.history) == 1
    assert "1001" in message.text and "hidden" in message.text


async def test_a_huge_mixed_summary_stays_within_slack_limits(slack: FakeSlack) -> None:
    progress = _progress(slack, Clock())
    odd = set(range(1001, 1500, 2))  # 250 failures, none adjacent: one range each

    await progress.on_finished(_report(range(1000, 1500), failed=odd))

    text = slack.messages_in("C1")[0].current["blocks"][0]["text"]["text"]
    assert len(text) <= 3000
    assert "250/500 done, 250 failed" in text


def test_agent_ranges_join_runs_and_keep_leading_zeros() -> None:
    from commands.agents import agent_ranges

    assert agent_ranges(["1003", "1001", "1002", "1007", "0099", "0100"]) == (
        "0099-0100, 1001-1003, 1007"
    )
    long = agent_ranges([str(n) for n in range(1000, 3000, 2)], max_chars=50)
    assert long.endswith("more") and len(long) < 80
