"""Installing agentbox in several workspaces (OAuth): the install page, the redirect against a
fake ``oauth.v2.access``, and each workspace's requests and background posts under its own bot
token; on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.app import build_app, revert_due_changes
from bot.fake_slack import FakeSlack
from bot.http import build_web_app
from bot.oauth import in_workspace
from bot.serve import ConfigurationError, check_settings
from bot.services import Services
from bot.settings import Settings
from bot.slash import slash_command_body
from commands.clock import Clock, system_clock
from storage.models import Change, SlackBot, SlackOAuthState
from storage.secrets import generate_key
from tests.harness import ADMIN, FAST_RETRY, SERVER, TOKEN, Harness, MovableClock, ack_text
from wolkvox.simulator import Simulator

CLIENT_ID = "1234.5678"
CLIENT_SECRET = "oauth-client-secret-9e9e9e"
STATE_COOKIE = "slack-app-oauth-state"


def oauth_settings(database_url: str, simulator: Simulator, slack: FakeSlack) -> Settings:
    return Settings(
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_signing_secret=secrets.token_hex(16),
        slack_api_url=slack.api_url,
        wolkvox_server=SERVER,
        wolkvox_token=TOKEN,
        wolkvox_base_url=simulator.url,
        database_url=database_url,
        agentbox_admins=frozenset({ADMIN}),
        agentbox_encryption_keys=(generate_key(),),
    )


@asynccontextmanager
async def installable_agentbox(
    database_url: str, simulator: Simulator, *, clock: Clock = system_clock
) -> AsyncIterator[Harness]:
    """A running agentbox with OAuth on and no bot token of its own, over HTTP on port 0."""
    async with contextlib.AsyncExitStack() as stack:
        slack = await stack.enter_async_context(FakeSlack())
        slack.oauth_client = (CLIENT_ID, CLIENT_SECRET)
        settings = oauth_settings(database_url, simulator, slack)
        services = await Services.create(
            settings, retry=FAST_RETRY, wolkvox_deadline=5.0, clock=clock
        )
        stack.push_async_callback(services.aclose, 1.0)
        await services.start()
        app = build_app(services)
        runner = web.AppRunner(build_web_app(services, app), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=10))
        secret = settings.slack_signing_secret
        assert secret is not None
        yield Harness(services, app, slack, simulator, base_url, secret, http)


async def install_page(box: Harness) -> tuple[httpx.Response, str]:
    """The "Add to Slack" page, and the state its cookie holds."""
    page = await box.http.get("/slack/install")
    assert page.status_code == 200, page.text
    state = re.search(rf"{STATE_COOKIE}=([^;]+)", page.headers["set-cookie"])
    assert state is not None
    assert f"state={state.group(1)}" in page.text and f"client_id={CLIENT_ID}" in page.text
    return page, state.group(1)


async def install(box: Harness, team: str) -> httpx.Response:
    """Go through the install page and Slack's redirect into ``team``, as a browser would."""
    _, state = await install_page(box)
    code = f"code-{team}"
    box.slack.oauth_codes[code] = team
    return await box.http.get(
        "/slack/oauth_redirect",
        params={"code": code, "state": state},
        headers={"Cookie": f"{STATE_COOKIE}={state}"},
    )


async def slash_from(box: Harness, team: str, text: str) -> httpx.Response:
    body = slash_command_body(
        text, user_id=ADMIN, channel_id=f"C_{team}", team_id=team,
        response_url=box.slack.new_response_url(),
    )  # fmt: skip
    return await box.post(body)


def tokens_posting_in(box: Harness, channel: str) -> set[str | None]:
    return {
        call.token
        for call in box.slack.calls
        if call.method in ("chat.postMessage", "chat.update") and call.payload["channel"] == channel
    }


async def test_install_stores_the_workspace_bot_token_encrypted(
    database_url: str, simulator: Simulator
) -> None:
    async with installable_agentbox(database_url, simulator) as box:
        page, _ = await install_page(box)
        assert "https://slack.com/oauth/v2/authorize?" in page.text
        assert "scope=commands,chat:write,chat:write.public,im:write" in page.text

        done = await install(box, "T_ONE")

        assert done.status_code == 200, done.text
        (access,) = box.slack.calls_to("oauth.v2.access")
        assert access.payload["code"] == "code-T_ONE"
        async with box.services.database.sessions() as session:
            (bot,) = (await session.scalars(select(SlackBot))).all()
            states = await session.scalar(select(func.count()).select_from(SlackOAuthState))
        assert (bot.team_id, bot.client_id, bot.bot_user_id) == ("T_ONE", CLIENT_ID, "U_AGENTBOX")
        assert bot.bot_token and "xoxb" not in bot.bot_token, "stored encrypted"
        assert states == 1, "the redirect used up its state (the first page's is left)"
        assert box.services.oauth_flow is not None
        found = await box.services.oauth_flow.settings.installation_store.async_find_bot(
            enterprise_id=None, team_id="T_ONE"
        )
        assert found is not None and found.bot_token == "xoxb-T_ONE-fake"


async def test_a_redirect_without_its_state_installs_nothing(
    database_url: str, simulator: Simulator
) -> None:
    async with installable_agentbox(database_url, simulator) as box:
        box.slack.oauth_codes["code-T_EVIL"] = "T_EVIL"

        forged = await box.http.get(
            "/slack/oauth_redirect",
            params={"code": "code-T_EVIL", "state": "made-up"},
            headers={"Cookie": f"{STATE_COOKIE}=made-up"},
        )

        assert forged.status_code == 401
        assert box.slack.calls_to("oauth.v2.access") == []
        async with box.services.database.sessions() as session:
            assert (await session.scalars(select(SlackBot))).all() == []


async def test_each_workspace_is_answered_with_its_own_bot_token(
    database_url: str, simulator: Simulator
) -> None:
    async with installable_agentbox(database_url, simulator) as box:
        assert (await install(box, "T_ONE")).status_code == 200
        assert (await install(box, "T_TWO")).status_code == 200

        assert "1001" in ack_text(await slash_from(box, "T_ONE", "hide dial 1001"))
        assert "1002" in ack_text(await slash_from(box, "T_TWO", "hide dial 1002"))
        await box.idle()

        assert tokens_posting_in(box, "C_T_ONE") == {"xoxb-T_ONE-fake"}
        assert tokens_posting_in(box, "C_T_TWO") == {"xoxb-T_TWO-fake"}
        assert simulator.button_state("1001", "dial") == "hide"
        assert simulator.button_state("1002", "dial") == "hide"


async def test_a_workspace_that_did_not_install_changes_nothing(
    database_url: str, simulator: Simulator
) -> None:
    async with installable_agentbox(database_url, simulator) as box:
        await install(box, "T_ONE")

        await slash_from(box, "T_STRANGER", "hide dial 1001")

        async with box.services.database.sessions() as session:
            assert (await session.scalars(select(Change))).all() == []
        assert simulator.calls == []


async def test_background_posts_use_the_token_of_the_change_s_workspace(
    database_url: str, simulator: Simulator
) -> None:
    """A timed change's revert is followed by a background task, not a request: it posts with
    the bot token of the workspace the change came from."""
    clock = MovableClock()
    async with installable_agentbox(database_url, simulator, clock=clock) as box:
        await install(box, "T_TWO")
        await slash_from(box, "T_TWO", "hide dial 1001 for 30m")
        await box.idle()
        posted_before = len(box.slack.calls)

        clock.offset = timedelta(minutes=31)
        assert await revert_due_changes(box.services, box.services.slack) == 1
        await box.idle()

        assert simulator.button_state("1001", "dial") == "show"
        revert_posts = [c for c in box.slack.calls[posted_before:] if c.method.startswith("chat.")]
        assert revert_posts and {c.token for c in revert_posts} == {"xoxb-T_TWO-fake"}
        with in_workspace("T_TWO"):
            await box.services.slack.chat_postMessage(channel="C_ANY", text="from T_TWO")
        assert box.slack.calls[-1].token == "xoxb-T_TWO-fake"


def test_oauth_needs_encryption_keys_and_no_bot_token() -> None:
    settings = Settings(
        slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET, slack_signing_secret="s" * 32
    )
    with pytest.raises(ConfigurationError, match="set AGENTBOX_ENCRYPTION_KEYS too"):
        check_settings(settings)
    check_settings(settings.model_copy(update={"agentbox_encryption_keys": (generate_key(),)}))
