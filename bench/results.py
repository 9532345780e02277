"""What a measurement hands to the report: figures over runs, targets, commentary and plots.

A :class:`Figure` is one number measured once per run; the report shows its median and its spread
(min-max) over the runs, and judges a :class:`Target` on the median.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.stats import Spread

Comparison = Literal["<", "<=", ">="]


@dataclass(frozen=True)
class Target:
    text: str
    """The target as the issue states it, e.g. "p99 under 50 ms"."""
    op: Comparison
    limit: float

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.op == "<":
            return value < self.limit
        if self.op == "<=":
            return value <= self.limit
        return value >= self.limit


@dataclass
class Figure:
    label: str
    unit: str
    """"ms", "s", "MB", "calls/s", "x" (a ratio) or "" (a count)."""
    values: list[float]
    """One value per run."""
    target: Target | None = None
    headline: bool = False
    """Shown in the report's summary table as well as in its section."""

    @property
    def spread(self) -> Spread:
        finite = [v for v in self.values if not math.isnan(v)]
        return Spread.of(finite) if finite else Spread(math.nan, math.nan, math.nan)

    @property
    def verdict(self) -> str:
        """PASS or MISS against the target, judged on the median; "" without a target."""
        if self.target is None:
            return ""
        return "PASS" if self.target.met(self.spread.median) else "MISS"

    def to_json(self) -> dict[str, Any]:
        spread = self.spread
        return {
            "label": self.label,
            "unit": self.unit,
            "values": [_finite_or_none(v) for v in self.values],
            "median": _finite_or_none(spread.median),
            "min": _finite_or_none(spread.low),
            "max": _finite_or_none(spread.high),
            "target": None
            if self.target is None
            else {"text": self.target.text, "op": self.target.op, "limit": self.target.limit},
            "verdict": self.verdict or None,
        }


Draw = Callable[[Path], list[Path]]


@dataclass
class Section:
    """One of the seven measurements."""

    key: str
    title: str
    method: str
    """How it was measured, in Markdown (a paragraph or a short list)."""
    runs: int
    figures: list[Figure] = field(default_factory=list)
    details: list[list[str]] = field(default_factory=list)
    """A table of diagnostics (its first row: the headers), shown after the figures."""
    commentary: list[str] = field(default_factory=list)
    """What the numbers say, and why a target is missed."""
    raw: dict[str, Any] = field(default_factory=dict)
    """Per-run details for the JSON file."""
    draw: Draw | None = None
    """Writes this section's plots into a directory and returns their paths."""
    plots: list[Path] = field(default_factory=list)
    skipped: str | None = None
    """Why nothing was measured (e.g. PostgreSQL unreachable); the report says so."""
    failed: bool = False
    """The measurement broke off (``skipped`` says why); the bench exits non-zero."""
    seconds: float = 0.0
    """Wall time the measurement took."""

    def figure(self, label: str) -> Figure:
        for figure in self.figures:
            if figure.label == label:
                return figure
        raise KeyError(label)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "runs": self.runs,
            "seconds": round(self.seconds, 1),
            "skipped": self.skipped,
            "failed": self.failed,
            "figures": [figure.to_json() for figure in self.figures],
            "details": self.details,
            "commentary": self.commentary,
            "plots": [path.name for path in self.plots],
            "raw": self.raw,
        }


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def format_value(value: float, unit: str) -> str:
    """A number with its unit, to a precision that suits its size."""
    if math.isnan(value):
        return "n/a"
    if unit == "x":
        return f"{value:.3f}"
    if unit == "":
        return f"{value:g}"
    if unit == "s":
        return f"{value:.2f} s"
    digits = 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {unit}"


def format_spread(spread: Spread, unit: str) -> str:
    """``median (min-max)``, or the median alone when every run gave the same."""
    median = format_value(spread.median, unit)
    if math.isnan(spread.low) or format_value(spread.low, unit) == format_value(spread.high, unit):
        return median
    return f"{median} ({format_value(spread.low, unit)} \u2013 {format_value(spread.high, unit)})"


def format_target(target: Target | None, unit: str) -> str:
    if target is None:
        return ""
    words = {"<": "under", "<=": "at most", ">=": "at least"}[target.op]
    return f"{words} {format_value(target.limit, unit)}"
