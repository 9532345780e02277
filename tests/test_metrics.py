"""``GET /metrics`` and ``GET /readyz``, scraped over HTTP from a running agentbox, on SQLite and
PostgreSQL: the series exist, and they move when changes run."""

from __future__ import annotations

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from storage.database import Database
from tests.harness import TOKEN, Harness, ack_text

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(harness: Harness) -> Samples:
    response = await harness.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not (yet) exposed, as Prometheus counts it."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def set_faults(harness: Harness, **config: object) -> None:
    """Change the simulator's behaviour through its HTTP control endpoint."""
    async with httpx.AsyncClient(base_url=harness.simulator.url) as client:
        response = await client.post("/_simulator/config", json=config)
        assert response.status_code == 200, response.text


async def test_metrics_move_after_a_run(agentbox: Harness) -> None:
    before = await scrape(agentbox)

    assert "1001-1003" in ack_text(await agentbox.slash("hide dial 1001-1003"))
    await agentbox.idle()
    await set_faults(agentbox, maintenance=True)
    await agentbox.slash("hide dial 1004")
    await agentbox.idle()
    after = await scrape(agentbox)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    op = {"operation": "default"}
    # Three calls answered at once, then one retried for maintenance until it gave up (3 tries).
    assert moved("agentbox_wolkvox_results_total", **op, result="ok") == 3
    assert moved("agentbox_wolkvox_results_total", **op, result="maintenance") == 1
    assert moved("agentbox_wolkvox_retries_total", **op, kind="maintenance") == 2
    assert moved("agentbox_wolkvox_request_seconds_count", **op) == 6
    assert moved("agentbox_wolkvox_request_seconds_sum", **op) > 0
    assert moved("agentbox_wolkvox_request_seconds_bucket", **op, le="+Inf") == 6
    # Each of the four calls was claimed by this replica once.
    assert moved("agentbox_queue_wait_seconds_count", **op) == 4
    # Nothing is left waiting.
    assert value(after, "agentbox_queue_depth", **op, state="queued") == 0
    assert value(after, "agentbox_queue_depth", **op, state="running") == 0
    assert value(after, "agentbox_queue_oldest_wait_seconds", **op) == 0
    assert value(after, "agentbox_database_up") == 1
    assert value(after, "agentbox_dispatcher_running") == 1
    for outcome in ("pending", "approved", "rejected", "expired", "cancelled"):
        assert ("agentbox_approval_requests", frozenset({("outcome", outcome)})) in after


async def test_a_second_scrape_counts_no_claim_twice(agentbox: Harness) -> None:
    await scrape(agentbox)
    await agentbox.slash("hide dial 1001-1002")
    await agentbox.idle()

    first = await scrape(agentbox)
    second = await scrape(agentbox)

    count = "agentbox_queue_wait_seconds_count"
    assert value(second, count, operation="default") == value(first, count, operation="default")


async def test_queue_depth_shows_calls_waiting_and_in_flight(agentbox: Harness) -> None:
    agentbox.simulator.hold()  # wolkvox takes the first call and does not answer yet
    try:
        await agentbox.slash("hide dial 1001-1003")
        await agentbox.simulator.wait_in_flight(TOKEN, 1)

        during = await scrape(agentbox)

        # None is answered yet; the one in flight may not be marked running in the table yet.
        running = value(during, "agentbox_queue_depth", operation="default", state="running")
        queued = value(during, "agentbox_queue_depth", operation="default", state="queued")
        assert (queued + running, running <= 1) == (3, True)
        assert value(during, "agentbox_queue_oldest_wait_seconds", operation="default") >= 0
    finally:
        agentbox.simulator.release()
    await agentbox.idle()

    after = await scrape(agentbox)
    assert value(after, "agentbox_queue_depth", operation="default", state="running") == 0
    assert value(after, "agentbox_queue_depth", operation="default", state="queued") == 0


async def test_readyz_is_ready_when_database_and_dispatcher_are(agentbox: Harness) -> None:
    response = await agentbox.http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": True, "dispatcher": True},
    }


async def test_readyz_and_metrics_when_the_database_is_down(agentbox: Harness) -> None:
    services = agentbox.services
    working = services.database
    # A PostgreSQL server that is not there: a local port nobody listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.database = Database(f"postgresql://agentbox@127.0.0.1:{port}/agentbox")
    try:
        ready = await agentbox.http.get("/readyz")
        metrics = await scrape(agentbox)
    finally:
        await services.database.dispose()
        services.database = working

    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "checks": {"database": False, "dispatcher": True},
    }
    assert value(metrics, "agentbox_database_up") == 0
    assert value(metrics, "agentbox_dispatcher_running") == 1
    assert (await agentbox.http.get("/readyz")).status_code == 200, "ready again once it answers"


async def test_readyz_when_the_dispatcher_has_stopped(agentbox: Harness) -> None:
    await agentbox.services.dispatcher.aclose(grace=0)

    response = await agentbox.http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "dispatcher": False}
    assert (await agentbox.http.get("/healthz")).status_code == 200, "the process is still up"
    assert value(await scrape(agentbox), "agentbox_dispatcher_running") == 0
