"""Slack user groups' members, for grants given to a group (``usergroups.users.list``)."""

from __future__ import annotations

import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

#: How long a group's member list is trusted before Slack is asked again.
MEMBERS_TTL_SECONDS = 60.0


class SlackGroups:
    def __init__(self, client: AsyncWebClient, *, ttl: float = MEMBERS_TTL_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        cached = self._cache.get(group_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            response = await self._client.usergroups_users_list(usergroup=group_id)
            users = frozenset(str(user) for user in response.get("users") or [])
        except Exception as error:
            # A group whose members cannot be read grants nothing (and says so in the log).
            log.warning("cannot read the members of user group %s: %s", group_id, error)
            users = cached[1] if cached is not None else frozenset()
        self._cache[group_id] = (time.monotonic(), users)
        return users
