"""wolkvox operations (tenants): which token serves which agent.

The default operation comes from ``WOLKVOX_SERVER``/``WOLKVOX_TOKEN`` (named ``default``); others
are stored in the database with their token encrypted (``agentbox operation add``, ``agentbox
apply``). Decrypted credentials are cached in memory and reloaded when a name is not found or a
token is refused, so an operation added or re-keyed by another process is picked up.
"""

from __future__ import annotations

import logging

from storage.directory import Directory
from wolkvox.metrics import name_operation
from wolkvox.model import Credentials
from wolkvox.redaction import register_secret

log = logging.getLogger(__name__)

DEFAULT_OPERATION = "default"


class Operations:
    def __init__(
        self, default: Credentials | None, directory: Directory | None, *, concurrency: int
    ) -> None:
        self._default = default
        self._directory = directory
        self._default_concurrency = concurrency
        self._stored: dict[str, tuple[Credentials, int]] = {}
        if default is not None:
            _loaded(DEFAULT_OPERATION, default)

    @property
    def names(self) -> list[str]:
        names = set(self._stored)
        if self._default is not None:
            names.add(DEFAULT_OPERATION)
        return sorted(names)

    async def refresh(self) -> None:
        """Reload the stored operations (and their decrypted tokens)."""
        if self._directory is None:
            return
        loaded: dict[str, tuple[Credentials, int]] = {}
        for record in await self._directory.operations():
            secret = await self._directory.operation_secret(record.name)
            if secret is not None:
                loaded[record.name] = (Credentials(record.server, secret[1]), record.concurrency)
                _loaded(record.name, loaded[record.name][0])
        self._stored = loaded

    def credentials_for(self, operation: str) -> Credentials | None:
        if operation == DEFAULT_OPERATION:
            return self._default
        stored = self._stored.get(operation)
        return stored[0] if stored else None

    def concurrency_for(self, operation: str) -> int:
        stored = self._stored.get(operation)
        return stored[1] if stored else self._default_concurrency

    async def exists(self, operation: str) -> bool:
        if self.credentials_for(operation) is None:
            await self.refresh()
        return self.credentials_for(operation) is not None


def _loaded(operation: str, credentials: Credentials) -> None:
    """A token is known: keep it out of the logs, and label its calls' metrics."""
    register_secret(credentials.token)
    name_operation(credentials, operation)
