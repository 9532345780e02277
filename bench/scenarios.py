"""The processes under test and the two primitive measurements the scenarios are built from.

- :func:`running_simulator`, :func:`running_server`: ``agentbox simulator`` and ``agentbox serve``
  as child processes on port 0 (a fresh SQLite database per server unless told otherwise).
- :func:`measure_burst`: N signed slash commands, all at once or spread over a time, each timed
  from sending to its HTTP response (the ack).
- :func:`measure_bulk`: one change over N agents, timed from sending it to its summary in Slack.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.clients import Client, ClientKind, Sample, open_client
from bench.plan import Plan
from bench.processes import (
    SERVER_READY,
    SIMULATOR_READY,
    BenchError,
    ChildProcess,
    agentbox_command,
    app_environment,
)
from bench.stats import percentile
from bot.fake_slack import FakeSlack
from bot.http import SLACK_EVENTS_PATH
from bot.slash import signed_headers, slash_command_body

ADMIN = "U_BENCH"
CHANNEL = "C_BENCH"
WOLKVOX_SERVER = "0042"
SLACK_ACK_DEADLINE_MS = 3000.0
#: How many failed requests a run keeps the text of (the count is always complete).
_KEPT_FAILURES = 5


@dataclass(frozen=True)
class BenchConfig:
    """Settings every measurement shares (the sizes of each are in :mod:`bench.plan`)."""

    start_timeout: float = 60.0
    stop_timeout: float = 30.0
    request_timeout: float = 60.0
    client: ClientKind = "aiohttp"
    postgres_url: str = ""
    """Server URL for the PostgreSQL runs; each run gets a database of its own there."""


@dataclass
class ProcessTimes:
    start_s: float
    stop_s: float
    error_lines: int
    first_errors: list[str] = field(default_factory=list)


# --- the simulator ----------------------------------------------------------------------------


class RemoteSimulator:
    """The simulator process, driven through its control endpoints."""

    def __init__(self, url: str, http: httpx.AsyncClient, child: ChildProcess) -> None:
        self.url = url
        self.child = child
        self._http = http

    async def reset(self) -> None:
        response = await self._http.post(f"{self.url}/_simulator/reset")
        response.raise_for_status()

    async def configure(self, **changes: Any) -> None:
        """Change its behaviour at run time (``latency=0.1``, ``hang_rate=1.0`` …)."""
        response = await self._http.post(f"{self.url}/_simulator/config", json=changes)
        if response.status_code != 200:
            raise BenchError(f"the simulator refused {changes}: {response.text}")

    async def stats(self) -> dict[str, Any]:
        response = await self._http.get(f"{self.url}/_simulator/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def until_answered(self, calls: int, within: float) -> SimulatorCounts:
        """Wait until ``calls`` calls were answered since the reset and none is in flight.

        The simulator has no way to push this, so its stats are polled (every 50 ms).
        """
        async with asyncio.timeout(within):
            while True:
                counts = SimulatorCounts.of(await self.stats())
                if counts.ok + counts.other >= calls and counts.in_flight == 0:
                    return counts
                await asyncio.sleep(0.05)  # polling interval


@dataclass(frozen=True)
class SimulatorCounts:
    """What the simulator saw since its last reset."""

    ok: int
    """Calls answered 200."""
    other: int
    """Calls answered anything else (403 for too many in flight, 5xx …)."""
    in_flight: int
    """Calls not answered yet."""
    peak_in_flight: int
    """The most calls one token had in flight at once."""
    span_s: float
    """From the first call's arrival to the last call's answer (the simulator's own clock)."""

    @classmethod
    def of(cls, stats: Mapping[str, Any]) -> SimulatorCounts:
        tokens: dict[str, dict[str, Any]] = stats.get("tokens", {})
        ok = other = 0
        for token in tokens.values():
            for status, count in token.get("statuses", {}).items():
                if status == "200":
                    ok += int(count)
                else:
                    other += int(count)
        peak = max((int(t.get("peak_in_flight", 0)) for t in tokens.values()), default=0)
        calls: list[dict[str, Any]] = stats.get("calls", [])
        starts = [float(c["started_at"]) for c in calls]
        ends = [float(c["finished_at"]) for c in calls if c.get("finished_at") is not None]
        span = max(ends) - min(starts) if starts and ends else float("nan")
        in_flight = int(stats.get("in_flight", 0))
        return cls(ok=ok, other=other, in_flight=in_flight, peak_in_flight=peak, span_s=span)


@asynccontextmanager
async def running_simulator(
    config: BenchConfig, workdir: Path, *, latency: float
) -> AsyncIterator[RemoteSimulator]:
    argv = [
        *agentbox_command(),
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--latency",
        str(latency),
    ]
    child = ChildProcess(
        "agentbox simulator", argv, env=app_environment({}), cwd=workdir, ready=SIMULATOR_READY
    )
    async with child, httpx.AsyncClient(timeout=30) as http:
        match = await child.start(config.start_timeout)
        yield RemoteSimulator(match["url"], http, child)
        await child.stop(config.stop_timeout)


# --- agentbox serve ---------------------------------------------------------------------------


@dataclass
class Server:
    child: ChildProcess
    url: str
    signing_secret: str
    start_s: float

    def slash(
        self, text: str, response_url: str, *, channel: str = CHANNEL, user: str = ADMIN
    ) -> tuple[str, dict[str, str]]:
        """A slash command's body and headers, signed as Slack signs them."""
        body = slash_command_body(text, user_id=user, channel_id=channel, response_url=response_url)
        return body, signed_headers(body, self.signing_secret)

    async def stop(self, config: BenchConfig) -> ProcessTimes:
        stop_s = await self.child.stop(config.stop_timeout)
        return self.times(stop_s)

    async def kill(self) -> ProcessTimes:
        """SIGKILL: after a burst, a graceful stop would hand over every queued change first,
        which takes long and is not what is measured."""
        await self.child.kill()
        return self.times()

    def times(self, stop_s: float = 0.0) -> ProcessTimes:
        return ProcessTimes(
            start_s=self.start_s,
            stop_s=stop_s,
            error_lines=self.child.error_lines,
            first_errors=list(self.child.first_errors),
        )


def server_environment(
    *,
    secret: str,
    slack: FakeSlack,
    simulator: RemoteSimulator,
    database_url: str,
    concurrency: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one ``agentbox serve`` (and of ``agentbox apply`` for its database)."""
    return app_environment(
        {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": slack.api_url,
            "WOLKVOX_SERVER": WOLKVOX_SERVER,
            "WOLKVOX_TOKEN": f"wv-bench-{secrets.token_hex(8)}",
            "WOLKVOX_BASE_URL": simulator.url,
            "WOLKVOX_CONCURRENCY": str(concurrency),
            "DATABASE_URL": database_url,
            "AGENTBOX_ADMINS": ADMIN,
            **(extra or {}),
        }
    )


@asynccontextmanager
async def running_server(
    config: BenchConfig,
    simulator: RemoteSimulator,
    slack: FakeSlack,
    *,
    concurrency: int = 1,
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    secret: str | None = None,
    before_start: Callable[[dict[str, str], Path], Awaitable[None]] | None = None,
) -> AsyncIterator[Server]:
    """``agentbox serve`` on port 0; a fresh SQLite database unless ``database_url`` is given.

    ``before_start(env, workdir)`` runs first with the server's environment (e.g. ``agentbox
    apply`` on its database). The server is killed if it is still running afterwards.
    """
    secret = secret or secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-") as tmp:
        workdir = Path(tmp)
        env = server_environment(
            secret=secret,
            slack=slack,
            simulator=simulator,
            database_url=database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            concurrency=concurrency,
            extra=extra_env,
        )
        if before_start is not None:
            await before_start(env, workdir)
        argv = [*agentbox_command(), "serve", "--host", "127.0.0.1", "--port", "0"]
        child = ChildProcess("agentbox serve", argv, env=env, cwd=workdir, ready=SERVER_READY)
        async with child:
            started = time.perf_counter()
            match = await child.start(config.start_timeout)
            start_s = time.perf_counter() - started
            yield Server(child, f"http://{match['host']}:{match['port']}", secret, start_s)


async def run_agentbox(
    config: BenchConfig, args: Sequence[str], *, env: Mapping[str, str], cwd: Path
) -> str:
    """Run one ``agentbox`` command to its end; its output, or :class:`BenchError`."""
    process = await asyncio.create_subprocess_exec(
        *agentbox_command(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(config.start_timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BenchError(f"`agentbox {' '.join(args)}` did not finish in time") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"`agentbox {' '.join(args)}` failed ({process.returncode}):\n{text}")
    return text


# --- Slack's side -----------------------------------------------------------------------------


class Summaries:
    """A FakeSlack observer: when each channel's change summary arrived.

    The summary is the progress message's last version, the only one that starts with the
    requester's mention (``<@U_BENCH>: …``); progress versions and trail lines do not.
    """

    def __init__(self, user: str = ADMIN) -> None:
        self.prefix = f"<@{user}>:"
        self.at: dict[str, float] = {}
        self.text: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.updates: Counter[str] = Counter()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        now = time.perf_counter()
        channel = str(payload.get("channel", ""))
        text = str(payload.get("text", ""))
        if kind not in ("posted", "updated"):
            return
        self.last[channel] = text
        if kind == "updated":
            self.updates[channel] += 1
        if channel not in self.at and text.startswith(self.prefix):
            self.at[channel] = now
            self.text[channel] = text


def ack_text(sample: Sample) -> str:
    """The ack's text: Bolt answers JSON, or plain text when the ack has nothing but text."""
    if sample.status != 200:
        return ""
    try:
        data = json.loads(sample.text)
    except ValueError:
        return sample.text
    return str(data.get("text", "")) if isinstance(data, dict) else ""


def accepted(sample: Sample) -> bool:
    """Whether the ack says the change was taken (":hourglass_flowing_sand: Hiding …")."""
    return "Hiding" in ack_text(sample) or "Showing" in ack_text(sample)


def describe(sample: Sample) -> str:
    status = "no response" if sample.status is None else f"HTTP {sample.status}"
    return f"{status}: {sample.text[:200]}"


async def warm_up(http: Client, server: Server, slack: FakeSlack) -> None:
    """One ``help``: Bolt calls auth.test on its first request; that is not what we measure."""
    body, headers = server.slash("help", slack.new_response_url())
    sample = await http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
    if "agentbox" not in ack_text(sample):
        raise BenchError(f"the warm-up `help` command was not answered: {describe(sample)}")


def open_http(
    config: BenchConfig, url: str, connections: int
) -> AbstractAsyncContextManager[Client]:
    return open_client(
        config.client, url, connections=connections, request_timeout=config.request_timeout
    )


async def fire(
    sends: Sequence[Callable[[], Awaitable[Sample]]], paced_over: float | None
) -> tuple[list[Sample], float]:
    """Start every send at once, or the i-th at ``i * paced_over / n`` s; samples and wall ms."""
    started = time.perf_counter()
    count = len(sends)

    async def at(index: int, send: Callable[[], Awaitable[Sample]]) -> Sample:
        if paced_over:
            delay = started + index * paced_over / count - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # arrival schedule, not synchronisation
        return await send()

    samples = await asyncio.gather(*(at(i, send) for i, send in enumerate(sends)))
    return list(samples), (time.perf_counter() - started) * 1000


# --- the ack burst ----------------------------------------------------------------------------


@dataclass
class AckRun:
    sent: int
    accepted: int
    paced_over_s: float
    """0 for all at once; else the commands were spread evenly over this many seconds."""
    latencies_ms: list[float]
    """Every answered request's latency, in the order the requests were created."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    over_deadline: int
    """Answers later than Slack's 3 s, plus requests never answered."""
    burst_wall_ms: float
    """From the first request sent to the last response received."""
    baseline_p50_ms: float
    baseline_p99_ms: float
    """The same shape of requests to ``GET /healthz``: what the client and transport cost."""
    server_cpu_s: float
    """CPU seconds the server process used during the burst."""
    server_cpu_wait_s: float
    """Seconds the server's event loop waited for a CPU core during the burst (a busy machine)."""
    failures: list[str] = field(default_factory=list)


def latency_summary(latencies: Sequence[float]) -> tuple[float, float, float, float, float]:
    if not latencies:
        raise BenchError("no request of the burst was answered")
    return (
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
        max(latencies),
        sum(latencies) / len(latencies),
    )


async def measure_burst(
    config: BenchConfig,
    servers: Sequence[Server],
    slack: FakeSlack,
    *,
    burst: int,
    paced_over: float | None,
    first_agent: int,
    text: Callable[[int], str] = lambda agent: f"hide dial {agent}",
) -> AckRun:
    """``burst`` distinct one-agent changes, round-robin over ``servers``; each one's ack time.

    The servers keep working on the queued calls while the acks are measured, as they would.
    """
    connections = burst + 8
    baseline_ms: list[float] = []
    for server in servers:
        # The transport's own cost: the same shape on a fresh pool, to a handler that does nothing.
        async with open_http(config, server.url, connections) as http:
            share = max(1, burst // len(servers))
            baseline, _ = await fire([partial(http.send, "GET", "/healthz")] * share, paced_over)
        bad = [s for s in baseline if s.status != 200]
        if bad:
            raise BenchError(f"GET /healthz failed during the baseline burst: {describe(bad[0])}")
        baseline_ms += [s.latency_ms for s in baseline]

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(open_http(config, server.url, connections))
            for server in servers
        ]
        for http, server in zip(clients, servers, strict=True):
            await warm_up(http, server, slack)
        sends: list[Callable[[], Awaitable[Sample]]] = []
        for index, agent in enumerate(range(first_agent, first_agent + burst)):
            which = index % len(servers)
            body, headers = servers[which].slash(text(agent), slack.new_response_url())
            sends.append(
                partial(
                    clients[which].send, "POST", SLACK_EVENTS_PATH, content=body, headers=headers
                )
            )
        cpu_before = sum(server.child.cpu_seconds() for server in servers)
        wait_before = sum(server.child.cpu_wait_seconds() for server in servers)
        samples, burst_wall_ms = await fire(sends, paced_over)
        cpu = sum(server.child.cpu_seconds() for server in servers) - cpu_before
        cpu_wait = sum(server.child.cpu_wait_seconds() for server in servers) - wait_before

    answered = [s.latency_ms for s in samples if s.status is not None]
    failures = [describe(s) for s in samples if not accepted(s)]
    p50, p95, p99, worst, mean = latency_summary(answered)
    return AckRun(
        sent=len(samples),
        accepted=len(samples) - len(failures),
        paced_over_s=paced_over or 0.0,
        latencies_ms=answered,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=worst,
        mean_ms=mean,
        over_deadline=sum(1 for s in samples if s.status is None)
        + sum(1 for v in answered if v > SLACK_ACK_DEADLINE_MS),
        burst_wall_ms=burst_wall_ms,
        baseline_p50_ms=percentile(baseline_ms, 50),
        baseline_p99_ms=percentile(baseline_ms, 99),
        server_cpu_s=cpu,
        server_cpu_wait_s=cpu_wait,
        failures=failures[:_KEPT_FAILURES],
    )


# --- one bulk change --------------------------------------------------------------------------


@dataclass
class BulkRun:
    agents: int
    latency_s: float
    concurrency: int
    ack_ms: float
    completion_s: float
    """From sending the command to its summary reaching Slack."""
    limit_s: float
    """N x L / C: every call back to back at the simulator's latency, C at a time."""
    ratio: float
    calls_span_s: float
    """From the first call reaching the simulator to the last one answered."""
    calls_ratio: float
    """``calls_span_s`` against the limit: the dispatcher's pacing alone."""
    per_call_overhead_ms: float
    """Time per call beyond wolkvox's latency: (completion - limit) x C / N."""
    server_cpu_s: float
    server_cpu_wait_s: float
    """Seconds the server's event loop waited for a CPU core (a busy machine)."""
    simulator_calls_ok: int
    simulator_calls_refused: int
    peak_in_flight: int
    progress_updates: int
    summary: str


def bulk_limit(agents: int, latency: float, concurrency: int) -> float:
    return agents * latency / concurrency


async def measure_bulk(
    config: BenchConfig,
    server: Server,
    slack: FakeSlack,
    summaries: Summaries,
    simulator: RemoteSimulator,
    *,
    agents: int,
    latency: float,
    concurrency: int,
    first_agent: int,
    channel: str,
) -> BulkRun:
    """``hide dial`` over ``agents`` agents at ``latency``: send -> summary in ``channel``.

    ``channel`` must be one no other change of this server reports into.
    """
    await simulator.configure(latency=latency)
    await simulator.reset()
    text = f"hide dial {first_agent}-{first_agent + agents - 1}"
    limit = bulk_limit(agents, latency, concurrency)
    within = limit * 4 + 30  # generous room for a slow machine, bounded
    async with open_http(config, server.url, 4) as http:
        await warm_up(http, server, slack)
        body, headers = server.slash(text, slack.new_response_url(), channel=channel)
        cpu_before = server.child.cpu_seconds()
        wait_before = server.child.cpu_wait_seconds()
        started = time.perf_counter()
        ack = await http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
        if not accepted(ack):
            raise BenchError(f"`{text}` was not accepted: {describe(ack)}")
        try:
            await slack.wait_for(lambda: channel in summaries.at, within=within)
        except TimeoutError:
            raise BenchError(
                f"no summary of `{text}` reached Slack within {within:.0f} s; the last message "
                f"said: {summaries.last.get(channel)!r}\n{server.child.last_output()}"
            ) from None
    completion = summaries.at[channel] - started
    cpu = server.child.cpu_seconds() - cpu_before
    cpu_wait = server.child.cpu_wait_seconds() - wait_before
    counts = SimulatorCounts.of(await simulator.stats())
    return BulkRun(
        agents=agents,
        latency_s=latency,
        concurrency=concurrency,
        ack_ms=ack.latency_ms,
        completion_s=completion,
        limit_s=limit,
        ratio=completion / limit if limit else float("nan"),
        calls_span_s=counts.span_s,
        calls_ratio=counts.span_s / limit if limit else float("nan"),
        per_call_overhead_ms=(completion - limit) * concurrency / agents * 1000,
        server_cpu_s=cpu,
        server_cpu_wait_s=cpu_wait,
        simulator_calls_ok=counts.ok,
        simulator_calls_refused=counts.other,
        peak_in_flight=counts.peak_in_flight,
        progress_updates=summaries.updates[channel],
        summary=summaries.text[channel],
    )


# --- what every measurement gets ----------------------------------------------------------------


@dataclass
class Context:
    config: BenchConfig
    plan: Plan
    simulator: RemoteSimulator
    say: Callable[[str], None]
    """Progress, to standard error."""


def error_notes(kind: str, runs: Sequence[ProcessTimes]) -> list[str]:
    """One note per distinct error the servers logged (up to numbers), with the runs it was in."""
    seen: dict[str, tuple[str, list[int]]] = {}
    for index, times in enumerate(runs, 1):
        for error in times.first_errors:
            text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ ", "", error)
            _, indexes = seen.setdefault(re.sub(r"\d+", "N", text), (text, []))
            if index not in indexes:
                indexes.append(index)
    notes = [
        f"{kind} {', '.join(map(str, indexes))}: the server logged `{text[:300]}`"
        for text, indexes in seen.values()
    ]
    total = sum(times.error_lines for times in runs)
    if total > len(notes):
        notes.append(f"{kind}: {total} ERROR records in all.")
    return notes
