"""A real HTTP server that behaves like wolkvox's agent_display, for demos, tests and staging.

It answers ``POST /api/v2/agentbox.php`` the way wolkvox documents (same validation order, same
error bodies), enforces the per-token simultaneous-request limit and a daily quota, and can add
latency and faults (HTML 500 pages, non-JSON 200s, requests that never answer). It remembers every
call, the most requests it ever had in flight per token, and each agent's button states, so tests
can check what a client did to it.

Control endpoints let another process (a black-box test, a staging setup) drive and inspect it:

- ``GET  /_simulator/stats``  — per token fingerprint: peak in flight, calls, quota used; and
  the call log
- ``GET  /_simulator/config`` / ``POST /_simulator/config`` — read / partially update the config
- ``POST /_simulator/reset``  — forget calls, peaks, quota use and button states
- ``GET  /_simulator/state``  — every agent's button states

Tokens never leave the simulator: logs, stats and the config endpoint name them by fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from types import TracebackType
from typing import Any

from aiohttp import web

from .client import AGENT_DISPLAY_PATH
from .model import Button, Credentials, Display

__all__ = [
    "IN_FLIGHT",
    "SimulatedCall",
    "Simulator",
    "SimulatorConfig",
    "build_app",
    "run_simulator",
    "serve_forever",
]

#: ``SimulatedCall.status`` of a call that has not been answered yet.
IN_FLIGHT = 0
#: ``SimulatedCall.status`` of a call whose client went away before it was answered.
CLIENT_CLOSED = 499

MSG_NO_API = "THE API YOU WANT TO CONSULT DOES NOT EXIST"
MSG_PARAMETERS = "SOME PARAMETERS ARE REQUIRED"
MSG_NO_TOKEN = "PLEASE ENTER THE WOLKVOX-TOKEN"
MSG_QUOTA = "TOKEN LIMIT EXCEEDED"
MSG_SIMULTANEOUS = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
MSG_INVALID_TOKEN = "PLEASE VALIDATE TOKEN"
MSG_MAINTENANCE = "SERVICE UNDER MAINTENANCE"

_REASONS = {400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}
_BUTTONS = frozenset(b.value for b in Button)
_DISPLAYS = frozenset(d.value for d in Display)

_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body>"
    "<h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>"
)
# What a PHP endpoint says when a warning is printed before its JSON and the JSON is cut short.
_GARBAGE = (
    '<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/2002) in <b>agentbox.php</b><br />\n{"co'
)


def fingerprint(token: str) -> str:
    """The same fingerprint the client logs (:attr:`Credentials.token_fingerprint`)."""
    return Credentials(server="", token=token).token_fingerprint


@dataclass
class SimulatorConfig:
    """How the simulator behaves; fields may be changed while it runs."""

    tokens: frozenset[str] | None = None
    """Valid tokens; None means any non-empty token is valid."""
    latency: float = 0.0
    """Seconds each accepted call takes before it is answered."""
    latency_jitter: float = 0.0
    """Plus or minus this many seconds (uniform) on top of ``latency``."""
    error_rate: float = 0.0
    """Fraction of accepted calls answered 500 with an HTML page (the button is not changed)."""
    garbage_rate: float = 0.0
    """Fraction answered 200 with a non-JSON body (the button *is* changed: the answer is lost)."""
    hang_rate: float = 0.0
    """Fraction that never answer, until the client disconnects or the simulator stops."""
    maintenance: bool = False
    """Every valid call is answered 403 ``SERVICE UNDER MAINTENANCE``."""
    daily_quota: int | None = None
    """Calls per token before 403 ``TOKEN LIMIT EXCEEDED``."""
    max_simultaneous: int = 2
    """A call arriving while this many are in flight for its token is refused (wolkvox: 2)."""
    seed: int | None = None
    """Seed of the random draws (jitter and faults), for reproducible runs."""


@dataclass(frozen=True)
class SimulatedCall:
    """One request to the agent_display endpoint, as the simulator saw it.

    ``status`` is :data:`IN_FLIGHT` (0) while the call has not been answered, and
    :data:`CLIENT_CLOSED` (499) when its client went away first; ``finished_at`` is NaN until then.
    Times are ``time.monotonic()`` seconds.
    """

    token_fingerprint: str
    server: str | None
    agent_id: str
    display: str
    button: str
    status: int
    started_at: float
    finished_at: float


@dataclass
class _TokenStats:
    in_flight: int = 0
    peak_in_flight: int = 0
    calls: int = 0
    quota_used: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Answer(Exception):
    """Raised inside the handler to answer at once with a wolkvox-shaped error body."""

    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


class Simulator:
    """wolkvox's agent_display on 127.0.0.1, with a call log and fault injection.

    ``calls`` holds one entry per request in *arrival* order; an entry is appended when the
    request arrives (status :data:`IN_FLIGHT`) and replaced in place when it is answered.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.calls: list[SimulatedCall] = []
        self._rng = random.Random(self.config.seed)
        self._seed = self.config.seed
        self._stats: dict[str, _TokenStats] = {}
        self._states: dict[str, dict[str, str]] = {}
        self._generation = 0
        self._total_in_flight = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._released = asyncio.Event()
        self._released.set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            build_app(self),
            # Cancel a handler when its client disconnects, so a hung call ends with its client.
            handler_cancellation=True,
            shutdown_timeout=5.0,
            access_log=None,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        if bound_host in ("0.0.0.0", "::"):
            bound_host = "127.0.0.1"
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        self._url = f"http://{bound_host}:{bound_port}"
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving; hung and held requests are released (answered 503) first."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL, usable as ``WolkvoxClient(base_url=...)`` and ``WOLKVOX_BASE_URL``."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    # -- inspection --------------------------------------------------------------------------

    def peak_in_flight(self, token: str) -> int:
        """The most requests with this token ever in flight at once, refused ones included."""
        stats = self._stats.get(fingerprint(token))
        return stats.peak_in_flight if stats else 0

    def in_flight(self, token: str) -> int:
        stats = self._stats.get(fingerprint(token))
        return stats.in_flight if stats else 0

    def calls_for(self, token: str) -> list[SimulatedCall]:
        fp = fingerprint(token)
        return [c for c in self.calls if c.token_fingerprint == fp]

    def button_state(self, agent_id: str, button: str) -> str | None:
        """The last display successfully applied to that agent's button, if any."""
        return self._states.get(agent_id, {}).get(str(button))

    def reset(self) -> None:
        """Forget calls, peaks, quota use and button states; keep the config."""
        self._generation += 1
        self.calls = []
        self._states = {}
        for key, stats in list(self._stats.items()):
            if stats.in_flight:
                # Handlers still running hold this object: reset it in place.
                stats.peak_in_flight = stats.in_flight
                stats.calls = stats.quota_used = 0
                stats.statuses = {}
            else:
                del self._stats[key]

    def stats(self) -> dict[str, Any]:
        """What ``GET /_simulator/stats`` answers."""
        return {
            "in_flight": self._total_in_flight,
            "tokens": {
                fp: {
                    "in_flight": s.in_flight,
                    "peak_in_flight": s.peak_in_flight,
                    "calls": s.calls,
                    "quota_used": s.quota_used,
                    "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
                }
                for fp, s in self._stats.items()
            },
            "calls": [_call_json(c) for c in self.calls],
        }

    def states(self) -> dict[str, dict[str, str]]:
        return {agent: dict(buttons) for agent, buttons in self._states.items()}

    # -- test synchronisation (beyond wolkvox's behaviour) ------------------------------------

    def hold(self) -> None:
        """Make accepted calls wait (after every check, before latency) until :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def wait_in_flight(self, token: str, count: int) -> None:
        """Wait until at least ``count`` requests with this token are in flight."""
        await self._wait_for(lambda: self.in_flight(token) >= count)

    async def wait_idle(self) -> None:
        """Wait until no request at all is in flight (hung ones included)."""
        await self._wait_for(lambda: self._total_in_flight == 0)

    async def _wait_for(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _changed(self) -> None:
        """Wake the waiters whose condition now holds (synchronous: callable from a finally)."""
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    # -- the endpoint ------------------------------------------------------------------------

    async def handle_agentbox(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        api = query.get("api", "")
        token = request.headers.get("wolkvox-token", "").strip()
        fp = fingerprint(token) if token else ""
        stats = self._stats.setdefault(fp, _TokenStats()) if token else None
        call = SimulatedCall(
            token_fingerprint=fp,
            server=request.headers.get("wolkvox_server"),
            agent_id=query.get("agent_id", ""),
            display=query.get("display", ""),
            button=query.get("button", ""),
            status=IN_FLIGHT,
            started_at=time.monotonic(),
            finished_at=math.nan,
        )
        generation, index = self._generation, len(self.calls)
        self.calls.append(call)
        if stats is not None:
            stats.calls += 1
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        self._total_in_flight += 1
        self._changed()
        status = CLIENT_CLOSED
        try:
            response = await self._answer(api, token, call, stats)
            status = response.status
            return response
        finally:
            if stats is not None:
                stats.in_flight -= 1
                stats.statuses[status] = stats.statuses.get(status, 0) + 1
            self._total_in_flight -= 1
            if generation == self._generation and index < len(self.calls):
                self.calls[index] = replace(call, status=status, finished_at=time.monotonic())
            self._changed()

    async def _answer(
        self, api: str, token: str, call: SimulatedCall, stats: _TokenStats | None
    ) -> web.StreamResponse:
        try:
            self._validate(api, token, call, stats)
        except _Answer as answer:
            return _error_json(answer.status, answer.msg)
        return await self._perform(call)

    def _validate(
        self, api: str, token: str, call: SimulatedCall, stats: _TokenStats | None
    ) -> None:
        """wolkvox's checks, in the order wolkvox makes them; raises :class:`_Answer`.

        Every call with a valid token counts against the quota, even one refused afterwards.
        """
        cfg = self.config
        if api != "agent_display":
            raise _Answer(400, MSG_NO_API)
        if not (
            call.agent_id.isascii()
            and call.agent_id.isdigit()
            and call.display in _DISPLAYS
            and call.button in _BUTTONS
        ):
            raise _Answer(400, MSG_PARAMETERS)
        if stats is None:
            raise _Answer(401, MSG_NO_TOKEN)
        if cfg.tokens is not None and token not in cfg.tokens:
            raise _Answer(403, MSG_INVALID_TOKEN)
        if cfg.daily_quota is not None and stats.quota_used >= cfg.daily_quota:
            raise _Answer(403, MSG_QUOTA)
        stats.quota_used += 1
        if cfg.maintenance:
            raise _Answer(403, MSG_MAINTENANCE)
        # in_flight already counts this call.
        if stats.in_flight - 1 >= cfg.max_simultaneous:
            raise _Answer(403, MSG_SIMULTANEOUS)

    async def _perform(self, call: SimulatedCall) -> web.StreamResponse:
        cfg = self.config
        if not self._released.is_set():
            await self._until(self._released)
            if self._stopping.is_set():
                return _stopping_page()
        rng = self._random()
        delay = cfg.latency
        if cfg.latency_jitter:
            delay += rng.uniform(-cfg.latency_jitter, cfg.latency_jitter)
        # Draw every fault each time so that a seed gives the same sequence whatever the rates.
        hang, error, garbage = rng.random(), rng.random(), rng.random()
        if delay > 0:
            await asyncio.sleep(delay)
        if hang < cfg.hang_rate:
            await self._stopping.wait()
            return _stopping_page()
        if error < cfg.error_rate:
            return web.Response(status=500, text=_ERROR_PAGE, content_type="text/html")
        self._states.setdefault(call.agent_id, {})[call.button] = call.display
        if garbage < cfg.garbage_rate:
            return web.Response(status=200, text=_GARBAGE, content_type="text/html")
        return web.json_response(
            {
                "code": "200",
                "error": None,
                "msg": "default",
                "data": f"Agentbox has been {call.display}",
            }
        )

    def _random(self) -> random.Random:
        if self.config.seed != self._seed:
            self._seed = self.config.seed
            self._rng = random.Random(self._seed)
        return self._rng

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event`` or for the simulator to stop, whichever comes first."""
        waiters = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _error_json(status: int, msg: str) -> web.Response:
    return web.json_response(
        {"code": str(status), "error": _REASONS.get(status, "ERROR"), "msg": msg, "data": None},
        status=status,
    )


def _stopping_page() -> web.Response:
    return web.Response(status=503, text="simulator stopping", content_type="text/plain")


def _call_json(call: SimulatedCall) -> dict[str, Any]:
    data = asdict(call)
    if math.isnan(call.finished_at):
        data["finished_at"] = None
    return data


# -- the application ---------------------------------------------------------------------------

_CONFIG_FIELDS = {f.name for f in fields(SimulatorConfig)}
_RATES = ("error_rate", "garbage_rate", "hang_rate")


def _config_json(config: SimulatorConfig) -> dict[str, Any]:
    data = asdict(config)
    tokens = data.pop("tokens")
    data["token_fingerprints"] = None if tokens is None else sorted(fingerprint(t) for t in tokens)
    return data


def _updated_config(config: SimulatorConfig, changes: dict[str, Any]) -> SimulatorConfig:
    """``config`` with ``changes`` applied, each checked; raises ValueError naming the bad one."""
    unknown = set(changes) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "tokens":
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(t, str) and t for t in value)
            ):
                raise ValueError("tokens must be null or a list of non-empty strings")
            values[name] = None if value is None else frozenset(value)
        elif name == "maintenance":
            if not isinstance(value, bool):
                raise ValueError("maintenance must be true or false")
            values[name] = value
        elif name in ("daily_quota", "seed"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be null or an integer")
            values[name] = value
        elif name == "max_simultaneous":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError("max_simultaneous must be an integer of at least 1")
            values[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            if name in _RATES and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
            values[name] = float(value)
    return replace(config, **values)


def build_app(sim: Simulator) -> web.Application:
    """The aiohttp application serving ``sim``: the wolkvox endpoint and the control endpoints."""

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(sim.stats())

    async def get_state(request: web.Request) -> web.Response:
        return web.json_response({"agents": sim.states()})

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(_config_json(sim.config))

    async def post_config(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            sim.config = _updated_config(sim.config, changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(_config_json(sim.config))

    async def post_reset(request: web.Request) -> web.Response:
        sim.reset()
        return web.json_response({"reset": True})

    app = web.Application()
    app.router.add_post(AGENT_DISPLAY_PATH, sim.handle_agentbox)
    app.router.add_get("/_simulator/stats", get_stats)
    app.router.add_get("/_simulator/state", get_state)
    app.router.add_get("/_simulator/config", get_config)
    app.router.add_post("/_simulator/config", post_config)
    app.router.add_post("/_simulator/reset", post_reset)
    return app


# -- running it on its own ---------------------------------------------------------------------


async def serve_forever(
    host: str,
    port: int,
    config: SimulatorConfig,
    *,
    ready: Callable[[Simulator], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` is called once it listens."""
    stop = stop or asyncio.Event()
    sim = Simulator(config)
    await sim.start(host, port)
    try:
        if ready is not None:
            ready(sim)
        await stop.wait()
    finally:
        await sim.stop()


def run_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Run the simulator in the foreground: print its URL, stop on SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
                loop.add_signal_handler(sig, stop.set)

        def announce(sim: Simulator) -> None:
            print(f"wolkvox simulator listening on {sim.url}", flush=True)
            print(f"  WOLKVOX_BASE_URL={sim.url}", flush=True)

        await serve_forever(host, port, config, ready=announce, stop=stop)
        print("wolkvox simulator stopped", file=sys.stderr, flush=True)

    asyncio.run(main())
