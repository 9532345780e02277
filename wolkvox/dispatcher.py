"""The per-token dispatcher: sends queued calls to wolkvox, never beyond a token's limit.

wolkvox forbids consuming one token simultaneously ("send the next call when the previous one has
answered"; at most 2 in flight). The queue itself is the ``calls`` table (storage/queue.py), so a
call survives restarts and any replica can send it. For each operation (one token) every replica
runs ``concurrency`` slot workers; a worker may claim calls only while it holds its *slot*
(storage/slots.py: an advisory lock on PostgreSQL), so across all replicas at most ``concurrency``
calls are in flight per token. A slot holder claims the oldest queued call, so calls for one token
start in the order they were asked for; different tokens have different slots and never wait for
each other.

Transient failures are retried (wolkvox/retrying.py) while the call still holds its slot, so
retries neither overtake later calls nor add to the in-flight count. When wolkvox says the token
itself is unusable (invalid, exhausted, missing), the calls still queued for it fail at once
instead of being sent one by one.

Shutdown (``aclose``): workers stop claiming; a call in flight gets ``grace`` seconds to finish and
is otherwise cancelled. A cancelled call stays ``running`` in the database and is queued again by
whoever next takes its slot (this replica after a restart, or another replica at once), which is
safe because show/hide are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from wolkvox.errors import MissingToken, WolkvoxError
from wolkvox.model import Credentials, DisplayRequest
from wolkvox.retrying import AgentDisplayClient, CallOutcome, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 2
"""wolkvox's documented ceiling of simultaneous requests per token."""

WORK = "agentbox_work"
"""The signal topic that says calls were queued for an operation (key: the operation)."""


@dataclass(frozen=True)
class QueuedCall:
    """A call claimed from the queue by a slot worker."""

    id: int
    change_id: int
    operation: str
    request: DisplayRequest
    slot: int
    claim_token: str = ""


class CallQueue(Protocol):
    """The durable queue (storage/queue.py)."""

    async def claim_next(
        self, operation: str, *, replica_id: str, slot: int
    ) -> QueuedCall | None: ...

    async def complete(self, call: QueuedCall, outcome: CallOutcome) -> None: ...

    async def requeue_orphans(self, operation: str, slot: int) -> int: ...

    async def fail_queued(self, operation: str, error: WolkvoxError) -> int: ...


class SlotLocks(Protocol):
    """Exclusive token slots across replicas (storage/slots.py)."""

    async def try_acquire(self, operation: str, slot: int) -> bool: ...

    def holds(self, operation: str, slot: int) -> bool: ...

    async def release(self, operation: str, slot: int) -> None: ...


class WorkSignals(Protocol):
    """Wake-ups when calls are queued (storage/signals.py)."""

    def waiter(self, topic: str, key: str) -> asyncio.Event: ...

    def notify(self, topic: str, key: str) -> None: ...


CallDone = Callable[[QueuedCall, CallOutcome], None]


class Dispatcher:
    def __init__(
        self,
        queue: CallQueue,
        slots: SlotLocks,
        signals: WorkSignals,
        client: AgentDisplayClient,
        credentials_for: Callable[[str], Credentials | None],
        *,
        replica_id: str,
        concurrency: int = 1,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        concurrency_for: Callable[[str], int] | None = None,
        refresh_credentials: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``concurrency`` applies to every operation unless ``concurrency_for`` says otherwise
        for one; ``refresh_credentials`` reloads ``credentials_for``'s source when an operation
        is unknown or its token is refused (another process may have added or re-keyed it)."""
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(
                f"concurrency must be between 1 and {MAX_CONCURRENCY} (wolkvox's limit per "
                f"token), got {concurrency}"
            )
        self._queue = queue
        self._slots = slots
        self._signals = signals
        self._client = client
        self._credentials_for = credentials_for
        self._replica_id = replica_id
        self._concurrency = concurrency
        self._retry = retry or RetryPolicy()
        self._poll_interval = poll_interval
        self._concurrency_for = concurrency_for
        self._refresh_credentials = refresh_credentials
        self._workers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._sending = 0
        self._closing = asyncio.Event()
        self._closed = False
        self.on_call_done: CallDone | None = None

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    @property
    def operations(self) -> set[str]:
        return {operation for operation, _ in self._workers}

    def serve(self, operation: str) -> None:
        """Make sure this replica runs slot workers for ``operation``."""
        if self._closing.is_set():
            return
        for slot in range(self._slots_of(operation)):
            task = self._workers.get((operation, slot))
            if task is None or task.done():
                self._workers[(operation, slot)] = asyncio.create_task(
                    self._supervise(operation, slot), name=f"slot-{operation}-{slot}"
                )

    def _slots_of(self, operation: str) -> int:
        if self._concurrency_for is None:
            return self._concurrency
        return max(1, min(MAX_CONCURRENCY, self._concurrency_for(operation)))

    def wake(self, operation: str) -> None:
        """Calls were queued for ``operation``: start its workers if needed and wake them."""
        self.serve(operation)
        self._signals.notify(WORK, operation)

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop claiming; give calls in flight ``grace`` seconds, then cancel them (see module)."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for operation, _ in list(self._workers):
            self._signals.notify(WORK, operation)
        log.info("dispatcher closing: %d call(s) in flight (grace %.1fs)", self._sending, grace)
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self, operation: str, slot: int) -> None:
        """Run a slot worker; if it fails unexpectedly (a bug, a database outage), restart it."""
        while not self._closing.is_set():
            try:
                await self._work(operation, slot)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slot worker %s/%s failed; restarting", operation, slot)
                with contextlib.suppress(Exception):
                    await self._slots.release(operation, slot)
                await self._pause(self._poll_interval)

    async def _work(self, operation: str, slot: int) -> None:
        # Slots above our concurrency are swept once (by slot 0) until nobody holds them.
        swept = slot != 0 or self._slots_of(operation) == MAX_CONCURRENCY
        while not self._closing.is_set():
            # Take the waiter before looking at the queue, so a wake-up in between is not lost.
            work = self._signals.waiter(WORK, operation)
            if await self._slots.try_acquire(operation, slot):
                try:
                    requeued = await self._queue.requeue_orphans(operation, slot)
                    if not swept:
                        swept, extra = await self._requeue_beyond_concurrency(operation)
                        requeued += extra
                    if requeued:
                        log.warning(
                            "%d call(s) of %s were in flight when their replica stopped; "
                            "sending them again",
                            requeued,
                            operation,
                        )
                    await self._drain(operation, slot)
                finally:
                    await self._slots.release(operation, slot)
            await self._pause(self._poll_interval, work)

    async def _requeue_beyond_concurrency(self, operation: str) -> tuple[bool, int]:
        """Queue again calls left running in slots above this replica's concurrency (a replica
        that ran with a higher ``WOLKVOX_CONCURRENCY`` stopped mid-call), unless a live replica
        still holds such a slot. Returns (every such slot was free, calls queued again)."""
        all_free, requeued = True, 0
        for extra in range(self._slots_of(operation), MAX_CONCURRENCY):
            # A slot this process holds is in use by one of its own workers, not orphaned.
            if self._slots.holds(operation, extra) or not await self._slots.try_acquire(
                operation, extra
            ):
                all_free = False
                continue
            try:
                requeued += await self._queue.requeue_orphans(operation, extra)
            finally:
                await self._slots.release(operation, extra)
        return all_free, requeued

    async def _drain(self, operation: str, slot: int) -> None:
        """Claim and send calls while there are any and the slot is still ours."""
        # Ask about this very slot: ``slots.lost`` is shared by every slot of every operation
        # and is cleared by whichever worker reconnects first.
        while not self._closing.is_set() and self._slots.holds(operation, slot):
            call = await self._queue.claim_next(operation, replica_id=self._replica_id, slot=slot)
            if call is None:
                return
            outcome = await self._send(call)
            await self._queue.complete(call, outcome)
            if outcome.error is not None and outcome.error.token_wide:
                failed = await self._queue.fail_queued(operation, outcome.error)
                if failed:
                    log.warning(
                        "token of %s unusable (%s): %d queued call(s) failed without sending",
                        operation,
                        outcome.error.kind,
                        failed,
                    )
            if self.on_call_done is not None:
                self.on_call_done(call, outcome)

    async def _send(self, call: QueuedCall) -> CallOutcome:
        credentials = self._credentials_for(call.operation)
        if credentials is None and self._refresh_credentials is not None:
            await self._refresh_credentials()
            credentials = self._credentials_for(call.operation)
        if credentials is None:
            return CallOutcome(call.request, None, MissingToken(), 0, 0.0)
        outcome = await self._call(call, credentials)
        if outcome.error is not None and outcome.error.token_wide and self._refresh_credentials:
            # Before failing every queued call of the token: was it re-keyed meanwhile?
            await self._refresh_credentials()
            renewed = self._credentials_for(call.operation)
            if renewed is not None and renewed != credentials:
                outcome = await self._call(call, renewed)
        return outcome

    async def _call(self, call: QueuedCall, credentials: Credentials) -> CallOutcome:
        log.debug(
            "wolkvox call start: operation=%s slot=%s agent=%s display=%s button=%s",
            call.operation,
            call.slot,
            call.request.agent_id,
            call.request.display.value,
            call.request.button.value,
        )
        self._sending += 1
        try:
            return await call_with_retry(self._client, credentials, call.request, self._retry)
        finally:
            self._sending -= 1

    async def _pause(self, seconds: float, event: asyncio.Event | None = None) -> None:
        """Wait ``seconds``, or less when ``event`` fires or the dispatcher closes."""
        waiters = [asyncio.ensure_future(self._closing.wait())]
        if event is not None:
            waiters.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
