"""Load shedding: above the limit of commands being taken at once, the next slash command is told
at once that agentbox is busy and that nothing was recorded, instead of timing out in Slack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select, text

from bot.admission import Admission
from storage.models import Change
from tests.harness import Harness, ack_text, start_harness
from wolkvox.simulator import Simulator


@asynccontextmanager
async def _changes_table_locked(box: Harness) -> AsyncIterator[None]:
    """Hold the write lock, so that a command being taken waits in its transaction."""
    async with box.services.database.transaction() as session:  # SQLite: the writer's lock
        if box.services.database.dialect == "postgresql":
            await session.execute(text("LOCK TABLE changes IN EXCLUSIVE MODE"))
        yield


async def test_a_command_above_the_limit_is_answered_busy_and_records_nothing(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(
        database_url=database_url, simulator=simulator, max_pending_commands=1
    ) as box:
        await box.slash("hide dial 1000")  # first use: the app and the database are warm
        await box.idle()
        async with _changes_table_locked(box):
            first = asyncio.create_task(box.slash("hide dial 1001"))
            await box.services.admission.full.wait()  # the first is being taken

            turned_away = ack_text(await box.slash("hide dial 1002"))

        taken = ack_text(await first)
        await box.idle()

        assert "too many commands at once" in turned_away and "nothing was recorded" in turned_away
        assert "Hiding" in taken
        async with box.services.database.sessions() as session:
            texts = (await session.scalars(select(Change.text))).all()
        assert sorted(texts) == ["hide dial 1000", "hide dial 1001"]
        assert box.services.admission.pending == 0

        again = ack_text(await box.slash("hide dial 1002"))  # room again: it is taken
        assert "Hiding" in again


async def test_background_work_waits_until_no_command_is_being_taken() -> None:
    admission = Admission(limit=10)
    assert await admission.quiet(at_most=60, gap=0)  # none being taken: at once

    with admission.enter() as admitted:
        assert admitted
        waiting = asyncio.create_task(admission.quiet(at_most=60, gap=0))
        with admission.enter():
            pass
        await asyncio.sleep(0)  # one loop turn: it had the chance to return, and must not
        assert not waiting.done()
    assert await waiting  # the last command is acknowledged: it goes on


async def test_background_work_waits_for_the_end_of_a_burst_not_a_pause_within_it() -> None:
    admission = Admission(limit=10)
    with admission.enter():
        pass
    arrived = time.monotonic()
    assert await admission.quiet(at_most=60, gap=0.05)
    assert time.monotonic() - arrived >= 0.05  # no command for the whole gap


async def test_background_work_waits_for_quiet_only_so_long() -> None:
    admission = Admission(limit=10)
    with admission.enter():
        assert not await admission.quiet(at_most=0.01)  # a steady stream cannot hold it back
