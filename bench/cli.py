"""``python -m bench``: run the measurements, print the table, write REPORT.md and its plots."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import ack, baseline, bulk, databases, memory, overhead, tokens
from bench.clients import CLIENT_KINDS
from bench.machine import REPOSITORY, describe, load_average_now, provenance
from bench.plan import FULL, QUICK, SCENARIOS, Plan
from bench.processes import BenchError
from bench.report import Report, render_markdown, render_text
from bench.results import Section
from bench.scenarios import BenchConfig, Context, running_simulator

DEFAULT_OUT = REPOSITORY / "bench" / "report"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

MEASUREMENTS: dict[str, Callable[[Context], Awaitable[Section]]] = {
    "ack": ack.measure,
    "bulk": bulk.measure,
    "tokens": tokens.measure,
    "overhead": overhead.measure,
    "memory": memory.measure,
    "db": databases.measure,
    "baseline": baseline.measure,
}
assert tuple(MEASUREMENTS) == SCENARIOS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown measurement {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(SCENARIOS)}"
        )
    return [name for name in SCENARIOS if name in names]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark agentbox against its limits and write a Markdown report with plots. "
            f"Measurements: {', '.join(SCENARIOS)}."
        ),
    )
    parser.add_argument(
        "--only",
        type=_scenarios,
        default=list(SCENARIOS),
        metavar="NAMES",
        help=f"comma-separated measurements to run (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one run each: a smoke test of the bench, in about a minute",
    )
    parser.add_argument(
        "--runs",
        type=_positive_int,
        default=None,
        help=f"runs of every measurement (default {FULL.runs}, but {FULL.bulk_runs} for bulk and "
        f"{FULL.db_runs} for db; {QUICK.runs} with --quick)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help="where REPORT.md, the PNG plots and results.json go (default bench/report/)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the raw numbers as JSON to PATH",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "AGENTBOX_BENCH_POSTGRES_URL",
            os.environ.get("AGENTBOX_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        ),
        help="PostgreSQL server for measurement 6; each run creates and drops a database of "
        "its own there (default $AGENTBOX_BENCH_POSTGRES_URL, else "
        "$AGENTBOX_TEST_POSTGRES_URL, else the tests' local server)",
    )
    parser.add_argument(
        "--client",
        choices=CLIENT_KINDS,
        default="aiohttp",
        help="HTTP client playing Slack (default %(default)s; httpx adds its own latency "
        "at high concurrency)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="give up after this many seconds in all (default %(default)s)",
    )
    return parser


def _more_open_files() -> None:
    """A burst of 1000 needs more than 1024 sockets on each side; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _run(
    config: BenchConfig, plan: Plan, only: Sequence[str], say: Callable[[str], None]
) -> list[Section]:
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-sim-") as tmp:
        async with running_simulator(config, Path(tmp), latency=0.0) as simulator:
            say(f"wolkvox simulator at {simulator.url}")
            ctx = Context(config, plan, simulator, say)
            for key in only:
                say(f"--- {key} ({plan.runs_for(key)} run(s))")
                started = time.perf_counter()
                try:
                    section = await MEASUREMENTS[key](ctx)
                except BenchError as error:
                    say(f"{key} failed: {error}")
                    section = Section(
                        key=key, title=f"{key}: failed", method="", runs=plan.runs_for(key)
                    )
                    section.skipped = f"the measurement failed: {error}"
                    section.failed = True
                section.seconds = time.perf_counter() - started
                say(f"{key} took {section.seconds:.0f} s")
                sections.append(section)
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = (QUICK if args.quick else FULL).with_runs(args.runs)
    config = BenchConfig(client=args.client, postgres_url=args.postgres_url)
    words = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m bench", *words])

    def say(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    _more_open_files()
    machine, origin = describe(), provenance()
    started = time.perf_counter()

    async def run_all() -> list[Section]:
        # SIGTERM cancels the run like Ctrl-C does, so that every child process is stopped.
        main_task = asyncio.current_task()
        assert main_task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        async with asyncio.timeout(args.timeout):
            return await _run(config, plan, args.only, say)

    try:
        sections = asyncio.run(run_all())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench interrupted: no report written", file=sys.stderr)
        return 130
    except TimeoutError:
        print(f"bench failed: did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for section in sections:
        if section.draw is not None and not section.skipped:
            section.plots = section.draw(out)
    report = Report(
        machine=machine,
        provenance=origin,
        plan=plan,
        quick=args.quick,
        command=command,
        sections=sections,
        seconds=time.perf_counter() - started,
        load_at_end=load_average_now(),
    )
    print(render_text(report), flush=True)
    (out / "REPORT.md").write_text(render_markdown(report, out), encoding="utf-8")
    raw = json.dumps(report.to_json(), indent=1, allow_nan=False) + "\n"
    (out / "results.json").write_text(raw, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(raw, encoding="utf-8")
    say(f"report written to {out / 'REPORT.md'} (plots and results.json beside it)")
    failed = [section.key for section in sections if section.failed]
    if failed:
        say(f"failed: {', '.join(failed)} (see the report)")
    return 1 if failed else 0
