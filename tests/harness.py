"""A running agentbox for scenario tests: its HTTP server on port 0, a fake Slack, a simulator.

Requests reach it the way Slack sends them (signed, form-encoded) over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.admission import DEFAULT_LIMIT
from bot.app import build_app
from bot.fake_slack import FakeSlack, PostedMessage
from bot.http import SLACK_EVENTS_PATH, build_web_app
from bot.services import Services
from bot.settings import Settings
from bot.slash import signed_headers, slash_command_body
from commands.clock import Clock, system_clock
from storage.models import AuditEvent
from wolkvox.retrying import RetryPolicy
from wolkvox.simulator import Simulator

ADMIN = "U_ADMIN"
STRANGER = "U_STRANGER"
CHANNEL = "C_OPS"
SERVER = "0042"
TOKEN = "wv-token-7f3a9c1e-not-for-logs"
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005, jitter=0.001)


@dataclass
class Harness:
    services: Services
    app: AsyncApp
    slack: FakeSlack
    simulator: Simulator
    base_url: str
    signing_secret: str
    http: httpx.AsyncClient

    async def slash(
        self,
        text: str,
        *,
        user: str = ADMIN,
        channel: str = CHANNEL,
        signed: bool = True,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST a slash command as Slack would; returns the HTTP response (the ack)."""
        body = self.slash_body(text, user=user, channel=channel)
        return await self.post(body, signed=signed, timestamp=timestamp)

    def slash_body(self, text: str, *, user: str = ADMIN, channel: str = CHANNEL) -> str:
        return slash_command_body(
            text, user_id=user, channel_id=channel, response_url=self.slack.new_response_url()
        )

    async def block_action(
        self,
        action_id: str,
        value: str,
        *,
        user: str = ADMIN,
        channel: str = CHANNEL,
        response_url: str | None = None,
    ) -> httpx.Response:
        """POST a signed ``block_actions`` payload, as Slack sends a button click."""
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T_FAKE"},
            "channel": {"id": channel},
            "actions": [
                {
                    "action_id": action_id,
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
            "response_url": response_url or self.slack.new_response_url(),
            "trigger_id": f"{int(time.time())}.{secrets.token_hex(6)}",
            "api_app_id": "A_AGENTBOX",
            "token": "x",
            "container": {"type": "message"},
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def shortcut(self, callback_id: str, *, user: str = ADMIN) -> httpx.Response:
        """POST a signed global ``shortcut`` payload, as Slack sends one from its search bar."""
        payload = {
            "type": "shortcut",
            "callback_id": callback_id,
            "user": {"id": user, "team_id": "T_FAKE"},
            "team": {"id": "T_FAKE"},
            "trigger_id": f"{int(time.time())}.{secrets.token_hex(6)}",
            "action_ts": f"{time.time():.6f}",
            "api_app_id": "A_AGENTBOX",
            "token": "x",
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def view_submission(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str = ADMIN
    ) -> httpx.Response:
        """POST a signed ``view_submission`` of ``view`` (as opened) with ``values`` as its
        ``state.values``; the response is the app's ``response_action`` (or empty: closed)."""
        payload = {
            "type": "view_submission",
            "user": {"id": user, "team_id": "T_FAKE"},
            "team": {"id": "T_FAKE"},
            "view": {**view, "state": {"values": values}, "hash": secrets.token_hex(6)},
            "trigger_id": f"{int(time.time())}.{secrets.token_hex(6)}",
            "api_app_id": "A_AGENTBOX",
            "token": "x",
            "response_urls": [],
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int = 0
    ) -> httpx.Response:
        """POST a signed Events API ``event_callback`` (JSON) as Slack delivers it; ``retry``:
        Slack's retry number (``X-Slack-Retry-Num``) for a delivery sent again."""
        body = json.dumps(
            {
                "token": "x",
                "team_id": "T_FAKE",
                "api_app_id": "A_AGENTBOX",
                "type": "event_callback",
                "event": event,
                "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
                "event_time": int(time.time()),
            }
        )
        headers = signed_headers(body, self.signing_secret) | {"Content-Type": "application/json"}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.http.post(SLACK_EVENTS_PATH, content=body, headers=headers)

    async def app_home_opened(
        self, *, user: str = ADMIN, event_id: str | None = None, retry: int = 0
    ) -> httpx.Response:
        event = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D_{user}",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        return await self.event(event, event_id=event_id, retry=retry)

    async def function_executed(
        self,
        callback_id: str,
        inputs: dict[str, Any],
        *,
        execution_id: str | None = None,
        event_id: str | None = None,
        retry: int = 0,
    ) -> httpx.Response:
        """A custom workflow step (``app.function``) run by a workflow."""
        event = {
            "type": "function_executed",
            "function": {"id": "Fn0AGENTBOX", "callback_id": callback_id, "type": "app"},
            "inputs": inputs,
            "function_execution_id": execution_id or f"Fx{secrets.token_hex(5).upper()}",
            "workflow_execution_id": f"Wx{secrets.token_hex(5).upper()}",
            "event_ts": f"{time.time():.6f}",
            "bot_access_token": "xwfp-workflow-token",
        }
        return await self.event(event, event_id=event_id, retry=retry)

    async def post(
        self, body: str, *, signed: bool = True, timestamp: int | None = None
    ) -> httpx.Response:
        """POST a form to the Slack endpoint, signed (or not) as Slack signs it."""
        headers = (
            signed_headers(body, self.signing_secret, timestamp=timestamp)
            if signed
            else {"Content-Type": "application/x-www-form-urlencoded"}
        )
        return await self.http.post(SLACK_EVENTS_PATH, content=body, headers=headers)

    @property
    def app_client(self) -> AsyncWebClient:
        """The Bolt app's Web API client (pointed at the fake Slack)."""
        return self.app.client

    async def idle(self) -> None:
        """Wait until every change started so far has finished and reported."""
        await self.services.tasks.join()

    def last_message(self, channel: str = CHANNEL) -> PostedMessage:
        messages = self.slack.messages_in(channel)
        assert messages, f"nothing was posted in {channel}"
        return messages[-1]


T = TypeVar("T")


async def rows_of(harness: Harness, model: type[T]) -> list[T]:
    """Every row of ``model``'s table, as the app stored it."""
    async with harness.services.database.sessions() as session:
        return list((await session.scalars(select(model))).all())


async def audit_events(harness: Harness) -> list[AuditEvent]:
    """The audit trail, oldest first."""
    async with harness.services.database.sessions() as session:
        return list((await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all())


def ack_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


async def admin_says(harness: Harness, text: str) -> str:
    """Run an admin's command that must succeed (no refusal, no warning); its ack."""
    reply = ack_text(await harness.slash(text, user=ADMIN))
    assert ":no_entry:" not in reply and ":warning:" not in reply, reply
    return reply


class MovableClock:
    """The time agentbox reads (``start_harness(clock=…)``): now, plus however far the test
    moved it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return system_clock() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@asynccontextmanager
async def start_harness(
    *,
    database_url: str,
    simulator: Simulator,
    admins: frozenset[str] = frozenset({ADMIN}),
    concurrency: int = 1,
    token: str = TOKEN,
    deadline: float = 5.0,
    retry: RetryPolicy = FAST_RETRY,
    slack: FakeSlack | None = None,
    encryption_keys: tuple[str, ...] = (),
    clock: Clock = system_clock,
    max_pending_commands: int = DEFAULT_LIMIT,
) -> AsyncIterator[Harness]:
    """``slack``: share one fake Slack between harnesses (a restart talks to the same Slack).
    ``clock``: what time it is for timers (timed changes, approval expiry)."""
    secret = secrets.token_hex(16)
    async with contextlib.AsyncExitStack() as stack:
        if slack is None:
            slack = await stack.enter_async_context(FakeSlack())
        settings = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=secret,
            slack_api_url=slack.api_url,
            wolkvox_server=SERVER,
            wolkvox_token=token,
            wolkvox_base_url=simulator.url,
            wolkvox_concurrency=concurrency,
            database_url=database_url,
            agentbox_admins=admins,
            agentbox_encryption_keys=encryption_keys,
            agentbox_max_pending_commands=max_pending_commands,
        )
        services = await Services.create(
            settings, retry=retry, wolkvox_deadline=deadline, clock=clock
        )
        await services.start()
        app = build_app(services)
        runner = web.AppRunner(build_web_app(services, app), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base_url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
                yield Harness(services, app, slack, simulator, base_url, secret, http)
        finally:
            await runner.cleanup()
            await services.aclose(grace=1.0)
