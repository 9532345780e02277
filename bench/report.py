"""The printed table (plain text, aligned columns) and the raw numbers as JSON."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from bench.machine import Machine
from bench.scenarios import SLACK_ACK_DEADLINE_MS, AckRun, BenchConfig, BulkRun
from bench.stats import Spread

T = TypeVar("T")

_HEADERS = ("measurement", "median", "min-max", "limit", "median/limit")


@dataclass
class Results:
    machine: Machine
    config: BenchConfig
    ack_runs: list[AckRun]
    bulk_runs: list[BulkRun]

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": asdict(self.machine),
            "config": asdict(self.config),
            "ack_runs": [asdict(run) for run in self.ack_runs],
            "bulk_runs": [asdict(run) for run in self.bulk_runs],
        }


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _count(value: float) -> str:
    return f"{value:g}"


def _row(
    name: str,
    runs: Sequence[T],
    value: Callable[[T], float],
    fmt: Callable[[float], str],
    *,
    limit: float | None = None,
) -> tuple[str, ...]:
    spread = Spread.of([value(run) for run in runs])
    ratio = "" if not limit else f"{spread.median / limit:.3f}"
    span = (
        fmt(spread.low)
        if math.isclose(spread.low, spread.high)
        else f"{fmt(spread.low)} - {fmt(spread.high)}"
    )
    return (name, fmt(spread.median), span, "" if limit is None else fmt(limit), ratio)


def _table(rows: Sequence[tuple[str, ...] | None]) -> list[str]:
    """Columns aligned: the first to the left, the rest to the right; None is a rule."""
    widths = [max(len(row[i]) for row in (_HEADERS, *filter(None, rows))) for i in range(5)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(_HEADERS), rule]
    out += [rule if row is None else line(row) for row in rows]
    return out


def render(results: Results) -> str:
    config, acks, bulks = results.config, results.ack_runs, results.bulk_runs
    deadline = SLACK_ACK_DEADLINE_MS
    setup = (
        f"{config.runs} run(s) each, fresh server + SQLite database per run; "
        f"wolkvox simulator latency {config.latency * 1000:g} ms, "
        f"WOLKVOX_CONCURRENCY={config.concurrency}; client {config.client}"
    )
    header = [
        "agentbox benchmark",
        *(f"{key:<8} {value}" for key, value in results.machine.lines()),
        f"{'setup':<8} {setup}",
        "",
    ]
    burst = config.burst
    every: list[AckRun | BulkRun] = [*acks, *bulks]
    rows: list[tuple[str, ...] | None] = [
        _row(
            f"ack p50 ({burst} concurrent slash commands)",
            acks,
            lambda r: r.p50_ms,
            _ms,
            limit=deadline,
        ),
        _row("ack p95", acks, lambda r: r.p95_ms, _ms, limit=deadline),
        _row("ack p99", acks, lambda r: r.p99_ms, _ms, limit=deadline),
        _row("ack max", acks, lambda r: r.max_ms, _ms, limit=deadline),
        _row("ack mean", acks, lambda r: r.mean_ms, _ms),
        _row("burst wall time (first sent - last ack)", acks, lambda r: r.burst_wall_ms, _ms),
        _row(f"acks accepted (of {burst})", acks, lambda r: r.accepted, _count),
        _row(
            "acks over the 3 s deadline",
            acks,
            lambda r: sum(1 for v in r.latencies_ms if v > deadline),
            _count,
        ),
        _row(
            f"baseline GET /healthz p50 ({burst} concurrent)",
            acks,
            lambda r: r.baseline_p50_ms,
            _ms,
        ),
        _row("baseline GET /healthz p99", acks, lambda r: r.baseline_p99_ms, _ms),
        None,
        _row(
            f"bulk: {config.agents} agents, send -> summary",
            bulks,
            lambda r: r.completion_s,
            _s,
            limit=config.bulk_limit_s,
        ),
        _row(
            "bulk: overhead per call beyond latency", bulks, lambda r: r.per_call_overhead_ms, _ms
        ),
        _row("bulk: ack of the command", bulks, lambda r: r.ack_ms, _ms, limit=deadline),
        _row("bulk: wolkvox calls answered 200", bulks, lambda r: r.simulator_calls_ok, _count),
        _row(
            "bulk: peak wolkvox calls in flight",
            bulks,
            lambda r: r.peak_in_flight,
            _count,
            limit=config.concurrency,
        ),
        _row("bulk: progress updates (chat.update)", bulks, lambda r: r.progress_updates, _count),
        None,
        _row("server start (spawn - listening)", every, lambda r: r.server.start_s, _s),
        _row("server stop after burst (SIGTERM - exit)", acks, lambda r: r.server.stop_s, _s),
        _row("server stop after bulk (SIGTERM - exit)", bulks, lambda r: r.server.stop_s, _s),
        _row("server ERROR records, burst run", acks, lambda r: r.server.error_lines, _count),
        _row("server ERROR records, bulk run", bulks, lambda r: r.server.error_lines, _count),
    ]
    out = header + _table(rows)
    notes = _notes(results)
    if notes:
        out += ["", "notes:", *(f"- {note}" for note in notes)]
    return "\n".join(out)


def _notes(results: Results) -> list[str]:
    notes: list[str] = []
    for index, ack_run in enumerate(results.ack_runs, 1):
        if ack_run.accepted != ack_run.sent:
            notes.append(
                f"burst run {index}: {ack_run.sent - ack_run.accepted} of {ack_run.sent} "
                "commands were not accepted, e.g. " + "; ".join(ack_run.failures[:2])
            )
        if ack_run.p99_ms > SLACK_ACK_DEADLINE_MS:
            notes.append(f"burst run {index}: ack p99 {ack_run.p99_ms:.0f} ms is over Slack's 3 s")
    # The same error (up to numbers) in several runs is one note.
    seen: dict[tuple[str, str], tuple[str, list[int]]] = {}
    groups: list[tuple[str, Sequence[AckRun | BulkRun]]] = [
        ("burst", results.ack_runs),
        ("bulk", results.bulk_runs),
    ]
    for kind, runs in groups:
        for index, run in enumerate(runs, 1):
            for error in run.server.first_errors:
                text = _without_timestamp(error)
                _, indexes = seen.setdefault((kind, re.sub(r"\d+", "N", text)), (text, []))
                if index not in indexes:
                    indexes.append(index)
    for (kind, _), (text, indexes) in seen.items():
        which = ", ".join(str(i) for i in indexes)
        notes.append(f"{kind} run {which}: the server logged {text[:400]}")
    return notes


def _without_timestamp(record: str) -> str:
    """``2026-01-01 12:00:00,123 ERROR x: y`` -> ``ERROR x: y``."""
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ ", "", record)
