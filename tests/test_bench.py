"""Smoke test of the benchmark suite (bench/): ``python -m bench --quick`` writes a readable report.

Marked ``bench``: ``pytest -m bench`` runs only this, ``pytest -m "not bench"`` leaves it out. It
runs the real thing (the simulator and ``agentbox serve`` as processes, signed requests over
HTTP) at the quick sizes, for two measurements, into a temporary directory.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]

REPOSITORY = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_quick_run_writes_the_report_its_plots_and_numbers(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "ack,bulk", "--out", str(out)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert report.startswith("# agentbox benchmarks")
    for promised in ("commit `", "| machine | ", "## Targets", "--quick run"):
        assert promised in report
    assert "## 1. Ack latency of slash-command bursts" in report
    assert "## 2. Bulk completion against the limit" in report
    for plot in ("ack_latency.png", "bulk_ratio.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, plot
        assert f"]({plot})" in report

    results: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    sections = {section["key"]: section for section in results["sections"]}
    assert list(sections) == ["ack", "bulk"]
    for section in sections.values():
        assert not section["failed"] and section["figures"], section["key"]
        for figure in section["figures"]:
            values = [*figure["values"], figure["median"], figure["min"], figure["max"]]
            assert all(isinstance(v, int | float) and math.isfinite(v) for v in values), figure
            if figure["target"] is not None:
                assert figure["verdict"] in ("PASS", "MISS"), figure

    ack = {figure["label"]: figure for figure in sections["ack"]["figures"]}
    p99 = ack["ack p99, 20 at once (judged)"]
    assert p99["median"] > 0 and p99["target"]["limit"] == 50
    assert ack["acks accepted, 20 at once (of 20)"]["median"] == 20
    bulk = sections["bulk"]["figures"]
    assert [f["label"] for f in bulk] == [
        "bulk ratio to N x L / C, N=10, L=20 ms, C=1",
        "bulk ratio to N x L / C, N=10, L=20 ms, C=2",
        "bare aiohttp loop's ratio (the floor), L=20 ms",
    ]
    # Neither agentbox's send-to-summary time nor a bare client can beat every call back to back
    # at the simulator's latency.
    assert all(f["median"] >= 1.0 for f in bulk)

    # The table goes to standard output, the progress to standard error.
    assert "Targets" in done.stdout and "bulk ratio to N x L / C" in done.stdout
    assert "[bench] ack 20 at once, run 1/1" in done.stderr


def test_an_unknown_measurement_is_named_and_nothing_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "ack,latency", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "unknown measurement latency" in error
    assert "ack,bulk,tokens,overhead,memory,db,baseline" in error
    assert not any(tmp_path.iterdir())
