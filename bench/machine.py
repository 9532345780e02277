"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    system: str
    python: str
    python_executable: str

    def lines(self) -> list[tuple[str, str]]:
        return [
            ("machine", f"{self.cpus} CPUs, {self.cpu_model}, {self.system}"),
            ("python", f"{self.python} ({self.python_executable})"),
        ]


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


def describe() -> Machine:
    return Machine(
        cpus=_cpus(),
        cpu_model=_cpu_model(),
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        python_executable=sys.executable,
    )
