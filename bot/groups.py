"""Slack user groups' members, for grants given to a group (``usergroups.users.list``)."""

from __future__ import annotations

import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

#: How long a group's member list is trusted before Slack is asked again.
MEMBERS_TTL_SECONDS = 60.0
#: How long a member list may still be used while Slack cannot be asked.
STALE_LIMIT_SECONDS = 300.0


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
            # While Slack fails, the last list stands for at most STALE_LIMIT_SECONDS (its age is
            # not renewed); then, and for a group never read, the group grants nothing.
            log.warning("cannot read the members of user group %s: %s", group_id, error)
            if cached is not None and time.monotonic() - cached[0] < STALE_LIMIT_SECONDS:
                return cached[1]
            return frozenset()
        self._cache[group_id] = (time.monotonic(), users)
        return users
