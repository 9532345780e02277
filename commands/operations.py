"""wolkvox operations (tenants): which token serves which agent.

For now there is one, the default operation from ``WOLKVOX_SERVER``/``WOLKVOX_TOKEN``; the roles
and teams issue adds operations stored encrypted in the database.
"""

from __future__ import annotations

from wolkvox.model import Credentials

DEFAULT_OPERATION = "default"


class Operations:
    def __init__(self, default: Credentials | None) -> None:
        self._credentials = {DEFAULT_OPERATION: default} if default is not None else {}

    @property
    def names(self) -> list[str]:
        return sorted(self._credentials)

    def credentials_for(self, operation: str) -> Credentials | None:
        return self._credentials.get(operation)

    def route(self, agent_id: str) -> str | None:
        """The operation whose token changes ``agent_id``'s softphone, if any."""
        return DEFAULT_OPERATION if DEFAULT_OPERATION in self._credentials else None
