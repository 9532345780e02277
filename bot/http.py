"""The HTTP face of agentbox: Slack's endpoint and the health checks."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.services import Services

SLACK_EVENTS_PATH = "/slack/events"


def build_web_app(services: Services, bolt_app: AsyncApp | None) -> web.Application:
    """``POST /slack/events`` (when ``bolt_app`` is given), ``GET /healthz`` and ``GET /readyz``."""
    web_app = web.Application()

    async def slack_events(request: web.Request) -> web.Response:
        assert bolt_app is not None
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt_app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = {
            "database": await services.database.ping(),
            "dispatcher": not services.dispatcher.closed,
        }
        ready = all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    if bolt_app is not None:
        web_app.router.add_post(SLACK_EVENTS_PATH, slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    return web_app
