"""What the numbers were measured on, when, and on which commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    system: str
    python: str
    python_executable: str
    memory_gib: float = 0.0
    cpu_limit: str = ""
    """The cgroup's CPU quota, where one is set (a container may get less than its CPUs)."""
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """1, 5 and 15 minute load averages when the bench started: how busy the machine already was."""

    def lines(self) -> list[tuple[str, str]]:
        cpus = f"{self.cpus} CPUs" + (f" (cgroup limit {self.cpu_limit})" if self.cpu_limit else "")
        memory = f", {self.memory_gib:.1f} GiB RAM" if self.memory_gib else ""
        load = ", ".join(f"{value:.2f}" for value in self.load_average)
        return [
            ("machine", f"{cpus}, {self.cpu_model}{memory}, {self.system}"),
            ("python", f"{self.python} ({self.python_executable})"),
            ("load", f"load average {load} (1, 5, 15 min) at the start"),
        ]


@dataclass(frozen=True)
class Provenance:
    """When the bench ran and on which code."""

    started_at: str
    """UTC, ISO 8601 to the second."""
    commit: str
    """``git rev-parse HEAD`` (short), ``+ uncommitted changes`` when the tree differs from it."""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown CPU"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model", "Hardware") and value.strip():
            return " ".join(value.split())
    return platform.processor() or "unknown CPU"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _memory_gib() -> float:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def _cpu_limit() -> str:
    """``cpu.max`` of cgroup v2 as a CPU count ("1.5 CPUs"), or "" when there is no quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return ""
    if quota == "max":
        return ""
    return f"{int(quota) / int(period):g} CPUs"


def _load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def describe() -> Machine:
    return Machine(
        cpus=_cpus(),
        cpu_model=_cpu_model(),
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        python_executable=sys.executable,
        memory_gib=_memory_gib(),
        cpu_limit=_cpu_limit(),
        load_average=_load_average(),
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def provenance() -> Provenance:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    changed = _git("status", "--porcelain", "--untracked-files=no")
    if changed:
        commit += " + uncommitted changes"
    return Provenance(
        started_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        commit=commit,
    )


def load_average_now() -> tuple[float, float, float]:
    return _load_average()
