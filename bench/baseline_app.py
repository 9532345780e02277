"""The obvious alternative to agentbox, as a baseline: call wolkvox inline, then ack.

A Bolt AsyncApp whose ``/agentbox`` handler sends one agent_display call per agent with httpx,
one after the other (holding the token's limit, ``WOLKVOX_CONCURRENCY`` calls in flight, across
concurrent commands), and acknowledges the slash command only when all have answered. It has no
queue, no database and no permissions: it is as fast as an inline handler can be. Served over
HTTP like ``agentbox serve`` (aiohttp, ``POST /slack/events``, ``GET /healthz``)::

    python -m bench.baseline_app --port 0

It reads ``SLACK_SIGNING_SECRET``, ``SLACK_BOT_TOKEN``, ``SLACK_API_URL``, ``WOLKVOX_BASE_URL``,
``WOLKVOX_SERVER``, ``WOLKVOX_TOKEN`` and ``WOLKVOX_CONCURRENCY`` from the environment, and prints
``listening on http://HOST:PORT (HTTP)`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from typing import Any

import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from wolkvox.client import AGENT_DISPLAY_PATH

_COMMAND = re.compile(r"^\s*(hide|show)\s+(dial|disposition|hungup)\s+(.+)$")
_TARGET = re.compile(r"^(\d+)(?:-(\d+))?$")
USAGE = "agentbox (inline baseline): hide|show dial|disposition|hungup AGENTS"


def parse(text: str) -> tuple[str, str, list[str]] | None:
    """``hide dial 1001-1003 1007`` -> ("hide", "dial", ["1001", "1002", "1003", "1007"])."""
    match = _COMMAND.match(text)
    if match is None:
        return None
    agents: list[str] = []
    for part in re.split(r"[\s,]+", match[3].strip()):
        target = _TARGET.match(part)
        if target is None:
            return None
        first = int(target[1])
        last = int(target[2]) if target[2] else first
        if last < first or last - first >= 500:
            return None
        agents += [str(agent) for agent in range(first, last + 1)]
    return match[1], match[2], agents


def build(environ: dict[str, str], http: httpx.AsyncClient) -> web.Application:
    url = environ["WOLKVOX_BASE_URL"].rstrip("/") + AGENT_DISPLAY_PATH
    server = environ.get("WOLKVOX_SERVER", "0042")
    token = environ["WOLKVOX_TOKEN"]
    limit = asyncio.Semaphore(int(environ.get("WOLKVOX_CONCURRENCY", "1")))
    app = AsyncApp(
        signing_secret=environ["SLACK_SIGNING_SECRET"],
        client=AsyncWebClient(
            token=environ.get("SLACK_BOT_TOKEN", "xoxb-baseline"),
            base_url=environ.get("SLACK_API_URL", "https://slack.com/api/"),
        ),
    )

    @app.command("/agentbox")
    async def command(ack: AsyncAck, body: dict[str, Any]) -> None:
        text = str(body.get("text") or "")
        if text.strip() in ("", "help"):
            await ack(text=USAGE)
            return
        parsed = parse(text)
        if parsed is None:
            await ack(text=f"Not understood. {USAGE}")
            return
        display, button, agents = parsed
        done = 0
        for agent in agents:
            params = {
                "agent_id": agent,
                "api": "agent_display",
                "display": display,
                "button": button,
            }
            async with limit:
                try:
                    response = await http.post(
                        url,
                        params=params,
                        headers={"wolkvox-token": token, "wolkvox_server": server},
                        content=b"",
                    )
                except httpx.HTTPError:
                    continue
            done += response.status_code == 200
        verb = "Hiding" if display == "hide" else "Showing"
        await ack(text=f"{verb} `{button}` for {len(agents)} agents: {done}/{len(agents)} done")

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app = web.Application()
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with httpx.AsyncClient(timeout=60) as http:
        runner = web.AppRunner(build(dict(os.environ), http), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"listening on http://{bound_host}:{bound_port} (HTTP)", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
