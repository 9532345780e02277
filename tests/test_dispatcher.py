"""The per-token dispatcher over the durable queue, on SQLite and on PostgreSQL.

Everything under test is real: the ``calls`` table as the queue, the token slots (advisory locks on
PostgreSQL), the wake-up signals (LISTEN/NOTIFY on PostgreSQL) and, in most tests, the wolkvox
client against the simulator. Where a test needs to decide exactly when one call answers, it uses
:class:`GatedClient`, a test double of ``AgentDisplayClient`` whose calls wait on events the test
sets. Tests wait on events and conditions, never on sleeps; every wait is bounded by ``STEP``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, text, update

from storage import migrate
from storage.changes import ChangeStore, PlannedCall, Requester
from storage.database import Database
from storage.models import Call, CallStatus, utcnow
from storage.queue import CallQueue
from storage.signals import CHANGE, Signals
from storage.slots import SlotLocks, operation_key
from wolkvox.client import WolkvoxClient
from wolkvox.dispatcher import MAX_CONCURRENCY, RESERVE_BATCH, Dispatcher, QueuedCall
from wolkvox.errors import InvalidToken, MissingToken, ServerError
from wolkvox.model import Credentials, DisplayRequest, DisplayResult
from wolkvox.retrying import AgentDisplayClient, CallOutcome, RetryPolicy
from wolkvox.simulator import CLIENT_CLOSED, Simulator

STEP = 10.0
"""Upper bound on any single wait, so that a bug fails the test instead of hanging it."""

FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005, jitter=0.001)
POLL = 0.05

# A per-run suffix keeps the advisory-lock keys of this run apart from any other run's.
_RUN = secrets.token_hex(3)
OP_A = f"op-a-{_RUN}"
OP_B = f"op-b-{_RUN}"
TOKEN_A = "token-a-secret"
TOKEN_B = "token-b-secret"
CREDENTIALS = {
    OP_A: Credentials(server="0015", token=TOKEN_A),
    OP_B: Credentials(server="0042", token=TOKEN_B),
}
REQUESTER = Requester(user_id="U_SUPERVISOR", team_id="T1", channel_id="C1")


def planned(
    agent: int | str, *, operation: str = OP_A, button: str = "dial", display: str = "hide"
) -> PlannedCall:
    return PlannedCall(operation=operation, agent_id=str(agent), button=button, display=display)


def agents(first: int, count: int) -> list[str]:
    return [str(agent) for agent in range(first, first + count)]


# -- a test double of the wolkvox client --------------------------------------------------------


class GatedClient:
    """An ``AgentDisplayClient`` whose calls wait until the test lets them answer.

    A call waits while its token's gate is closed (:meth:`close_token`), and, with
    ``hold_every_call``, until the test releases it by its start index (:meth:`release`).
    Every start is recorded, with the calls in flight per token and their peak.
    """

    def __init__(self, *, hold_every_call: bool = False) -> None:
        self.hold_every_call = hold_every_call
        self.started: list[tuple[str, str]] = []  # (token, agent id), in start order
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self._token_gates: dict[str, asyncio.Event] = {}
        self._call_gates: list[asyncio.Event] = []
        self._progress = asyncio.Event()

    def close_token(self, token: str) -> None:
        self._token_gates[token] = asyncio.Event()

    def open_token(self, token: str) -> None:
        self._token_gates[token].set()

    def release(self, index: int) -> None:
        """Let the ``index``-th call started (0-based) answer."""
        self._call_gates[index].set()

    def open_all(self) -> None:
        self.hold_every_call = False
        for gate in [*self._token_gates.values(), *self._call_gates]:
            gate.set()

    def agents(self, token: str | None = None) -> list[str]:
        return [agent for tok, agent in self.started if token is None or tok == token]

    async def wait_started(self, count: int, token: str | None = None) -> None:
        async with asyncio.timeout(STEP):
            while len(self.agents(token)) < count:
                self._progress.clear()
                await self._progress.wait()

    async def agent_display(
        self, credentials: Credentials, request: DisplayRequest
    ) -> DisplayResult:
        token = credentials.token
        gate = asyncio.Event()
        if not self.hold_every_call:
            gate.set()
        self._call_gates.append(gate)
        self.started.append((token, request.agent_id))
        self.in_flight[token] += 1
        self.peak[token] = max(self.peak[token], self.in_flight[token])
        self._progress.set()
        try:
            token_gate = self._token_gates.get(token)
            if token_gate is not None:
                await token_gate.wait()
            await gate.wait()
        finally:
            self.in_flight[token] -= 1
        return DisplayResult(code=200, message=f"Agentbox has been {request.display.value}")


# -- the wiring: one replica's database, signals, slots, queue, store and dispatcher --------------


@dataclass
class Rig:
    """One "replica": its own Database, Signals, SlotLocks, queue, store and dispatcher."""

    replica_id: str
    database: Database
    signals: Signals
    slots: SlotLocks
    queue: CallQueue
    store: ChangeStore
    dispatcher: Dispatcher
    progress: asyncio.Event
    """Set whenever a call of any rig of the same :class:`Rigs` is answered."""
    done: list[tuple[QueuedCall, CallOutcome]] = field(default_factory=list)
    _closed: bool = False

    def on_call_done(self, call: QueuedCall, outcome: CallOutcome) -> None:
        self.done.append((call, outcome))
        self.progress.set()

    async def record(self, *calls: PlannedCall) -> int:
        """Queue a change the way the app does: one row per call, in the order given."""
        recorded = await self.store.record_change(
            REQUESTER,
            text=f"{calls[0].display} {calls[0].button} ({len(calls)} calls)",
            display=calls[0].display,
            buttons=sorted({call.button for call in calls}),
            calls=calls,
            response_url=None,
            idempotency_key=None,
            reporter_id=self.replica_id,
            lease=60.0,
        )
        return recorded.change_id

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = STEP) -> None:
        """Wait until ``predicate`` holds; checked each time any rig's call is answered."""
        async with asyncio.timeout(within):
            while not predicate():
                self.progress.clear()
                await self.progress.wait()

    async def wait_done(
        self, count: int, operation: str | None = None, *, within: float = STEP
    ) -> None:
        await self.wait_for(
            lambda: sum(1 for c, _ in self.done if operation in (None, c.operation)) >= count,
            within=within,
        )

    async def rows(self, operation: str | None = None) -> list[Call]:
        """The calls as stored, in id (= asked-for) order."""
        statement = select(Call).order_by(Call.id)
        if operation is not None:
            statement = statement.where(Call.operation == operation)
        async with self.database.sessions() as session:
            return list((await session.scalars(statement)).all())

    async def close(self, grace: float = 1.0) -> None:
        if self._closed:
            return
        self._closed = True
        await self.dispatcher.aclose(grace)
        await self.slots.aclose()
        await self.signals.aclose()
        await self.database.dispose()


class Rigs:
    """Builds rigs on one database (migrated on first use) and closes them all at the end."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._made: list[Rig] = []
        self._migrated = False
        self._progress = asyncio.Event()

    async def make(
        self,
        client: AgentDisplayClient,
        *,
        replica_id: str = "replica-1",
        concurrency: int = 1,
        credentials_for: Callable[[str], Credentials | None] = CREDENTIALS.get,
    ) -> Rig:
        database = Database(self.database_url)
        if not self._migrated:
            await migrate.upgrade(database)
            self._migrated = True
        signals = Signals(database.url)
        slots = SlotLocks(database.url)
        queue = CallQueue(database, signals)
        dispatcher = Dispatcher(
            queue,
            slots,
            signals,
            client,
            credentials_for,
            replica_id=replica_id,
            concurrency=concurrency,
            retry=FAST_RETRY,
            poll_interval=POLL,
        )
        rig = Rig(
            replica_id=replica_id,
            database=database,
            signals=signals,
            slots=slots,
            queue=queue,
            store=ChangeStore(database, signals),
            dispatcher=dispatcher,
            progress=self._progress,
        )
        dispatcher.on_call_done = rig.on_call_done
        self._made.append(rig)
        await signals.start()
        if signals.shared:
            async with asyncio.timeout(STEP):
                await signals.listening.wait()
        return rig

    async def aclose(self) -> None:
        for rig in self._made:
            await rig.close(grace=0.5)


@pytest.fixture
async def rigs(database_url: str) -> AsyncIterator[Rigs]:
    made = Rigs(database_url)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
async def wolkvox(simulator: Simulator) -> AsyncIterator[WolkvoxClient]:
    async with WolkvoxClient(simulator.url, deadline=STEP) as client:
        yield client


def skip_on_sqlite(database_url: str) -> None:
    if "sqlite" in database_url:
        pytest.skip("several replicas share a database only on PostgreSQL (SQLite: one process)")


# -- limits and order -----------------------------------------------------------------------------


async def test_concurrency_1_sends_one_call_at_a_time_in_order_and_records_each_answer(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.config.latency = 0.003
    buttons = ("dial", "disposition", "hungup")
    asked = [
        planned(1001 + i, button=buttons[i % 3], display=("hide", "show")[i % 2]) for i in range(20)
    ]
    rig = await rigs.make(wolkvox)

    await rig.record(*asked)
    rig.dispatcher.wake(OP_A)
    await rig.wait_done(20)

    assert simulator.peak_in_flight(TOKEN_A) == 1
    assert [(c.agent_id, c.button, c.display) for c in simulator.calls] == [
        (p.agent_id, p.button, p.display) for p in asked
    ]
    for p in asked:
        assert simulator.button_state(p.agent_id, p.button) == p.display
    rows = await rig.rows()
    assert [(r.agent_id, r.button, r.display) for r in rows] == [
        (p.agent_id, p.button, p.display) for p in asked
    ]
    for row in rows:
        assert row.status == CallStatus.SUCCEEDED
        assert row.message == f"Agentbox has been {row.display}"
        assert row.error_kind is None
        assert row.attempts == 1
        assert row.duration_ms is not None and row.duration_ms >= 2  # the simulator's 3 ms
        assert row.claimed_by == "replica-1" and row.slot == 0
        assert row.finished_at is not None


async def test_concurrency_2_reaches_but_never_exceeds_two_calls_in_flight(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.config.latency = 0.02  # long enough for both slots to be busy at once
    asked = [planned(agent) for agent in agents(1001, 20)]
    rig = await rigs.make(wolkvox, concurrency=2)

    await rig.record(*asked)
    rig.dispatcher.wake(OP_A)
    await rig.wait_done(20)

    assert simulator.peak_in_flight(TOKEN_A) == 2
    assert sorted(c.agent_id for c in simulator.calls) == agents(1001, 20)
    assert all(c.status == 200 for c in simulator.calls), "no call was refused for the limit"
    rows = await rig.rows()
    assert {r.status for r in rows} == {CallStatus.SUCCEEDED}
    assert {r.slot for r in rows} == {0, 1}, "both slots sent calls"
    for agent in agents(1001, 20):
        assert simulator.button_state(agent, "dial") == "hide"


async def test_concurrency_2_starts_calls_in_the_order_asked_across_changes(
    rigs: Rigs,
) -> None:
    # Every call waits until released, so the test decides when each slot frees up: the next
    # call to start must then be the oldest one queued, whichever change it belongs to.
    client = GatedClient(hold_every_call=True)
    rig = await rigs.make(client, concurrency=2)
    asked = agents(1001, 12)

    await rig.record(*(planned(agent) for agent in asked[:4]))
    rig.dispatcher.wake(OP_A)
    await rig.record(*(planned(agent) for agent in asked[4:8]))
    await rig.record(*(planned(agent) for agent in asked[8:]))
    rig.dispatcher.wake(OP_A)

    await client.wait_started(2)
    # The two slots claim the two oldest calls side by side; which reaches wolkvox first is free.
    assert sorted(client.agents()) == asked[:2]
    assert client.in_flight[TOKEN_A] == 2
    for index in range(len(asked)):
        client.release(index)
        expected = min(index + 3, len(asked))
        await client.wait_started(expected)
        assert client.agents()[2:] == asked[2:expected]
        assert client.in_flight[TOKEN_A] <= 2
    await rig.wait_done(len(asked))

    assert client.agents()[2:] == asked[2:]
    assert client.peak[TOKEN_A] == 2
    assert {r.status for r in await rig.rows()} == {CallStatus.SUCCEEDED}


async def test_every_call_of_a_change_starts_before_any_call_of_the_next(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.config.latency = 0.002
    rig = await rigs.make(wolkvox)
    team = agents(1001, 10)

    first = await rig.record(*(planned(agent, display="hide") for agent in team))
    rig.dispatcher.wake(OP_A)  # the first change is already being sent ...
    second = await rig.record(*(planned(agent, display="show") for agent in team))
    rig.dispatcher.wake(OP_A)  # ... when the second one, for the same agents, is queued
    await rig.wait_done(20)

    arrivals = [(c.display, c.agent_id) for c in simulator.calls]
    assert arrivals == [("hide", a) for a in team] + [("show", a) for a in team]
    rows = await rig.rows()
    assert [r.change_id for r in rows] == [first] * 10 + [second] * 10
    for agent in team:
        assert simulator.button_state(agent, "dial") == "show", "the later change wins"


async def test_an_answer_is_reported_once_durable_while_the_next_call_is_in_flight(
    rigs: Rigs,
) -> None:
    # Whoever follows a change learns of its last answer from this report (commands/changes.py);
    # it must not wait until the sender is done with the calls after it.
    client = GatedClient(hold_every_call=True)
    rig = await rigs.make(client)
    await rig.record(planned("1001"), planned("1002"))
    rig.dispatcher.wake(OP_A)
    await client.wait_started(1)

    client.release(0)  # the first call answers; the second starts and is held
    await client.wait_started(2)
    await rig.wait_done(1)

    assert [call.request.agent_id for call, _outcome in rig.done] == ["1001"]
    assert client.in_flight[TOKEN_A] == 1, "the second call is still in flight"
    client.release(1)
    await rig.wait_done(2)


async def test_two_operations_progress_independently(rigs: Rigs) -> None:
    client = GatedClient()
    client.close_token(TOKEN_A)  # wolkvox keeps operation A's first call waiting
    rig = await rigs.make(client)
    asked_a, asked_b = agents(1001, 4), agents(2001, 4)
    interleaved = [
        call
        for a, b in zip(asked_a, asked_b, strict=True)
        for call in (planned(a, operation=OP_A), planned(b, operation=OP_B))
    ]

    await rig.record(*interleaved)
    rig.dispatcher.wake(OP_A)
    rig.dispatcher.wake(OP_B)
    await client.wait_started(1, TOKEN_A)
    await rig.wait_done(4, OP_B)

    assert client.agents(TOKEN_B) == asked_b
    assert client.agents(TOKEN_A) == asked_a[:1], "A's token stays at one call in flight"
    # A call's start is written while it is in flight: wait until that write is durable.
    await rig.queue.flush()
    assert [r.status for r in await rig.rows(OP_A)] == [CallStatus.RUNNING] + [
        CallStatus.QUEUED
    ] * 3
    assert {r.status for r in await rig.rows(OP_B)} == {CallStatus.SUCCEEDED}

    client.open_token(TOKEN_A)
    await rig.wait_done(4, OP_A)
    assert client.agents(TOKEN_A) == asked_a
    assert {r.status for r in await rig.rows()} == {CallStatus.SUCCEEDED}
    assert client.peak == Counter({TOKEN_A: 1, TOKEN_B: 1})


# -- the pipeline: reserved ahead, recorded meanwhile ---------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_calls_reserved_ahead_start_in_order_and_never_exceed_the_limit(
    rigs: Rigs, concurrency: int
) -> None:
    # Every call waits until released: between two releases the test looks at the table.
    client = GatedClient(hold_every_call=True)
    rig = await rigs.make(client, concurrency=concurrency)
    asked = agents(1001, RESERVE_BATCH * 2 + 5)
    await rig.record(*(planned(agent) for agent in asked))
    rig.dispatcher.wake(OP_A)

    # Until the tail: each release lets the next call start, whose step records the answer.
    for released in range(len(asked) - concurrency + 1):
        in_flight = asked[released : released + concurrency]
        await client.wait_started(released + concurrency)
        assert client.agents() == asked[: released + concurrency], "started in the order asked"
        await rig.queue.flush()  # the steps made so far are durable
        rows = await rig.rows()
        by_status = {
            status: [r.agent_id for r in rows if r.status == status] for status in CallStatus
        }
        assert by_status[CallStatus.SUCCEEDED] == asked[:released]
        assert by_status[CallStatus.RUNNING] == in_flight, "running means in flight"
        reserved = [r.agent_id for r in rows if r.status == CallStatus.QUEUED and r.claim_token]
        assert len(reserved) <= RESERVE_BATCH
        assert reserved == asked[released + concurrency :][: len(reserved)], "the oldest next"
        assert not any(r.started_at for r in rows if r.status == CallStatus.QUEUED)
        client.release(released)
    client.open_all()
    await rig.wait_done(len(asked))

    assert client.peak[TOKEN_A] == concurrency
    rows = await rig.rows()
    assert {r.status for r in rows} == {CallStatus.SUCCEEDED}
    assert [r.attempts for r in rows] == [1] * len(asked)
    assert {r.slot for r in rows} == set(range(concurrency))


async def test_a_crash_mid_batch_loses_nothing_and_a_late_step_changes_nothing(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    rig = await rigs.make(wolkvox, replica_id="replica-new")
    asked = agents(1001, 6)
    await rig.record(*(planned(agent) for agent in asked))
    # What a replica leaves when it dies mid-batch: six calls reserved; 1001 sent and answered,
    # then 1002 sent, but the step recording both had not been written: 1001 still running,
    # 1002 still reserved; 1003-1006 reserved, never sent.
    dead = await rig.queue.reserve(OP_A, replica_id="replica-dead", slot=0, limit=RESERVE_BATCH)
    assert [c.request.agent_id for c in dead] == asked
    await rig.queue.step(started=dead[0])
    rows = await rig.rows()
    assert [r.status for r in rows] == [CallStatus.RUNNING] * 1 + [CallStatus.QUEUED] * 5
    assert {r.claimed_by for r in rows} == {"replica-dead"}
    assert await rig.queue.operations_with_work() == [OP_A]

    rig.dispatcher.serve(OP_A)  # the next holder of the slot
    await rig.wait_done(len(asked))

    # The answered-but-unrecorded call is sent again (show/hide are idempotent), then the rest,
    # in order, each once.
    assert [c.agent_id for c in simulator.calls] == asked
    rows = await rig.rows()
    assert [r.status for r in rows] == [CallStatus.SUCCEEDED] * len(asked)
    assert [r.claimed_by for r in rows] == ["replica-new"] * len(asked)

    # The dead replica's steps, arriving late, are ignored: its claim is not current.
    late = CallOutcome(dead[0].request, None, ServerError(), 1, 0.1)
    await rig.queue.step(answered=(dead[0], late), started=dead[1])
    assert [(r.status, r.message) for r in await rig.rows()] == [
        (CallStatus.SUCCEEDED, "Agentbox has been hide")
    ] * len(asked)


async def test_the_next_call_does_not_wait_for_the_database_but_followers_do(
    rigs: Rigs,
) -> None:
    client = GatedClient(hold_every_call=True)
    rig = await rigs.make(client)
    change = await rig.record(planned(1001), planned(1002))
    rig.dispatcher.wake(OP_A)
    await client.wait_started(1)
    await rig.queue.flush()
    changed = rig.signals.waiter(CHANGE, str(change))  # what a follower of the change waits on

    async with rig.database.transaction() as session:
        # Writers wait for this transaction: on SQLite for the database, on PostgreSQL for the
        # row of 1001, the one the next step records.
        await session.execute(select(Call).where(Call.agent_id == "1001").with_for_update())
        client.release(0)
        await client.wait_started(2)  # 1002 is sent while 1001's answer cannot be written ...
        assert not changed.is_set() and rig.done == [], "... and it is not reported meanwhile"

    async with asyncio.timeout(STEP):
        await changed.wait()
    rows = await rig.rows()
    assert [(r.agent_id, r.status) for r in rows] == [
        ("1001", CallStatus.SUCCEEDED),
        ("1002", CallStatus.RUNNING),
    ], "a follower woken up reads the answer"
    client.release(1)
    await rig.wait_done(2)
    assert [c.request.agent_id for c, _ in rig.done] == ["1001", "1002"]


# -- failures -------------------------------------------------------------------------------------


async def test_transient_error_is_retried_up_to_the_policy_then_fails(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.config.error_rate = 1.0  # every call: HTTP 500 with an HTML page
    rig = await rigs.make(wolkvox)

    await rig.record(planned(1001), planned(1002))
    rig.dispatcher.wake(OP_A)
    await rig.wait_done(2)

    attempts = FAST_RETRY.attempts
    # Retries keep the slot: the second call starts only after the first one's last attempt.
    assert [c.agent_id for c in simulator.calls] == ["1001"] * attempts + ["1002"] * attempts
    assert {c.status for c in simulator.calls} == {500}
    assert simulator.peak_in_flight(TOKEN_A) == 1
    for row in await rig.rows():
        assert row.status == CallStatus.FAILED
        assert row.error_kind == ServerError.kind == "server_error"
        assert row.attempts == attempts
        assert row.message is not None and row.message.startswith(ServerError.explanation)
    for _, outcome in rig.done:
        assert outcome.attempts == attempts and isinstance(outcome.error, ServerError)


async def test_invalid_token_is_not_retried_and_fails_the_other_queued_calls_unsent(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.config.tokens = frozenset({"other"})  # wolkvox: 403 PLEASE VALIDATE TOKEN
    rig = await rigs.make(wolkvox)

    await rig.record(*(planned(agent) for agent in agents(1001, 5)))
    rig.dispatcher.wake(OP_A)
    await rig.wait_done(1)

    assert len(simulator.calls) == 1
    assert simulator.calls[0].agent_id == "1001" and simulator.calls[0].status == 403
    assert len(rig.done) == 1, "the other calls were failed by the queue, not claimed"
    rows = await rig.rows()
    assert [r.status for r in rows] == [CallStatus.FAILED] * 5
    assert [r.error_kind for r in rows] == [InvalidToken.kind] * 5
    assert [r.attempts for r in rows] == [1, 0, 0, 0, 0]
    for row in rows:
        assert row.message is not None and row.message.startswith(InvalidToken.explanation)
    assert [r.finished_at is not None for r in rows] == [True] * 5
    assert not any(r.started_at for r in rows[1:]), "the unsent calls never started"


async def test_missing_credentials_fail_the_calls_without_sending_anything(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    rig = await rigs.make(wolkvox, credentials_for=lambda _operation: None)

    await rig.record(*(planned(agent) for agent in agents(1001, 3)))
    rig.dispatcher.wake(OP_A)
    await rig.wait_done(1)

    assert simulator.calls == []
    rows = await rig.rows()
    assert [r.status for r in rows] == [CallStatus.FAILED] * 3
    assert [r.error_kind for r in rows] == [MissingToken.kind] * 3 == ["missing_token"] * 3
    assert [r.attempts for r in rows] == [0, 0, 0]
    (_, outcome) = rig.done[0]
    assert isinstance(outcome.error, MissingToken)
    assert outcome.message == MissingToken().user_message


# -- crashes, restarts, shutdown ------------------------------------------------------------------


async def test_a_call_left_running_in_slot_0_is_sent_again_by_the_next_holder(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    rig = await rigs.make(wolkvox, replica_id="replica-new")
    await rig.record(*(planned(agent) for agent in agents(1001, 3)))
    first = (await rig.rows())[0]
    # What a replica that crashed mid-call leaves behind.
    async with rig.database.transaction() as session:
        await session.execute(
            update(Call)
            .where(Call.id == first.id)
            .values(
                status=CallStatus.RUNNING, slot=0, claimed_by="replica-dead", started_at=utcnow()
            )
        )
    assert await rig.queue.operations_with_work() == [OP_A]

    rig.dispatcher.serve(OP_A)  # what Services.start does for operations with work
    await rig.wait_done(3)

    assert [c.agent_id for c in simulator.calls] == agents(1001, 3), "the orphan goes first"
    rows = await rig.rows()
    assert [r.status for r in rows] == [CallStatus.SUCCEEDED] * 3
    assert [r.claimed_by for r in rows] == ["replica-new"] * 3
    assert rows[0].attempts == 1


async def test_a_call_left_running_in_a_slot_beyond_the_concurrency_is_sent_again(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    rig = await rigs.make(wolkvox, concurrency=1)
    await rig.record(planned(1001), planned(1002))
    first = (await rig.rows())[0]
    # Left by a replica that ran with WOLKVOX_CONCURRENCY=2 and stopped mid-call.
    async with rig.database.transaction() as session:
        await session.execute(
            update(Call)
            .where(Call.id == first.id)
            .values(
                status=CallStatus.RUNNING, slot=1, claimed_by="replica-dead", started_at=utcnow()
            )
        )

    rig.dispatcher.serve(OP_A)
    await rig.wait_done(2, within=2.0)

    assert sorted(c.agent_id for c in simulator.calls) == ["1001", "1002"]
    assert {r.status for r in await rig.rows()} == {CallStatus.SUCCEEDED}


async def test_aclose_cancels_a_call_beyond_the_grace_and_a_new_dispatcher_sends_everything(
    rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    simulator.hold()  # wolkvox accepts the first call and keeps it waiting
    first = await rigs.make(wolkvox, replica_id="replica-old")
    await first.record(*(planned(agent) for agent in agents(1001, 4)))
    first.dispatcher.wake(OP_A)
    async with asyncio.timeout(STEP):
        await simulator.wait_in_flight(TOKEN_A, 1)

    await first.dispatcher.aclose(grace=0.05)

    assert first.dispatcher.closed
    assert first.done == []
    rows = await first.rows()
    assert [r.status for r in rows] == [CallStatus.RUNNING] + [CallStatus.QUEUED] * 3
    assert rows[0].claimed_by == "replica-old" and rows[0].slot == 0
    assert [(r.claimed_by, r.claim_token) for r in rows[1:]] == [(None, None)] * 3, (
        "the calls reserved but not sent are given back"
    )
    async with asyncio.timeout(STEP):
        await simulator.wait_idle()
    assert [(c.agent_id, c.status) for c in simulator.calls] == [("1001", CLIENT_CLOSED)]
    await first.close()

    simulator.release()
    second = await rigs.make(wolkvox, replica_id="replica-next")
    second.dispatcher.wake(OP_A)
    await second.wait_done(4)

    assert [c.agent_id for c in simulator.calls] == ["1001", *agents(1001, 4)]
    rows = await second.rows()
    assert [r.status for r in rows] == [CallStatus.SUCCEEDED] * 4
    assert [r.claimed_by for r in rows] == ["replica-next"] * 4
    assert simulator.button_state("1001", "dial") == "hide"


# -- several replicas (PostgreSQL) ----------------------------------------------------------------


async def test_two_replicas_share_the_token_limit_and_the_order(
    database_url: str, rigs: Rigs, simulator: Simulator, wolkvox: WolkvoxClient
) -> None:
    skip_on_sqlite(database_url)
    simulator.config.latency = 0.005
    a = await rigs.make(wolkvox, replica_id="replica-a")
    b = await rigs.make(wolkvox, replica_id="replica-b")
    a.dispatcher.serve(OP_A)
    b.dispatcher.serve(OP_A)

    for index, agent in enumerate(agents(1001, 40)):
        rig = (a, b)[index % 2]
        await rig.record(planned(agent))
        rig.dispatcher.wake(OP_A)
    await a.wait_for(lambda: len(a.done) + len(b.done) >= 40)

    assert simulator.peak_in_flight(TOKEN_A) == 1
    rows = await a.rows()
    assert [c.agent_id for c in simulator.calls] == [r.agent_id for r in rows]
    assert [r.agent_id for r in rows] == agents(1001, 40)
    assert {r.status for r in rows} == {CallStatus.SUCCEEDED}
    assert {r.claimed_by for r in rows} <= {"replica-a", "replica-b"}
    assert len(a.done) + len(b.done) == 40, "no call was sent twice"


async def _terminate_slot_holder(database: Database, operation: str, slot: int) -> int:
    """Kill, from the server side, the connection holding ``slot``'s advisory lock."""
    query = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = :key AND objid::bigint = :slot AND objsubid = 2"
    )
    async with database.engine.connect() as connection:
        key = operation_key(operation) & 0xFFFFFFFF  # pg_locks shows int4 keys as unsigned oids
        pids: Sequence[int] = (
            (await connection.execute(query, {"key": key, "slot": slot})).scalars().all()
        )
        assert len(pids) == 1, f"one connection holds the slot, got {pids}"
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
    return pids[0]


async def _slot_is_free(database_url: str, operation: str, slot: int) -> bool:
    probe = SlotLocks(database_url)
    try:
        free = await probe.try_acquire(operation, slot)
        await probe.release(operation, slot)
        return free
    finally:
        await probe.aclose()


async def test_a_replica_that_loses_its_slot_connection_hands_the_slot_over(
    database_url: str, rigs: Rigs
) -> None:
    skip_on_sqlite(database_url)
    client_a = GatedClient()
    client_a.close_token(TOKEN_A)  # replica A's first call hangs at wolkvox
    client_b = GatedClient()
    a = await rigs.make(client_a, replica_id="replica-a")
    b = await rigs.make(client_b, replica_id="replica-b")
    asked = agents(1001, 5)

    await a.record(*(planned(agent) for agent in asked))
    a.dispatcher.wake(OP_A)
    await client_a.wait_started(1)
    b.dispatcher.serve(OP_A)
    assert not await _slot_is_free(database_url, OP_A, 0), "replica A holds the slot"

    await _terminate_slot_holder(a.database, OP_A, 0)
    async with asyncio.timeout(STEP):
        await a.slots.lost.wait()
    await b.wait_done(5)

    # B took the slot, queued A's call again (show/hide are idempotent) and sent everything.
    assert client_b.agents() == asked
    assert client_b.peak[TOKEN_A] == 1
    assert {r.status for r in await b.rows()} == {CallStatus.SUCCEEDED}

    client_a.open_token(TOKEN_A)
    await a.wait_done(1)
    assert client_a.agents() == asked[:1], "A stopped claiming once it lost the slot"
    rows = await a.rows()
    assert {r.status for r in rows} == {CallStatus.SUCCEEDED}
    assert [r.claimed_by for r in rows] == ["replica-b"] * 5


async def test_a_replica_that_lost_its_slot_stops_claiming_even_after_its_lock_reconnects(
    database_url: str, rigs: Rigs
) -> None:
    skip_on_sqlite(database_url)
    client_a = GatedClient(hold_every_call=True)
    client_b = GatedClient(hold_every_call=True)
    a = await rigs.make(client_a, replica_id="replica-a")
    b = await rigs.make(client_b, replica_id="replica-b")
    asked = agents(1001, 4)
    await a.record(*(planned(agent) for agent in asked))
    a.dispatcher.wake(OP_A)
    await client_a.wait_started(1)  # A: 1001 in flight with slot 0
    await _terminate_slot_holder(a.database, OP_A, 0)
    async with asyncio.timeout(STEP):
        await a.slots.lost.wait()

    # Replica A also serves operation B: its worker reconnects the shared lock connection.
    await a.record(planned(2001, operation=OP_B))
    a.dispatcher.wake(OP_B)
    await client_a.wait_started(2)
    client_a.release(1)
    await a.wait_done(1, OP_B)
    assert not a.slots.holds(OP_A, 0)

    b.dispatcher.serve(OP_A)
    await client_b.wait_started(1)  # B took slot 0 and sends 1001 again
    client_a.release(0)  # A's stale 1001 answers
    await a.wait_done(1, OP_A)
    client_a.open_all()
    client_b.open_all()
    await a.wait_for(
        lambda: (
            {c.request.agent_id for c, _ in [*a.done, *b.done] if c.operation == OP_A} == set(asked)
        )
    )

    assert client_a.agents(TOKEN_A) == asked[:1], "A sent OP_A calls without holding the slot"


# -- construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, MAX_CONCURRENCY + 1, 10])
def test_concurrency_outside_1_to_2_is_refused(bad: int) -> None:
    database = Database("sqlite+aiosqlite://")
    signals = Signals()
    with pytest.raises(ValueError, match="concurrency must be between 1 and 2"):
        Dispatcher(
            CallQueue(database, signals),
            SlotLocks(database.url),
            signals,
            GatedClient(),
            CREDENTIALS.get,
            replica_id="r",
            concurrency=bad,
        )


@pytest.mark.parametrize("good", [1, 2])
def test_concurrency_1_and_2_are_accepted(good: int) -> None:
    database = Database("sqlite+aiosqlite://")
    signals = Signals()
    dispatcher = Dispatcher(
        CallQueue(database, signals),
        SlotLocks(database.url),
        signals,
        GatedClient(),
        CREDENTIALS.get,
        replica_id="r",
        concurrency=good,
    )
    assert dispatcher.concurrency == good
