"""The calls table as a queue: a late answer from a claim that was taken over is not recorded."""

from __future__ import annotations

from sqlalchemy import select

from storage import migrate
from storage.changes import ChangeStore, PlannedCall, Requester
from storage.database import Database
from storage.models import Call
from storage.queue import CallQueue
from storage.signals import Signals
from wolkvox.errors import ServerError
from wolkvox.model import DisplayResult
from wolkvox.retrying import CallOutcome


async def test_only_the_current_claim_records_the_answer(database_url: str) -> None:
    database = Database(database_url)
    await migrate.upgrade(database)
    signals = Signals()
    queue, store = CallQueue(database, signals), ChangeStore(database, signals)
    try:
        await store.record_change(
            Requester("U1"), text="hide dial 1001", display="hide", buttons=["dial"],
            calls=[PlannedCall("op", "1001", "dial", "hide")], response_url=None,
            idempotency_key=None, reporter_id="r", lease=30,
        )  # fmt: skip
        stale = await queue.claim_next("op", replica_id="replica-a", slot=0)
        assert stale is not None
        # replica-a lost its slot; replica-b takes it and sends the call again.
        assert await queue.requeue_orphans("op", 0) == 1
        current = await queue.claim_next("op", replica_id="replica-b", slot=0)
        assert current is not None and current.claim_token != stale.claim_token

        await queue.complete(stale, CallOutcome(stale.request, None, ServerError(), 1, 0.1))
        async with database.sessions() as session:
            assert (await session.scalar(select(Call.status))) == "running"

        answer = DisplayResult(200, "Agentbox has been hide")
        await queue.complete(current, CallOutcome(current.request, answer, None, 1, 0.1))
        async with database.sessions() as session:
            call = await session.scalar(select(Call))
            assert call is not None
            assert (call.status, call.message) == ("succeeded", "Agentbox has been hide")
    finally:
        await database.dispose()
