"""Everything a running agentbox holds, built from the settings and closed in the right order."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field

import aiohttp
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import make_url

from bot import approvals as approval_messages
from bot import oauth
from bot.admission import DEFAULT_LIMIT, Admission
from bot.groups import SlackGroups
from bot.language import Languages
from bot.settings import Settings
from bot.tasks import TaskGroup
from commands.access import Access
from commands.admin import AdminService
from commands.approvals import ApprovalService
from commands.changes import ChangeService
from commands.clock import Clock, system_clock
from commands.languages import LanguageChoices
from commands.operations import Operations
from commands.overview import Overview
from commands.reads import Reads
from commands.snapshot import Snapshots
from commands.timed import TimedChanges
from storage import migrate
from storage.approvals import ApprovalStore
from storage.changes import ChangeStore
from storage.database import Database
from storage.directory import Directory
from storage.history import History
from storage.queue import CallQueue
from storage.secrets import TokenCipher
from storage.settings_store import UserSettings
from storage.signals import Signals
from storage.slots import SlotLocks
from wolkvox.client import CALL_DEADLINE_SECONDS, WolkvoxClient
from wolkvox.dispatcher import Dispatcher
from wolkvox.model import Credentials
from wolkvox.redaction import register_secret
from wolkvox.retrying import RetryPolicy

log = logging.getLogger(__name__)

#: How long shutdown waits for calls in flight before handing them back.
SHUTDOWN_GRACE_SECONDS = 10.0
#: The longest one Slack Web API call may take (slack_sdk's own default).
SLACK_CALL_TIMEOUT_SECONDS = 30.0


def slack_session() -> aiohttp.ClientSession:
    """The connection pool every Slack Web API call of this process shares.

    Without one, slack_sdk opens a new aiohttp session, and so a new TCP and TLS connection, for
    every call: a change's progress message, its updates, its summary and trail each paid a
    handshake. Shared, they reuse keep-alive connections. slack_sdk passes no timeout of its
    own with a session it did not make, so the session carries it.
    """
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=SLACK_CALL_TIMEOUT_SECONDS),
        # Nothing Slack sets is sent back, nor from one workspace's calls to another's.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def register_settings_secrets(settings: Settings) -> None:
    """Keep the credentials in the settings out of every log line (bot/logs.py)."""
    secrets_ = (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.slack_client_secret,
        settings.wolkvox_token,
        make_url(settings.database_url).password,
        *settings.agentbox_encryption_keys,
    )
    for secret in secrets_:
        register_secret(str(secret) if secret is not None else None)


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Services:
    settings: Settings
    replica_id: str
    database: Database
    signals: Signals
    slots: SlotLocks
    queue: CallQueue
    store: ChangeStore
    operations: Operations
    directory: Directory
    slack: AsyncWebClient
    wolkvox: WolkvoxClient
    dispatcher: Dispatcher
    changes: ChangeService
    admin: AdminService
    tasks: TaskGroup
    timed: TimedChanges
    #: What time it is for timers (timed changes, approval expiry); tests move it forward.
    clock: Clock = system_clock
    #: Slash commands being taken, and when to turn the next one away (bot/admission.py).
    admission: Admission = field(default_factory=lambda: Admission(DEFAULT_LIMIT))
    #: What App Home and the change modal show a user (set by ``create``).
    overview: Overview = field(init=False)
    #: Approval requests (set by ``create``); ``start`` runs their expiry sweep.
    approvals: ApprovalService = field(init=False)
    #: Which language each user reads (set by ``create``; bot/language.py).
    languages: Languages = field(init=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    #: The install flow when agentbox is installed by OAuth in several workspaces (bot/oauth.py).
    oauth_flow: AsyncOAuthFlow | None = field(default=None, init=False)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        wolkvox_deadline: float = CALL_DEADLINE_SECONDS,
        clock: Clock = system_clock,
    ) -> Services:
        register_settings_secrets(settings)
        database = Database(settings.database_url)
        session = slack_session()
        try:
            return await cls._assemble(settings, database, session, retry, wolkvox_deadline, clock)
        except BaseException:
            await session.close()
            await database.dispose()
            raise

    @classmethod
    async def _assemble(
        cls,
        settings: Settings,
        database: Database,
        session: aiohttp.ClientSession,
        retry: RetryPolicy | None,
        wolkvox_deadline: float,
        clock: Clock,
    ) -> Services:
        replica_id = new_replica_id()
        if settings.agentbox_migrate_on_start:
            await migrate.upgrade(database)
        signals = Signals(database.url)
        slots = SlotLocks(database.url)
        queue = CallQueue(database, signals)
        store = ChangeStore(database, signals)
        default = None
        if settings.wolkvox_server and settings.wolkvox_token:
            default = Credentials(settings.wolkvox_server, settings.wolkvox_token)
        else:
            log.warning("WOLKVOX_SERVER/WOLKVOX_TOKEN not set: changes will be refused")
        keys = settings.agentbox_encryption_keys
        directory = Directory(database, lambda: TokenCipher(keys))
        operations = Operations(default, directory, concurrency=settings.wolkvox_concurrency)
        if keys:
            await operations.refresh()
        installed = oauth.installations(settings, database)
        slack = (
            oauth.WorkspaceClient(installed, base_url=settings.slack_api_url, session=session)
            if installed is not None
            else AsyncWebClient(
                token=settings.slack_bot_token, base_url=settings.slack_api_url, session=session
            )
        )
        snapshots = Snapshots(directory)
        access = Access(snapshots, SlackGroups(slack), settings.agentbox_admins)
        wolkvox = WolkvoxClient(settings.wolkvox_base_url, deadline=wolkvox_deadline)
        dispatcher = Dispatcher(
            queue,
            slots,
            signals,
            wolkvox,
            operations.credentials_for,
            replica_id=replica_id,
            concurrency=settings.wolkvox_concurrency,
            retry=retry,
            poll_interval=settings.agentbox_poll_seconds,
            concurrency_for=operations.concurrency_for,
            refresh_credentials=operations.refresh if keys else None,
        )
        approvals = ApprovalService(
            ApprovalStore(database, signals, store),
            access,
            snapshots,
            replica_id=replica_id,
            lease=settings.agentbox_reporter_lease_seconds,
            clock=clock,
            default_ttl_minutes=settings.agentbox_approval_ttl_minutes,
        )
        changes = ChangeService(
            store,
            queue,
            signals,
            access,
            snapshots,
            operations,
            replica_id=replica_id,
            concurrency=settings.wolkvox_concurrency,
            lease=settings.agentbox_reporter_lease_seconds,
            approvals=approvals,
            clock=clock,
        )
        # A change is read again as soon as this process answered its last open call.
        dispatcher.on_call_done = lambda call, _outcome: changes.note_answered(call.change_id)
        timed = TimedChanges(
            store,
            History(database),
            replica_id=replica_id,
            lease=settings.agentbox_reporter_lease_seconds,
            clock=clock,
        )
        user_settings = UserSettings(database)
        services = cls(
            settings, replica_id, database, signals, slots, queue, store, operations, directory,
            slack, wolkvox, dispatcher, changes,
            AdminService(
                directory, access, operations, snapshots,
                Reads(History(database), access, snapshots),
                LanguageChoices(user_settings),
            ), TaskGroup(), timed, clock, Admission(settings.agentbox_max_pending_commands),
        )  # fmt: skip
        services.languages = Languages(user_settings, slack, settings.agentbox_language)
        services.overview = Overview(access, snapshots, Reads(History(database), access, snapshots))
        services.approvals = approvals
        if installed is not None:
            services.oauth_flow = oauth.oauth_flow(settings, database, installed)
        return services

    async def start(self) -> None:
        """Listen for other replicas and serve every operation that has calls waiting; expire
        approval requests as their time comes."""
        await self.signals.start()
        for operation in {*self.operations.names, *await self.queue.operations_with_work()}:
            self.dispatcher.serve(operation)
        self._sweeper = asyncio.create_task(
            approval_messages.sweep_forever(self), name="approval-expiry"
        )

    async def sweep_requests(self) -> int:
        """Expire the approval requests whose time is up now (by ``clock``), update their
        messages and tell their requesters; how many. The background sweep calls it too."""
        return await approval_messages.expire_requests(self)

    async def aclose(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop sending calls (in-flight ones get ``grace`` seconds), hand changes over, close.

        The connections (Slack's, the database's) are closed whatever fails before."""
        try:
            if self._sweeper is not None:
                self._sweeper.cancel()
                await asyncio.gather(self._sweeper, return_exceptions=True)
            await self.dispatcher.aclose(grace)
            self.changes.stop_following()
            await self.tasks.aclose(grace)
            await self.store.aclose(grace)
            await self.queue.aclose(grace)
            await self.languages.aclose()
            await self.slots.aclose()
            await self.signals.aclose()
            await self.wolkvox.aclose()
        finally:
            try:
                if self.slack.session is not None:
                    await self.slack.session.close()
            finally:
                await self.database.dispose()
