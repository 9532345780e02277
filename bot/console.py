"""``agentbox console``: type ``/agentbox …`` lines as a Slack user and read the replies as text.

It drives the very Bolt app that serves Slack, with signed slash-command requests; Slack's side is
a :class:`bot.fake_slack.FakeSlack` on this machine, and wolkvox is an in-process simulator unless
``WOLKVOX_BASE_URL`` points elsewhere. Nothing needs a Slack account.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import build_app, resume_unfinished, revert_when_due
from bot.fake_slack import FakeSlack
from bot.services import Services
from bot.settings import Settings
from bot.slash import signed_headers, slash_command_body
from wolkvox.client import DEFAULT_BASE_URL
from wolkvox.simulator import Simulator, SimulatorConfig

PROMPT = "/agentbox "
CONSOLE_SERVER = "0000"
CONSOLE_TOKEN = "console-token"


def _strip_command(line: str) -> str:
    line = line.strip()
    return line[len("/agentbox") :].strip() if line.startswith("/agentbox") else line


class Console:
    """One console session: the app, a fake Slack and (by default) a simulator, all in-process."""

    def __init__(
        self,
        settings: Settings,
        *,
        user_id: str,
        out: Callable[[str], None],
        language: str | None = None,
    ) -> None:
        """``language``: the user's Slack language, as Slack would tell it (users.info)."""
        self.user_id = user_id
        self._out = out
        self._settings = settings
        self.slack = FakeSlack(observer=self._show)
        if language is not None:
            self.slack.locales[user_id] = language
        self.simulator: Simulator | None = None
        self._services: Services | None = None
        self._app: Any = None
        self._reverter: asyncio.Task[None] | None = None
        self._secret = secrets.token_hex(16)

    def _show(self, kind: str, payload: dict[str, Any]) -> None:
        text = str(payload.get("text", ""))
        where = payload.get("channel", "you")
        prefix = {"posted": f"[{where}]", "updated": f"[{where}, updated]"}.get(kind, "[reply]")
        self._out(f"{prefix} {text}")

    async def start(self) -> None:
        await self.slack.start()
        overrides: dict[str, Any] = {
            "slack_api_url": self.slack.api_url,
            "slack_bot_token": "xoxb-console",
            "slack_signing_secret": self._secret,
        }
        if self._settings.wolkvox_base_url == DEFAULT_BASE_URL:
            self.simulator = Simulator(SimulatorConfig(latency=0.05))
            await self.simulator.start()
            overrides |= {
                "wolkvox_base_url": self.simulator.url,
                "wolkvox_server": self._settings.wolkvox_server or CONSOLE_SERVER,
                "wolkvox_token": self._settings.wolkvox_token or CONSOLE_TOKEN,
            }
        settings = self._settings.model_copy(update=overrides)
        self._services = await Services.create(settings)
        self._app = build_app(self._services)
        await self._services.start()
        await resume_unfinished(self._services, self._app.client)
        # Not in services.tasks: `send` waits for those, and this one runs until stop().
        self._reverter = asyncio.create_task(
            revert_when_due(self._services, self._app.client), name="timed-changes"
        )
        await self._services.tasks.join()

    async def stop(self) -> None:
        if self._reverter is not None:
            self._reverter.cancel()
            await asyncio.gather(self._reverter, return_exceptions=True)
        if self._services is not None:
            await self._services.aclose()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.slack.stop()

    async def send(self, line: str) -> int:
        """Send one command as the console's user, print the reply, wait for the work it started."""
        assert self._services is not None and self._app is not None
        body = slash_command_body(
            _strip_command(line),
            user_id=self.user_id,
            response_url=self.slack.new_response_url(),
        )
        headers: dict[str, str | Sequence[str]] = dict(signed_headers(body, self._secret))
        request = AsyncBoltRequest(body=body, headers=headers)
        response = await self._app.async_dispatch(request)
        if response.status != 200:
            self._out(f"[error {response.status}] {response.body}")
            return 1
        if response.body:
            self._out(str(json.loads(response.body).get("text", response.body)))
        await self._services.tasks.join()
        return 0


async def run_console(
    settings: Settings,
    *,
    user_id: str,
    commands: list[str],
    stdin: TextIO = sys.stdin,
    out: Callable[[str], None] = print,
    language: str | None = None,
) -> int:
    """Run ``commands`` (one-shot) or, when there are none, read lines from ``stdin`` until EOF."""
    console = Console(settings, user_id=user_id, out=out, language=language)
    await console.start()
    status = 0
    try:
        if commands:
            for command in commands:
                status |= await console.send(command)
            return status
        interactive = stdin.isatty()
        if interactive:
            out(f"agentbox console as {user_id}. Type `help`, or Ctrl-D to leave.")
        loop = asyncio.get_running_loop()
        while True:
            if interactive:
                print(PROMPT, end="", flush=True)
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                return status
            if line.strip():
                status |= await console.send(line)
    finally:
        await console.stop()
