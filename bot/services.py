"""Everything a running agentbox holds, built from the settings and closed in the right order."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.settings import Settings
from bot.tasks import TaskGroup
from commands.changes import ChangeService
from commands.permissions import AdminListPolicy
from storage.changes import ChangeStore
from storage.database import Database
from wolkvox.client import CALL_DEADLINE_SECONDS, WolkvoxClient
from wolkvox.dispatcher import Dispatcher, RetryPolicy
from wolkvox.model import Credentials

log = logging.getLogger(__name__)

#: How long shutdown waits for calls in flight before handing them back.
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class Services:
    settings: Settings
    database: Database
    store: ChangeStore
    wolkvox: WolkvoxClient
    dispatcher: Dispatcher
    changes: ChangeService
    tasks: TaskGroup

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        wolkvox_deadline: float = CALL_DEADLINE_SECONDS,
    ) -> Services:
        database = Database(settings.database_url)
        await database.create_schema()
        store = ChangeStore(database)
        wolkvox = WolkvoxClient(settings.wolkvox_base_url, deadline=wolkvox_deadline)
        dispatcher = Dispatcher(
            wolkvox, concurrency=settings.wolkvox_concurrency, retry=retry or RetryPolicy()
        )
        credentials = None
        if settings.wolkvox_server and settings.wolkvox_token:
            credentials = Credentials(settings.wolkvox_server, settings.wolkvox_token)
        else:
            log.warning("WOLKVOX_SERVER/WOLKVOX_TOKEN not set: changes will be refused")
        changes = ChangeService(
            store, dispatcher, AdminListPolicy(settings.agentbox_admins), credentials
        )
        return cls(settings, database, store, wolkvox, dispatcher, changes, TaskGroup())

    async def aclose(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop the calls (in-flight ones get ``grace`` seconds), let reports go out, close."""
        await self.dispatcher.aclose(grace)
        await self.tasks.aclose(grace)
        await self.wolkvox.aclose()
        await self.database.dispose()
