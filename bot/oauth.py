"""Multi-workspace install (OAuth), on when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are set.

``GET /slack/install`` shows the "Add to Slack" page, and ``GET /slack/oauth_redirect`` finishes
an install: Bolt's ``AsyncOAuthFlow`` checks the state, calls ``oauth.v2.access`` and stores the
workspace's bot token (storage/slack_installations.py: slack_sdk's async SQLAlchemy stores on our
engine, tokens encrypted). Each request from Slack is then authorized with its workspace's token.

Work that outlives a request (following a change, timed reverts, adoption by another replica)
posts with :class:`WorkspaceClient`: each Web API call carries the bot token of the workspace in
:data:`current_team`, which Bolt's middleware sets for a request (tasks it starts inherit it) and
:func:`in_workspace` sets from a change's recorded ``slack_team_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.settings import Settings
from storage.database import Database
from storage.secrets import TokenCipher
from storage.slack_installations import EncryptedInstallations, oauth_states

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
#: How long an install may take between the install page and the redirect.
STATE_EXPIRATION_SECONDS = 600
#: How long a workspace's bot token is reused before it is read again (a reinstall renews it).
TOKEN_CACHE_SECONDS = 60.0

#: The Slack workspace (team id) the current request or background task works for.
current_team: ContextVar[str | None] = ContextVar("current_team", default=None)


@contextmanager
def in_workspace(team_id: str | None) -> Iterator[None]:
    """Work for ``team_id`` inside the block (and in the tasks started in it)."""
    token = current_team.set(team_id)
    try:
        yield
    finally:
        current_team.reset(token)


async def team_middleware(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
    """A Bolt middleware: the request's workspace becomes :data:`current_team`."""
    with in_workspace(context.team_id):
        return await next()


def installations(settings: Settings, database: Database) -> EncryptedInstallations | None:
    """The installation store when OAuth is on (None otherwise).

    Raises :class:`storage.secrets.SecretsError` when ``AGENTBOX_ENCRYPTION_KEYS`` is missing or
    wrong: installed tokens are stored encrypted, as wolkvox tokens are.
    """
    if not settings.oauth_enabled:
        return None
    assert settings.slack_client_id is not None
    keys = settings.agentbox_encryption_keys
    TokenCipher(keys)  # fail at start, with its message, rather than at the first install
    return EncryptedInstallations(database, settings.slack_client_id, lambda: TokenCipher(keys))


def oauth_flow(
    settings: Settings, database: Database, store: AsyncInstallationStore
) -> AsyncOAuthFlow:
    """Bolt's install flow, with slack_sdk's stores on our database."""
    return AsyncOAuthFlow(
        client=AsyncWebClient(base_url=settings.slack_api_url),
        settings=AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            scopes=list(settings.slack_scopes),
            redirect_uri=settings.slack_redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            installation_store=store,
            installation_store_bot_only=True,
            state_store=oauth_states(database, STATE_EXPIRATION_SECONDS),
            state_expiration_seconds=STATE_EXPIRATION_SECONDS,
        ),
    )


class WorkspaceClient(AsyncWebClient):
    """A Web API client whose calls carry the bot token of :data:`current_team`'s workspace
    (a call that names its own token, or outside any workspace, is sent as it is)."""

    def __init__(
        self,
        store: AsyncInstallationStore,
        *,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url=base_url, session=session)
        self._store = store
        self._tokens: dict[str, tuple[float, str | None]] = {}

    async def api_call(
        self, api_method: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncSlackResponse:
        team = current_team.get()
        if team and kwargs.get("auth") is None and not _names_token(kwargs):
            token = await self._token_for(team)
            if token is not None:
                headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return await super().api_call(api_method, headers=headers, **kwargs)

    async def _token_for(self, team: str) -> str | None:
        cached = self._tokens.get(team)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS:
            return cached[1]
        bot = await self._store.async_find_bot(enterprise_id=None, team_id=team)
        token = bot.bot_token if bot is not None else None
        if token is None:
            log.warning("agentbox is not installed in workspace %s (no bot token)", team)
        self._tokens[team] = (time.monotonic(), token)
        return token


def _names_token(kwargs: dict[str, Any]) -> bool:
    return any(
        isinstance(kwargs.get(part), dict) and "token" in kwargs[part]
        for part in ("params", "json", "data")
    )


async def handle(flow: AsyncOAuthFlow, path: str, request: AsyncBoltRequest) -> BoltResponse:
    """Run the install page or the redirect for a Bolt request."""
    if path == INSTALL_PATH:
        response: BoltResponse = await flow.handle_installation(request)
    else:
        response = await flow.handle_callback(request)
    return response
