"""What each measurement runs: sizes, latencies and run counts, for the full run and ``--quick``.

The full run's sizes are the issue's; its run counts keep the whole run near 8 minutes on a
quiet 2-core machine: 3 runs each, but 2 for the bulk matrix (which waits about 110 s per run for
the simulated wolkvox latency alone) and for the database comparison (many process starts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SCENARIOS: tuple[str, ...] = ("ack", "bulk", "tokens", "overhead", "memory", "db", "baseline")
"""Every measurement, in the report's order (``--only`` takes these names)."""


@dataclass(frozen=True)
class Plan:
    runs: int = 3
    """Runs of each measurement (but bulk and db, below); the report shows their median and
    min-max."""
    bulk_runs: int = 2
    """The bulk matrix waits about 110 s per run for the simulated latency alone."""
    db_runs: int = 2

    # 1. ack latency
    ack_bursts: tuple[int, ...] = (50, 200, 1000)
    ack_paced_over_s: float = 1.0
    """The paced arrival: the burst's commands spread evenly over this many seconds."""
    ack_judged_burst: int = 200
    ack_latency_s: float = 0.05
    """Simulated wolkvox latency while the burst's calls are sent in the background."""

    # 2. bulk completion
    bulk_agents: tuple[int, ...] = (10, 100, 500)
    bulk_latencies_s: tuple[float, ...] = (0.02, 0.1)
    bulk_concurrency: tuple[int, ...] = (1, 2)

    # 3. many tokens
    token_operations: tuple[int, ...] = (1, 10, 50)
    token_agents: int = 20
    """Agents per operation: one command each, all sent at once."""
    token_latency_s: float = 0.1

    # 4. overhead per call
    overhead_calls: int = 200
    overhead_latency_s: float = 0.0

    # 5. memory
    memory_calls: int = 10_000
    memory_command_agents: int = 500
    """Agents per command (agentbox's maximum): memory_calls / this many commands."""
    memory_settle_s: float = 2.0
    """RSS is still sampled this long after the last ack (the background work settles)."""

    # 6. databases
    db_burst: int = 200
    db_agents: int = 100
    db_latency_s: float = 0.02

    # 7. the inline baseline
    baseline_latency_s: float = 0.1
    baseline_agents: tuple[int, ...] = (1, 10, 50)
    """Single commands of this many agents."""
    baseline_bursts: tuple[int, ...] = (10, 50)
    """Bursts of this many one-agent commands at once."""

    def with_runs(self, runs: int | None) -> Plan:
        """Every measurement ``runs`` times (None: the plan's own counts)."""
        return self if runs is None else replace(self, runs=runs, bulk_runs=runs, db_runs=runs)

    def runs_for(self, key: str) -> int:
        return {"bulk": self.bulk_runs, "db": self.db_runs}.get(key, self.runs)


FULL = Plan()

QUICK = Plan(
    runs=1,
    bulk_runs=1,
    db_runs=1,
    ack_bursts=(20,),
    ack_paced_over_s=0.5,
    ack_judged_burst=20,
    bulk_agents=(10,),
    bulk_latencies_s=(0.02,),
    bulk_concurrency=(1, 2),
    token_operations=(1, 3),
    token_agents=5,
    token_latency_s=0.02,
    overhead_calls=20,
    memory_calls=1000,
    memory_settle_s=0.5,
    db_burst=20,
    db_agents=10,
    baseline_latency_s=0.05,
    baseline_agents=(1, 5),
    baseline_bursts=(5,),
)
