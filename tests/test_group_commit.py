"""Group commit: new changes that arrive while a batch is written go together in the next one,
each still gets its own id, and a repeated delivery in the same batch is still one change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import migrate
from storage.changes import ChangeStore, PlannedCall, Recorded, Requester
from storage.database import Database
from storage.group_commit import GroupCommit
from storage.models import AuditEvent, Call, Change
from storage.signals import Signals

# --- the mechanism --------------------------------------------------------------------------


class _Writer:
    """Writes batches; the first one holds until ``release``, so that others pile up meanwhile."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.started.set()
            await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError(f"cannot write {self.fail_on}")
        return [item.upper() for item in items]


async def _writing(group: GroupCommit[str, str], writer: _Writer) -> asyncio.Future[str]:
    """``a`` enqueued, and its batch being written (held until ``writer.release``)."""
    first = group.enqueue("a")
    await writer.started.wait()
    return first


async def test_a_lone_item_is_written_at_once_in_a_batch_of_its_own() -> None:
    writer = _Writer()
    writer.release.set()
    group = GroupCommit(writer)
    assert await group.submit("a") == "A"
    assert writer.batches == [["a"]]


async def test_items_arriving_during_a_write_go_together_in_the_next_batch() -> None:
    writer = _Writer()
    group = GroupCommit(writer)
    first = await _writing(group, writer)
    others = [group.enqueue(item) for item in ("b", "c", "d")]
    writer.release.set()
    assert await first == "A"
    assert [await future for future in others] == ["B", "C", "D"]
    assert writer.batches == [["a"], ["b", "c", "d"]]


async def test_batches_are_no_larger_than_max_batch() -> None:
    writer = _Writer()
    group = GroupCommit(writer, max_batch=2)
    first = await _writing(group, writer)
    others = [group.enqueue(item) for item in "bcde"]
    writer.release.set()
    assert [await first] + [await future for future in others] == list("ABCDE")
    assert writer.batches == [["a"], ["b", "c"], ["d", "e"]]


async def test_a_failed_batch_fails_only_its_own_items() -> None:
    writer = _Writer(fail_on="c")
    group = GroupCommit(writer, max_batch=2)
    first = await _writing(group, writer)
    others = [group.enqueue(item) for item in "bcde"]
    writer.release.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results[0] == "A" and results[3:] == ["D", "E"]
    assert all(isinstance(r, RuntimeError) and "cannot write c" in str(r) for r in results[1:3])
    first_error, second_error = results[1:3]
    assert isinstance(first_error, RuntimeError) and isinstance(second_error, RuntimeError)
    assert first_error is not second_error, "each caller raises an exception of its own"
    assert first_error.__cause__ is second_error.__cause__, "both caused by the writer's"


async def test_closing_waits_for_the_batch_being_written_and_those_waiting() -> None:
    written: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def write(items: Sequence[str]) -> list[str]:
        if not written:
            started.set()
            await release.wait()
        for item in items:  # a write of several round trips, as a database's is
            await asyncio.sleep(0)
            written.append(item)
        return list(items)

    group: GroupCommit[str, str] = GroupCommit(write)
    first = group.enqueue("a")
    await started.wait()
    gone = group.enqueue("b")
    gone.cancel()  # its caller was cancelled (shutdown): it is written all the same
    closing = asyncio.create_task(group.aclose())
    release.set()
    await closing
    assert first.done() and written == ["a", "b"]
    with pytest.raises(RuntimeError, match="shutting down"):
        await group.submit("c")  # closed: nothing more is taken
    assert written == ["a", "b"]


async def test_a_caller_that_stops_waiting_does_not_stop_the_write() -> None:
    writer = _Writer()
    group = GroupCommit(writer)
    first = await _writing(group, writer)
    gone, stays = group.enqueue("b"), group.enqueue("c")
    gone.cancel()
    writer.release.set()
    assert await first == "A" and await stays == "C"
    assert writer.batches == [["a"], ["b", "c"]]


async def test_an_item_the_writer_refuses_fails_alone() -> None:
    async def write(items: Sequence[str]) -> list[str | Exception]:
        return [ValueError(item) if item == "bad" else item.upper() for item in items]

    group: GroupCommit[str, str] = GroupCommit(write)
    good, bad = group.enqueue("good"), group.enqueue("bad")
    assert await good == "GOOD"
    with pytest.raises(ValueError, match="bad"):
        await bad


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupCommit(_Writer(), max_batch=0)


# --- new changes, on both databases ---------------------------------------------------------


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[ChangeStore, Database]]:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        yield ChangeStore(database, Signals()), database
    finally:
        await database.dispose()


def _record(store: ChangeStore, agent: str, key: str | None) -> asyncio.Task[Recorded]:
    return asyncio.create_task(
        store.record_change(
            Requester("U1", "T1", "C1"),
            text=f"hide dial {agent}",
            display="hide",
            buttons=["dial"],
            calls=[PlannedCall("op", agent, "dial", "hide")],
            response_url=None,
            idempotency_key=key,
            reporter_id="r",
            lease=30,
            reason="allowed by admin",
        )
    )


async def test_a_burst_of_changes_gets_one_id_each_with_its_own_calls_and_audit(
    store: tuple[ChangeStore, Database],
) -> None:
    changes, database = store
    agents = [str(1000 + n) for n in range(40)]
    recorded = await asyncio.gather(*(_record(changes, a, f"slash:{a}") for a in agents))

    assert len({r.change_id for r in recorded}) == len(agents)
    assert not any(r.duplicate for r in recorded)
    async with database.sessions() as session:
        rows = (await session.execute(select(Call.change_id, Call.agent_id))).all()
        audited = [c for c in (await session.scalars(select(AuditEvent.change_id))) if c]
        texts = dict((await session.execute(select(Change.id, Change.text))).all())
    # Each change's call and text are its own (ids were matched to rows in order).
    assert dict(rows) == {r.change_id: a for r, a in zip(recorded, agents, strict=True)}
    assert {texts[r.change_id] for r in recorded} == {f"hide dial {a}" for a in agents}
    assert sorted(audited) == sorted(r.change_id for r in recorded)


async def test_a_delivery_repeated_in_the_same_burst_or_after_it_is_one_change(
    store: tuple[ChangeStore, Database],
) -> None:
    changes, database = store
    burst = [_record(changes, "1001", "slash:T1"), _record(changes, "1001", "slash:T1")]
    burst += [_record(changes, "1002", None), _record(changes, "1002", None)]
    first, again, plain, other_plain = await asyncio.gather(*burst)
    later = await _record(changes, "1001", "slash:T1")

    assert not first.duplicate and again == Recorded(first.change_id, duplicate=True)
    assert later == Recorded(first.change_id, duplicate=True)
    # Without a key, two deliveries are two changes, as they always were.
    assert not plain.duplicate and not other_plain.duplicate
    assert plain.change_id != other_plain.change_id
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Change)) == 3
        assert await session.scalar(select(func.count()).select_from(Call)) == 3


async def _record_calls(
    store: ChangeStore, calls: list[PlannedCall], *, held: bool = False
) -> Recorded:
    return await store.record_change(
        Requester("U1"),
        text="a change",
        display="hide",
        buttons=["dial"],
        calls=calls,
        response_url=None,
        idempotency_key=None,
        reporter_id="r",
        lease=30,
        held=held,
    )


async def test_each_change_of_a_burst_knows_the_calls_ahead_of_it_in_each_operation(
    store: tuple[ChangeStore, Database],
) -> None:
    changes, _database = store
    before = await _record_calls(changes, [PlannedCall("op", "1", "dial", "hide")] * 3)
    burst = await asyncio.gather(
        _record_calls(changes, [PlannedCall("op", "2", "dial", "hide")] * 2),
        _record_calls(changes, [PlannedCall("op", "3", "dial", "hide")], held=True),
        _record_calls(
            changes,
            [PlannedCall("op", "4", "dial", "hide"), PlannedCall("other", "9", "dial", "hide")],
        ),
        _record_calls(changes, [PlannedCall("other", "8", "dial", "hide")]),
    )
    assert before.calls_ahead == {"op": 0}
    assert [r.calls_ahead for r in burst] == [
        {"op": 3},
        {},  # held: not in any queue yet
        {"op": 5, "other": 0},  # the held change's call is not ahead of it
        {"other": 1},
    ]
    assert len({r.change_id for r in [before, *burst]}) == 5


async def test_a_change_the_database_refuses_does_not_fail_the_burst_it_came_with(
    store: tuple[ChangeStore, Database],
) -> None:
    changes, database = store
    refused = Requester(None)  # type: ignore[arg-type]  # NOT NULL: refused by both databases
    burst = await asyncio.gather(
        _record(changes, "1001", "slash:A"),
        changes.record_change(
            refused,
            text="hide dial 1002",
            display="hide",
            buttons=["dial"],
            calls=[PlannedCall("op", "1002", "dial", "hide")],
            response_url=None,
            idempotency_key="slash:B",
            reporter_id="r",
            lease=30,
        ),
        _record(changes, "1003", None),
        return_exceptions=True,
    )
    first, failed, third = burst
    assert isinstance(failed, IntegrityError)
    assert isinstance(first, Recorded) and isinstance(third, Recorded)
    async with database.sessions() as session:
        texts = sorted((await session.scalars(select(Change.text))).all())
    assert texts == ["hide dial 1001", "hide dial 1003"]
