"""``agentbox serve``: HTTP mode, or Socket Mode when ``SLACK_APP_TOKEN`` is set.

Shutdown on SIGTERM/SIGINT: stop taking Slack requests, give calls in flight a bounded grace
period (:data:`bot.services.SHUTDOWN_GRACE_SECONDS`), hand back the rest (they stay queued in the
database and resume at the next start), then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import adopt_changes, build_app, resume_unfinished, revert_when_due
from bot.http import build_web_app
from bot.services import Services
from bot.settings import Settings
from wolkvox.simulator import Simulator, SimulatorConfig

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """The settings cannot run the app; the message says what to set."""


def check_settings(settings: Settings) -> None:
    if settings.oauth_enabled:
        if not settings.agentbox_encryption_keys:
            raise ConfigurationError(
                "SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are set (install in several workspaces): "
                "set AGENTBOX_ENCRYPTION_KEYS too, installed bot tokens are stored encrypted "
                "(`agentbox keys generate` makes a key)."
            )
    elif not settings.slack_bot_token:
        raise ConfigurationError(
            "SLACK_BOT_TOKEN is not set (the bot token, xoxb-…), nor SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET (install in several workspaces)."
        )
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigurationError(
            "Set SLACK_SIGNING_SECRET for HTTP mode, or SLACK_APP_TOKEN (xapp-…) for Socket Mode."
        )


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    with_simulator: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or until ``stop`` is set)."""
    check_settings(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    simulator: Simulator | None = None
    if with_simulator:
        simulator = Simulator(SimulatorConfig(latency=0.05))
        await simulator.start()
        settings = settings.model_copy(
            update={
                "wolkvox_base_url": simulator.url,
                "wolkvox_server": settings.wolkvox_server or "0000",
                "wolkvox_token": settings.wolkvox_token or "simulator-token",
            }
        )
        log.info("embedded wolkvox simulator at %s", simulator.url)

    services = await Services.create(settings)
    bolt_app = build_app(services)
    # Take over what a previous process left before taking new requests.
    await services.start()
    await resume_unfinished(services, bolt_app.client)
    adopter = asyncio.create_task(_adopt_forever(services, bolt_app), name="adopt-changes")
    reverter = asyncio.create_task(revert_when_due(services, bolt_app.client), name="timed-changes")
    socket_mode = bool(settings.slack_app_token)
    runner = web.AppRunner(build_web_app(services, None if socket_mode else bolt_app))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    # Tests and benchmarks start `serve --port 0` and read the port from this line.
    log.info(
        "listening on http://%s:%s (%s)",
        bound_host,
        bound_port,
        "Socket Mode; health checks only" if socket_mode else "HTTP",
    )
    handler: AsyncSocketModeHandler | None = None
    if socket_mode:
        handler = AsyncSocketModeHandler(bolt_app, settings.slack_app_token)
        await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        adopter.cancel()
        reverter.cancel()
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        # Stop listening and let the requests in progress finish first: a command taken while
        # the services close would be acknowledged and then not sent until the next start.
        await runner.cleanup()
        await services.aclose()
        if simulator is not None:
            await simulator.stop()


async def _adopt_forever(services: Services, bolt_app: AsyncApp) -> None:
    """Every third of a lease, take over the changes whose reporter went silent (a dead replica)."""
    interval = services.changes.lease / 3
    while True:
        await asyncio.sleep(interval)
        try:
            await adopt_changes(services, bolt_app.client)
        except Exception:
            log.exception("could not look for changes to take over")
