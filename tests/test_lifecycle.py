"""A change outlives the process that took it: shutdown hands calls back, the next start resumes
them, the requester's message ends with the whole summary, and nothing runs twice."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.app import resume_unfinished
from bot.fake_slack import FakeSlack
from storage.models import Call, Change
from tests.harness import CHANNEL, TOKEN, Harness, ack_text, start_harness
from wolkvox.simulator import Simulator


async def _statuses(harness: Harness) -> list[str]:
    async with harness.services.database.sessions() as session:
        return list((await session.scalars(select(Call.status).order_by(Call.id))).all())


async def test_shutdown_mid_change_then_restart_finishes_it_in_the_same_message(
    database_url: str, simulator: Simulator, slack: FakeSlack
) -> None:
    simulator.hold()  # wolkvox accepts the first call and keeps it waiting
    async with start_harness(database_url=database_url, simulator=simulator, slack=slack) as first:
        await first.slash("hide dial 1001-1005")
        await simulator.wait_in_flight(TOKEN, 1)
        await first.services.aclose(grace=0.05)  # SIGTERM: the held call outlives the grace
        (message,) = first.slack.messages_in(CHANNEL)
        assert "restarting" in message.text and "0/5 done" in message.text
        assert await _statuses(first) == ["running"] + ["queued"] * 4
    simulator.release()

    async with start_harness(database_url=database_url, simulator=simulator, slack=slack) as second:
        assert await resume_unfinished(second.services, second.app_client) == 1
        await second.idle()
        assert slack.messages_in(CHANNEL) == [message], "the first message is updated"
        assert "5/5 done" in message.text
        for agent in range(1001, 1006):
            assert simulator.button_state(str(agent), "dial") == "hide"
        async with second.services.database.sessions() as session:
            (change,) = (await session.scalars(select(Change))).all()
            assert change.status == "done" and change.reported_at is not None


async def test_calls_answered_before_a_crash_are_not_sent_again(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(database_url=database_url, simulator=simulator) as first:
        await first.slash("hide dial 1001-1004")
        await first.idle()
        # As if the process died after two answers, while the third call was in flight.
        async with first.services.database.transaction() as session:
            calls = (await session.scalars(select(Call).order_by(Call.seq))).all()
            calls[2].status, calls[2].slot = "running", 0
            calls[3].status = "queued"
            await session.execute(update(Change).values(status="queued", reported_at=None))
    sent_before = len(simulator.calls)

    async with start_harness(database_url=database_url, simulator=simulator) as second:
        await resume_unfinished(second.services, second.app_client)
        await second.idle()

        resent = [call.agent_id for call in simulator.calls[sent_before:]]
        assert resent == ["1003", "1004"]
        assert "4/4 done" in second.slack.messages[next(iter(second.slack.messages))].text


async def test_a_change_taken_while_shutting_down_runs_at_the_next_start(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(database_url=database_url, simulator=simulator) as first:
        await first.services.dispatcher.aclose(grace=0)  # SIGTERM arrived a moment ago
        assert "1001-1003" in ack_text(await first.slash("hide dial 1001-1003"))
    assert simulator.calls == []

    async with start_harness(database_url=database_url, simulator=simulator) as second:
        await resume_unfinished(second.services, second.app_client)
        await second.idle()
        assert "3/3 done" in second.last_message().text


async def test_the_same_slash_command_delivered_twice_is_one_change(agentbox: Harness) -> None:
    body = agentbox.slash_body("hide dial 1001")

    first = ack_text(await agentbox.post(body))
    second = ack_text(await agentbox.post(body))
    await agentbox.idle()

    assert "1001" in first
    assert "Already received" in second
    assert [call.agent_id for call in agentbox.simulator.calls] == ["1001"]
    async with agentbox.services.database.sessions() as session:
        assert len((await session.scalars(select(Change))).all()) == 1
