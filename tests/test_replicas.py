"""Nothing lost, nothing twice: several ``agentbox serve`` replicas on one PostgreSQL.

Every test runs real ``agentbox serve`` processes (port 0) against PostgreSQL, a fake Slack Web API
and an in-process wolkvox simulator, and drives them with signed slash commands over HTTP. They
check what the issue promises: one call in flight per token across replicas, calls in the order
they were asked for, a dead replica's change finished and reported (in the same Slack message) by
another replica or by the next start, Slack's replays run once, and a database restart survived.

Waits are bounded and wait on something observable (a log line, a Slack message, the simulator);
the one poll is ``/readyz``, which is itself the observable. A failing test shows the last lines
the processes logged.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.fake_slack import FakeSlack, PostedMessage
from bot.http import SLACK_EVENTS_PATH
from bot.slash import signed_headers, slash_command_body
from tests.conftest import _reset_postgres
from tests.processes import AgentboxProcess, TcpProxy, agentbox_process, clean_env, logs_of
from wolkvox.simulator import IN_FLIGHT, Simulator

# PostgreSQL only: skipped where it is unreachable, a failure under CI=true (see conftest).
pytestmark = [pytest.mark.usefixtures("postgres_url"), pytest.mark.timeout(90)]

ADMIN = "U_ADMIN"
CHANNEL = "C_OPS"
SERVER = "0042"
TOKEN = "wv-token-replicas-not-for-logs"
#: Where a replica is to take over another's change: a short lease, so that it happens quickly.
SHORT_LEASE = "2"
#: Where no takeover is expected: a lease that even a loaded machine renews in time.
LEASE = "10"
POLL_SECONDS = "0.2"


@dataclass
class Cluster:
    """Replicas sharing one database, one fake Slack and one wolkvox (the simulator)."""

    database_url: str
    engine: AsyncEngine
    slack: FakeSlack
    simulator: Simulator
    http: httpx.AsyncClient
    stack: AsyncExitStack
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    replicas: list[AgentboxProcess] = field(default_factory=list)

    def env(self, database_url: str | None, lease: str) -> dict[str, str]:
        return clean_env(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=self.secret,
            SLACK_API_URL=self.slack.api_url,
            WOLKVOX_SERVER=SERVER,
            WOLKVOX_TOKEN=TOKEN,
            WOLKVOX_BASE_URL=self.simulator.url,
            WOLKVOX_CONCURRENCY="1",
            DATABASE_URL=database_url or self.database_url,
            AGENTBOX_ADMINS=ADMIN,
            AGENTBOX_REPORTER_LEASE_SECONDS=lease,
            AGENTBOX_POLL_SECONDS=POLL_SECONDS,
        )

    async def start(
        self, name: str, *, lease: str, database_url: str | None = None
    ) -> AgentboxProcess:
        """Start ``agentbox serve`` on port 0 and wait until it listens (it has resumed by then)."""
        replica = await self.stack.enter_async_context(
            agentbox_process(
                name,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                env=self.env(database_url, lease),
            )
        )
        self.replicas.append(replica)
        await replica.ready()
        return replica

    def body(self, command: str, *, trigger_id: str | None = None) -> str:
        return slash_command_body(
            command,
            user_id=ADMIN,
            channel_id=CHANNEL,
            response_url=self.slack.new_response_url(),
            trigger_id=trigger_id,
        )

    async def post(self, replica: AgentboxProcess, body: str) -> str:
        """POST a signed slash command to ``replica``; the text of its ack."""
        assert replica.url is not None, f"{replica.name} is not listening"
        response = await self.http.post(
            replica.url + SLACK_EVENTS_PATH,
            content=body,
            headers=signed_headers(body, self.secret),
        )
        assert response.status_code == 200, (
            f"{replica.name}: {response.status_code} {response.text}"
        )
        return str(response.json()["text"])

    async def slash(self, replica: AgentboxProcess, command: str) -> str:
        return await self.post(replica, self.body(command))

    async def scalars(self, query: str) -> list[object]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(text(query))).scalars())

    async def asked_order(self) -> list[str]:
        """Agents in the order their calls were recorded (the queue's order)."""
        return [
            str(agent) for agent in await self.scalars("SELECT agent_id FROM calls ORDER BY id")
        ]

    def arrived(self) -> list[str]:
        """Agents in the order their calls reached wolkvox."""
        return [call.agent_id for call in self.simulator.calls_for(TOKEN)]

    def answered_ok(self) -> Counter[str]:
        """How many calls per agent wolkvox answered 200."""
        return Counter(c.agent_id for c in self.simulator.calls_for(TOKEN) if c.status == 200)

    def message(self) -> PostedMessage:
        (message,) = self.slack.messages_in(CHANNEL)
        return message

    def logs(self) -> str:
        return logs_of(self.replicas)

    @asynccontextmanager
    async def explained(self) -> AsyncIterator[None]:
        """Re-raise any failure with the last lines every replica logged."""
        try:
            yield
        except Exception as error:
            raise AssertionError(
                f"{type(error).__name__}: {error}\n\n--- replica logs ---\n{self.logs()}"
            ) from error


@pytest.fixture
async def database_url(postgres_url: str) -> str:
    """PostgreSQL only (this overrides conftest's SQLite-and-PostgreSQL ``database_url``)."""
    await _reset_postgres(postgres_url)  # empty: the first replica migrates it
    return postgres_url


@pytest.fixture
async def cluster(
    database_url: str, simulator: Simulator, slack: FakeSlack
) -> AsyncIterator[Cluster]:
    engine = create_async_engine(database_url)
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as http:
        stack.push_async_callback(engine.dispose)
        # The stack kills every replica on the way out, before the simulator and Slack stop.
        yield Cluster(database_url, engine, slack, simulator, http, stack)


async def _until(simulator: Simulator, predicate: Callable[[], bool]) -> None:
    """Wait until the simulator's state satisfies ``predicate`` (re-checked at every request)."""
    await simulator._wait_for(predicate)


def _summaries(slack: FakeSlack, agents: list[str]) -> Counter[str]:
    """How many Slack messages hold each agent's one-call summary."""
    said = re.compile(r"Agent (\d+)'s call button \(`dial`\) is hidden")
    found = Counter(
        m[1] for message in slack.messages_in(CHANNEL) for m in said.finditer(message.text)
    )
    return Counter({agent: found[agent] for agent in agents})


def _calls_in_flight_together(simulator: Simulator, *, but: int | None = None) -> list[str]:
    """Agents whose call started before the previous one was answered (``but``: an index into
    ``simulator.calls`` to leave out: a call whose client died)."""
    calls = sorted(
        (call for index, call in enumerate(simulator.calls) if index != but),
        key=lambda call: call.started_at,
    )
    return [
        later.agent_id
        for earlier, later in itertools.pairwise(calls)
        if later.started_at < earlier.finished_at
    ]


async def test_two_replicas_share_one_token_in_the_order_asked(cluster: Cluster) -> None:
    simulator, slack = cluster.simulator, cluster.slack
    simulator.config.latency = 0.01
    agents = [str(agent) for agent in range(3001, 3101)]
    async with cluster.explained():
        a, b = await asyncio.gather(
            cluster.start("A", lease=LEASE), cluster.start("B", lease=LEASE)
        )
        acked: list[str] = []
        async with asyncio.timeout(60):
            # In quick succession, alternating replicas; each ack means "recorded", so the ack
            # order is the order asked.
            for index, agent in enumerate(agents):
                ack = await cluster.slash((a, b)[index % 2], f"hide dial {agent}")
                assert f"agent {agent}" in ack, ack
                acked.append(agent)
            await slack.wait_for(lambda: all(_summaries(slack, agents).values()), 30)
            await simulator.wait_idle()

        assert simulator.peak_in_flight(TOKEN) == 1
        assert await cluster.asked_order() == acked
        assert cluster.arrived() == acked, "calls reached wolkvox in the order they were asked"
        hidden = [agent for agent in agents if simulator.button_state(agent, "dial") == "hide"]
        assert hidden == agents
        assert _summaries(slack, agents) == Counter(agents), "one summary per change"
        assert len(slack.messages_in(CHANNEL)) == len(agents)


async def test_a_concurrent_burst_keeps_the_limit_and_the_order(cluster: Cluster) -> None:
    simulator, slack = cluster.simulator, cluster.slack
    simulator.config.latency = 0.01
    agents = [str(agent) for agent in range(5001, 5101)]
    window = asyncio.Semaphore(10)  # ten requests in flight at any time, both replicas at once
    asked: dict[str, tuple[float, float]] = {}  # agent: (sent, acked)
    async with cluster.explained():
        a, b = await asyncio.gather(
            cluster.start("A", lease=LEASE), cluster.start("B", lease=LEASE)
        )

        async def ask(index: int, agent: str) -> None:
            async with window:
                sent = time.monotonic()
                ack = await cluster.slash((a, b)[index % 2], f"hide dial {agent}")
                asked[agent] = (sent, time.monotonic())
            assert f"agent {agent}" in ack, ack

        async with asyncio.timeout(60):
            await asyncio.gather(*(ask(index, agent) for index, agent in enumerate(agents)))
            await slack.wait_for(lambda: all(_summaries(slack, agents).values()), 30)
            await simulator.wait_idle()

        assert simulator.peak_in_flight(TOKEN) == 1
        arrived = cluster.arrived()
        assert sorted(arrived) == agents, "each agent's call reached wolkvox once"
        position = {agent: index for index, agent in enumerate(arrived)}
        # A change acknowledged before another was sent was asked for first: it goes first.
        overtaken = [
            (first, then)
            for first in agents
            for then in agents
            if asked[first][1] < asked[then][0] and position[first] > position[then]
        ]
        assert not overtaken, f"calls overtaken by later ones: {overtaken[:10]}"
        assert [agent for agent in agents if simulator.button_state(agent, "dial") != "hide"] == []
        assert _summaries(slack, agents) == Counter(agents), "one summary per change"


@dataclass(frozen=True)
class Killed:
    survivor: AgentboxProcess  # B, or the dead A when there was no standby
    ts: str  # of the Slack message A posted
    orphan: int  # index in simulator.calls of the call A had in flight when it died


async def _kill_mid_command(cluster: Cluster, *, standby: bool) -> Killed:
    """Replica A takes ``hide dial 1001-1050`` and is SIGKILLed with its ~11th call in flight.

    With ``standby``, replica B is started (and ready) before A dies.
    """
    simulator = cluster.simulator
    simulator.config.latency = 0.05
    a = await cluster.start("A", lease=SHORT_LEASE)
    ack = await cluster.slash(a, "hide dial 1001-1050")
    assert "50 calls to wolkvox" in ack, ack
    await _until(simulator, lambda: len(simulator.calls) >= 10)
    simulator.hold()  # the next call stays in flight until A dies
    await simulator.wait_in_flight(TOKEN, 1)
    (orphan,) = [i for i, call in enumerate(simulator.calls) if call.status == IN_FLIGHT]
    ((channel, ts, reporter),) = await _progress_rows(cluster)
    assert (channel, ts) == (CHANNEL, cluster.message().ts), "A posted the progress message"
    assert str(a.pid) in reporter
    (claimer,) = await cluster.scalars("SELECT claimed_by FROM calls WHERE status = 'running'")
    assert str(a.pid) in str(claimer), "A holds the token's slot"
    b = await cluster.start("B", lease=SHORT_LEASE) if standby else None
    a.kill()
    await a.wait()
    simulator.release()
    return Killed(b or a, ts, orphan)


async def _progress_rows(cluster: Cluster) -> list[tuple[str, str, str]]:
    async with cluster.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT progress_channel, progress_ts, reporter_id FROM changes")
        )
        return [(str(c), str(t), str(r)) for c, t, r in rows]


async def _assert_finished_in_the_same_message(cluster: Cluster, killed: Killed) -> None:
    simulator, slack = cluster.simulator, cluster.slack
    await slack.wait_for(lambda: "50/50 done" in cluster.message().text, 30)
    await simulator.wait_idle()
    message = cluster.message()
    assert message.ts == killed.ts, "the message A posted is the one updated"
    assert "Hide: 50/50 done" in message.text
    agents = [str(agent) for agent in range(1001, 1051)]
    assert [agent for agent in agents if simulator.button_state(agent, "dial") != "hide"] == []
    # The call A had in flight is sent again (show/hide are idempotent): wolkvox may have
    # applied it too, its answer lost with A. Every other call is applied once.
    applied = cluster.answered_ok()
    applied[simulator.calls[killed.orphan].agent_id] = 1
    assert applied == Counter(agents), "every agent applied once"
    # One call at a time, apart from A's: wolkvox may not notice at once that its client died.
    assert _calls_in_flight_together(simulator, but=killed.orphan) == []
    assert set(await cluster.scalars("SELECT status FROM calls")) == {"succeeded"}


async def test_a_killed_replicas_change_is_finished_by_another(cluster: Cluster) -> None:
    async with cluster.explained(), asyncio.timeout(60):
        killed = await _kill_mid_command(cluster, standby=True)
        await _assert_finished_in_the_same_message(cluster, killed)
        ((_, _, reporter),) = await _progress_rows(cluster)
        assert str(killed.survivor.pid) in reporter, "B adopted the change after A's lease ran out"


async def test_a_killed_replica_resumes_its_change_when_started_again(cluster: Cluster) -> None:
    async with cluster.explained(), asyncio.timeout(60):
        killed = await _kill_mid_command(cluster, standby=False)
        assert not killed.survivor.running
        again = await cluster.start("A-again", lease=SHORT_LEASE)
        await _assert_finished_in_the_same_message(cluster, killed)
        ((_, _, reporter),) = await _progress_rows(cluster)
        assert str(again.pid) in reporter


async def test_slack_replays_run_once_whichever_replica_gets_them(cluster: Cluster) -> None:
    simulator, slack = cluster.simulator, cluster.slack
    simulator.config.latency = 0.01
    async with cluster.explained(), asyncio.timeout(60):
        a, b = await asyncio.gather(
            cluster.start("A", lease=LEASE), cluster.start("B", lease=LEASE)
        )
        body = cluster.body("hide dial 2001-2005", trigger_id="1700000000.replay1")
        first = await cluster.post(a, body)
        assert "5 calls to wolkvox" in first, first
        same = await cluster.post(a, body)
        other = await cluster.post(b, body)
        assert "Already received" in same and "Already received" in other, (same, other)

        # Two deliveries of one command racing on both replicas.
        racing = cluster.body("hide hungup 2001-2005", trigger_id="1700000000.replay2")
        acks = await asyncio.gather(cluster.post(a, racing), cluster.post(b, racing))
        assert sorted("Already received" in ack for ack in acks) == [False, True], acks

        def summaries() -> int:
            return sum("5/5 done" in m.text for m in slack.messages_in(CHANNEL))

        await slack.wait_for(lambda: summaries() == 2, 20)
        # A late retry, after the change is done, is still the same delivery.
        late = await cluster.post(b, body)
        assert "Already received" in late, late
        await simulator.wait_idle()

        assert await cluster.scalars("SELECT count(*) FROM changes") == [2]
        assert await cluster.scalars("SELECT count(*) FROM calls") == [10]
        sent = Counter((c.agent_id, c.button) for c in simulator.calls_for(TOKEN))
        expected = {
            (str(agent), button) for agent in range(2001, 2006) for button in ("dial", "hungup")
        }
        assert sent == Counter(expected), "each agent's button was called exactly once"
        assert len(slack.messages_in(CHANNEL)) == 2
        assert simulator.peak_in_flight(TOKEN) == 1


async def _readiness(http: httpx.AsyncClient, replica: AgentboxProcess) -> int:
    try:
        return (await http.get(f"{replica.url}/readyz", timeout=5)).status_code
    except httpx.HTTPError:
        return 0


async def _poll_readyz(http: httpx.AsyncClient, replica: AgentboxProcess, status: int) -> None:
    # Polling is the only way to observe readiness; the interval is short and the wait bounded.
    async with asyncio.timeout(20):
        while True:
            if await _readiness(http, replica) == status:
                return
            await asyncio.sleep(0.1)


async def _restart_postgresql_under_load(cluster: Cluster) -> AgentboxProcess:
    """Replica A, behind a TCP proxy, takes ``hide dial 4001-4030``; PostgreSQL "restarts"
    (the proxy drops every connection and refuses new ones for a while) in the middle; the
    change then finishes. Returns A."""
    simulator, slack = cluster.simulator, cluster.slack
    simulator.config.latency = 0.05
    target = make_url(cluster.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    cluster.stack.push_async_callback(proxy.aclose)
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    a = await cluster.start("A", database_url=proxied, lease=SHORT_LEASE)
    ack = await cluster.slash(a, "hide dial 4001-4030")
    assert "30 calls to wolkvox" in ack, ack
    await _until(simulator, lambda: len(simulator.calls) >= 5)

    await proxy.cut()
    await _poll_readyz(cluster.http, a, 503)
    refused = await cluster.slash(a, "hide disposition 4001")
    assert "could not record your request" in refused, refused
    # Down for a while: until A has looked for changes to take over and failed three times (it
    # looks every third of a lease, so the outage lasts about a lease).
    failed = re.compile(r"could not look for changes to take over")
    await a.wait_for_line(failed, count=3, within=20)
    await proxy.restore()
    await _poll_readyz(cluster.http, a, 200)

    await slack.wait_for(lambda: "30/30 done" in cluster.message().text, 40)
    await simulator.wait_idle()
    return a


async def test_a_postgresql_restart_under_load_is_survived(cluster: Cluster) -> None:
    simulator = cluster.simulator
    async with cluster.explained(), asyncio.timeout(75):
        await _restart_postgresql_under_load(cluster)
        agents = [str(agent) for agent in range(4001, 4031)]
        assert [agent for agent in agents if simulator.button_state(agent, "dial") != "hide"] == []
        assert set(cluster.answered_ok()) == set(agents)
        assert simulator.peak_in_flight(TOKEN) == 1
        assert set(await cluster.scalars("SELECT status FROM calls")) == {"succeeded"}
        assert simulator.button_state("4001", "disposition") is None, "refused, yet it ran"
        assert await cluster.scalars("SELECT count(*) FROM changes") == [1]


async def test_following_a_change_outlives_a_postgresql_restart(cluster: Cluster) -> None:
    async with cluster.explained(), asyncio.timeout(75):
        a = await _restart_postgresql_under_load(cluster)
        died = [line for line in a.lines if re.search(r"background task .* failed", line)]
        assert died == [], "a background task died"
