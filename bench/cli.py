"""``python -m bench``: run the measurements, print the table, optionally write JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.clients import CLIENT_KINDS
from bench.machine import describe
from bench.processes import BenchError
from bench.report import Results, render
from bench.scenarios import (
    AckRun,
    BenchConfig,
    BulkRun,
    ack_burst,
    bulk_completion,
    running_simulator,
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark agentbox: slash-command ack latency and bulk-change completion.",
    )
    parser.add_argument(
        "--runs",
        type=_positive_int,
        default=defaults.runs,
        help="runs of each measurement (default %(default)s)",
    )
    parser.add_argument(
        "--burst",
        type=_positive_int,
        default=defaults.burst,
        help="concurrent slash commands in the ack burst (default %(default)s)",
    )
    parser.add_argument(
        "--agents",
        type=_positive_int,
        default=defaults.agents,
        help="agents in the bulk change, at most 500 (default %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=defaults.latency,
        help="simulated wolkvox seconds per call (default %(default)s)",
    )
    parser.add_argument(
        "--client",
        choices=CLIENT_KINDS,
        default=defaults.client,
        help="HTTP client playing Slack (default %(default)s; httpx adds its own latency "
        "at high concurrency)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the raw numbers as JSON to PATH",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="give up after this many seconds in all (default %(default)s)",
    )
    return parser


async def _run(
    config: BenchConfig, say: Callable[[str], None]
) -> tuple[list[AckRun], list[BulkRun]]:
    ack_runs: list[AckRun] = []
    bulk_runs: list[BulkRun] = []
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-sim-") as tmp:
        async with running_simulator(config, Path(tmp)) as simulator:
            say(f"wolkvox simulator at {simulator.url}")
            for index in range(1, config.runs + 1):
                ack = await ack_burst(config, simulator)
                ack_runs.append(ack)
                say(
                    f"ack burst {index}/{config.runs}: {ack.accepted}/{ack.sent} accepted, "
                    f"p50 {ack.p50_ms:.1f} ms, p99 {ack.p99_ms:.1f} ms, max {ack.max_ms:.1f} ms"
                )
            for index in range(1, config.runs + 1):
                bulk = await bulk_completion(config, simulator)
                bulk_runs.append(bulk)
                say(
                    f"bulk {index}/{config.runs}: summary after {bulk.completion_s:.2f} s "
                    f"(limit {bulk.limit_s:.2f} s, ratio {bulk.ratio:.3f})"
                )
    return ack_runs, bulk_runs


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.agents <= 500:
        print("--agents must be between 1 and 500 (agentbox's limit per command)", file=sys.stderr)
        return 2
    if args.latency < 0:
        print("--latency must not be negative", file=sys.stderr)
        return 2
    config = BenchConfig(
        runs=args.runs,
        burst=args.burst,
        agents=args.agents,
        latency=args.latency,
        client=args.client,
    )

    def say(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    async def run_all() -> tuple[list[AckRun], list[BulkRun]]:
        async with asyncio.timeout(args.timeout):
            return await _run(config, say)

    try:
        ack_runs, bulk_runs = asyncio.run(run_all())
    except TimeoutError:
        print(f"bench failed: did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    results = Results(describe(), config, ack_runs, bulk_runs)
    print(render(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
        say(f"raw numbers written to {args.json}")
    return 0
