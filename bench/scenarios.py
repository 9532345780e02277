"""The two measurements, each one run on a fresh ``agentbox serve`` and a fresh database."""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.clients import Client, ClientKind, Sample, open_client
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
    runs: int = 3
    burst: int = 200
    agents: int = 100
    latency: float = 0.05
    concurrency: int = 1
    start_timeout: float = 30.0
    stop_timeout: float = 20.0
    request_timeout: float = 30.0
    first_burst_agent: int = 2001
    first_bulk_agent: int = 1001
    client: ClientKind = "aiohttp"

    @property
    def bulk_limit_s(self) -> float:
        """The floor for the bulk change: every call back to back at the simulator's latency."""
        return self.agents * self.latency / self.concurrency

    @property
    def bulk_text(self) -> str:
        last = self.first_bulk_agent + self.agents - 1
        return f"hide dial {self.first_bulk_agent}-{last}"


@dataclass
class ProcessTimes:
    start_s: float
    stop_s: float
    error_lines: int
    first_errors: list[str] = field(default_factory=list)


@dataclass
class AckRun:
    sent: int
    accepted: int
    latencies_ms: list[float]
    """Every answered request's latency, in the order the requests were created."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    burst_wall_ms: float
    """From the first request sent to the last response received."""
    baseline_p50_ms: float
    baseline_p99_ms: float
    server: ProcessTimes
    failures: list[str] = field(default_factory=list)


@dataclass
class BulkRun:
    agents: int
    ack_ms: float
    completion_s: float
    limit_s: float
    ratio: float
    per_call_overhead_ms: float
    simulator_calls_ok: int
    peak_in_flight: int
    progress_updates: int
    summary: str
    server: ProcessTimes


# --- the processes ----------------------------------------------------------------------------


class RemoteSimulator:
    """The simulator process, driven through its control endpoints."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self._http = http

    async def reset(self) -> None:
        response = await self._http.post(f"{self.url}/_simulator/reset")
        response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        response = await self._http.get(f"{self.url}/_simulator/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


@asynccontextmanager
async def running_simulator(config: BenchConfig, workdir: Path) -> AsyncIterator[RemoteSimulator]:
    argv = [
        *agentbox_command(),
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--latency",
        str(config.latency),
    ]
    child = ChildProcess(
        "agentbox simulator", argv, env=app_environment({}), cwd=workdir, ready=SIMULATOR_READY
    )
    async with child, httpx.AsyncClient(timeout=10) as http:
        match = await child.start(config.start_timeout)
        yield RemoteSimulator(match["url"], http)
        await child.stop(config.stop_timeout)


@dataclass
class Server:
    child: ChildProcess
    url: str
    signing_secret: str
    start_s: float

    def slash(self, text: str, response_url: str) -> tuple[str, dict[str, str]]:
        """A slash command's body and headers, signed as Slack signs them."""
        body = slash_command_body(
            text, user_id=ADMIN, channel_id=CHANNEL, response_url=response_url
        )
        return body, signed_headers(body, self.signing_secret)

    async def stop(self, config: BenchConfig) -> ProcessTimes:
        stop_s = await self.child.stop(config.stop_timeout)
        return ProcessTimes(
            start_s=self.start_s,
            stop_s=stop_s,
            error_lines=self.child.error_lines,
            first_errors=list(self.child.first_errors),
        )


@asynccontextmanager
async def running_server(
    config: BenchConfig, simulator: RemoteSimulator, slack: FakeSlack
) -> AsyncIterator[Server]:
    """``agentbox serve`` on port 0 with a fresh SQLite database; killed if still running after."""
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-") as tmp:
        workdir = Path(tmp)
        env = app_environment(
            {
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": secret,
                "SLACK_API_URL": slack.api_url,
                "WOLKVOX_SERVER": WOLKVOX_SERVER,
                "WOLKVOX_TOKEN": f"wv-bench-{secrets.token_hex(8)}",
                "WOLKVOX_BASE_URL": simulator.url,
                "WOLKVOX_CONCURRENCY": str(config.concurrency),
                "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
                "AGENTBOX_ADMINS": ADMIN,
            }
        )
        argv = [*agentbox_command(), "serve", "--host", "127.0.0.1", "--port", "0"]
        child = ChildProcess("agentbox serve", argv, env=env, cwd=workdir, ready=SERVER_READY)
        async with child:
            started = time.perf_counter()
            match = await child.start(config.start_timeout)
            start_s = time.perf_counter() - started
            yield Server(child, f"http://{match['host']}:{match['port']}", secret, start_s)


# --- requests ---------------------------------------------------------------------------------


def _ack_text(sample: Sample) -> str:
    if sample.status != 200:
        return ""
    try:
        data = json.loads(sample.text)
    except ValueError:
        return ""
    return str(data.get("text", "")) if isinstance(data, dict) else ""


def _describe(sample: Sample) -> str:
    status = "no response" if sample.status is None else f"HTTP {sample.status}"
    return f"{status}: {sample.text[:200]}"


async def _warm_up(http: Client, server: Server, slack: FakeSlack) -> None:
    """One ``help``: Bolt calls auth.test on its first request; that is not what we measure."""
    body, headers = server.slash("help", slack.new_response_url())
    sample = await http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
    if "agentbox" not in _ack_text(sample):
        raise BenchError(f"the warm-up `help` command was not answered: {_describe(sample)}")


def _client(
    config: BenchConfig, server: Server, connections: int
) -> AbstractAsyncContextManager[Client]:
    return open_client(
        config.client, server.url, connections=connections, request_timeout=config.request_timeout
    )


def _latency_summary(latencies: Sequence[float]) -> tuple[float, float, float, float, float]:
    if not latencies:
        raise BenchError("no request of the burst was answered")
    return (
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
        max(latencies),
        sum(latencies) / len(latencies),
    )


# --- the measurements -------------------------------------------------------------------------


async def ack_burst(config: BenchConfig, simulator: RemoteSimulator) -> AckRun:
    """``config.burst`` distinct one-agent changes at once; each request's time to its ack.

    The server is stopped right after the burst: the wolkvox calls it queued (one per command,
    ``latency`` s each) are handed back at shutdown, not waited for.
    """
    await simulator.reset()
    connections = config.burst + 8
    async with FakeSlack() as slack, running_server(config, simulator, slack) as server:
        # The transport's own cost: the same burst shape on a fresh pool, against a handler that
        # does no work.
        async with _client(config, server, connections) as http:
            baseline = await asyncio.gather(
                *(http.send("GET", "/healthz") for _ in range(config.burst))
            )
        baseline_ms = [s.latency_ms for s in baseline if s.status == 200]
        if len(baseline_ms) != config.burst:
            bad = next(s for s in baseline if s.status != 200)
            raise BenchError(f"GET /healthz failed during the baseline burst: {_describe(bad)}")

        async with _client(config, server, connections) as http:
            await _warm_up(http, server, slack)
            requests = [
                server.slash(f"hide dial {agent}", slack.new_response_url())
                for agent in range(
                    config.first_burst_agent, config.first_burst_agent + config.burst
                )
            ]
            burst_started = time.perf_counter()
            samples = await asyncio.gather(
                *(
                    http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
                    for body, headers in requests
                )
            )
            burst_wall_ms = (time.perf_counter() - burst_started) * 1000
        times = await server.stop(config)

    answered = [s.latency_ms for s in samples if s.status is not None]
    accepted = [s for s in samples if "Hiding" in _ack_text(s)]
    failures = [_describe(s) for s in samples if "Hiding" not in _ack_text(s)]
    p50, p95, p99, worst, mean = _latency_summary(answered)
    return AckRun(
        sent=len(samples),
        accepted=len(accepted),
        latencies_ms=answered,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=worst,
        mean_ms=mean,
        burst_wall_ms=burst_wall_ms,
        baseline_p50_ms=percentile(baseline_ms, 50),
        baseline_p99_ms=percentile(baseline_ms, 99),
        server=times,
        failures=failures[:_KEPT_FAILURES],
    )


class _Arrivals:
    """A FakeSlack observer: when the first message containing ``marker`` arrived."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.at: float | None = None
        self.text = ""
        self.last_text = ""
        self.updates = 0

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        now = time.perf_counter()
        text = str(payload.get("text", ""))
        self.last_text = text
        if kind == "updated":
            self.updates += 1
        if self.at is None and self.marker in text:
            self.at, self.text = now, text


async def bulk_completion(config: BenchConfig, simulator: RemoteSimulator) -> BulkRun:
    """One change over ``config.agents`` agents: time from sending it to its summary in Slack."""
    await simulator.reset()
    arrivals = _Arrivals(f"{config.agents}/{config.agents}")
    # The calls alone take limit_s; allow generous room for a slow machine, bounded.
    within = config.bulk_limit_s * 4 + 20
    async with (
        FakeSlack(observer=arrivals) as slack,
        running_server(config, simulator, slack) as server,
    ):
        async with _client(config, server, 4) as http:
            await _warm_up(http, server, slack)
            body, headers = server.slash(config.bulk_text, slack.new_response_url())
            started = time.perf_counter()
            ack = await http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
            if "Hiding" not in _ack_text(ack):
                raise BenchError(f"`{config.bulk_text}` was not accepted: {_describe(ack)}")
            try:
                await slack.wait_for(lambda: arrivals.at is not None, within=within)
            except TimeoutError:
                raise BenchError(
                    f"no message containing {arrivals.marker!r} reached Slack within "
                    f"{within:.0f} s; the last one said: {arrivals.last_text!r}\n"
                    f"{server.child.last_output()}"
                ) from None
        assert arrivals.at is not None
        completion_s = arrivals.at - started
        stats = await simulator.stats()
        times = await server.stop(config)

    tokens: dict[str, dict[str, Any]] = stats.get("tokens", {})
    calls_ok = sum(int(t.get("statuses", {}).get("200", 0)) for t in tokens.values())
    peak = max((int(t.get("peak_in_flight", 0)) for t in tokens.values()), default=0)
    return BulkRun(
        agents=config.agents,
        ack_ms=ack.latency_ms,
        completion_s=completion_s,
        limit_s=config.bulk_limit_s,
        ratio=completion_s / config.bulk_limit_s if config.bulk_limit_s else float("nan"),
        per_call_overhead_ms=(completion_s - config.bulk_limit_s) / config.agents * 1000,
        simulator_calls_ok=calls_ok,
        peak_in_flight=peak,
        progress_updates=arrivals.updates,
        summary=arrivals.text,
        server=times,
    )
