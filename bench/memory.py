"""5. Memory: the server's resident size with 10,000 calls queued."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from statistics import median

import bench.plots as plots
from bench.clients import Sample
from bench.processes import BenchError
from bench.results import Figure, Section, Target
from bench.scenarios import (
    Context,
    SimulatorCounts,
    accepted,
    describe,
    fire,
    open_http,
    running_server,
    warm_up,
)
from bench.stats import percentile
from bot.fake_slack import FakeSlack
from bot.http import SLACK_EVENTS_PATH

TARGET_MB = 150.0
MB = 1024 * 1024
#: Seconds the simulator holds each call: the first call stays in flight, the rest stay queued.
HOLD_S = 600.0
SAMPLE_EVERY_S = 0.02


@dataclass
class MemoryRun:
    commands: int
    calls: int
    idle_mb: float
    """After the warm-up, before the commands."""
    peak_mb: float
    settled_mb: float
    """``memory_settle_s`` after the last ack."""
    calls_sent: int
    """Calls the simulator received: everything else stayed queued."""
    ack_p99_ms: float
    timeline: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the commands were sent, MB)."""


async def _one(ctx: Context) -> MemoryRun:
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    per_command = plan.memory_command_agents
    commands = -(-plan.memory_calls // per_command)
    await simulator.configure(latency=HOLD_S)
    await simulator.reset()
    try:
        async with (
            FakeSlack() as slack,
            running_server(config, simulator, slack) as server,
            open_http(config, server.url, commands + 4) as http,
        ):
            await warm_up(http, server, slack)
            idle = server.child.rss_bytes() / MB
            timeline: list[tuple[float, float]] = []
            started = time.perf_counter()

            async def sample() -> None:
                while True:
                    timeline.append((time.perf_counter() - started, server.child.rss_bytes() / MB))
                    await asyncio.sleep(SAMPLE_EVERY_S)  # a sampling period, not a wait

            sampler = asyncio.create_task(sample())
            try:
                sends: list[Callable[[], Awaitable[Sample]]] = []
                for index in range(commands):
                    first = 70_000 + index * per_command
                    count = min(per_command, plan.memory_calls - index * per_command)
                    body, headers = server.slash(
                        f"hide dial {first}-{first + count - 1}", slack.new_response_url()
                    )
                    sends.append(
                        partial(http.send, "POST", SLACK_EVENTS_PATH, content=body, headers=headers)
                    )
                samples, _ = await fire(sends, None)
                await asyncio.sleep(plan.memory_settle_s)  # how long "settled" is, by definition
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            settled = server.child.rss_bytes() / MB
            refused = [describe(s) for s in samples if not accepted(s)]
            if refused:
                raise BenchError(f"{len(refused)} commands were not accepted: {refused[0]}")
            counts = SimulatorCounts.of(await simulator.stats())
            # Not a graceful stop: that would give the held call its 10 s of grace.
            await server.child.kill()
    finally:
        await simulator.configure(latency=0.0)
        await simulator.reset()
    return MemoryRun(
        commands=commands,
        calls=plan.memory_calls,
        idle_mb=idle,
        peak_mb=max(mb for _, mb in timeline),
        settled_mb=settled,
        calls_sent=counts.ok + counts.other + counts.in_flight,
        ack_p99_ms=percentile([s.latency_ms for s in samples], 99),
        timeline=[(round(t, 3), round(mb, 2)) for t, mb in timeline],
    )


async def measure(ctx: Context) -> Section:
    plan = ctx.plan
    results: list[MemoryRun] = []
    for run in range(1, plan.runs + 1):
        result = await _one(ctx)
        results.append(result)
        ctx.say(
            f"memory run {run}/{plan.runs}: {result.calls} calls queued by {result.commands} "
            f"commands; RSS idle {result.idle_mb:.0f} MB, peak {result.peak_mb:.0f} MB, settled "
            f"{result.settled_mb:.0f} MB"
        )
    section = Section(
        key="memory",
        title=f"Memory with {plan.memory_calls:,} calls queued",
        runs=plan.runs,
        method=(
            f"{results[0].commands} commands of {plan.memory_command_agents} agents "
            f"(`hide dial A-B`, agentbox's largest) sent at once to one `agentbox serve` "
            f"(SQLite): {plan.memory_calls} calls. The simulator holds each call "
            f"{HOLD_S:g} s, so the first one stays in flight and every other stays queued. The "
            f"server's resident set size (VmRSS in /proc) is sampled every "
            f"{SAMPLE_EVERY_S * 1000:g} ms from sending the commands until "
            f"{plan.memory_settle_s:g} s after the last ack; the target is judged on the peak."
        ),
        figures=[
            Figure(
                f"peak RSS with {plan.memory_calls} calls queued",
                "MB",
                [r.peak_mb for r in results],
                target=Target(f"under {TARGET_MB:g} MB", "<", TARGET_MB),
                headline=True,
            ),
            Figure("RSS idle (after one command)", "MB", [r.idle_mb for r in results]),
            Figure(
                f"RSS {plan.memory_settle_s:g} s after the last ack",
                "MB",
                [r.settled_mb for r in results],
            ),
            Figure("calls that reached the simulator", "", [r.calls_sent for r in results]),
            Figure(
                f"ack p99 of the {results[0].commands} commands",
                "ms",
                [r.ack_p99_ms for r in results],
            ),
        ],
    )
    peak = median(r.peak_mb for r in results)
    idle = median(r.idle_mb for r in results)
    section.commentary = [
        f"The server grew from {idle:.0f} MB idle to a peak of {peak:.0f} MB "
        f"(**{'PASS' if peak < TARGET_MB else 'MISS'}** against {TARGET_MB:g} MB): "
        f"{(peak - idle) * MB / plan.memory_calls / 1024:.1f} KiB per queued call at the peak. "
        f"The queued calls themselves are rows of the `calls` table (storage/queue.py), not "
        f"objects in the process; the growth comes with taking {results[0].commands} commands "
        f"at once (their requests, transactions and the task that follows each change)."
    ]
    section.raw = {"runs": [asdict(r) for r in results]}

    def draw(out: Path) -> list[Path]:
        return [plots.memory(out, results, TARGET_MB)]

    section.draw = draw
    return section
