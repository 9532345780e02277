"""4. Overhead per call: agentbox's path against a bare httpx call to the same simulator."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import httpx

import bench.plots as plots
from bench.processes import BenchError
from bench.results import Figure, Section
from bench.scenarios import (
    WOLKVOX_SERVER,
    Context,
    ProcessTimes,
    SimulatorCounts,
    Summaries,
    error_notes,
    measure_bulk,
    running_server,
)
from bot.fake_slack import FakeSlack
from wolkvox.client import AGENT_DISPLAY_PATH


@dataclass
class OverheadRun:
    calls: int
    latency_s: float
    bare_per_call_ms: float
    """The bare loop's calls' span at the simulator, per call."""
    bare_client_per_call_ms: float
    """The bare loop's own wall time, per call."""
    agentbox_per_call_ms: float
    """agentbox's calls' span at the simulator, per call."""
    agentbox_end_to_end_per_call_ms: float
    """Send to summary, per call."""
    ratio: float
    """agentbox per call / bare per call, both at the simulator."""
    agentbox_cpu_per_call_ms: float


#: The headers of a bare loop's calls: the two agentbox sends.
BARE_HEADERS = {"wolkvox-token": "wv-bench-bare", "wolkvox_server": WOLKVOX_SERVER}


def bare_query(agent: int) -> dict[str, str]:
    """The query string of a bare loop's call to ``agent``: the one agentbox sends."""
    return {"agent_id": str(agent), "api": "agent_display", "display": "hide", "button": "dial"}


async def bare_calls(url: str, calls: int, first_agent: int) -> float:
    """``calls`` agent_display calls one after the other with a plain httpx client; wall seconds.

    The same request agentbox sends (POST, the query string, the two headers, an empty body).
    """
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.perf_counter()
        for agent in range(first_agent, first_agent + calls):
            response = await http.post(
                url + AGENT_DISPLAY_PATH,
                params=bare_query(agent),
                headers=BARE_HEADERS,
                content=b"",
            )
            if response.status_code != 200:
                raise BenchError(f"the bare call was answered {response.status_code}")
        return time.perf_counter() - started


async def measure(ctx: Context) -> Section:
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    calls, latency = plan.overhead_calls, plan.overhead_latency_s
    results: list[OverheadRun] = []
    servers: list[ProcessTimes] = []
    for run in range(1, plan.runs + 1):
        summaries = Summaries()
        async with (
            FakeSlack(observer=summaries) as slack,
            running_server(config, simulator, slack) as server,
        ):
            await simulator.configure(latency=latency)
            await simulator.reset()
            bare_wall = await bare_calls(simulator.url, calls, 50_000)
            bare = SimulatorCounts.of(await simulator.stats())
            box = await measure_bulk(
                config,
                server,
                slack,
                summaries,
                simulator,
                agents=calls,
                latency=latency,
                concurrency=1,
                first_agent=60_000,
                channel="C_OVERHEAD",
            )
            servers.append(await server.stop(config))
        result = OverheadRun(
            calls=calls,
            latency_s=latency,
            bare_per_call_ms=bare.span_s / calls * 1000,
            bare_client_per_call_ms=bare_wall / calls * 1000,
            agentbox_per_call_ms=box.calls_span_s / calls * 1000,
            agentbox_end_to_end_per_call_ms=box.completion_s / calls * 1000,
            ratio=box.calls_span_s / bare.span_s,
            agentbox_cpu_per_call_ms=box.server_cpu_s / calls * 1000,
        )
        results.append(result)
        ctx.say(
            f"overhead run {run}/{plan.runs}: agentbox {result.agentbox_per_call_ms:.2f} ms per "
            f"call, bare httpx {result.bare_per_call_ms:.2f} ms, ratio {result.ratio:.1f}"
        )
    return _section(ctx, results, servers)


def _section(ctx: Context, results: list[OverheadRun], servers: list[ProcessTimes]) -> Section:
    plan = ctx.plan
    section = Section(
        key="overhead",
        title="Overhead per call",
        runs=plan.runs,
        method=(
            f"In each run, against the same simulator at {plan.overhead_latency_s * 1000:g} ms "
            f"latency (so that only the overhead is left): {plan.overhead_calls} calls one after "
            f"the other with a bare `httpx.AsyncClient` (the same request agentbox sends), then "
            f"one `hide dial` command over {plan.overhead_calls} agents through agentbox "
            f"(`WOLKVOX_CONCURRENCY=1`, SQLite). Both are timed by the simulator, from the first "
            f"call's arrival to the last call's answer, and divided by the number of calls; the "
            f"ratio is agentbox's time per call over the bare loop's."
        ),
        figures=[
            Figure("per call, bare httpx loop", "ms", [r.bare_per_call_ms for r in results]),
            Figure("per call, agentbox's path", "ms", [r.agentbox_per_call_ms for r in results]),
            Figure("agentbox / bare httpx", "x", [r.ratio for r in results], headline=True),
            Figure(
                "per call, agentbox send to summary",
                "ms",
                [r.agentbox_end_to_end_per_call_ms for r in results],
            ),
            Figure(
                "agentbox server CPU per call", "ms", [r.agentbox_cpu_per_call_ms for r in results]
            ),
        ],
    )
    bare = median(r.bare_per_call_ms for r in results)
    box = median(r.agentbox_per_call_ms for r in results)
    cpu = median(r.agentbox_cpu_per_call_ms for r in results)
    section.commentary = [
        f"A call through agentbox takes {box:.2f} ms against {bare:.2f} ms for the bare loop: "
        f"{box - bare:.2f} ms more per call. agentbox claims each call from the database, "
        f"sends it through its client (with a deadline and retries), records the answer and "
        f"wakes whoever follows the change; its server used {cpu:.2f} ms of CPU per call. With "
        f"wolkvox's real latency (tens to hundreds of ms) this difference is what measurement 2's "
        f"ratio above 1 is made of."
    ]
    section.commentary += error_notes("overhead server", servers)
    section.raw = {"runs": [asdict(r) for r in results]}

    def draw(out: Path) -> list[Path]:
        return [plots.overhead(out, results)]

    section.draw = draw
    return section
