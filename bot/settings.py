"""Configuration from the environment (the names are part of the outside contract in design.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from wolkvox.client import DEFAULT_BASE_URL
from wolkvox.dispatcher import MAX_CONCURRENCY

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///agentbox.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class Settings(BaseSettings):
    """Every setting agentbox reads, with its environment variable and default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: str | None = Field(default=None, repr=False)
    slack_signing_secret: str | None = Field(default=None, repr=False)
    slack_app_token: str | None = Field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL

    wolkvox_server: str | None = None
    wolkvox_token: str | None = Field(default=None, repr=False)
    wolkvox_base_url: str = DEFAULT_BASE_URL
    wolkvox_concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY)

    database_url: str = DEFAULT_DATABASE_URL
    agentbox_admins: Annotated[frozenset[str], NoDecode] = frozenset()
    #: Fernet keys for the stored wolkvox tokens, newest first (storage/secrets.py).
    agentbox_encryption_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)

    #: Apply database migrations when the app starts (else run `agentbox db upgrade` first).
    agentbox_migrate_on_start: bool = True
    #: How long a replica may go silent before another one takes over reporting its changes.
    agentbox_reporter_lease_seconds: float = Field(default=30.0, gt=0)
    #: How often idle workers look at the queue even without a wake-up signal.
    agentbox_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("agentbox_admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("agentbox_encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto the base URL and needs the trailing slash.
        return value if value.endswith("/") else value + "/"
