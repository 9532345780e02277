"""The printed table (plain text, aligned columns), REPORT.md, and the raw numbers as JSON."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.machine import Machine, Provenance
from bench.plan import SCENARIOS, Plan
from bench.results import Figure, Section, format_spread, format_target

_HEADERS = ("measurement", "median (min - max)", "target", "verdict")


@dataclass
class Report:
    machine: Machine
    provenance: Provenance
    plan: Plan
    quick: bool
    command: str
    sections: list[Section]
    seconds: float
    load_at_end: tuple[float, float, float]

    def targets(self) -> list[tuple[Section, Figure]]:
        return [
            (section, figure)
            for section in self.sections
            for figure in section.figures
            if figure.target is not None and figure.headline
        ]

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: NaN (a figure /proc could not give) becomes null."""
        data: dict[str, Any] = _finite(
            {
                "machine": asdict(self.machine),
                "provenance": asdict(self.provenance),
                "command": self.command,
                "quick": self.quick,
                "plan": asdict(self.plan),
                "seconds": round(self.seconds, 1),
                "load_at_end": self.load_at_end,
                "sections": [section.to_json() for section in self.sections],
            }
        )
        return data


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _cells(figure: Figure) -> tuple[str, str, str, str]:
    return (
        figure.label,
        format_spread(figure.spread, figure.unit),
        format_target(figure.target, figure.unit),
        figure.verdict,
    )


# --- plain text -------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> list[str]:
    """Columns aligned: the first to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule] + [line(row) for row in rows]


def render_text(report: Report) -> str:
    out = [
        "agentbox benchmark" + (" (--quick: small sizes, indicative only)" if report.quick else ""),
        *(f"{key:<8} {value}" for key, value in report.machine.lines()),
        f"{'commit':<8} {report.provenance.commit}, {report.provenance.started_at}",
        f"{'took':<8} {_duration(report.seconds)}",
    ]
    for section in report.sections:
        number = SCENARIOS.index(section.key) + 1
        out += ["", f"{number}. {section.title} [{section.key}, {section.runs} run(s)]"]
        if section.skipped:
            out.append(f"   not measured: {section.skipped}")
        if section.figures:
            out += _table([_cells(figure) for figure in section.figures], _HEADERS)
    targets = report.targets()
    if targets:
        out += ["", "Targets"]
        out += _table([_cells(figure) for _, figure in targets], _HEADERS)
    return "\n".join(out)


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _verdict(figure: Figure) -> str:
    return f"**{figure.verdict}**" if figure.verdict else ""


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _noise(report: Report) -> list[str]:
    notes: list[str] = []
    cpus = max(1, report.machine.cpus)
    start, end = report.machine.load_average[0], report.load_at_end[0]
    if max(start, end) > 0.5 * cpus:
        notes.append(
            f"> **A busy machine.** The 1-minute load average was {start:.2f} at the start and "
            f"{end:.2f} at the end, on {cpus} CPUs: other work shared the cores with the bench "
            f"(the bench's own processes count too near the end). Latencies and ratios are worse "
            f"than on a quiet machine; treat them as indicative."
        )
    if report.quick:
        notes.append(
            "> **--quick run.** Small sizes and one run each: a smoke test of the bench, not "
            "the issue's sizes. Its verdicts are not the targets' verdicts."
        )
    return notes


def render_markdown(report: Report, out: Path) -> str:
    machine, provenance = report.machine, report.provenance
    lines = [
        "# agentbox benchmarks",
        "",
        f"Measured on **{provenance.started_at.replace('+00:00', ' UTC')}**, commit "
        f"`{provenance.commit}`, with `{report.command}`; the whole run took "
        f"{_duration(report.seconds)}.",
        "",
        *_md_table(
            ("", ""),
            [
                *machine.lines(),
                (
                    "load at the end",
                    ", ".join(f"{v:.2f}" for v in report.load_at_end) + " (1, 5, 15 min)",
                ),
                (
                    "runs",
                    "each figure is the median of the runs (the run count is in each section's "
                    "title); the range after it is their min - max",
                ),
            ],
        ),
        "",
    ]
    noise = _noise(report)
    if noise:
        lines += [*"\n\n".join(noise).split("\n"), ""]
    targets = report.targets()
    if targets:
        lines += ["## Targets", ""]
        lines += _md_table(
            ("measurement", "target", "median (min - max)", "verdict"),
            [
                (
                    f"{section.key}: {figure.label}",
                    format_target(figure.target, figure.unit),
                    format_spread(figure.spread, figure.unit),
                    _verdict(figure),
                )
                for section, figure in targets
            ],
        )
        lines.append("")
    for section in report.sections:
        number = SCENARIOS.index(section.key) + 1
        lines += [
            f"## {number}. {section.title}",
            "",
            f"*{section.runs} run(s); took {_duration(section.seconds)}.* {section.method}",
            "",
        ]
        if section.skipped:
            lines += [f"**Not measured:** {section.skipped}", ""]
        # With a details table, the figures without a target are in it already (and in JSON).
        shown = [f for f in section.figures if f.target is not None or not section.details]
        if shown:
            lines += _md_table(
                ("measurement", "median (min - max)", "target", "verdict"),
                [
                    (
                        f.label,
                        format_spread(f.spread, f.unit),
                        format_target(f.target, f.unit),
                        _verdict(f),
                    )
                    for f in shown
                ],
            )
            lines.append("")
        if section.details:
            lines += _md_table(section.details[0], section.details[1:])
            lines.append("")
        for plot in section.plots:
            rel = os.path.relpath(plot, out)
            lines += [f"![{section.title}]({rel})", ""]
        if section.commentary:
            lines += [f"- {note}" for note in section.commentary]
            lines.append("")
    lines += [
        "## How this was run",
        "",
        "`make bench` (the same as `.venv/bin/python -m bench`) starts the wolkvox simulator and "
        "each `agentbox serve` as their own processes (port 0), plays Slack itself (signed "
        "requests over HTTP, and a local fake of Slack's Web API), and writes this file, its "
        "plots and `results.json` (every run's raw numbers) into `bench/report/`. "
        "`--only ack,bulk,…` picks measurements, `--runs N` sets every run count, `--quick` is "
        "a one-minute smoke test. The default run counts (3; 2 for the bulk matrix and the "
        "database comparison) keep the full run near 8 minutes on a quiet 2-core machine; the "
        "bulk matrix alone waits about 110 s per run for the simulated wolkvox latency. CPU "
        "figures are the server process's (user + system); *waiting for a core* is the time its "
        "event loop was ready to run but another process held the CPU (Linux schedstat), which "
        "tells a busy machine from a slow agentbox. The bench process (playing Slack), the "
        "simulator and the server share "
        "the machine's cores, which in production they would not: the numbers are this "
        "machine's, not a promise for another.",
        "",
    ]
    return "\n".join(lines)
