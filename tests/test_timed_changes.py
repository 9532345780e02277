"""Timed changes (``for 30m``): put back when the time is up, once, even across a restart.

Time is a clock the harness hands to agentbox; the tests move it forward instead of waiting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from bot.app import revert_due_changes
from bot.fake_slack import FakeSlack
from commands.clock import system_clock
from commands.timed import REVERT_RETRY_DELAYS, describe_duration
from storage.changes import PlannedCall, Requester, timer_key
from storage.models import AuditEvent, Call, Change
from tests.harness import (
    ADMIN,
    FAST_RETRY,
    TOKEN,
    Harness,
    MovableClock,
    ack_text,
    audit_events,
    rows_of,
    start_harness,
)
from wolkvox.simulator import Simulator, fingerprint

TEAM_CHANNEL = "CVENTAS"


async def _revert_due(agentbox: Harness) -> int:
    made = await revert_due_changes(agentbox.services, agentbox.app_client)
    await agentbox.idle()
    return made


async def _changes(agentbox: Harness) -> list[Change]:
    async with agentbox.services.database.sessions() as session:
        return list((await session.scalars(select(Change).order_by(Change.id))).all())


async def test_a_timed_change_is_put_back_when_its_time_is_up(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash(f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>")
        ack = ack_text(await box.slash("hide dial 1001-1002 for 30m"))
        await box.idle()
        assert "30m" in ack
        assert simulator.button_state("1001", "dial") == "hide"
        assert "puts it back in 30m" in box.last_message().text

        clock.advance(timedelta(minutes=29))
        assert await _revert_due(box) == 0
        assert simulator.button_state("1001", "dial") == "hide"

        clock.advance(timedelta(minutes=2))
        assert await _revert_due(box) == 1

        for agent in ("1001", "1002"):
            assert simulator.button_state(agent, "dial") == "show"
        announced = box.last_message(TEAM_CHANNEL).text
        assert "Time is up" in announced and f"<@{ADMIN}>" in announced
        assert "1001-1002" in announced and "2/2 done" in announced
        timed, revert = await _changes(box)
        assert revert.reverts_change_id == timed.id and timed.revert_at is None
        assert await _revert_due(box) == 0  # once


async def test_the_timer_survives_a_restart(
    database_url: str, simulator: Simulator, slack: FakeSlack
) -> None:
    clock = MovableClock()
    async with start_harness(
        database_url=database_url, simulator=simulator, slack=slack, clock=clock
    ) as first:
        await first.slash("hide hungup 1001 for 1h")
        await first.idle()
        assert simulator.button_state("1001", "hungup") == "hide"

    clock.advance(timedelta(hours=1, seconds=1))
    async with start_harness(
        database_url=database_url, simulator=simulator, slack=slack, clock=clock
    ) as second:
        assert await _revert_due(second) == 1
        assert simulator.button_state("1001", "hungup") == "show"
        assert "Time is up" in second.last_message().text


async def test_two_timer_sweeps_due_at_once_make_one_revert(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001 for 15m")
        await box.idle()
        clock.advance(timedelta(minutes=16))

        made = await asyncio.gather(
            box.services.timed.revert_due(), box.services.timed.revert_due()
        )

        assert sorted(len(reverts) for reverts in made) == [0, 1]
        assert len(await _changes(box)) == 2


async def test_two_replicas_due_at_once_make_one_revert(
    database_url: str, simulator: Simulator, slack: FakeSlack
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas share PostgreSQL; SQLite is one process (the test above covers it)")
    clock = MovableClock()
    async with (
        start_harness(
            database_url=database_url, simulator=simulator, slack=slack, clock=clock
        ) as one,
        start_harness(
            database_url=database_url, simulator=simulator, slack=slack, clock=clock
        ) as other,
    ):
        await one.slash("hide dial 1001 for 15m")
        await one.idle()
        clock.advance(timedelta(minutes=16))

        made = await asyncio.gather(
            revert_due_changes(one.services, one.app_client),
            revert_due_changes(other.services, other.app_client),
        )
        await one.idle()
        await other.idle()

        assert sorted(made) == [0, 1]
        assert len(await _changes(one)) == 2
        dial_calls = [c for c in simulator.calls if c.button == "dial"]
        assert [c.display for c in dial_calls] == ["hide", "show"]


async def test_a_button_changed_again_since_is_left_alone(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial hungup 1001 for 30m")
        await box.idle()
        await box.slash("hide dial 1001")  # hidden for good now: no longer the timer's
        await box.idle()

        clock.advance(timedelta(minutes=31))
        assert await _revert_due(box) == 1

        assert simulator.button_state("1001", "dial") == "hide"
        assert simulator.button_state("1001", "hungup") == "show"


async def test_nothing_to_put_back_clears_the_timer_and_says_so(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001 for 30m")
        await box.idle()
        await box.slash("undo")
        await box.idle()
        calls_before = len(simulator.calls)

        clock.advance(timedelta(minutes=31))
        assert await _revert_due(box) == 0

        assert len(simulator.calls) == calls_before
        assert simulator.button_state("1001", "dial") == "show"
        assert await box.services.timed.seconds_until_next() is None
        async with box.services.database.sessions() as session:
            audit = (
                await session.scalars(select(AuditEvent).where(AuditEvent.action == "revert"))
            ).one()
        assert "nothing to put back" in (audit.reason or "")


async def test_the_next_timer_is_known(agentbox: Harness) -> None:
    assert await agentbox.services.timed.seconds_until_next() is None
    await agentbox.slash("hide dial 1001 for 10m")
    await agentbox.idle()

    until = await agentbox.services.timed.seconds_until_next()

    assert until is not None and 9 * 60 < until <= 10 * 60


async def test_a_timed_dry_run_calls_nothing_and_sets_no_timer(agentbox: Harness) -> None:
    text = ack_text(await agentbox.slash("hide dial 1001 for 30m --dry-run"))
    await agentbox.idle()

    assert "Dry run" in text and "put it back 30m after" in text
    assert agentbox.simulator.calls == []
    assert await agentbox.services.timed.seconds_until_next() is None


def test_the_clock_is_aware() -> None:
    assert system_clock().tzinfo is UTC


async def test_a_change_queued_for_the_same_button_wins_over_the_revert(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001 for 30m")
        await box.idle()
        simulator.hold()
        await box.slash("hide hungup 1002")  # in flight, held by wolkvox
        await simulator.wait_in_flight(TOKEN, 1)
        await box.slash("hide dial 1001")  # queued behind it, not sent yet

        clock.advance(timedelta(minutes=31))
        assert await revert_due_changes(box.services, box.app_client) == 0
        simulator.release()
        await box.idle()

        assert simulator.button_state("1001", "dial") == "hide"
        assert [c.display for c in simulator.calls if c.button == "dial"] == ["hide", "hide"]


async def test_undo_after_a_timed_change_ended_undoes_the_callers_own_last_change(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001 for 30m")
        await box.idle()
        await box.slash("hide disposition 1002")
        await box.idle()
        clock.advance(timedelta(minutes=31))
        assert await _revert_due(box) == 1

        await box.slash("undo")
        await box.idle()

        assert simulator.button_state("1002", "disposition") == "show"
        assert simulator.button_state("1001", "dial") == "show"


async def test_a_revert_wolkvox_fails_is_tried_again_until_it_is_put_back(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001-1002 for 30m")
        await box.idle()
        clock.advance(timedelta(minutes=31))
        simulator.config.error_rate = 1.0  # wolkvox is down: every call answers HTTP 500

        assert await _revert_due(box) == 1

        summary = box.last_message().text
        assert "Time is up" in summary and "tries again in 1m" in summary
        assert simulator.button_state("1001", "dial") == "hide"
        timed, failed = await _changes(box)
        assert timed.revert_at is not None, "the timer is set again"
        (retry,) = [e for e in await audit_events(box) if e.reason and "attempt 2" in e.reason]
        assert retry.action == "revert" and retry.change_id == timed.id
        assert f"change #{failed.id} failed (server_error)" in (retry.reason or "")
        assert await _revert_due(box) == 0, "not before its time"
        # A replica that read the due list before the timer was set again cannot take it early.
        early = await box.services.store.record_change(
            Requester(ADMIN), text="late", display="show", buttons=["dial"],
            calls=[PlannedCall("default", "1001", "dial", "show")], response_url=None,
            idempotency_key=timer_key(timed.id, 2), reporter_id="another", lease=30,
            reverts_change_id=timed.id, ends_timer=clock(),
        )  # fmt: skip
        assert early.duplicate and len(await _changes(box)) == 2

        simulator.config.error_rate = 0.0
        clock.advance(timedelta(minutes=2))
        assert await _revert_due(box) == 1

        for agent in ("1001", "1002"):
            assert simulator.button_state(agent, "dial") == "show"
        assert "tries again" not in box.last_message().text
        timed, first, second = await _changes(box)
        assert timed.revert_at is None
        assert (first.idempotency_key, second.idempotency_key) == (
            f"timer:{timed.id}",
            f"timer:{timed.id}:2",
        )
        assert "attempt 2" in second.text
        assert await _revert_due(box) == 0  # done: once


async def test_reverts_stop_after_the_last_attempt_and_say_so(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide hungup 1001 for 10m")
        await box.idle()
        clock.advance(timedelta(minutes=11))
        simulator.config.error_rate = 1.0

        for delay in REVERT_RETRY_DELAYS:
            assert await _revert_due(box) == 1
            assert f"tries again in {describe_duration(int(delay.total_seconds()))}" in (
                box.last_message().text
            )
            clock.advance(delay + timedelta(seconds=1))
        assert await _revert_due(box) == 1  # the last attempt

        assert "stops trying" in box.last_message().text
        changes_ = await _changes(box)
        assert len(changes_) == 2 + len(REVERT_RETRY_DELAYS)
        assert changes_[0].revert_at is None
        clock.advance(timedelta(days=1))
        assert await _revert_due(box) == 0
        assert simulator.button_state("1001", "hungup") == "hide"


async def test_a_revert_partly_refused_for_good_is_not_tried_again(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001-1002 for 5m")
        await box.idle()
        clock.advance(timedelta(minutes=6))
        # The first call finds wolkvox down (it may pass); the second, the quota spent (it won't).
        simulator.config.error_rate = 1.0
        used = simulator.stats()["tokens"][fingerprint(TOKEN)]["quota_used"]
        simulator.config.daily_quota = used + FAST_RETRY.attempts  # the first call's attempts

        assert await _revert_due(box) == 1

        kinds = {call.error_kind for call in await rows_of(box, Call) if call.error_kind}
        assert kinds == {"server_error", "quota_exceeded"}
        assert "stops trying" in box.last_message().text
        timed, _revert = await _changes(box)
        assert timed.revert_at is None


async def test_a_revert_refused_for_good_is_not_tried_again(
    database_url: str, simulator: Simulator
) -> None:
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await box.slash("hide dial 1001 for 5m")
        await box.idle()
        clock.advance(timedelta(minutes=6))
        simulator.config.daily_quota = 0  # the token's quota is spent: no retry would pass

        assert await _revert_due(box) == 1

        assert "stops trying" in box.last_message().text
        timed, _revert = await _changes(box)
        assert timed.revert_at is None
