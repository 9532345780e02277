"""The HTTP face of agentbox: Slack's endpoint and the health checks."""

from __future__ import annotations

import asyncio

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot import oauth
from bot.metrics import add_metrics_route
from bot.services import Services

SLACK_EVENTS_PATH = "/slack/events"
#: ``/readyz`` calls the database not ready when it takes longer than this to answer.
READY_TIMEOUT_SECONDS = 3.0


def build_web_app(services: Services, bolt_app: AsyncApp | None) -> web.Application:
    """``POST /slack/events`` (when ``bolt_app`` is given), ``GET /healthz``, ``GET /readyz``,
    ``GET /metrics``; with OAuth on, ``GET /slack/install`` and ``GET /slack/oauth_redirect``
    (in Socket Mode too)."""
    web_app = web.Application()

    async def slack_events(request: web.Request) -> web.Response:
        assert bolt_app is not None
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt_app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def install(request: web.Request) -> web.Response:
        assert services.oauth_flow is not None
        bolt_request = await to_bolt_request(request)
        bolt_response = await oauth.handle(services.oauth_flow, request.path, bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def database_answers() -> bool:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                return await services.database.ping()
        except TimeoutError:
            return False

    async def readyz(_request: web.Request) -> web.Response:
        checks = {
            "database": await database_answers(),
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
    add_metrics_route(web_app, services)
    if services.oauth_flow is not None:
        web_app.router.add_get(oauth.INSTALL_PATH, install)
        web_app.router.add_get(oauth.REDIRECT_PATH, install)
    return web_app
