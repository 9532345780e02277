"""Configuration from the environment (the names are part of the outside contract in design.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.admission import DEFAULT_LIMIT
from commands.i18n import DEFAULT_LANGUAGE, LANGUAGES, normalize_language
from wolkvox.client import DEFAULT_BASE_URL
from wolkvox.dispatcher import MAX_CONCURRENCY

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///agentbox.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
#: The bot scopes manifest.yml asks for; an OAuth install asks for the same by default.
DEFAULT_SLACK_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "usergroups:read",
    "users:read",
)


class Settings(BaseSettings):
    """Every setting agentbox reads, with its environment variable and default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: str | None = Field(default=None, repr=False)
    slack_signing_secret: str | None = Field(default=None, repr=False)
    slack_app_token: str | None = Field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    #: Multi-workspace install (OAuth, bot/oauth.py): on when both client id and secret are set.
    slack_client_id: str | None = None
    slack_client_secret: str | None = Field(default=None, repr=False)
    slack_scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SLACK_SCOPES
    #: The public URL of ``/slack/oauth_redirect``, as registered in the app's settings.
    slack_redirect_uri: str | None = None

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
    #: Slash commands taken at once before the next is answered "busy" (bot/admission.py).
    agentbox_max_pending_commands: int = Field(default=DEFAULT_LIMIT, ge=1)
    #: The language of users who chose none and whose Slack language agentbox lacks (en, es).
    agentbox_language: str = DEFAULT_LANGUAGE
    #: How long an approval request waits for approvers (a team may set its own).
    agentbox_approval_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)

    @field_validator("agentbox_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        language = normalize_language(value)
        if language is None:
            raise ValueError(
                f"AGENTBOX_LANGUAGE must be one of {', '.join(LANGUAGES)}, not {value!r}"
            )
        return language

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    @field_validator("slack_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

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
