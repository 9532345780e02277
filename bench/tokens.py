"""3. Many tokens: K operations (each its own wolkvox token) working at once, against their limits.

Each run stores 1 + 10 + 50 operations, each with its own token and one team, with ``agentbox
apply`` (tokens from environment variables, encrypted with a fresh ``AGENTBOX_ENCRYPTION_KEYS``) and
starts one ``agentbox serve`` on that database. Then, for each K in turn, K commands go at once,
one per team of K operations no other K uses (``hide dial team:bench-tN``), each from its team's
channel. The limit of each token is C / L calls per second (C = 1): together K / L.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from statistics import median

import bench.plots as plots
from bench.processes import BenchError
from bench.results import Figure, Section, Target
from bench.scenarios import (
    BenchConfig,
    Context,
    ProcessTimes,
    Server,
    SimulatorCounts,
    Summaries,
    accepted,
    describe,
    error_notes,
    open_http,
    run_agentbox,
    running_server,
    warm_up,
)
from bot.fake_slack import FakeSlack
from bot.http import SLACK_EVENTS_PATH
from storage.secrets import generate_key

TARGET_RATIO = 0.9
FIRST_AGENT = 30_000


@dataclass
class TokensRun:
    operations: int
    agents_per_operation: int
    latency_s: float
    elapsed_s: float
    """From sending the K commands to the last summary reaching Slack."""
    throughput: float
    """Calls answered per second over ``elapsed_s``."""
    limit: float
    """The sum of the tokens' limits, K x C / L calls per second."""
    ratio: float
    calls_span_s: float
    calls_ratio: float
    """Throughput over the calls' span at the simulator, against the limit."""
    server_cpu_s: float
    server_cpu_wait_s: float
    """Seconds the server's event loop waited for a CPU core."""
    peak_in_flight: int
    """The most calls any one token had in flight."""
    calls_ok: int
    calls_refused: int
    ack_max_ms: float


def _groups(counts: tuple[int, ...]) -> list[range]:
    """Disjoint operation numbers for each K: (1, 10) -> [range(1, 2), range(2, 12)]."""
    groups: list[range] = []
    first = 1
    for count in counts:
        groups.append(range(first, first + count))
        first += count
    return groups


def _config(operations: int, agents: int) -> str:
    lines = ["operations:"]
    for k in range(1, operations + 1):
        lines += [
            f"  - name: bench-op{k}",
            f'    server: "{k:04d}"',
            f"    token_env: BENCH_TOKEN_{k}",
            "    concurrency: 1",
        ]
    lines.append("teams:")
    for k in range(1, operations + 1):
        first = FIRST_AGENT + (k - 1) * agents
        lines += [
            f"  - name: bench-t{k}",
            f"    operation: bench-op{k}",
            f'    agents: ["{first}-{first + agents - 1}"]',
            f"    channel: {_channel(k)}",
        ]
    return "\n".join(lines) + "\n"


def _channel(k: int) -> str:
    return f"CBENCHT{k}"


async def _apply(
    config: BenchConfig, text: str, tokens: dict[str, str], env: dict[str, str], workdir: Path
) -> None:
    """``agentbox apply`` of ``text`` on the server's database, the tokens in its environment."""
    path = workdir / "bench.yml"
    path.write_text(text, encoding="utf-8")
    await run_agentbox(config, ["apply", str(path)], env=env | tokens, cwd=workdir)


async def _warm_up(
    ctx: Context, server: Server, slack: FakeSlack, summaries: Summaries, k: int
) -> None:
    """One whole change on operation ``k`` (no group's), until its summary: the first change
    after a start loads code and prepares statements, which is not the steady state measured."""
    async with open_http(ctx.config, server.url, 2) as http:
        await warm_up(http, server, slack)
        body, headers = server.slash(
            f"hide dial team:bench-t{k}", slack.new_response_url(), channel=_channel(k)
        )
        ack = await http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
        if not accepted(ack):
            raise BenchError(f"the warm-up change was not accepted: {describe(ack)}")
        try:
            await slack.wait_for(lambda: _channel(k) in summaries.at, within=60)
        except TimeoutError:
            raise BenchError("the warm-up change's summary did not reach Slack") from None


async def _group(
    ctx: Context, server: Server, slack: FakeSlack, summaries: Summaries, group: range
) -> TokensRun:
    """One command per operation of ``group``, all at once; until every summary is in."""
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    agents, latency = plan.token_agents, plan.token_latency_s
    await simulator.reset()
    operations = len(group)
    async with open_http(config, server.url, operations + 4) as http:
        await warm_up(http, server, slack)
        requests = [
            server.slash(
                f"hide dial team:bench-t{k}", slack.new_response_url(), channel=_channel(k)
            )
            for k in group
        ]
        channels = [_channel(k) for k in group]
        cpu_before = server.child.cpu_seconds()
        wait_before = server.child.cpu_wait_seconds()
        started = time.perf_counter()
        acks = await asyncio.gather(
            *(
                http.send("POST", SLACK_EVENTS_PATH, content=body, headers=headers)
                for body, headers in requests
            )
        )
        refused = [describe(ack) for ack in acks if not accepted(ack)]
        if refused:
            raise BenchError(f"{len(refused)} team commands were not accepted: {refused[0]}")
        within = agents * latency * 4 + operations * agents * 0.2 + 30
        try:
            await slack.wait_for(lambda: all(c in summaries.at for c in channels), within=within)
        except TimeoutError:
            missing = [c for c in channels if c not in summaries.at]
            raise BenchError(
                f"{len(missing)} of {operations} summaries did not reach Slack within "
                f"{within:.0f} s\n{server.child.last_output()}"
            ) from None
    elapsed = max(summaries.at[c] for c in channels) - started
    cpu = server.child.cpu_seconds() - cpu_before
    cpu_wait = server.child.cpu_wait_seconds() - wait_before
    counts = SimulatorCounts.of(await simulator.stats())
    limit = operations / latency
    throughput = counts.ok / elapsed
    return TokensRun(
        operations=operations,
        agents_per_operation=agents,
        latency_s=latency,
        elapsed_s=elapsed,
        throughput=throughput,
        limit=limit,
        ratio=throughput / limit,
        calls_span_s=counts.span_s,
        calls_ratio=operations * agents / counts.span_s / limit,
        server_cpu_s=cpu,
        server_cpu_wait_s=cpu_wait,
        peak_in_flight=counts.peak_in_flight,
        calls_ok=counts.ok,
        calls_refused=counts.other,
        ack_max_ms=max(ack.latency_ms for ack in acks),
    )


async def measure(ctx: Context) -> Section:
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    groups = _groups(plan.token_operations)
    total = sum(plan.token_operations)
    results: dict[int, list[TokensRun]] = {k: [] for k in plan.token_operations}
    servers: list[ProcessTimes] = []
    for run in range(1, plan.runs + 1):
        await simulator.configure(latency=plan.token_latency_s)
        key = generate_key()
        # One more operation than the groups use, for the warm-up change.
        tokens = {
            f"BENCH_TOKEN_{k}": f"wv-bench-op{k}-{secrets.token_hex(8)}"
            for k in range(1, total + 2)
        }

        summaries = Summaries()
        async with (
            FakeSlack(observer=summaries) as slack,
            running_server(
                config,
                simulator,
                slack,
                extra_env={"AGENTBOX_ENCRYPTION_KEYS": key},
                before_start=partial(_apply, config, _config(total + 1, plan.token_agents), tokens),
            ) as server,
        ):
            await _warm_up(ctx, server, slack, summaries, total + 1)
            for group in groups:
                result = await _group(ctx, server, slack, summaries, group)
                results[len(group)].append(result)
                ctx.say(
                    f"tokens {len(group)}, run {run}/{plan.runs}: {result.calls_ok} calls in "
                    f"{result.elapsed_s:.2f} s, {result.throughput:.0f}/s of {result.limit:.0f}/s "
                    f"(ratio {result.ratio:.3f}), peak in flight per token {result.peak_in_flight}"
                )
            servers.append(await server.stop(config))
    return _section(ctx, results, servers)


def _section(
    ctx: Context, results: dict[int, list[TokensRun]], servers: list[ProcessTimes]
) -> Section:
    plan = ctx.plan
    latency_ms = plan.token_latency_s * 1000
    section = Section(
        key="tokens",
        title="Many tokens at once",
        runs=plan.runs,
        method=(
            f"K operations, each with its own token and one team of {plan.token_agents} agents; "
            f"K commands sent at once, one per team (`hide dial team:…`), K in "
            f"{', '.join(map(str, plan.token_operations))}. Every run stores all "
            f"{sum(plan.token_operations)} operations with `agentbox apply` on a fresh SQLite "
            f"database and starts one `agentbox serve`; each K uses operations of its own, one "
            f"K after the other, after one warm-up change on an operation of its own (the first "
            f"change after a start loads code and prepares statements). The simulator answers "
            f"each call after {latency_ms:g} ms and each token may have one call in flight, so the "
            f"tokens together allow K / {latency_ms:g} ms = {1 / plan.token_latency_s:g} x K "
            f"calls per second. Throughput is the calls answered over the time from sending the "
            f"commands to the last summary; the target is at least {TARGET_RATIO} of the limit."
        ),
    )
    for operations, runs in results.items():
        section.figures += [
            Figure(
                f"throughput / sum of limits, {operations} operation(s)",
                "x",
                [r.ratio for r in runs],
                target=Target(f"at least {TARGET_RATIO}", ">=", TARGET_RATIO),
                headline=True,
            ),
            Figure(
                f"calls per second, {operations} operation(s)",
                "calls/s",
                [r.throughput for r in runs],
            ),
            Figure(f"sum of limits, {operations} operation(s)", "calls/s", [r.limit for r in runs]),
            Figure(
                f"same, over the calls' span at the simulator, {operations} operation(s)",
                "x",
                [r.calls_ratio for r in runs],
            ),
            Figure(
                f"server CPU per call, {operations} operation(s)",
                "ms",
                [r.server_cpu_s / (r.operations * r.agents_per_operation) * 1000 for r in runs],
            ),
            Figure(
                f"peak calls in flight on one token, {operations} operation(s)",
                "",
                [r.peak_in_flight for r in runs],
            ),
        ]
    section.commentary = _commentary(results)
    section.commentary += error_notes("tokens server", servers)
    section.raw = {str(k): [asdict(r) for r in runs] for k, runs in results.items()}

    def draw(out: Path) -> list[Path]:
        return [plots.tokens(out, results, TARGET_RATIO)]

    section.draw = draw
    return section


def _commentary(results: dict[int, list[TokensRun]]) -> list[str]:
    notes: list[str] = []
    for operations, runs in results.items():
        ratio = median(r.ratio for r in runs)
        throughput = median(r.throughput for r in runs)
        busy = median(r.server_cpu_s / r.elapsed_s for r in runs)
        waiting = median(r.server_cpu_wait_s / r.elapsed_s for r in runs)
        cpu_ms = median(r.server_cpu_s / r.calls_ok * 1000 for r in runs if r.calls_ok)
        text = (
            f"**{operations} operation(s):** {throughput:.0f} calls/s of {runs[0].limit:.0f}/s "
            f"allowed, ratio {ratio:.2f} (**{'PASS' if ratio >= TARGET_RATIO else 'MISS'}**). "
            f"The server used {cpu_ms:.1f} ms of CPU per call; it was on the CPU {busy:.0%} of "
            f"the time, and its event loop waited for a core another {waiting:.0%}"
        )
        if busy + waiting > 0.85:
            text += (
                ": it was CPU-bound. One process runs every token's workers on one event loop, "
                f"so at {cpu_ms:.1f} ms per call it cannot pass about {1000 / cpu_ms:.0f} calls/s "
                "on one core, whatever the tokens allow; beyond that each token waits for the "
                "loop, not for wolkvox."
            )
        else:
            text += (
                ". The rest of the time it waited on I/O: each call pays the per-call overhead "
                "of measurement 2 between wolkvox's answer and the next call."
            )
        if waiting > 0.2:
            text += " Other processes were using the cores too: on a quiet machine it does better."
        notes.append(text)
    peaks = max(r.peak_in_flight for runs in results.values() for r in runs)
    notes.append(
        "No token ever had more than one call in flight."
        if peaks <= 1
        else f"**A token had {peaks} calls in flight**, more than its concurrency of 1."
    )
    return notes
