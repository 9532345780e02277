"""7. The inline baseline (bench/baseline_app.py) against agentbox, at Slack's 3 s deadline."""

from __future__ import annotations

import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from statistics import median

import bench.plots as plots
from bench.machine import REPOSITORY
from bench.processes import SERVER_READY, ChildProcess
from bench.results import Figure, Section, Target
from bench.scenarios import (
    SLACK_ACK_DEADLINE_MS,
    AckRun,
    Context,
    ProcessTimes,
    RemoteSimulator,
    Server,
    SimulatorCounts,
    error_notes,
    measure_burst,
    running_server,
    server_environment,
)
from bot.fake_slack import FakeSlack

APPS = ("inline baseline", "agentbox")


@dataclass(frozen=True)
class Shape:
    commands: int
    """Sent at once."""
    agents: int
    """Per command."""

    @property
    def name(self) -> str:
        if self.commands == 1:
            return f"1 command of {self.agents} agent{'s' if self.agents > 1 else ''}"
        return f"{self.commands} one-agent commands at once"


@dataclass
class BaselineRun:
    app: str
    shape: str
    ack: AckRun
    refused_calls: int
    """Calls the simulator refused (e.g. a third one in flight on the token)."""
    not_acked: int
    """Commands whose answer was not an ack of the change: for the inline handler, Bolt's own
    404 ("unhandled request") once the handler has not acked within its 3 s ack timeout."""
    calls_span_s: float
    """From the shape's first call reaching wolkvox to its last answer: when the inline handler
    had all its answers (and would have acked, had Bolt waited)."""


@asynccontextmanager
async def running_baseline(
    ctx: Context, simulator: RemoteSimulator, slack: FakeSlack
) -> AsyncIterator[Server]:
    """``python -m bench.baseline_app`` on port 0, configured like ``agentbox serve``."""
    secret = secrets.token_hex(16)
    env = server_environment(
        secret=secret,
        slack=slack,
        simulator=simulator,
        database_url="unused",
        concurrency=1,
        extra={"PYTHONPATH": str(REPOSITORY)},
    )
    argv = [sys.executable, "-m", "bench.baseline_app", "--host", "127.0.0.1", "--port", "0"]
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-baseline-") as tmp:
        child = ChildProcess("inline baseline", argv, env=env, cwd=Path(tmp), ready=SERVER_READY)
        async with child:
            started = time.perf_counter()
            match = await child.start(ctx.config.start_timeout)
            start_s = time.perf_counter() - started
            yield Server(child, f"http://{match['host']}:{match['port']}", secret, start_s)


def shapes(ctx: Context) -> list[Shape]:
    plan = ctx.plan
    return [Shape(1, agents) for agents in plan.baseline_agents] + [
        Shape(commands, 1) for commands in plan.baseline_bursts
    ]


def _command(first: int, *, agents: int) -> str:
    return f"hide dial {first}-{first + agents - 1}"


async def _shapes_on(ctx: Context, app: str, server: Server, slack: FakeSlack) -> list[BaselineRun]:
    out: list[BaselineRun] = []
    first = 80_000
    for shape in shapes(ctx):
        await ctx.simulator.reset()
        agents = shape.agents
        ack = await measure_burst(
            ctx.config,
            [server],
            slack,
            burst=shape.commands,
            paced_over=None,
            first_agent=first,
            text=partial(_command, agents=agents),
        )
        first += shape.commands * shape.agents + 1000
        if app != APPS[0]:
            # agentbox's calls go on in its queue; its next ack does not wait for them.
            refused = SimulatorCounts.of(await ctx.simulator.stats()).other
            out.append(
                BaselineRun(app, shape.name, ack, refused, ack.sent - ack.accepted, math.nan)
            )
            continue
        # The inline handler goes on calling past Bolt's 3 s, holding the token: the next shape
        # starts when the simulator has answered every call.
        calls = shape.commands * shape.agents
        counts = await ctx.simulator.until_answered(
            calls, within=calls * ctx.plan.baseline_latency_s * 3 + 30
        )
        out.append(
            BaselineRun(app, shape.name, ack, counts.other, ack.sent - ack.accepted, counts.span_s)
        )
    return out


async def measure(ctx: Context) -> Section:
    plan = ctx.plan
    results: dict[tuple[str, str], list[BaselineRun]] = {}
    servers: list[ProcessTimes] = []
    for run in range(1, plan.runs + 1):
        await ctx.simulator.configure(latency=plan.baseline_latency_s)
        for app in APPS:
            async with FakeSlack() as slack:
                starter = running_baseline if app == APPS[0] else _agentbox
                async with starter(ctx, ctx.simulator, slack) as server:
                    for result in await _shapes_on(ctx, app, server, slack):
                        results.setdefault((app, result.shape), []).append(result)
                        ctx.say(
                            f"baseline: {app}, {result.shape}, run {run}/{plan.runs}: ack max "
                            f"{result.ack.max_ms:.0f} ms"
                        )
                    servers.append(await server.kill())
    return _section(ctx, results, servers)


@asynccontextmanager
async def _agentbox(
    ctx: Context, simulator: RemoteSimulator, slack: FakeSlack
) -> AsyncIterator[Server]:
    async with running_server(ctx.config, simulator, slack) as server:
        yield server


def _section(
    ctx: Context, results: dict[tuple[str, str], list[BaselineRun]], servers: list[ProcessTimes]
) -> Section:
    plan = ctx.plan
    deadline = SLACK_ACK_DEADLINE_MS
    latency_ms = plan.baseline_latency_s * 1000
    section = Section(
        key="baseline",
        title="The inline baseline: a Bolt handler that calls wolkvox before it acks",
        runs=plan.runs,
        method=(
            f"`bench/baseline_app.py` is the obvious alternative: a Bolt `AsyncApp` whose "
            f"`/agentbox` handler sends one httpx call per agent to wolkvox (the simulator, at "
            f"{latency_ms:g} ms per call) and acks when they have all answered, holding the "
            f"token's limit of one call in flight across commands. It runs as its own process "
            f"behind aiohttp like `agentbox serve`. Both get the same shapes: single commands of "
            f"{', '.join(map(str, plan.baseline_agents))} agents, and bursts of "
            f"{', '.join(map(str, plan.baseline_bursts))} one-agent commands at once. Slack "
            f"shows `operation_timeout` to the user for any ack later than {deadline:.0f} ms; "
            f"such acks are marked MISS."
        ),
    )
    section.details.append(
        [
            "shape",
            "inline baseline: slowest answer",
            "not acked (Bolt's 404)",
            "its calls took",
            "agentbox: slowest ack",
        ]
    )
    for shape in shapes(ctx):
        inline = results[(APPS[0], shape.name)]
        box = results[(APPS[1], shape.name)]
        slowest = Figure(
            f"inline baseline, slowest ack, {shape.name}",
            "ms",
            [r.ack.max_ms for r in inline],
            target=Target(f"within Slack's {deadline:.0f} ms", "<", deadline),
            headline=True,
        )
        section.figures += [
            slowest,
            Figure(
                f"inline baseline, acks later than 3 s, {shape.name}",
                "",
                [r.ack.over_deadline for r in inline],
            ),
            Figure(
                f"inline baseline, commands given Bolt's 404 instead of an ack, {shape.name}",
                "",
                [r.not_acked for r in inline],
            ),
            Figure(
                f"inline baseline, its wolkvox calls took, {shape.name}",
                "s",
                [r.calls_span_s for r in inline],
            ),
            Figure(
                f"agentbox, slowest ack, {shape.name}",
                "ms",
                [r.ack.max_ms for r in box],
                target=Target(f"within Slack's {deadline:.0f} ms", "<", deadline),
            ),
        ]
        section.details.append(
            [
                shape.name,
                f"{median(r.ack.max_ms for r in inline):.0f} ms ({slowest.verdict})",
                f"{median(r.not_acked for r in inline):g} of {shape.commands}",
                f"{median(r.calls_span_s for r in inline):.1f} s",
                f"{median(r.ack.max_ms for r in box):.0f} ms",
            ]
        )
    section.commentary = _commentary(ctx, results)
    section.commentary += error_notes("baseline/agentbox server", servers)
    section.raw = {
        f"{app}: {shape}": [asdict(r) | {"ack": _slim(r.ack)} for r in runs]
        for (app, shape), runs in results.items()
    }

    def draw(out: Path) -> list[Path]:
        rows = [
            (shape.name, results[(APPS[0], shape.name)], results[(APPS[1], shape.name)])
            for shape in shapes(ctx)
        ]
        return [plots.baseline(out, rows, deadline)]

    section.draw = draw
    return section


def _slim(ack: AckRun) -> dict[str, object]:
    data = asdict(ack)
    data["latencies_ms"] = [round(v, 1) for v in ack.latencies_ms]
    return data


def _commentary(ctx: Context, results: dict[tuple[str, str], list[BaselineRun]]) -> list[str]:
    latency_ms = ctx.plan.baseline_latency_s * 1000
    per_call = int(SLACK_ACK_DEADLINE_MS // latency_ms)
    box_slowest = max(
        (r.ack.max_ms for (app, _), runs in results.items() if app == APPS[1] for r in runs),
        default=float("nan"),
    )
    notes = [
        f"Inline, the ack waits for every call: N calls at {latency_ms:g} ms take N x "
        f"{latency_ms:g} ms at the least, so any command of more than about {per_call} agents, "
        f"or more than {per_call} one-agent commands arriving together on one token, misses "
        f"Slack's 3 s, and the user sees `operation_timeout` while the calls go on (and "
        f"cannot tell whether they will). agentbox records the change and acks before any "
        f"call; its slowest ack over every shape and run here was {box_slowest:.0f} ms."
    ]
    missed = [
        shape
        for (app, shape), runs in results.items()
        if app == APPS[0] and median(r.ack.max_ms for r in runs) > SLACK_ACK_DEADLINE_MS
    ]
    if missed:
        notes.append("The inline baseline missed the deadline for: " + "; ".join(missed) + ".")
    not_acked = sum(
        r.not_acked for (app, _), runs in results.items() if app == APPS[0] for r in runs
    )
    if not_acked:
        notes.append(
            f"Where the inline handler had not acked after 3 s, Bolt itself gave up and answered "
            f"`404 unhandled request` ({not_acked} commands over all runs), while the handler "
            f"went on calling wolkvox: its slowest answer is therefore about 3 s even where its "
            f"calls took longer (the *its calls took* column). To the user it is the same "
            f"failure as Slack's own timeout."
        )
    refused = sum(r.refused_calls for runs in results.values() for r in runs)
    if refused:
        notes.append(f"The simulator refused {refused} calls (see the raw numbers).")
    return notes
