"""The per-token queue: limits, order, retries, hand-back at shutdown.

Most tests drive a gated fake client (a test double of ``AgentDisplayClient``) so that every
interleaving is decided by the test through events, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wolkvox.client import WolkvoxClient
from wolkvox.dispatcher import (
    MAX_CONCURRENCY,
    CallOutcome,
    Dispatcher,
    DispatcherClosed,
    InternalError,
    QueueInfo,
    RetryPolicy,
    Ticket,
)
from wolkvox.errors import InvalidToken, Maintenance, ServerError, Timeout, WolkvoxError
from wolkvox.model import Button, Credentials, Display, DisplayRequest, DisplayResult
from wolkvox.simulator import Simulator, SimulatorConfig

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, jitter=0.0)
TOKEN_A = Credentials(server="0015", token="secret-token-a")
TOKEN_B = Credentials(server="0042", token="secret-token-b")
STEP = 5.0  # upper bound on any single wait in a test, so a bug fails fast instead of hanging


def req(agent: int | str, display: Display = Display.HIDE) -> DisplayRequest:
    return DisplayRequest(agent_id=str(agent), display=display, button=Button.DISPOSITION)


class FakeClient:
    """Records every attempt; agents with a gate block until the test opens it.

    ``errors[agent]`` lists what successive attempts for that agent raise (``None`` = succeed).
    """

    def __init__(self, events: list[str] | None = None) -> None:
        self.events: list[str] = events if events is not None else []
        self.attempts: list[tuple[str, str]] = []  # (token fingerprint, agent id)
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}
        self.errors: dict[str, list[BaseException | None]] = {}
        self.cancelled: list[str] = []
        self._changed = asyncio.Condition()

    def hold(self, *agents: int | str) -> None:
        for agent in agents:
            self.gates[str(agent)] = asyncio.Event()

    def release(self, agent: int | str) -> None:
        self.gates[str(agent)].set()

    def started(self, fingerprint: str | None = None) -> list[str]:
        return [a for fp, a in self.attempts if fingerprint is None or fp == fingerprint]

    async def wait_attempts(self, n: int, fingerprint: str | None = None) -> None:
        async with asyncio.timeout(STEP), self._changed:
            await self._changed.wait_for(lambda: len(self.started(fingerprint)) >= n)

    async def agent_display(
        self, credentials: Credentials, request: DisplayRequest
    ) -> DisplayResult:
        fp = credentials.token_fingerprint
        agent = request.agent_id
        self.in_flight[fp] += 1
        self.peak[fp] = max(self.peak[fp], self.in_flight[fp])
        self.attempts.append((fp, agent))
        self.events.append(f"call:{agent}")
        try:
            async with self._changed:
                self._changed.notify_all()
            gate = self.gates.get(agent)
            if gate is not None:
                await gate.wait()
            script = self.errors.get(agent)
            if script:
                error = script.pop(0)
                if error is not None:
                    raise error
            return DisplayResult(code=200, message=f"Agentbox has been {request.display.value}")
        except asyncio.CancelledError:
            self.cancelled.append(agent)
            raise
        finally:
            self.in_flight[fp] -= 1


async def outcome(ticket: Ticket) -> CallOutcome:
    async with asyncio.timeout(STEP):
        return await ticket.outcome


async def let_loop_run(rounds: int = 10) -> None:
    """Yield so that anything that *could* wrongly start gets the chance to (not a sync wait)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
async def make_dispatcher(
    client: FakeClient,
) -> AsyncIterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(**kwargs: object) -> Dispatcher:
        kwargs.setdefault("retry", FAST)
        d = Dispatcher(client, **kwargs)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for gate in client.gates.values():
        gate.set()
    for d in made:
        await d.aclose(grace=STEP)


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, MAX_CONCURRENCY + 1, 3])
def test_concurrency_outside_1_to_max_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Dispatcher(FakeClient.__new__(FakeClient), concurrency=bad)


@pytest.mark.parametrize("good", [1, 2])
def test_concurrency_1_and_2_are_accepted(good: int) -> None:
    assert Dispatcher(FakeClient.__new__(FakeClient), concurrency=good).concurrency == good


def test_retry_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_submit_outside_the_event_loop_is_refused() -> None:
    d = Dispatcher(FakeClient.__new__(FakeClient))
    with pytest.raises(RuntimeError):
        d.submit(TOKEN_A, req(1001))


# -- the in-flight limit and order -------------------------------------------------------------


async def test_concurrency_1_never_has_two_in_flight_and_keeps_order(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1)
    agents = [str(1000 + i) for i in range(20)]
    client.hold(*agents)
    tickets = [d.submit(TOKEN_A, req(a)) for a in agents]

    for i, agent in enumerate(agents):
        await client.wait_attempts(i + 1)
        await let_loop_run()
        assert client.in_flight[TOKEN_A.token_fingerprint] == 1
        assert client.started() == agents[: i + 1]  # nothing else started meanwhile
        info = d.queue_info(TOKEN_A)
        assert (info.in_flight, info.waiting) == (1, len(agents) - i - 1)
        client.release(agent)

    results = [await outcome(t) for t in tickets]
    assert all(r.ok for r in results)
    assert [r.request.agent_id for r in results] == agents
    assert client.peak[TOKEN_A.token_fingerprint] == 1
    assert client.started() == agents


async def test_concurrency_2_never_has_three_in_flight_and_starts_in_order(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=2)
    agents = [str(2000 + i) for i in range(20)]
    client.hold(*agents)
    tickets = [d.submit(TOKEN_A, req(a)) for a in agents]

    await client.wait_attempts(2)
    await let_loop_run()
    assert client.started() == agents[:2]
    # Release alternately the older and the newer of the pair in flight: whichever slot frees,
    # the next call to start is the next one queued.
    pair = agents[:2]
    for i in range(2, 20):
        done = pair.pop(i % 2)
        client.release(done)
        await client.wait_attempts(i + 1)
        pair.append(agents[i])
        await let_loop_run()
        assert client.in_flight[TOKEN_A.token_fingerprint] == 2
        assert client.started() == agents[: i + 1]
    for agent in agents:
        client.release(agent)

    assert all([(await outcome(t)).ok for t in tickets])
    assert client.peak[TOKEN_A.token_fingerprint] == 2
    assert client.started() == agents


async def test_a_blocked_token_does_not_delay_another(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1)
    client.hold("1", "2")
    blocked = [d.submit(TOKEN_A, req(1)), d.submit(TOKEN_A, req(2))]
    others = [d.submit(TOKEN_B, req(100 + i)) for i in range(5)]

    for t in others:
        assert (await outcome(t)).ok
    assert not any(t.outcome.done() for t in blocked)
    assert client.started(TOKEN_A.token_fingerprint) == ["1"]

    client.release("1")
    client.release("2")
    assert all([(await outcome(t)).ok for t in blocked])


async def test_same_token_on_two_credentials_objects_shares_one_queue(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1)
    same_token = Credentials(server="0100", token=TOKEN_A.token)
    client.hold("1")
    first = d.submit(TOKEN_A, req(1))
    second = d.submit(same_token, req(2))
    assert second.position == 1
    await client.wait_attempts(1)
    await let_loop_run()
    assert client.started() == ["1"]
    client.release("1")
    assert (await outcome(first)).ok and (await outcome(second)).ok
    assert client.peak[TOKEN_A.token_fingerprint] == 1


# -- retries -------------------------------------------------------------------------------------


async def test_transient_errors_are_retried_up_to_the_bound(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher()
    client.errors["1"] = [Maintenance(), Timeout(), Maintenance(), None]  # would succeed on 4th
    result = await outcome(d.submit(TOKEN_A, req(1)))
    assert not result.ok
    assert isinstance(result.error, Maintenance)
    assert result.attempts == FAST.attempts == 3
    assert client.started() == ["1", "1", "1"]


async def test_transient_then_success_records_attempts(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher()
    client.errors["1"] = [Timeout(), None]
    result = await outcome(d.submit(TOKEN_A, req(1)))
    assert result.ok
    assert result.result is not None and result.result.message == "Agentbox has been hide"
    assert result.error is None
    assert result.attempts == 2
    assert result.duration >= 0


async def test_permanent_errors_are_not_retried(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher()
    client.errors["1"] = [InvalidToken("PLEASE VALIDATE TOKEN"), None]
    result = await outcome(d.submit(TOKEN_A, req(1)))
    assert isinstance(result.error, InvalidToken)
    assert result.attempts == 1
    assert client.started() == ["1"]


async def test_retries_hold_the_slot(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1)
    client.errors["1"] = [Maintenance(), Maintenance(), None]
    first, second = d.submit(TOKEN_A, req(1)), d.submit(TOKEN_A, req(2))
    assert (await outcome(first)).attempts == 3
    assert (await outcome(second)).ok
    assert client.started() == ["1", "1", "1", "2"]
    assert client.peak[TOKEN_A.token_fingerprint] == 1


# -- tickets ------------------------------------------------------------------------------------


async def test_position_and_estimated_wait_with_concurrency_1(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1, default_duration=2.0)
    client.hold(*range(4))
    tickets = [d.submit(TOKEN_A, req(i)) for i in range(4)]
    assert [t.position for t in tickets] == [0, 1, 2, 3]
    assert [t.estimated_wait for t in tickets] == [0.0, 2.0, 4.0, 6.0]
    other = d.submit(TOKEN_B, req(9))
    assert (other.position, other.estimated_wait) == (0, 0.0)

    await client.wait_attempts(1, TOKEN_A.token_fingerprint)
    later = d.submit(TOKEN_A, req(4))
    assert later.position == 4  # 1 in flight + 3 waiting
    info = d.queue_info(TOKEN_A)
    assert (info.waiting, info.in_flight, info.mean_duration) == (4, 1, 2.0)


async def test_position_and_estimated_wait_with_concurrency_2(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=2, default_duration=2.0)
    client.hold(*range(5))
    tickets = [d.submit(TOKEN_A, req(i)) for i in range(5)]
    assert [t.position for t in tickets] == [0, 1, 2, 3, 4]
    # A slot is free for the first two; then one mean duration per pair ahead.
    assert [t.estimated_wait for t in tickets] == [0.0, 0.0, 2.0, 2.0, 4.0]


async def test_mean_duration_follows_observed_calls(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(default_duration=30.0)
    assert d.queue_info(TOKEN_A).mean_duration == 30.0
    assert (await outcome(d.submit(TOKEN_A, req(1)))).ok
    mean = d.queue_info(TOKEN_A).mean_duration
    assert 0.0 <= mean < 30.0  # the instant fake call replaced the default
    assert d.queue_info(TOKEN_B).mean_duration == 30.0  # per token
    client.hold(2)
    d.submit(TOKEN_A, req(2))
    assert d.submit(TOKEN_A, req(3)).estimated_wait == pytest.approx(mean)


# -- on_start and failures that are not wolkvox's ---------------------------------------------


async def test_on_start_runs_once_before_the_first_attempt(
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    events: list[str] = []
    client = FakeClient(events)
    d = Dispatcher(client, retry=FAST)
    client.errors["1"] = [Timeout(), None]

    def hook(name: str) -> Callable[[], Awaitable[None]]:
        async def on_start() -> None:
            events.append(f"start:{name}")

        return on_start

    first = d.submit(TOKEN_A, req(1), on_start=hook("1"))
    second = d.submit(TOKEN_A, req(2), on_start=hook("2"))
    assert (await outcome(first)).ok and (await outcome(second)).ok
    assert events == ["start:1", "call:1", "call:1", "start:2", "call:2"]
    await d.aclose()


async def test_crashing_on_start_becomes_the_outcome_and_the_worker_keeps_serving(
    client: FakeClient,
    make_dispatcher: Callable[..., Dispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = make_dispatcher(concurrency=1)

    async def broken() -> None:
        raise ValueError("slack is down")

    caplog.set_level(logging.ERROR, logger="wolkvox.dispatcher")
    failed = await outcome(d.submit(TOKEN_A, req(1), on_start=broken))
    assert isinstance(failed.error, InternalError)
    assert failed.error.kind == "internal" and not failed.error.transient
    assert failed.attempts == 0
    assert client.started() == []  # the call itself never went out
    assert any(r.exc_info for r in caplog.records)

    assert (await outcome(d.submit(TOKEN_A, req(2)))).ok


async def test_unknown_client_exception_becomes_internal_error_not_retried(
    client: FakeClient,
    make_dispatcher: Callable[..., Dispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = make_dispatcher(concurrency=1)
    client.errors["1"] = [KeyError("oops"), None]
    caplog.set_level(logging.ERROR, logger="wolkvox.dispatcher")
    result = await outcome(d.submit(TOKEN_A, req(1)))
    assert isinstance(result.error, InternalError)
    assert isinstance(result.error, WolkvoxError)
    assert result.attempts == 1
    assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)
    assert (await outcome(d.submit(TOKEN_A, req(2)))).ok


async def test_a_worker_that_dies_is_logged_and_replaced(
    client: FakeClient,
    make_dispatcher: Callable[..., Dispatcher],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = make_dispatcher(concurrency=1)
    original = Dispatcher._observe
    crashes = [RuntimeError("bookkeeping bug")]

    def observe_once_broken(self: Dispatcher, lane: object, duration: float) -> None:
        if crashes:
            raise crashes.pop()
        original(self, lane, duration)  # type: ignore[arg-type]

    monkeypatch.setattr(Dispatcher, "_observe", observe_once_broken)
    caplog.set_level(logging.ERROR, logger="wolkvox.dispatcher")
    assert (await outcome(d.submit(TOKEN_A, req(1)))).ok  # answered before the worker died
    assert (await outcome(d.submit(TOKEN_A, req(2)))).ok  # served by the replacement
    assert any("died" in r.getMessage() for r in caplog.records)


async def test_a_call_abandoned_before_it_starts_is_skipped(
    client: FakeClient, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    d = make_dispatcher(concurrency=1)
    client.hold(1)
    first = d.submit(TOKEN_A, req(1))
    abandoned = d.submit(TOKEN_A, req(2))
    third = d.submit(TOKEN_A, req(3))
    abandoned.outcome.cancel()
    client.release(1)
    assert (await outcome(first)).ok and (await outcome(third)).ok
    assert client.started() == ["1", "3"]


async def test_the_token_never_reaches_the_log(
    client: FakeClient,
    make_dispatcher: Callable[..., Dispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = make_dispatcher()
    caplog.set_level(logging.DEBUG, logger="wolkvox.dispatcher")
    client.errors["1"] = [Maintenance(), InvalidToken()]
    await outcome(d.submit(TOKEN_A, req(1)))
    await outcome(d.submit(TOKEN_A, req(2)))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN_A.token_fingerprint in text
    assert "agent=2" in text and "button=disposition" in text
    assert TOKEN_A.token not in text


# -- shutdown ----------------------------------------------------------------------------------


async def test_aclose_hands_back_queued_calls_and_lets_in_flight_finish(
    client: FakeClient,
) -> None:
    d = Dispatcher(client, concurrency=1, retry=FAST)
    client.hold(1, 3)
    running = [d.submit(TOKEN_A, req(1)), d.submit(TOKEN_B, req(3))]
    queued = [d.submit(TOKEN_A, req(2)), d.submit(TOKEN_B, req(4))]
    await client.wait_attempts(2)

    closing = asyncio.create_task(d.aclose(grace=STEP))
    for t in queued:
        with pytest.raises(DispatcherClosed):
            await outcome(t)
    assert not closing.done()
    with pytest.raises(DispatcherClosed):
        d.submit(TOKEN_A, req(5))

    client.release(1)
    client.release(3)
    for t in running:
        assert (await outcome(t)).ok
    async with asyncio.timeout(STEP):
        await closing
    assert client.started() == ["1", "3"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await d.aclose()  # idempotent


async def test_aclose_cancels_in_flight_calls_after_grace(client: FakeClient) -> None:
    d = Dispatcher(client, concurrency=2, retry=FAST)
    client.hold(1, 2)
    stuck = [d.submit(TOKEN_A, req(1)), d.submit(TOKEN_A, req(2))]
    await client.wait_attempts(2)

    async with asyncio.timeout(STEP):
        await d.aclose(grace=0.01)
    for t in stuck:
        with pytest.raises(DispatcherClosed):
            await t.outcome
    assert sorted(client.cancelled) == ["1", "2"]
    assert client.in_flight[TOKEN_A.token_fingerprint] == 0
    assert d.queue_info(TOKEN_A).in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_closed_dispatcher_error_is_a_runtime_error(client: FakeClient) -> None:
    d = Dispatcher(client)
    await d.aclose()
    await d.aclose()
    with pytest.raises(RuntimeError):
        d.submit(TOKEN_A, req(1))
    assert d.closed


# -- against the real simulator over HTTP -----------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(latency=0.005, tokens=frozenset({TOKEN_A.token})))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_simulator_never_sees_more_than_the_limit(sim: Simulator, concurrency: int) -> None:
    async with WolkvoxClient(base_url=sim.url) as http_client:
        d = Dispatcher(http_client, concurrency=concurrency, retry=FAST)
        agents = [str(3000 + i) for i in range(20)]
        tickets = [d.submit(TOKEN_A, req(a)) for a in agents]
        async with asyncio.timeout(STEP * 2):
            results = [await t.outcome for t in tickets]
        await d.aclose()

    assert all(r.ok and r.attempts == 1 for r in results), [r.error for r in results]
    assert sim.peak_in_flight(TOKEN_A.token) == concurrency
    assert [c.agent_id for c in sim.calls_for(TOKEN_A.token)] == agents
    assert all(sim.button_state(a, "disposition") == "hide" for a in agents)


async def test_simulator_held_call_blocks_the_next_one(sim: Simulator) -> None:
    async with WolkvoxClient(base_url=sim.url) as http_client:
        d = Dispatcher(http_client, concurrency=1, retry=FAST)
        sim.hold()
        tickets = [d.submit(TOKEN_A, req(a)) for a in ("1", "2", "3")]
        async with asyncio.timeout(STEP):
            await sim.wait_in_flight(TOKEN_A.token, 1)
        await let_loop_run()
        assert len(sim.calls_for(TOKEN_A.token)) == 1
        assert d.queue_info(TOKEN_A) == QueueInfo(waiting=2, in_flight=1, mean_duration=1.0)
        sim.release()
        assert all([(await outcome(t)).ok for t in tickets])
        await d.aclose()
    assert sim.peak_in_flight(TOKEN_A.token) == 1


async def test_simulator_server_errors_are_retried_then_reported(sim: Simulator) -> None:
    sim.config.error_rate = 1.0
    async with WolkvoxClient(base_url=sim.url) as http_client:
        d = Dispatcher(http_client, retry=FAST)
        result = await outcome(d.submit(TOKEN_A, req(1)))
        await d.aclose()
    assert isinstance(result.error, ServerError)
    assert result.attempts == FAST.attempts
    assert len(sim.calls_for(TOKEN_A.token)) == FAST.attempts
