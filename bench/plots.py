"""The report's PNG plots (matplotlib, Agg backend: no display needed).

Every point or bar is the median over the runs; its error bar spans the runs' min-max.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, TypeVar

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

if TYPE_CHECKING:
    from bench.baseline import BaselineRun
    from bench.databases import DatabaseRun
    from bench.memory import MemoryRun
    from bench.overhead import OverheadRun
    from bench.scenarios import AckRun, BulkRun
    from bench.tokens import TokensRun

T = TypeVar("T")
DPI = 110


def _stat(runs: Sequence[T], value: Callable[[T], float]) -> tuple[float, float, float]:
    """(median, distance down to the min, distance up to the max): a point and its error bar."""
    values = [value(run) for run in runs]
    mid = median(values)
    return mid, mid - min(values), max(values) - mid


def _bars(
    ax: Axes,
    labels: Sequence[str],
    series: Sequence[tuple[str, list[tuple[float, float, float]], str]],
) -> None:
    """Grouped bars with min-max error bars: ``series`` is (name, stats per label, colour)."""
    width = 0.8 / max(1, len(series))
    for index, (name, stats, colour) in enumerate(series):
        xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(
            xs,
            [s[0] for s in stats],
            width,
            yerr=[[s[1] for s in stats], [s[2] for s in stats]],
            capsize=3,
            label=name,
            color=colour,
        )
    ax.set_xticks(range(len(labels)), labels)


def _plain(ax: Axes, *axes: str) -> None:
    """Tick labels of a log axis as plain numbers (50, 200, 1000), not powers of ten."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())


def _save(figure: Figure, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def ack(
    out: Path,
    results: dict[tuple[int, str], list[AckRun]],
    bursts: Sequence[int],
    judged: int,
    target_ms: float,
    paced_over: float,
) -> Path:
    figure = Figure(figsize=(11, 4.5))
    left, right = figure.subplots(1, 2)
    for mode, colour in (("at once", "tab:red"), ("paced", "tab:blue")):
        label = "at once" if mode == "at once" else f"paced over {paced_over:g} s"
        for pct, style in (("p50", ":"), ("p99", "-")):
            pick: Callable[[AckRun], float] = (
                (lambda r: r.p50_ms) if pct == "p50" else (lambda r: r.p99_ms)
            )
            stats = [_stat(results[(b, mode)], pick) for b in bursts]
            left.errorbar(
                list(bursts),
                [s[0] for s in stats],
                yerr=[[s[1] for s in stats], [s[2] for s in stats]],
                fmt=style + "o",
                color=colour,
                capsize=3,
                label=f"{pct}, {label}",
            )
    left.axhline(target_ms, color="green", linestyle="--", label=f"target p99 {target_ms:g} ms")
    left.axhline(3000, color="black", linestyle="--", label="Slack's deadline 3000 ms")
    left.set_xscale("log")
    left.set_yscale("log")
    _plain(left, "y")
    left.set_xticks(list(bursts), [str(b) for b in bursts])
    left.set_xlabel("slash commands in the burst")
    left.set_ylabel("ack latency (ms)")
    left.set_title("Ack latency by burst size (median of runs, min-max bars)")
    left.legend(fontsize=7)

    for mode, colour in (("at once", "tab:red"), ("paced", "tab:blue")):
        runs = results[(judged, mode)]
        typical = sorted(runs, key=lambda r: r.p99_ms)[len(runs) // 2]
        values = sorted(typical.latencies_ms)
        right.plot(
            values,
            [100 * (i + 1) / len(values) for i in range(len(values))],
            color=colour,
            label=mode if mode == "at once" else f"paced over {paced_over:g} s",
        )
        healthz = typical.baseline_p99_ms
        right.axvline(healthz, color=colour, linestyle=":", label=f"GET /healthz p99 ({mode})")
    right.axvline(target_ms, color="green", linestyle="--", label=f"target {target_ms:g} ms")
    right.set_xscale("log")
    _plain(right, "x")
    right.set_xlabel("ack latency (ms)")
    right.set_ylabel("% of commands acked")
    right.set_title(f"Distribution at {judged} (the run with the median p99)")
    right.legend(fontsize=7)
    return _save(figure, out, "ack_latency.png")


def bulk(out: Path, rows: Sequence[tuple[str, list[BulkRun]]], target: float) -> Path:
    figure = Figure(figsize=(11, 4.8))
    ax = figure.subplots()
    labels = [name.replace(", ", "\n") for name, _ in rows]
    _bars(
        ax,
        labels,
        [
            ("send to summary", [_stat(runs, lambda r: r.ratio) for _, runs in rows], "tab:red"),
            (
                "calls' span at the simulator",
                [_stat(runs, lambda r: r.calls_ratio) for _, runs in rows],
                "tab:gray",
            ),
        ],
    )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(target, color="green", linestyle="--", label=f"target {target}")
    ax.set_ylabel("time / (N x L / C)")
    ax.set_title("Bulk completion against the limit N x L / C (median of runs, min-max bars)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    return _save(figure, out, "bulk_ratio.png")


def tokens(out: Path, results: dict[int, list[TokensRun]], target: float) -> Path:
    figure = Figure(figsize=(11, 4.5))
    left, right = figure.subplots(1, 2)
    counts = list(results)
    labels = [f"{k} token{'s' if k > 1 else ''}" for k in counts]
    _bars(
        left,
        labels,
        [
            (
                "calls/s achieved",
                [_stat(results[k], lambda r: r.throughput) for k in counts],
                "tab:blue",
            ),
            ("sum of the limits", [_stat(results[k], lambda r: r.limit) for k in counts], "0.8"),
        ],
    )
    left.set_yscale("log")
    _plain(left, "y")
    left.set_ylabel("calls per second")
    left.set_title("Throughput against the tokens' limits")
    left.legend(fontsize=8)
    _bars(
        right,
        labels,
        [("throughput / limit", [_stat(results[k], lambda r: r.ratio) for k in counts], "tab:red")],
    )
    right.axhline(target, color="green", linestyle="--", label=f"target {target}")
    right.set_ylim(0, 1.1)
    right.set_title("Share of the limit reached (median, min-max bars)")
    right.legend(fontsize=8)
    return _save(figure, out, "tokens.png")


def overhead(out: Path, results: Sequence[OverheadRun]) -> Path:
    figure = Figure(figsize=(7, 4.2))
    ax = figure.subplots()
    _bars(
        ax,
        ["bare httpx loop", "agentbox's path"],
        [
            (
                "time per call at the simulator",
                [
                    _stat(results, lambda r: r.bare_per_call_ms),
                    _stat(results, lambda r: r.agentbox_per_call_ms),
                ],
                "tab:blue",
            ),
            (
                "server CPU per call",
                [(0.0, 0.0, 0.0), _stat(results, lambda r: r.agentbox_cpu_per_call_ms)],
                "tab:orange",
            ),
        ],
    )
    ratio = median(r.ratio for r in results)
    ax.set_ylabel("ms per call")
    ax.set_title(f"Overhead per call (simulator latency 0): agentbox / bare = {ratio:.1f}")
    ax.legend(fontsize=8)
    return _save(figure, out, "overhead.png")


def memory(out: Path, results: Sequence[MemoryRun], target_mb: float) -> Path:
    figure = Figure(figsize=(8, 4.2))
    ax = figure.subplots()
    for index, run in enumerate(results, 1):
        ax.plot(
            [t for t, _ in run.timeline],
            [mb for _, mb in run.timeline],
            label=f"run {index}: peak {run.peak_mb:.0f} MB",
        )
    ax.axhline(target_mb, color="green", linestyle="--", label=f"target {target_mb:g} MB")
    peak = max((run.peak_mb for run in results), default=target_mb)
    ax.set_ylim(0, max(target_mb, peak) * 1.15)
    ax.set_xlabel("seconds since the commands were sent")
    ax.set_ylabel("server RSS (MB)")
    calls = results[0].calls if results else 0
    ax.set_title(f"Resident size while {calls} calls are queued")
    ax.legend(fontsize=8)
    return _save(figure, out, "memory.png")


def databases(out: Path, rows: Sequence[tuple[str, list[DatabaseRun]]]) -> Path:
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2)
    labels = [name for name, _ in rows]
    _bars(
        left,
        labels,
        [
            ("ack p50", [_stat(runs, lambda r: r.ack.p50_ms) for _, runs in rows], "tab:blue"),
            ("ack p99", [_stat(runs, lambda r: r.ack.p99_ms) for _, runs in rows], "tab:red"),
        ],
    )
    left.set_ylabel("ms")
    left.set_title("Ack latency, burst at once")
    left.legend(fontsize=8)
    _bars(
        right,
        labels,
        [("bulk ratio", [_stat(runs, lambda r: r.bulk.ratio) for _, runs in rows], "tab:red")],
    )
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set_title("Bulk change: time / (N x L)")
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=8)
    return _save(figure, out, "databases.png")


def baseline(
    out: Path, rows: Sequence[tuple[str, list[BaselineRun], list[BaselineRun]]], deadline: float
) -> Path:
    figure = Figure(figsize=(11, 4.5))
    ax = figure.subplots()
    labels = [name.replace(" at once", "\nat once") for name, _, _ in rows]
    _bars(
        ax,
        labels,
        [
            (
                "inline baseline: slowest ack",
                [_stat(inline, lambda r: r.ack.max_ms) for _, inline, _ in rows],
                "tab:red",
            ),
            (
                "agentbox: slowest ack",
                [_stat(box, lambda r: r.ack.max_ms) for _, _, box in rows],
                "tab:blue",
            ),
        ],
    )
    ax.axhline(deadline, color="black", linestyle="--", label=f"Slack's deadline {deadline:.0f} ms")
    ax.set_yscale("log")
    _plain(ax, "y")
    ax.set_ylabel("ms (log)")
    ax.set_title("Calling wolkvox inline before the ack, against agentbox")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    return _save(figure, out, "baseline.png")
