"""``GET /metrics``: Prometheus metrics, in the text exposition format.

Two sources. This process's own series, kept by prometheus_client as things happen: wolkvox
latency and results (wolkvox/metrics.py), queue wait (here), Python's process and GC metrics.
And the shared state, read from the database at each scrape (storage/stats.py): queue depth and
approval requests. The database ones describe the whole deployment, so every replica shows the
same values: aggregate them across replicas with ``max``, not ``sum``.

Queue wait (from a change's recording to the sending of each of its calls) is observed at scrape
time for the calls *this* replica sent since its first scrape, so the histograms of replicas add
up. Calls are read by id above a mark that never passes a call still queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from bot.services import Services
from storage.models import CallStatus
from storage.stats import (
    CLAIMS_PER_READ,
    QueueGroup,
    approval_requests,
    claims_after,
    last_call_id,
    queue_groups,
)

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
#: A scrape whose database queries take longer reports ``agentbox_database_up 0`` instead.
DATABASE_TIMEOUT_SECONDS = 5.0

QUEUE_WAIT_SECONDS = Histogram(
    "agentbox_queue_wait_seconds",
    "Time from a change's recording to the sending of each of its calls (sent by this replica).",
    ["operation"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)


class MetricsPage:
    """The ``/metrics`` page of one running agentbox (one replica)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = asyncio.Lock()
        #: Claims with an id up to this one are observed (None until the first scrape).
        self._after: int | None = None
        self._seen: set[int] = set()
        self._operations: set[str] = set()

    async def render(self) -> bytes:
        async with self._lock:  # two scrapes at once must not observe a claim twice
            families = await self._shared_state()
        return generate_latest(_Merged(families))

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _shared_state(self) -> list[Metric]:
        database_up = GaugeMetricFamily(
            "agentbox_database_up", "Whether the database answered this scrape's queries."
        )
        dispatcher = GaugeMetricFamily(
            "agentbox_dispatcher_running", "Whether this replica's dispatcher sends calls."
        )
        dispatcher.add_metric([], 0.0 if self._services.dispatcher.closed else 1.0)
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                groups = await queue_groups(self._services.database)
                await self._observe_claims(groups)
                approvals = await approval_requests(self._services.database)
        except Exception as error:
            log.warning("metrics: the database did not answer (%s)", type(error).__name__)
            database_up.add_metric([], 0.0)
            return [database_up, dispatcher]
        database_up.add_metric([], 1.0)
        return [database_up, dispatcher, *self._queue_families(groups), _approvals(approvals)]

    async def _observe_claims(self, groups: list[QueueGroup]) -> None:
        """Observe the wait of every call this replica sent since the last scrape."""
        waiting = [g.lowest_id - 1 for g in groups]
        if self._after is None:
            # From the first scrape on, plus whatever is still waiting or running now.
            self._after = min([*waiting, await last_call_id(self._services.database)])
        claims = await claims_after(self._services.database, self._services.replica_id, self._after)
        for claim in claims:
            if claim.call_id not in self._seen:
                self._seen.add(claim.call_id)
                self._operations.add(claim.operation)
                QUEUE_WAIT_SECONDS.labels(claim.operation).observe(claim.wait_seconds)
        if claims:
            last_read = claims[-1].call_id
            # Calls still queued may be sent later: do not move past them (unless a full read
            # shows the reads would otherwise never move on).
            if len(claims) == CLAIMS_PER_READ:
                self._after = last_read
            else:
                self._after = min([*waiting, last_read])
            self._seen = {seen for seen in self._seen if seen > self._after}

    def _queue_families(self, groups: list[QueueGroup]) -> list[Metric]:
        depth = GaugeMetricFamily(
            "agentbox_queue_depth",
            "Calls waiting (queued) or in flight (running) per operation, across all replicas.",
            labels=["operation", "state"],
        )
        oldest = GaugeMetricFamily(
            "agentbox_queue_oldest_wait_seconds",
            "How long the longest-waiting queued call of each operation has waited since its "
            "change was recorded (0 when none is queued).",
            labels=["operation"],
        )
        counts = {(g.operation, g.status): g for g in groups}
        operations = self._operations | set(self._services.operations.names)
        operations |= {g.operation for g in groups}
        self._operations = operations
        now = time.time()
        for operation in sorted(operations):
            for state in (CallStatus.QUEUED, CallStatus.RUNNING):
                group = counts.get((operation, state))
                depth.add_metric([operation, state.value], float(group.count if group else 0))
            queued = counts.get((operation, CallStatus.QUEUED))
            age = now - queued.oldest_created_at.timestamp() if queued else 0.0
            oldest.add_metric([operation], max(0.0, age))
        return [depth, oldest]


def _approvals(outcomes: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(
        "agentbox_approval_requests",
        "Changes that needed approval, by outcome (pending, approved, rejected, expired, "
        "cancelled), across all replicas.",
        labels=["outcome"],
    )
    for outcome, count in outcomes.items():
        family.add_metric([outcome], float(count))
    return family


class _Merged:
    """This process's registry plus the families read from the database, as one collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._families


def add_metrics_route(web_app: web.Application, services: Services) -> None:
    web_app.router.add_get(METRICS_PATH, MetricsPage(services).handle)
