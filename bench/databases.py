"""6. SQLite against PostgreSQL, one replica and two.

Each (database, replicas) pair gets, in every run, freshly started replicas on a fresh database,
an ack burst and then, once the burst's calls are all answered, one bulk change. Two replicas
share one PostgreSQL database (the burst alternates between them; the bulk command goes to the
first, and either may send its calls). Two replicas on one SQLite file are not a supported
deployment (the token's slots are held in memory there), so that pair is not measured.

Each PostgreSQL run creates a database of its own on the server (``--postgres-url``) and drops it
afterwards; without the right to create databases, or without a reachable server, the PostgreSQL
pairs are skipped and the report says why.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import bench.plots as plots
from bench.results import Figure, Section
from bench.scenarios import (
    AckRun,
    BulkRun,
    Context,
    ProcessTimes,
    Server,
    Summaries,
    error_notes,
    measure_bulk,
    measure_burst,
    running_server,
)
from bot.fake_slack import FakeSlack

SETUPS: tuple[tuple[str, int], ...] = (("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 2))


def setup_name(setup: tuple[str, int]) -> str:
    database, replicas = setup
    return f"{database}, {replicas} replica{'s' if replicas > 1 else ''}"


@dataclass
class DatabaseRun:
    ack: AckRun
    bulk: BulkRun


async def _admin(server_url: str, statement: str) -> None:
    """One statement on the server's own database, outside a transaction (CREATE DATABASE)."""
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on ``server_url``'s server; dropped afterwards."""
    name = f"agentbox_bench_{secrets.token_hex(4)}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres_problem(server_url: str) -> str | None:
    """Why the PostgreSQL pairs cannot run, or None."""
    if not server_url:
        return "no PostgreSQL URL given (--postgres-url)"
    try:
        async with scratch_database(server_url):
            pass
    except Exception as error:
        return (
            f"cannot create a database at {_redacted(server_url)}: {type(error).__name__}: {error}"
        )
    return None


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@asynccontextmanager
async def _replicas(
    ctx: Context, setup: tuple[str, int], slack: FakeSlack
) -> AsyncIterator[list[Server]]:
    database, count = setup
    async with AsyncExitStack() as stack:
        url = None
        if database == "PostgreSQL":
            url = await stack.enter_async_context(scratch_database(ctx.config.postgres_url))
        secret = secrets.token_hex(16)
        servers: list[Server] = []
        # One after the other: the first migrates the new database, the second finds it ready.
        for _ in range(count):
            servers.append(
                await stack.enter_async_context(
                    running_server(
                        ctx.config, ctx.simulator, slack, database_url=url, secret=secret
                    )
                )
            )
        yield servers


async def _one(ctx: Context, setup: tuple[str, int]) -> tuple[DatabaseRun, list[ProcessTimes]]:
    """On a fresh database and replicas: the burst, then (once its calls are done) the bulk."""
    plan, config, simulator = ctx.plan, ctx.config, ctx.simulator
    await simulator.configure(latency=plan.db_latency_s)
    await simulator.reset()
    summaries = Summaries()
    async with FakeSlack(observer=summaries) as slack, _replicas(ctx, setup, slack) as servers:
        ack = await measure_burst(
            config, servers, slack, burst=plan.db_burst, paced_over=None, first_agent=2001
        )
        # The burst is measured: its calls may drain at once.
        await simulator.configure(latency=0.0)
        await simulator.until_answered(plan.db_burst, within=plan.db_burst * 0.5 + 60)
        bulk = await measure_bulk(
            config,
            servers[0],
            slack,
            summaries,
            simulator,
            agents=plan.db_agents,
            latency=plan.db_latency_s,
            concurrency=1,
            first_agent=1001,
            channel="C_DB_BULK",
        )
        times = [await server.stop(config) for server in servers]
    return DatabaseRun(ack, bulk), times


async def measure(ctx: Context) -> Section:
    plan = ctx.plan
    problem = await postgres_problem(ctx.config.postgres_url)
    setups = [s for s in SETUPS if problem is None or s[0] != "PostgreSQL"]
    results: dict[tuple[str, int], list[DatabaseRun]] = {s: [] for s in setups}
    servers: list[ProcessTimes] = []
    runs = plan.runs_for("db")
    for run in range(1, runs + 1):
        for setup in setups:
            result, times = await _one(ctx, setup)
            results[setup].append(result)
            servers += times
            ctx.say(
                f"db {setup_name(setup)}, run {run}/{runs}: ack p99 {result.ack.p99_ms:.0f} "
                f"ms, bulk ratio {result.bulk.ratio:.3f}"
            )
    return _section(ctx, results, servers, problem)


def _section(
    ctx: Context,
    results: dict[tuple[str, int], list[DatabaseRun]],
    servers: list[ProcessTimes],
    problem: str | None,
) -> Section:
    plan = ctx.plan
    latency_ms = plan.db_latency_s * 1000
    section = Section(
        key="db",
        title="SQLite against PostgreSQL, one replica and two",
        runs=plan.runs_for("db"),
        method=(
            f"For each setup, on a fresh database and freshly started replicas: a burst of "
            f"{plan.db_burst} one-agent commands at once (alternating between the replicas), and "
            f"once its calls are all answered, one `hide dial` over {plan.db_agents} agents at "
            f"{latency_ms:g} ms latency and "
            f"`WOLKVOX_CONCURRENCY=1` (ratio to N x L, as in measurement 2). Two replicas on one "
            f"SQLite file are not a supported deployment (the token's slots are in memory), so "
            f"that pair is not measured."
        ),
    )
    if problem is not None:
        section.commentary.append(f"PostgreSQL was not measured: {problem}.")
    for setup, runs in results.items():
        name = setup_name(setup)
        section.figures += [
            Figure(f"ack p50, {plan.db_burst} at once, {name}", "ms", [r.ack.p50_ms for r in runs]),
            Figure(f"ack p99, {plan.db_burst} at once, {name}", "ms", [r.ack.p99_ms for r in runs]),
            Figure(
                f"bulk ratio, {plan.db_agents} agents at {latency_ms:g} ms, {name}",
                "x",
                [r.bulk.ratio for r in runs],
            ),
            Figure(
                f"bulk overhead per call, {name}",
                "ms",
                [r.bulk.per_call_overhead_ms for r in runs],
            ),
            Figure(f"bulk peak calls in flight, {name}", "", [r.bulk.peak_in_flight for r in runs]),
        ]
    section.commentary += _commentary(results)
    section.commentary += error_notes("db server", servers)
    section.raw = {
        setup_name(setup): [asdict(run) for run in runs] for setup, runs in results.items()
    }
    if problem is not None and not results:
        section.skipped = problem

    def draw(out: Path) -> list[Path]:
        return [plots.databases(out, [(setup_name(s), r) for s, r in results.items()])]

    section.draw = draw
    return section


def _commentary(results: dict[tuple[str, int], list[DatabaseRun]]) -> list[str]:
    notes: list[str] = []
    rows = {
        setup: (
            median(r.ack.p99_ms for r in runs),
            median(r.bulk.per_call_overhead_ms for r in runs),
            max(r.bulk.peak_in_flight for r in runs),
        )
        for setup, runs in results.items()
        if runs
    }
    for setup, (p99, overhead, _) in rows.items():
        notes.append(
            f"{setup_name(setup)}: ack p99 {p99:.0f} ms at the burst, {overhead:.1f} ms per call "
            f"beyond wolkvox's latency in the bulk change."
        )
    one, two = rows.get(("PostgreSQL", 1)), rows.get(("PostgreSQL", 2))
    if one and two:
        faster = two[0] < one[0]
        notes.append(
            f"A second replica {'shortens' if faster else 'does not shorten'} the burst's p99 "
            f"({one[0]:.0f} -> {two[0]:.0f} ms): the burst is split between two processes, "
            f"each with its own event loop, but they share the machine's cores (with the bench "
            f"and the simulator) and the one database. The bulk change cannot go faster with two "
            f"replicas: its token allows one call at a time, whichever replica sends it."
        )
    over = [s for s, (_, _, peak) in rows.items() if peak > 1]
    if over:
        notes.append(
            "**More than one call was in flight for the token** with: "
            + ", ".join(setup_name(s) for s in over)
        )
    return notes
