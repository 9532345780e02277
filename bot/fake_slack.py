"""A local stand-in for Slack: the Web API methods agentbox calls, and response_url.

The console prints what arrives here, and the tests read it. It is a real HTTP server (aiohttp,
port 0 by default) so that agentbox's own slack_sdk client is exercised unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(frozen=True)
class WebApiCall:
    method: str
    payload: dict[str, Any]
    token: str | None


@dataclass
class PostedMessage:
    """A message as Slack would show it now: ``history`` holds every version, the first posted."""

    channel: str
    ts: str
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any]:
        return self.history[-1]

    @property
    def text(self) -> str:
        return str(self.current.get("text", ""))


Observer = Callable[[str, dict[str, Any]], None]


class FakeSlack:
    """Records Web API calls and response_url posts; answers like Slack does.

    ``unpostable_channels`` answer ``not_in_channel`` to chat.postMessage, as a private channel the
    bot is not in would. ``observer`` is called with ``(kind, payload)`` for every message that
    arrives (kind is ``posted``, ``updated`` or ``response``), which is how the console prints.
    """

    def __init__(self, *, observer: Observer | None = None) -> None:
        self.observer = observer
        self.unpostable_channels: set[str] = set()
        self.web_api_down = False
        #: User groups' members, as usergroups.users.list answers them.
        self.usergroups: dict[str, list[str]] = {}
        self.calls: list[WebApiCall] = []
        self.messages: dict[tuple[str, str], PostedMessage] = {}
        self.responses: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The value for ``SLACK_API_URL``."""
        return f"{self.url}/api/"

    def new_response_url(self) -> str:
        return f"{self.url}/response/{next(self._response_ids)}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._web_api)  # slack_sdk GETs some methods
        app.router.add_post("/response/{id}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- what the tests read ---------------------------------------------------------------

    def messages_in(self, channel: str) -> list[PostedMessage]:
        return [message for (chan, _), message in self.messages.items() if chan == channel]

    def calls_to(self, method: str) -> list[WebApiCall]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking whenever something arrives."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    # --- the server side -------------------------------------------------------------------

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if self.observer is not None and kind:
            self.observer(kind, payload)
        async with self._changed:
            self._changed.notify_all()

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        payload = await _payload(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(WebApiCall(method, payload, token))
        if self.web_api_down:
            await self._record("", payload)
            return web.Response(status=503, text="Service Unavailable")
        answer, kind = self._answer(method, payload)
        await self._record(kind, payload)
        return web.json_response(answer)

    def _answer(self, method: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake",
                "user": "agentbox",
                "team_id": "T_FAKE",
                "user_id": "U_AGENTBOX",
                "bot_id": "B_AGENTBOX",
            }, ""
        if method == "usergroups.users.list":
            group = str(payload.get("usergroup", ""))
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}, ""
            return {"ok": True, "users": self.usergroups[group]}, ""
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": f"D_{payload.get('users', 'X')}"}}, ""
        if method == "chat.postMessage":
            channel = str(payload.get("channel", ""))
            if channel in self.unpostable_channels:
                return {"ok": False, "error": "not_in_channel"}, ""
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            self.messages[(channel, ts)] = PostedMessage(channel, ts, [payload])
            return {"ok": True, "channel": channel, "ts": ts, "message": payload}, "posted"
        if method == "chat.update":
            key = (str(payload.get("channel", "")), str(payload.get("ts", "")))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}, ""
            self.messages[key].history.append(payload)
            return {"ok": True, "channel": key[0], "ts": key[1]}, "updated"
        return {"ok": True}, ""

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await _payload(request)
        self.responses.append(payload)
        await self._record("response", payload)
        return web.Response(text="ok")


async def _payload(request: web.Request) -> dict[str, Any]:
    """Arguments as slack_sdk sends them: in the query string, a form or a JSON body."""
    payload: dict[str, Any] = dict(request.query)
    raw = await request.text()
    if request.content_type == "application/json":
        loaded = json.loads(raw) if raw else {}
        return payload | (loaded if isinstance(loaded, dict) else {})
    payload |= dict(parse_qsl(raw))
    for key in ("blocks", "attachments"):
        if isinstance(payload.get(key), str):
            payload[key] = json.loads(payload[key])
    return payload
