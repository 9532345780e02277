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
        requeued, (current,) = await queue.adopt(
            "op", orphaned_slots=[0], replica_id="replica-b", slot=0, limit=1
        )
        assert requeued == 1
        await queue.step(started=current)
        assert current.claim_token != stale.claim_token

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


async def test_adopting_a_tokens_slots_queues_again_what_a_gone_holder_left_and_reserves(
    database_url: str,
) -> None:
    database = Database(database_url)
    await migrate.upgrade(database)
    signals = Signals()
    queue, store = CallQueue(database, signals), ChangeStore(database, signals)
    try:
        for operation in ("op", "other"):
            await store.record_change(
                Requester("U1"), text="hide dial 1001-1004", display="hide", buttons=["dial"],
                calls=[PlannedCall(operation, str(a), "dial", "hide") for a in range(1001, 1005)],
                response_url=None, idempotency_key=None, reporter_id="r", lease=30,
            )  # fmt: skip
        # A replica that is gone left, on "op": one call running in slot 0, one reserved in
        # slot 0 and one running in slot 1; and on "other", one running in slot 0.
        running0 = await queue.claim_next("op", replica_id="gone", slot=0)
        reserved0 = await queue.reserve("op", replica_id="gone", slot=0, limit=1)
        running1 = await queue.claim_next("op", replica_id="gone", slot=1)
        elsewhere = await queue.claim_next("other", replica_id="alive", slot=0)
        assert running0 and reserved0 and running1 and elsewhere

        running, calls = await queue.adopt(
            "op", orphaned_slots=[0, 1], replica_id="next", slot=0, limit=10
        )

        assert running == 2
        assert [call.request.agent_id for call in calls] == ["1001", "1002", "1003", "1004"]
        gone = {running0.claim_token, reserved0[0].claim_token, running1.claim_token}
        assert len({call.claim_token for call in calls}) == 1
        assert calls[0].claim_token not in gone
        async with database.sessions() as session:
            rows = (await session.execute(select(Call.operation, Call.status))).all()
        assert sorted(rows) == [
            ("op", "queued"), ("op", "queued"), ("op", "queued"), ("op", "queued"),
            ("other", "queued"), ("other", "queued"), ("other", "queued"), ("other", "running"),
        ]  # fmt: skip
        # Nothing of "op" is left for anyone else to reserve; "other" was left alone.
        assert await queue.reserve("op", replica_id="x", slot=0, limit=10) == []
    finally:
        await database.dispose()
