"""The wolkvox simulator, driven over real HTTP with a plain httpx client."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wolkvox.model import Credentials
from wolkvox.simulator import (
    CLIENT_CLOSED,
    IN_FLIGHT,
    Simulator,
    SimulatorConfig,
    serve_forever,
)

TOKEN = "sim-token-0123456789abcdef"
OTHER = "sim-token-fedcba9876543210"
FP = Credentials(server="", token=TOKEN).token_fingerprint
PATH = "/api/v2/agentbox.php"
GOOD = {"agent_id": "1001", "api": "agent_display", "display": "hide", "button": "dial"}
REPO = Path(__file__).resolve().parent.parent


def headers(token: str | None = TOKEN, server: str = "0015") -> dict[str, str]:
    out = {"wolkvox_server": server}
    if token is not None:
        out["wolkvox-token"] = token
    return out


def body(code: str, error: str | None, msg: str, data: str | None = None) -> dict[str, Any]:
    return {"code": code, "error": error, "msg": msg, "data": data}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(tokens=frozenset({TOKEN, OTHER}))) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as client:
        yield client


async def display(
    http: httpx.AsyncClient, token: str | None = TOKEN, **query: str
) -> httpx.Response:
    return await http.post(PATH, params={**GOOD, **query}, headers=headers(token))


# -- the documented answers -----------------------------------------------------------------------


async def test_success_body_and_state(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await display(http)
    assert response.status_code == 200
    assert response.json() == body("200", None, "default", "Agentbox has been hide")
    assert sim.button_state("1001", "dial") == "hide"
    assert sim.button_state("1001", "hungup") is None
    assert sim.button_state("9999", "dial") is None

    response = await display(http, display="show")
    assert response.json()["data"] == "Agentbox has been show"
    assert sim.button_state("1001", "dial") == "show"


@pytest.mark.parametrize(
    ("query", "hdrs", "status", "msg"),
    [
        ({"api": None}, None, 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
        ({"api": "agent_dance"}, None, 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
        # The api check comes before the parameter and token checks.
        ({"api": "nope", "agent_id": None}, {}, 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
        ({"agent_id": None}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"agent_id": "10a1"}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"agent_id": "١٢٣"}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"display": "toggle"}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"display": None}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"button": "hangup"}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({"button": None}, None, 400, "SOME PARAMETERS ARE REQUIRED"),
        # Parameters are checked before the token.
        ({"button": "x"}, {}, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({}, {}, 401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
        ({}, {"wolkvox-token": ""}, 401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
        ({}, {"wolkvox-token": "not-a-valid-token"}, 403, "PLEASE VALIDATE TOKEN"),
    ],
)
async def test_validation_answers_in_wolkvox_order(
    sim: Simulator,
    http: httpx.AsyncClient,
    query: dict[str, str | None],
    hdrs: dict[str, str] | None,
    status: int,
    msg: str,
) -> None:
    params = {k: v for k, v in {**GOOD, **query}.items() if v is not None}
    response = await http.post(PATH, params=params, headers=headers() if hdrs is None else hdrs)
    reason = {400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}[status]
    assert response.status_code == status
    assert response.json() == body(str(status), reason, msg)
    assert sim.button_state("1001", "dial") is None
    assert sim.calls[-1].status == status


async def test_any_token_is_valid_without_a_token_list() -> None:
    async with Simulator() as sim, httpx.AsyncClient(base_url=sim.url) as http:
        assert (await display(http, token="whatever")).status_code == 200
        assert (await display(http, token=None)).status_code == 401


async def test_invalid_token_is_checked_before_maintenance_and_quota(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.config.maintenance = True
    sim.config.daily_quota = 0
    response = await display(http, token="bad-token")
    assert response.json()["msg"] == "PLEASE VALIDATE TOKEN"


async def test_daily_quota_per_token(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.daily_quota = 2
    assert (await display(http)).status_code == 200
    assert (await display(http)).status_code == 200
    response = await display(http)
    assert response.status_code == 403
    assert response.json() == body("403", "FORBIDDEN", "TOKEN LIMIT EXCEEDED")
    # Quota is checked before maintenance.
    sim.config.maintenance = True
    assert (await display(http)).json()["msg"] == "TOKEN LIMIT EXCEEDED"
    # Another token has its own quota.
    sim.config.maintenance = False
    assert (await display(http, token=OTHER)).status_code == 200


async def test_maintenance(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.maintenance = True
    response = await display(http)
    assert response.status_code == 403
    assert response.json() == body("403", "FORBIDDEN", "SERVICE UNDER MAINTENANCE")
    assert sim.button_state("1001", "dial") is None
    sim.config.maintenance = False
    assert (await display(http)).status_code == 200


# -- the simultaneous-request limit ---------------------------------------------------------------


async def test_third_simultaneous_request_is_refused(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.hold()
    first = asyncio.create_task(display(http))
    second = asyncio.create_task(display(http, display="show", button="hungup"))
    await sim.wait_in_flight(TOKEN, 2)
    assert sim.peak_in_flight(TOKEN) == 2

    third = await display(http, button="disposition")
    assert third.status_code == 403
    assert third.json() == body(
        "403", "FORBIDDEN", "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
    )
    # Another token is not affected: its call is accepted (and held like the others).
    other = asyncio.create_task(display(http, token=OTHER, agent_id="2002"))
    await sim.wait_in_flight(OTHER, 1)

    sim.release()
    assert (await first).status_code == (await second).status_code == 200
    assert (await other).status_code == 200
    assert sim.peak_in_flight(TOKEN) == 3
    assert sim.peak_in_flight(OTHER) == 1
    assert sim.peak_in_flight("never-seen") == 0
    assert sim.button_state("1001", "disposition") is None
    assert sim.button_state("1001", "hungup") == "show"
    statuses = sorted(c.status for c in sim.calls_for(TOKEN))
    assert statuses == [200, 200, 403]


async def test_limit_is_configurable(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.max_simultaneous = 1
    sim.hold()
    first = asyncio.create_task(display(http))
    await sim.wait_in_flight(TOKEN, 1)
    assert (await display(http)).status_code == 403
    sim.release()
    assert (await first).status_code == 200
    assert sim.peak_in_flight(TOKEN) == 2


async def test_sequential_calls_never_overlap(sim: Simulator, http: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await display(http)).status_code == 200
    assert sim.peak_in_flight(TOKEN) == 1
    calls = sim.calls_for(TOKEN)
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(calls))


# -- latency and faults ---------------------------------------------------------------------------


async def test_latency(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.latency = 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await display(http)).status_code == 200
    assert loop.time() - started >= 0.29
    [call] = sim.calls
    assert call.finished_at - call.started_at >= 0.29


async def test_latency_overlaps_calls_of_two_tokens(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.config.latency = 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(display(http), display(http, token=OTHER))
    elapsed = loop.time() - started
    assert [a.status_code for a in answers] == [200, 200]
    assert 0.29 <= elapsed < 0.6 + 0.5  # concurrent, not one after the other


async def test_latency_jitter_stays_in_bounds() -> None:
    config = SimulatorConfig(latency=0.1, latency_jitter=0.1, seed=7)
    async with Simulator(config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        for _ in range(4):
            assert (await display(http)).status_code == 200
    durations = [c.finished_at - c.started_at for c in sim.calls]
    assert all(0 <= d < 0.2 + 0.5 for d in durations)


async def test_error_rate_answers_an_html_500(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.error_rate = 1.0
    response = await display(http)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert sim.button_state("1001", "dial") is None


async def test_garbage_rate_answers_200_non_json(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.garbage_rate = 1.0
    response = await display(http)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    # The change happened; only its answer was mangled.
    assert sim.button_state("1001", "dial") == "hide"


async def test_hang_ends_when_the_client_goes_away(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.hang_rate = 1.0
    task = asyncio.create_task(display(http))
    await sim.wait_in_flight(TOKEN, 1)
    assert sim.calls[0].status == IN_FLIGHT
    assert math.isnan(sim.calls[0].finished_at)
    assert sim.stats()["calls"][0]["finished_at"] is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(sim.wait_idle(), 10)
    assert sim.calls[0].status == CLIENT_CLOSED
    assert sim.in_flight(TOKEN) == 0


async def test_stop_releases_hung_and_held_requests() -> None:
    sim = Simulator(SimulatorConfig(hang_rate=1.0))
    await sim.start()
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        hung = asyncio.create_task(display(http))
        await sim.wait_in_flight(TOKEN, 1)
        sim.hold()
        held = asyncio.create_task(display(http, token=OTHER))
        await sim.wait_in_flight(OTHER, 1)
        await asyncio.wait_for(sim.stop(), 10)
        assert (await hung).status_code == 503
        assert (await held).status_code == 503
    assert [c.status for c in sim.calls] == [503, 503]


async def test_seed_makes_faults_reproducible() -> None:
    async def run() -> list[int]:
        config = SimulatorConfig(error_rate=0.4, garbage_rate=0.3, seed=1234)
        async with Simulator(config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
            return [(await display(http)).status_code for _ in range(20)]

    first, second = await run(), await run()
    assert first == second
    assert 500 in first and 200 in first


# -- the call log, state and reset ----------------------------------------------------------------


async def test_call_log_in_arrival_order(sim: Simulator, http: httpx.AsyncClient) -> None:
    await display(http, agent_id="1")
    await display(http, token=OTHER, agent_id="2")
    await display(http, agent_id="3", display="show", button="disposition")
    await display(http, token=None, agent_id="4")

    assert [c.agent_id for c in sim.calls] == ["1", "2", "3", "4"]
    assert [c.agent_id for c in sim.calls_for(TOKEN)] == ["1", "3"]
    first = sim.calls[0]
    assert first.token_fingerprint == FP
    assert first.server == "0015"
    assert (first.display, first.button, first.status) == ("hide", "dial", 200)
    assert first.started_at <= first.finished_at
    assert sim.calls[3].token_fingerprint == ""
    assert sim.calls[3].status == 401
    assert all(TOKEN not in repr(c) for c in sim.calls)


async def test_reset(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.config.daily_quota = 1
    await display(http)
    assert (await display(http)).status_code == 403
    sim.reset()
    assert sim.calls == []
    assert sim.peak_in_flight(TOKEN) == 0
    assert sim.button_state("1001", "dial") is None
    assert sim.config.daily_quota == 1
    assert (await display(http)).status_code == 200


async def test_reset_while_a_call_is_in_flight(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.hold()
    task = asyncio.create_task(display(http))
    await sim.wait_in_flight(TOKEN, 1)
    sim.reset()
    assert sim.peak_in_flight(TOKEN) == 1
    sim.release()
    assert (await task).status_code == 200
    assert sim.in_flight(TOKEN) == 0
    assert sim.calls == []


# -- control endpoints ----------------------------------------------------------------------------


async def test_stats_endpoint(sim: Simulator, http: httpx.AsyncClient) -> None:
    await display(http)
    await display(http, token="bad-token")
    response = await http.get("/_simulator/stats")
    assert response.status_code == 200
    stats = response.json()
    assert TOKEN not in response.text and "bad-token" not in response.text
    assert stats["in_flight"] == 0
    assert stats["tokens"][FP] == {
        "in_flight": 0,
        "peak_in_flight": 1,
        "calls": 1,
        "quota_used": 1,
        "statuses": {"200": 1},
    }
    assert [c["status"] for c in stats["calls"]] == [200, 403]
    assert stats["calls"][0]["token_fingerprint"] == FP
    assert stats["calls"][0]["agent_id"] == "1001"


async def test_config_endpoint(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/_simulator/config", json={"maintenance": True, "latency": 0.01, "daily_quota": 5}
    )
    assert response.status_code == 200
    assert sim.config.maintenance is True
    assert sim.config.latency == 0.01
    assert sim.config.daily_quota == 5
    assert sim.config.tokens == frozenset({TOKEN, OTHER})  # untouched
    shown = response.json()
    assert TOKEN not in response.text
    assert sorted(shown["token_fingerprints"]) == sorted(
        Credentials(server="", token=t).token_fingerprint for t in (TOKEN, OTHER)
    )
    assert (await display(http)).json()["msg"] == "SERVICE UNDER MAINTENANCE"

    assert (await http.get("/_simulator/config")).json() == shown

    await http.post("/_simulator/config", json={"maintenance": False, "tokens": ["new-token"]})
    assert (await display(http)).json()["msg"] == "PLEASE VALIDATE TOKEN"
    assert (await display(http, token="new-token")).status_code == 200
    await http.post("/_simulator/config", json={"tokens": None})
    assert (await display(http, token="anything")).status_code == 200


@pytest.mark.parametrize(
    "update",
    [
        {"latency": -1},
        {"error_rate": 1.5},
        {"hang_rate": "often"},
        {"maintenance": "yes"},
        {"max_simultaneous": 0},
        {"daily_quota": 1.5},
        {"tokens": "one-token"},
        {"tokens": [""]},
        {"no_such_setting": 1},
        [1, 2],
    ],
)
async def test_config_endpoint_rejects_bad_updates(
    sim: Simulator, http: httpx.AsyncClient, update: Any
) -> None:
    before = sim.config
    response = await http.post("/_simulator/config", json=update)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sim.config == before


async def test_config_endpoint_rejects_non_json(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await http.post("/_simulator/config", content=b"maintenance=1")
    assert response.status_code == 400


async def test_reset_and_state_endpoints(sim: Simulator, http: httpx.AsyncClient) -> None:
    await display(http, agent_id="1001", button="dial", display="hide")
    await display(http, agent_id="1001", button="hungup", display="show")
    await display(http, agent_id="1002", button="disposition", display="hide")
    state = (await http.get("/_simulator/state")).json()
    assert state == {
        "agents": {
            "1001": {"dial": "hide", "hungup": "show"},
            "1002": {"disposition": "hide"},
        }
    }
    assert (await http.post("/_simulator/reset")).status_code == 200
    assert (await http.get("/_simulator/state")).json() == {"agents": {}}
    assert (await http.get("/_simulator/stats")).json()["calls"] == []


async def test_wrong_method_on_the_endpoint(sim: Simulator, http: httpx.AsyncClient) -> None:
    response = await http.get(PATH, params=GOOD, headers=headers())
    assert response.status_code == 405


# -- lifecycle and running on its own -------------------------------------------------------------


async def test_url_requires_start() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    await sim.start()
    try:
        assert sim.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError):
            await sim.start()
    finally:
        await sim.stop()
    await sim.stop()  # stopping twice is harmless


async def test_serve_forever_until_stopped() -> None:
    stop = asyncio.Event()
    urls: list[str] = []
    started = asyncio.Event()

    def ready(sim: Simulator) -> None:
        urls.append(sim.url)
        started.set()

    server = asyncio.create_task(
        serve_forever("127.0.0.1", 0, SimulatorConfig(), ready=ready, stop=stop)
    )
    await asyncio.wait_for(started.wait(), 10)
    async with httpx.AsyncClient(base_url=urls[0]) as http:
        assert (await display(http)).status_code == 200
    stop.set()
    await asyncio.wait_for(server, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=urls[0]) as http:
            await display(http)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_run_simulator_prints_its_url_and_stops_on_sigterm() -> None:
    code = (
        "from wolkvox.simulator import run_simulator, SimulatorConfig\n"
        "run_simulator('127.0.0.1', 0, SimulatorConfig(maintenance=True))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("wolkvox simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await display(http)).json()["msg"] == "SERVICE UNDER MAINTENANCE"
            assert (await http.get("/_simulator/stats")).json()["calls"][0]["status"] == 403
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
