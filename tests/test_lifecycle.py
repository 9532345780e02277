"""A change outlives the process that took it: shutdown hands calls back, the next start resumes
them, and the requester still gets the whole summary."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import resume_unfinished
from storage.models import Call, Change
from tests.harness import CHANNEL, start_harness
from wolkvox.simulator import Simulator


async def test_shutdown_hands_back_unsent_calls_and_the_next_start_sends_them(
    database_url: str, simulator: Simulator
) -> None:
    simulator.hold()  # wolkvox accepts the first call and keeps it waiting
    async with start_harness(database_url=database_url, simulator=simulator) as first:
        await first.slash("hide dial 1001-1005")
        await simulator.wait_in_flight(first.services.settings.wolkvox_token or "", 1)
        await first.services.aclose(grace=0.05)  # SIGTERM: the held call outlives the grace
        interrupted = first.last_message().text
        async with first.services.database.sessions() as session:
            statuses = sorted((await session.scalars(select(Call.status))).all())
    simulator.release()

    assert "not sent" in interrupted
    assert statuses == ["queued"] * 5

    async with start_harness(database_url=database_url, simulator=simulator) as second:
        assert await resume_unfinished(second.services, second.services_client()) == 1
        await second.idle()
        summary = second.last_message(CHANNEL).text
        assert "5/5 done" in summary
        for agent in range(1001, 1006):
            assert simulator.button_state(str(agent), "dial") == "hide"
        async with second.services.database.sessions() as session:
            (change,) = (await session.scalars(select(Change))).all()
            assert change.status == "done"


async def test_a_resumed_change_does_not_repeat_answered_calls(
    database_url: str, simulator: Simulator
) -> None:
    already_done = 2
    async with start_harness(database_url=database_url, simulator=simulator) as first:
        await first.slash("hide dial 1001-1004")
        await first.idle()
        # Pretend the process died after two answers: put the other two calls back in the queue.
        async with first.services.database.transaction() as session:
            calls = (await session.scalars(select(Call).order_by(Call.seq))).all()
            for call in calls[already_done:]:
                call.status = "queued"
            (change,) = (await session.scalars(select(Change))).all()
            change.status = "running"
    sent_before = len(simulator.calls)

    async with start_harness(database_url=database_url, simulator=simulator) as second:
        await resume_unfinished(second.services, second.services_client())
        await second.idle()

        resent = [call.agent_id for call in simulator.calls[sent_before:]]
        assert resent == ["1003", "1004"]
        assert "4/4 done" in second.last_message().text


async def test_a_change_taken_while_shutting_down_is_kept_for_the_next_start(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(database_url=database_url, simulator=simulator) as first:
        await first.services.dispatcher.aclose(grace=0)  # SIGTERM arrived a moment ago
        await first.slash("hide dial 1001-1003")
        await first.idle()
        assert "3 calls not sent" in first.last_message().text
    assert simulator.calls == []

    async with start_harness(database_url=database_url, simulator=simulator) as second:
        await resume_unfinished(second.services, second.services_client())
        await second.idle()
        assert "3/3 done" in second.last_message().text
