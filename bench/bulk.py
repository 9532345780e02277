"""2. Bulk completion against the limit N x L / C."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from statistics import median

import aiohttp

import bench.plots as plots
from bench.overhead import BARE_HEADERS, bare_query
from bench.processes import BenchError
from bench.results import Figure, Section, Target, format_spread
from bench.scenarios import (
    BulkRun,
    Context,
    ProcessTimes,
    SimulatorCounts,
    Summaries,
    error_notes,
    measure_bulk,
    running_server,
)
from bench.stats import Spread
from bot.fake_slack import FakeSlack
from wolkvox.client import AGENT_DISPLAY_PATH

TARGET_RATIO = 1.05
#: Calls of the bare loop that shows, for each L, the ratio a client alone reaches (the floor).
FLOOR_CALLS = 100
#: Agents of the change each server makes before the measured cells.
WARM_UP_AGENTS = 2
Cell = tuple[int, float, int]
"""(agents N, latency L in seconds, concurrency C)"""


def cell_name(cell: Cell) -> str:
    agents, latency, concurrency = cell
    return f"N={agents}, L={latency * 1000:g} ms, C={concurrency}"


async def measure(ctx: Context) -> Section:
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    cells = [
        (agents, latency, concurrency)
        for concurrency in plan.bulk_concurrency
        for latency in plan.bulk_latencies_s
        for agents in plan.bulk_agents
    ]
    results: dict[Cell, list[BulkRun]] = {cell: [] for cell in cells}
    floors: dict[float, list[float]] = {latency: [] for latency in plan.bulk_latencies_s}
    servers: list[ProcessTimes] = []
    runs = plan.runs_for("bulk")
    for run in range(1, runs + 1):
        for latency in plan.bulk_latencies_s:
            # The floor: a bare aiohttp loop, one call after the other, to the same simulator.
            await simulator.configure(latency=latency)
            await simulator.reset()
            await bare_aiohttp_calls(simulator.url, FLOOR_CALLS, 90_000)
            span = SimulatorCounts.of(await simulator.stats()).span_s
            floors[latency].append(span / (FLOOR_CALLS * latency))
            ctx.say(
                f"bulk floor L={latency * 1000:g} ms, run {run}/{runs}: a bare aiohttp loop "
                f"reaches {floors[latency][-1]:.3f}"
            )
        for concurrency in plan.bulk_concurrency:
            summaries = Summaries()
            async with (
                FakeSlack(observer=summaries) as slack,
                running_server(config, simulator, slack, concurrency=concurrency) as server,
            ):
                # Not measured: the first change after a start loads code, prepares statements
                # and opens the connection to wolkvox (as in measurement 3).
                await measure_bulk(
                    config,
                    server,
                    slack,
                    summaries,
                    simulator,
                    agents=WARM_UP_AGENTS,
                    latency=plan.bulk_latencies_s[0],
                    concurrency=concurrency,
                    first_agent=99_000,
                    channel="C_BULK_WARM_UP",
                )
                for index, cell in enumerate(c for c in cells if c[2] == concurrency):
                    agents, latency, _ = cell
                    result = await measure_bulk(
                        config,
                        server,
                        slack,
                        summaries,
                        simulator,
                        agents=agents,
                        latency=latency,
                        concurrency=concurrency,
                        first_agent=100_000 + index * 1000,
                        channel=f"C_BULK_{index}",
                    )
                    results[cell].append(result)
                    ctx.say(
                        f"bulk {cell_name(cell)}, run {run}/{runs}: summary after "
                        f"{result.completion_s:.2f} s (limit {result.limit_s:.2f} s, ratio "
                        f"{result.ratio:.3f})"
                    )
                servers.append(await server.stop(config))
    return _section(ctx, cells, results, floors, servers)


def _section(
    ctx: Context,
    cells: list[Cell],
    results: dict[Cell, list[BulkRun]],
    floors: dict[float, list[float]],
    servers: list[ProcessTimes],
) -> Section:
    plan = ctx.plan
    section = Section(
        key="bulk",
        title="Bulk completion against the limit",
        runs=plan.runs_for("bulk"),
        method=(
            f"One `/agentbox hide dial A-B` over N agents, with the simulator answering each call "
            f"after L, and `WOLKVOX_CONCURRENCY=C`: N in {_list(plan.bulk_agents)}, L in "
            f"{_list(int(latency * 1000) for latency in plan.bulk_latencies_s)} ms, C in "
            f"{_list(plan.bulk_concurrency)}. The time runs from sending the command to its summary"
            f" reaching Slack (the fake Web API), and is compared with the limit N x L / C: every "
            f"call back to back, C at a time, at the simulator's latency. A ratio of 1 means "
            f"agentbox adds nothing; the target is at most {TARGET_RATIO}. One server per C and run"
            f" (SQLite), the cells one after the other, after one change of {WARM_UP_AGENTS} agents"
            f" that is not measured (the first change after a start loads code, prepares statements"
            f" and opens the connection to wolkvox). The *calls' span* is the same ratio seen from "
            f"the simulator: first call arriving to last call answered, which leaves out the ack, "
            f"the first claim and the summary. Before the cells, in each run, a bare `aiohttp` loop"
            f" (the lightest client here) sends {FLOOR_CALLS} calls one after the other to the same"
            f" simulator at each L, timed by the simulator like the calls' span: the ratio a client"
            f" alone reaches on this machine, the *floor* for C=1."
        ),
    )
    section.details.append(
        [
            "cell",
            "limit",
            "send to summary",
            "ratio",
            "calls' span ratio",
            "overhead per call",
            "server CPU per call",
            "waiting for a core per call",
            "peak in flight",
            "verdict",
        ]
    )
    for cell in cells:
        runs = results[cell]
        ratio = Figure(
            f"bulk ratio to N x L / C, {cell_name(cell)}",
            "x",
            [r.ratio for r in runs],
            target=Target(f"at most {TARGET_RATIO}", "<=", TARGET_RATIO),
            headline=True,
        )
        section.figures.append(ratio)
        section.details.append(
            [
                cell_name(cell),
                f"{runs[0].limit_s:.2f} s",
                format_spread(Spread.of([r.completion_s for r in runs]), "s"),
                format_spread(ratio.spread, "x"),
                format_spread(Spread.of([r.calls_ratio for r in runs]), "x"),
                format_spread(Spread.of([r.per_call_overhead_ms for r in runs]), "ms"),
                format_spread(
                    Spread.of([r.server_cpu_s / r.agents * 1000 for r in runs]),
                    "ms",
                ),
                format_spread(
                    Spread.of([r.server_cpu_wait_s / r.agents * 1000 for r in runs]),
                    "ms",
                ),
                f"{max(r.peak_in_flight for r in runs)} (C={cell[2]})",
                ratio.verdict,
            ]
        )
    for latency, ratios in floors.items():
        section.figures.append(
            Figure(f"bare aiohttp loop's ratio (the floor), L={latency * 1000:g} ms", "x", ratios)
        )
    section.commentary = _commentary(cells, results)
    section.commentary += _floor_notes(cells, results, floors)
    section.commentary += error_notes("bulk server", servers)
    section.raw = {cell_name(cell): [asdict(run) for run in results[cell]] for cell in cells}
    section.raw["floors"] = {f"L={lat * 1000:g} ms": ratios for lat, ratios in floors.items()}

    def draw(out: Path) -> list[Path]:
        return [plots.bulk(out, [(cell_name(c), results[c]) for c in cells], TARGET_RATIO)]

    section.draw = draw
    return section


def _list(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def _commentary(cells: list[Cell], results: dict[Cell, list[BulkRun]]) -> list[str]:
    notes: list[str] = []
    missed = [c for c in cells if median(r.ratio for r in results[c]) > TARGET_RATIO]
    notes.append(
        f"{len(cells) - len(missed)} of {len(cells)} cells meet the target of {TARGET_RATIO}."
    )
    for concurrency in sorted({c[2] for c in cells}):
        mine = [c for c in cells if c[2] == concurrency]
        overhead = [median(r.per_call_overhead_ms for r in results[c]) for c in mine]
        cpu = median(median(r.server_cpu_s / r.agents * 1000 for r in results[c]) for c in mine)
        spread = (
            f"{min(overhead):.1f}-{max(overhead):.1f}" if len(mine) > 1 else f"{overhead[0]:.1f}"
        )
        text = (
            f"At C={concurrency}, each call took {spread} ms beyond wolkvox's latency (the "
            f"per-cell medians of (time - N x L / C) x C / N). A fixed cost per call weighs more "
            f"the faster wolkvox answers: the ratio is about 1 + overhead / L, so the target of "
            f"{TARGET_RATIO} allows {(TARGET_RATIO - 1) * 20:.0f} ms per call at L=20 ms and "
            f"{(TARGET_RATIO - 1) * 100:.0f} ms at L=100 ms. "
        )
        wait = median(
            median(r.server_cpu_wait_s / r.agents * 1000 for r in results[c]) for c in mine
        )
        # C slots share one event loop, so per slot a call's overhead holds up to C calls' work.
        share = median(overhead) / concurrency
        busy_machine = wait >= 0.1 * median(overhead)
        text += f"The server used {cpu:.1f} ms of CPU per call"
        text += (
            f", and its event loop waited {wait:.1f} ms per call for a core other processes held."
            if busy_machine
            else "."
        )
        if cpu >= 0.6 * share:
            text += (
                " So the overhead is mostly agentbox's own work per call (claiming it and "
                "recording its answer in the database, following the change)"
                + (f", done for {concurrency} slots on one event loop" if concurrency > 1 else "")
                + (", stretched by a busy machine." if busy_machine else ".")
            )
        elif cpu + wait >= 0.6 * share:
            text += " So the overhead is agentbox's work per call, stretched by a busy machine."
        else:
            text += (
                " So most of the overhead is waiting between one call's answer and the next "
                "call (a wake-up, a database round trip), not work."
            )
        notes.append(text)
    span_gap = [
        median(r.completion_s - r.calls_span_s for r in results[c])
        for c in cells
        if not any(math.isnan(r.calls_span_s) for r in results[c])
    ]
    if span_gap:
        notes.append(
            f"Beyond the calls themselves, {min(span_gap) * 1000:.0f}-{max(span_gap) * 1000:.0f} "
            f"ms per change go to the ack, the first claim and the summary (send-to-summary "
            f"minus the calls' span at the simulator); it is what makes the small cells (N=10) "
            f"the hardest to meet."
        )
    over = [c for c in cells if max(r.peak_in_flight for r in results[c]) > c[2]]
    notes.append(
        "The simulator never saw more than C calls in flight for the token."
        if not over
        else "**The simulator saw more than C calls in flight** in: "
        + ", ".join(cell_name(c) for c in over)
    )
    refused = sum(r.simulator_calls_refused for c in cells for r in results[c])
    if refused:
        notes.append(f"The simulator refused {refused} calls in all (see the raw numbers).")
    return notes


def _floor_notes(
    cells: list[Cell], results: dict[Cell, list[BulkRun]], floors: dict[float, list[float]]
) -> list[str]:
    notes: list[str] = []
    for latency, ratios in floors.items():
        if not ratios:
            continue
        floor = median(ratios)
        ms = latency * 1000
        mine = [c for c in cells if c[1] == latency and c[2] == 1]
        spans = [median(r.calls_ratio for r in results[c]) for c in mine]
        text = (
            f"At L={ms:g} ms a bare aiohttp loop against the same simulator reaches {floor:.3f} "
            f"on its own: the client, the simulator and the machine's timers (a sleep of L ends "
            f"up to a millisecond late) cost {(floor - 1) * ms:.1f} ms per call before agentbox "
            f"does anything"
        )
        if spans and not any(math.isnan(v) for v in spans):
            above = [(v - floor) * ms for v in spans]
            text += (
                f"; agentbox's calls' span at C=1 is {min(spans):.3f}-{max(spans):.3f}, "
                f"{min(above):.1f} to {max(above):.1f} ms per call above it"
            )
        if floor > TARGET_RATIO:
            text += f". The target of {TARGET_RATIO} is below this floor here."
        else:
            text += "."
        notes.append(text)
    return notes


async def bare_aiohttp_calls(url: str, calls: int, first_agent: int) -> float:
    """``calls`` agent_display calls one after the other with a plain aiohttp session; wall
    seconds. The same request agentbox sends (POST, the query string, the two headers)."""
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        for agent in range(first_agent, first_agent + calls):
            async with http.post(
                url + AGENT_DISPLAY_PATH, params=bare_query(agent), headers=BARE_HEADERS
            ) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"the bare call was answered {response.status}")
        return time.perf_counter() - started
