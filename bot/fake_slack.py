"""A local stand-in for Slack: the Web API methods agentbox calls, and response_url.

The console prints what arrives here, and the tests read it. It is a real HTTP server (aiohttp,
port 0 by default) so that agentbox's own slack_sdk client is exercised unchanged.
"""

from __future__ import annotations

import asyncio
import base64
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
    connection: str = ""
    """The caller's address and port: calls over one kept-alive connection share it."""


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
        #: While down, answer with a page that echoes the request's Authorization header, as a
        #: misbehaving proxy might (tests check that no token reaches a log line).
        self.outage_echoes_credentials = False
        #: OAuth installs (oauth.v2.access): the app's client id and secret, and each code a
        #: test hands out with the workspace it installs into (code -> team id).
        self.oauth_client: tuple[str, str] | None = None
        self.oauth_codes: dict[str, str] = {}
        #: User groups' members, as usergroups.users.list answers them.
        self.usergroups: dict[str, list[str]] = {}
        #: Each user's Slack locale (``es-LA``, ``en-US``…), as users.info answers it with
        #: ``include_locale``; a user not here has none.
        self.locales: dict[str, str] = {}
        self.calls: list[WebApiCall] = []
        self.messages: dict[tuple[str, str], PostedMessage] = {}
        self.responses: list[dict[str, Any]] = []
        #: Each user's App Home as last published (views.publish), and every modal opened.
        self.home_views: dict[str, dict[str, Any]] = {}
        self.opened_views: list[dict[str, Any]] = []
        #: Finished workflow steps: function_execution_id -> ("success", outputs) or
        #: ("error", error), from functions.completeSuccess / functions.completeError.
        self.function_results: dict[str, tuple[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
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
        peer = request.transport.get_extra_info("peername") if request.transport else None
        connection = f"{peer[0]}:{peer[1]}" if peer else ""
        self.calls.append(WebApiCall(method, payload, token, connection))
        if self.web_api_down:
            await self._record("", payload)
            echo = f" (you sent {auth})" if self.outage_echoes_credentials else ""
            return web.Response(status=503, text=f"Service Unavailable{echo}")
        if method == "oauth.v2.access":
            await self._record("", payload)
            return web.json_response(self._oauth_access(auth, payload))
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
        if method == "users.info":
            user_id = str(payload.get("user", ""))
            user: dict[str, Any] = {"id": user_id}
            include = str(payload.get("include_locale", "")).lower() in ("1", "true")
            if include and user_id in self.locales:
                user["locale"] = self.locales[user_id]
            return {"ok": True, "user": user}, ""
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
        if method == "chat.postEphemeral":
            self.ephemerals.append(payload)
            return {"ok": True, "message_ts": f"{1_700_000_000 + next(self._ts)}.000100"}, ""
        if method in ("views.open", "views.publish", "views.update"):
            view = _json(payload.get("view"))
            if not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments"}, ""
            view = {**view, "id": str(payload.get("view_id") or f"V{next(self._ts)}")}
            if method == "views.publish":
                self.home_views[str(payload.get("user_id", ""))] = view
            elif method == "views.open":
                self.opened_views.append(view)
            return {"ok": True, "view": view}, ""
        if method in ("functions.completeSuccess", "functions.completeError"):
            execution = str(payload.get("function_execution_id", ""))
            if not execution or execution in self.function_results:
                return {"ok": False, "error": "function_execution_not_found"}, ""
            self.function_results[execution] = (
                ("success", _json(payload.get("outputs")))
                if method == "functions.completeSuccess"
                else ("error", payload.get("error"))
            )
            return {"ok": True}, ""
        return {"ok": True}, ""

    def _oauth_access(self, auth: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Exchange a code for a bot token, as Slack does: the app authenticates with HTTP Basic
        (client id and secret); the token is ``xoxb-<team>-fake``."""
        if (
            self.oauth_client is None
            or auth != "Basic " + base64.b64encode(":".join(self.oauth_client).encode()).decode()
        ):
            return {"ok": False, "error": "invalid_client_id"}
        team = self.oauth_codes.pop(str(payload.get("code", "")), None)
        if team is None:
            return {"ok": False, "error": "invalid_code"}
        return {
            "ok": True,
            "app_id": "A_AGENTBOX",
            "authed_user": {"id": "U_INSTALLER"},
            "scope": "commands,chat:write",
            "token_type": "bot",
            "access_token": f"xoxb-{team}-fake",
            "bot_user_id": "U_AGENTBOX",
            "team": {"id": team, "name": f"Workspace {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await _payload(request)
        self.responses.append(payload)
        await self._record("response", payload)
        return web.Response(text="ok")


def _json(value: Any) -> Any:
    """A JSON argument as slack_sdk sends it: already decoded (JSON body) or a string (form)."""
    return json.loads(value) if isinstance(value, str) else value


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
