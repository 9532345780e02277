"""1. Ack latency: bursts of slash commands through ``POST /slack/events``, at once and paced."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from statistics import median

import bench.plots as plots
from bench.results import Figure, Section, Target, format_spread
from bench.scenarios import (
    SLACK_ACK_DEADLINE_MS,
    AckRun,
    Context,
    ProcessTimes,
    error_notes,
    measure_burst,
    running_server,
)
from bench.stats import Spread
from bot.fake_slack import FakeSlack

TARGET_P99_MS = 50.0
MODES = ("at once", "paced")


def _mode_label(mode: str, paced_over: float) -> str:
    return "at once" if mode == "at once" else f"paced over {paced_over:g} s"


async def measure(ctx: Context) -> Section:
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    results: dict[tuple[int, str], list[AckRun]] = {
        (burst, mode): [] for burst in plan.ack_bursts for mode in MODES
    }
    servers: list[ProcessTimes] = []
    for run in range(1, plan.runs + 1):
        for burst in plan.ack_bursts:
            for mode in MODES:
                await simulator.configure(latency=plan.ack_latency_s)
                await simulator.reset()
                paced_over = plan.ack_paced_over_s if mode == "paced" else None
                async with FakeSlack() as slack, running_server(config, simulator, slack) as server:
                    result = await measure_burst(
                        config,
                        [server],
                        slack,
                        burst=burst,
                        paced_over=paced_over,
                        first_agent=2001,
                    )
                    servers.append(await server.kill())
                results[(burst, mode)].append(result)
                ctx.say(
                    f"ack {burst} {_mode_label(mode, plan.ack_paced_over_s)}, run {run}/"
                    f"{plan.runs}: {result.accepted}/{result.sent} accepted, p50 "
                    f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, max "
                    f"{result.max_ms:.0f} ms"
                )
    return _section(ctx, results, servers)


def _section(
    ctx: Context, results: dict[tuple[int, str], list[AckRun]], servers: list[ProcessTimes]
) -> Section:
    plan = ctx.plan
    paced = plan.ack_paced_over_s
    judged = plan.ack_judged_burst
    section = Section(
        key="ack",
        title="Ack latency of slash-command bursts",
        runs=plan.runs,
        method=(
            f"Bursts of {', '.join(map(str, plan.ack_bursts))} distinct one-agent changes "
            f"(`/agentbox hide dial N`, signed as Slack signs them, from an admin) to `POST "
            f"/slack/events` of `agentbox serve` (its own process, a fresh SQLite database per "
            f"run). Two arrivals: all sent **at once**, and **paced**: spread evenly over "
            f"{paced:g} s. Latency is measured by the client, from sending each request to reading "
            f"its response (the ack). Meanwhile the server sends the calls it queued to the "
            f"simulator ({plan.ack_latency_s * 1000:g} ms each), as it would. Before each burst, "
            f"the same shape of requests to `GET /healthz` (a handler that does nothing) shows "
            f"what the client and the transport cost on their own. The target (p99 under "
            f"{TARGET_P99_MS:g} ms at {judged}) is judged on the burst **at once**, the harder "
            f"case; the paced figure is shown beside it."
        ),
    )
    for burst in plan.ack_bursts:
        for mode in MODES:
            runs = results[(burst, mode)]
            name = f"{burst} {_mode_label(mode, paced)}"
            judged_here = burst == judged
            target = (
                Target(f"p99 under {TARGET_P99_MS:g} ms at {judged}", "<", TARGET_P99_MS)
                if judged_here
                else None
            )
            suffix = " (judged)" if judged_here and mode == "at once" else ""
            suffix = " (reference)" if judged_here and mode == "paced" else suffix
            section.figures += [
                Figure(f"ack p50, {name}", "ms", [r.p50_ms for r in runs]),
                Figure(f"ack p95, {name}", "ms", [r.p95_ms for r in runs]),
                Figure(
                    f"ack p99, {name}{suffix}",
                    "ms",
                    [r.p99_ms for r in runs],
                    target=target,
                    headline=judged_here,
                ),
                Figure(f"ack max, {name}", "ms", [r.max_ms for r in runs]),
                Figure(
                    f"acks later than Slack's 3 s, {name}",
                    "",
                    [float(r.over_deadline) for r in runs],
                    target=Target("none later than Slack's 3000 ms", "<=", 0),
                    headline=mode == "at once",
                ),
                Figure(f"acks accepted, {name} (of {burst})", "", [r.accepted for r in runs]),
                Figure(
                    f"server CPU per command, {name}",
                    "ms",
                    [r.server_cpu_s / burst * 1000 for r in runs],
                ),
                Figure(
                    f"server's event loop waiting for a core, {name}",
                    "ms",
                    [r.server_cpu_wait_s * 1000 for r in runs],
                ),
                Figure(f"GET /healthz p99, {name}", "ms", [r.baseline_p99_ms for r in runs]),
            ]
    section.details.append(
        [
            "burst",
            "p50",
            "p95",
            "p99",
            "max",
            "later than 3 s",
            "server CPU per command",
            "event loop waiting for a core",
            "GET /healthz p99",
        ]
    )
    for burst in plan.ack_bursts:
        for mode in MODES:
            runs = results[(burst, mode)]
            section.details.append(
                [
                    f"{burst} {_mode_label(mode, paced)}",
                    _cell([r.p50_ms for r in runs]),
                    _cell([r.p95_ms for r in runs]),
                    _cell([r.p99_ms for r in runs]),
                    _cell([r.max_ms for r in runs]),
                    _cell([float(r.over_deadline) for r in runs], ""),
                    _cell([r.server_cpu_s / burst * 1000 for r in runs]),
                    _cell([r.server_cpu_wait_s * 1000 for r in runs]),
                    _cell([r.baseline_p99_ms for r in runs]),
                ]
            )
    section.commentary = _commentary(plan.ack_bursts, judged, paced, results)
    section.commentary += error_notes("ack run", servers)
    section.raw = {
        f"{burst} {mode}": [_raw(run) for run in runs] for (burst, mode), runs in results.items()
    }

    def draw(out: Path) -> list[Path]:
        return [plots.ack(out, results, plan.ack_bursts, judged, TARGET_P99_MS, paced)]

    section.draw = draw
    return section


def _cell(values: list[float], unit: str = "ms") -> str:
    return format_spread(Spread.of(values), unit)


def _raw(run: AckRun) -> dict[str, object]:
    data = asdict(run)
    data["latencies_ms"] = [round(v, 2) for v in run.latencies_ms]
    return data


def _commentary(
    bursts: tuple[int, ...],
    judged: int,
    paced: float,
    results: dict[tuple[int, str], list[AckRun]],
) -> list[str]:
    notes: list[str] = []
    for burst in bursts:
        instant, spread = results[(burst, "at once")], results[(burst, "paced")]
        p99 = median([r.p99_ms for r in instant])
        wall = median([r.burst_wall_ms for r in instant])
        cpu_ms = median([r.server_cpu_s / burst * 1000 for r in instant])
        healthz = median([r.baseline_p99_ms for r in instant])
        paced_p99 = median([r.p99_ms for r in spread])
        paced_cpu_ms = median([r.server_cpu_s / burst * 1000 for r in spread])
        gap_ms = paced * 1000 / burst
        verdict = ""
        if burst == judged:
            verdict = (
                f"**{'PASS' if p99 < TARGET_P99_MS else 'MISS'}** against the {TARGET_P99_MS:g} "
                f"ms target. "
            )
        text = (
            f"**{burst} at once:** p99 {p99:.0f} ms; {verdict}The last ack left {wall:.0f} ms "
            f"after the first request. The server used {cpu_ms:.1f} ms of CPU per command "
            f"(this includes the wolkvox calls it sent meanwhile); one process answers on one "
            f"event loop, so commands that arrive together wait for each other: p99 grows with "
            f"the burst, about {burst} x {cpu_ms:.1f} ms = {burst * cpu_ms:.0f} ms of work. The "
            f"same burst to `GET /healthz` has p99 {healthz:.0f} ms, so the transport is "
        )
        text += (
            "not what costs."
            if healthz < p99 / 3
            else "a large part of it (the client and the connection set-up, not agentbox)."
        )
        text += f" **Paced** over {paced:g} s (one every {gap_ms:.1f} ms): p99 {paced_p99:.0f} ms"
        paced_wait = median([r.server_cpu_wait_s * 1000 / r.burst_wall_ms for r in spread])
        if paced_cpu_ms >= gap_ms:
            text += (
                f"; each command still costs more ({paced_cpu_ms:.1f} ms of CPU) than the gap "
                f"between arrivals, so they queue even when paced."
            )
        elif paced_p99 > 3 * paced_cpu_ms and paced_wait > 0.1:
            text += (
                f"; each command costs less ({paced_cpu_ms:.1f} ms of CPU) than the gap between "
                f"arrivals, yet the server's event loop waited for a CPU core {paced_wait:.0%} "
                f"of the time: on this busy machine they queue anyway."
            )
        else:
            text += (
                f"; each command costs less ({paced_cpu_ms:.1f} ms of CPU) than the gap between "
                f"arrivals, so they seldom queue."
            )
        waited = median([r.server_cpu_wait_s * 1000 / r.burst_wall_ms for r in instant])
        if waited > 0.1:
            text += (
                f" At once, the server's event loop also waited for a CPU core {waited:.0%} of "
                f"the burst: other processes (the bench's own client and the simulator among "
                f"them) wanted the same cores."
            )
        late = median([float(r.over_deadline) for r in instant])
        if late:
            text += (
                f" {late:.0f} of the {burst} sent at once were answered after Slack's "
                f"{SLACK_ACK_DEADLINE_MS:.0f} ms: Slack would show those users `operation_timeout`."
            )
        notes.append(text)
    return notes
