"""Where multi-workspace installs live: slack_sdk's async SQLAlchemy stores, on our engine.

slack_sdk (3.33+) ships ``AsyncSQLAlchemyInstallationStore`` and ``AsyncSQLAlchemyOAuthStateStore``,
which take an ``AsyncEngine`` (SQLAlchemy 2 asyncio; aiosqlite or asyncpg): they are used as they
are, on the app's own engine. Their tables are made by our migrations (0005), never by their
``create_tables``. Tokens are encrypted before slack_sdk sees them (:class:`EncryptedInstallations`)
with the keys that protect the wolkvox tokens (``AGENTBOX_ENCRYPTION_KEYS``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from logging import Logger
from typing import TypeVar

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from storage.database import Database
from storage.secrets import TokenCipher

#: The attributes of an Installation or a Bot that hold a secret.
_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")

T = TypeVar("T", Installation, Bot)


class EncryptedInstallations(AsyncInstallationStore):
    """slack_sdk's SQLAlchemy installation store, with every token encrypted at rest."""

    def __init__(self, database: Database, client_id: str, cipher: Callable[[], TokenCipher]):
        self._store = AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=database.engine)
        self._cipher = cipher

    @property
    def logger(self) -> Logger:
        logger: Logger = self._store.logger
        return logger

    async def async_save(self, installation: Installation) -> None:
        await self._store.async_save(self._sealed(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        await self._store.async_save_bot(self._sealed(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        bot = await self._store.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._opened(bot) if bot is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        installation = await self._store.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._opened(installation) if installation is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._store.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await self._store.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    def _sealed(self, value: T) -> T:
        """A copy of ``value`` whose tokens are ciphertext."""
        cipher, sealed = self._cipher(), copy.copy(value)
        for name in _TOKEN_FIELDS:
            token = getattr(sealed, name, None)
            if token:
                setattr(sealed, name, cipher.encrypt(token))
        return sealed

    def _opened(self, value: T) -> T:
        cipher = self._cipher()
        for name in _TOKEN_FIELDS:
            token = getattr(value, name, None)
            if token:
                setattr(value, name, cipher.decrypt(token))
        return value


def oauth_states(database: Database, expiration_seconds: int) -> AsyncSQLAlchemyOAuthStateStore:
    """slack_sdk's state store (one row per install started, consumed by its redirect)."""
    return AsyncSQLAlchemyOAuthStateStore(
        expiration_seconds=expiration_seconds, engine=database.engine
    )
