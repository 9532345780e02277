"""The per-token dispatcher: sends queued calls to wolkvox as fast as a token allows, never beyond.

wolkvox forbids consuming one token simultaneously ("send the next call when the previous one has
answered"; at most 2 in flight). The queue itself is the ``calls`` table (storage/queue.py), so a
call survives restarts and any replica can send it.

**Who sends.** For each operation (one token), the replica holding the token's slot 0
(storage/slots.py: an advisory lock on PostgreSQL, in memory on SQLite) runs its *lane*; with
``concurrency`` 2 it takes slot 1 as well and sends two calls at once. Only slot 0's holder takes
slot 1, so across all replicas one lane at a time sends a token's calls: at most ``concurrency``
calls are in flight per token, and they start in the order they were asked for. Different tokens
have different lanes and never wait for each other.

**The pipeline** (a lane, while it holds its slots) keeps the database off the path between one
answer and the next call:

- It *reserves* the oldest queued calls in batches, in one statement, before they are needed
  (they stay ``queued``, under the lane's claim token), so the next call is in memory when a
  sender frees up. Senders take reserved calls in id order and hand each one to the client with
  no suspending ``await`` in between, so calls start in the order reserved, which is the order
  asked.
- A sender sends its next call as soon as its previous one answers, and meanwhile records, in
  one transaction, the previous answer and that the new call is ``running`` (CallQueue.step;
  the steps of every lane are written in order and grouped into few transactions). So the rows
  ``running`` never outnumber the calls in flight, and an answer is durable before the change's
  followers are woken (they report from the database). A sender runs at most
  ``UNSETTLED_STEPS`` steps ahead of the database.
- A crash between sending a call and recording it loses nothing: the call is reserved or running
  in the lane's slot, and whoever takes the slot next queues it again and sends it again. That
  call may have reached wolkvox already; sending it twice is safe because show/hide are
  idempotent. A late answer of a lane that lost its slot is not recorded (claim tokens).

Transient failures are retried (wolkvox/retrying.py) by the sender, which keeps its place, so
retries neither overtake later calls nor add to the in-flight count. When wolkvox says the token
itself is unusable (invalid, exhausted, missing), the calls still queued for it fail at once
instead of being sent one by one.

Shutdown (``aclose``): lanes stop taking calls; a call in flight gets ``grace`` seconds to finish
and is otherwise cancelled. A cancelled call stays ``running`` in the database and is queued again
by whoever next takes its slot (this replica after a restart, or another replica at once), which is
safe because show/hide are idempotent; reserved calls not sent are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from wolkvox.errors import MissingToken, WolkvoxError
from wolkvox.model import Credentials, DisplayRequest
from wolkvox.retrying import AgentDisplayClient, CallOutcome, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 2
"""wolkvox's documented ceiling of simultaneous requests per token."""

WORK = "agentbox_work"
"""The signal topic that says calls were queued for an operation (key: the operation)."""

RESERVE_BATCH = 16
"""How many calls a lane reserves ahead; it reserves more when half of them are sent."""

UNSETTLED_STEPS = 8
"""How many earlier steps a sender may leave still being written when it sends its next call
(besides that call's own): the writer groups them when the database is slower than wolkvox."""


@dataclass(frozen=True)
class QueuedCall:
    """A call taken from the queue (reserved, or claimed) for the holder of ``slot``."""

    id: int
    change_id: int
    operation: str
    request: DisplayRequest
    slot: int
    claim_token: str = ""


class CallQueue(Protocol):
    """The durable queue (storage/queue.py)."""

    async def reserve(
        self, operation: str, *, replica_id: str, slot: int, limit: int
    ) -> list[QueuedCall]: ...

    def step(
        self,
        *,
        answered: tuple[QueuedCall, CallOutcome] | None = None,
        started: QueuedCall | None = None,
    ) -> asyncio.Future[None]: ...

    async def release(self, calls: Sequence[QueuedCall]) -> None: ...

    async def adopt(
        self,
        operation: str,
        *,
        orphaned_slots: Sequence[int],
        replica_id: str,
        slot: int,
        limit: int,
    ) -> tuple[int, list[QueuedCall]]: ...

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
        self._workers: dict[str, asyncio.Task[None]] = {}  # operation -> its lane's worker
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
        return set(self._workers)

    def serve(self, operation: str) -> None:
        """Make sure this replica runs a worker for ``operation`` (it sends while it holds the
        token's slots)."""
        if self._closing.is_set():
            return
        task = self._workers.get(operation)
        if task is None or task.done():
            self._workers[operation] = asyncio.create_task(
                self._supervise(operation), name=f"lane-{operation}"
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
        for operation in list(self._workers):
            self._signals.notify(WORK, operation)
        log.info("dispatcher closing: %d call(s) in flight (grace %.1fs)", self._sending, grace)
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self, operation: str) -> None:
        """Run a lane worker; if it fails unexpectedly (a bug, a database outage), restart it."""
        while not self._closing.is_set():
            try:
                await self._work(operation)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher for %s failed; restarting", operation)
                for slot in reversed(range(MAX_CONCURRENCY)):
                    with contextlib.suppress(Exception):
                        await self._slots.release(operation, slot)
                await self._pause(self._poll_interval)

    async def _work(self, operation: str) -> None:
        # Slots above our concurrency are swept once until nobody holds them.
        swept = self._slots_of(operation) == MAX_CONCURRENCY
        while not self._closing.is_set():
            # Take the waiter before looking at the queue, so a wake-up in between is not lost.
            work = self._signals.waiter(WORK, operation)
            if await self._slots.try_acquire(operation, 0):
                slots = [0]
                try:
                    # Slot 1 is only ever taken by slot 0's holder (see the module docstring).
                    for slot in range(1, self._slots_of(operation)):
                        if not await self._slots.try_acquire(operation, slot):
                            break
                        slots.append(slot)
                    extra: list[int] = []
                    if not swept:
                        swept, extra = await self._slots_beyond_concurrency(operation)
                    try:
                        # What a gone holder left in these slots is queued again, and the first
                        # calls are reserved, in one transaction.
                        requeued, reserved = await self._queue.adopt(
                            operation,
                            orphaned_slots=[*slots, *extra],
                            replica_id=self._replica_id,
                            slot=slots[0],
                            limit=RESERVE_BATCH,
                        )
                    finally:
                        for slot in reversed(extra):
                            await self._slots.release(operation, slot)
                    if requeued:
                        log.warning(
                            "%d call(s) of %s were in flight when their replica stopped; "
                            "sending them again",
                            requeued,
                            operation,
                        )
                    if reserved:
                        await _Lane(self, operation, slots, reserved).run()
                finally:
                    for slot in reversed(slots):
                        await self._slots.release(operation, slot)
            await self._pause(self._poll_interval, work)

    async def _slots_beyond_concurrency(self, operation: str) -> tuple[bool, list[int]]:
        """Take the free slots above this replica's concurrency, so that calls left running in
        them (a replica that ran with a higher ``WOLKVOX_CONCURRENCY`` stopped mid-call) are
        queued again; a slot a live replica still holds is left alone. Returns (every such slot
        was free, the slots taken: the caller releases them)."""
        all_free, taken = True, []
        for extra in range(self._slots_of(operation), MAX_CONCURRENCY):
            # A slot this process holds is in use by one of its own workers, not orphaned.
            if self._slots.holds(operation, extra) or not await self._slots.try_acquire(
                operation, extra
            ):
                all_free = False
                continue
            taken.append(extra)
        return all_free, taken

    def _answered(self, call: QueuedCall, outcome: CallOutcome) -> None:
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


class _Lane:
    """Sends one operation's calls while this replica holds the token's ``slots``: one sender
    per slot, fed in order from calls reserved ahead (see the module docstring)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        operation: str,
        slots: Sequence[int],
        reserved: Sequence[QueuedCall] = (),
    ) -> None:
        """``reserved``: calls already reserved for ``slots[0]``, sent first."""
        self._dispatcher = dispatcher
        self._queue = dispatcher._queue
        self._operation = operation
        self._slots = list(slots)
        self._reserved: deque[QueuedCall] = deque(reserved)
        self._reserving: asyncio.Task[int] | None = None
        self._dry = False  # the last reservation found no more calls
        self._work = dispatcher._signals.waiter(WORK, operation)
        self._halted = False  # a sender failed, or the token is unusable: take no more calls
        self._writes: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        senders = [
            asyncio.create_task(self._sender(slot), name=f"send-{self._operation}-{slot}")
            for slot in self._slots
        ]
        try:
            results = await asyncio.gather(*senders, return_exceptions=True)
        finally:
            for sender in senders:
                sender.cancel()
            await asyncio.wait([*senders, *self._writes])  # in-flight steps end up durable
            reserving = self._reserving
            if reserving is not None:
                # Calls it reserves after all are queued again by the slot's next holder.
                reserving.cancel()
                await asyncio.wait([reserving])
                if not reserving.cancelled():
                    reserving.exception()  # seen: the lane ends anyway
            with contextlib.suppress(Exception):
                await self._queue.release(list(self._reserved))
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _sender(self, slot: int) -> None:
        try:
            await self._send_calls(slot)
        except BaseException:
            self._halted = True  # the other senders finish the call they are sending, no more
            raise

    async def _send_calls(self, slot: int) -> None:
        # Steps written or being written, oldest first.
        unsettled: deque[asyncio.Future[None]] = deque()

        async def settle(keep: int) -> None:
            """Wait until at most ``keep`` steps are not durable."""
            while len(unsettled) > keep:
                written = unsettled[0]
                await written
                unsettled.popleft()
                self._writes.discard(written)

        def write(
            answered: tuple[QueuedCall, CallOutcome] | None, started: QueuedCall | None
        ) -> None:
            written = self._queue.step(answered=answered, started=started)
            self._writes.add(written)
            unsettled.append(written)
            if answered is not None:
                # Reported as soon as it is durable (steps become durable in order), not when
                # this sender next settles: whoever follows the change learns of it at once.
                written.add_done_callback(partial(self._report, answered))

        answered: tuple[QueuedCall, CallOutcome] | None = None
        while True:
            call = self._take()
            if call is None:
                # None at hand: record the last answer now, not after the next reservation.
                if answered is not None:
                    write(answered, None)
                    answered = None
                call = await self._next()
                if call is None:
                    await settle(0)
                    return
            call = replace(call, slot=slot)
            # The previous answer and this start are written while this call is in flight.
            write(answered, call)
            outcome = await self._dispatcher._send(call)
            await settle(UNSETTLED_STEPS)
            answered = (call, outcome)
            if outcome.error is not None and outcome.error.token_wide:
                await settle(0)
                await self._fail_token(answered)
                return

    def _report(
        self, answered: tuple[QueuedCall, CallOutcome], written: asyncio.Future[None]
    ) -> None:
        """``answered``'s step is done: report the answer if it was recorded."""
        if not written.cancelled() and written.exception() is None:
            self._dispatcher._answered(*answered)

    async def _fail_token(self, answered: tuple[QueuedCall, CallOutcome]) -> None:
        """The token is unusable: record this answer, then fail the calls still queued."""
        error = answered[1].error
        assert error is not None
        self._halted = True
        await self._queue.step(answered=answered)
        failed = await self._queue.fail_queued(self._operation, error)
        self._reserved.clear()  # failed with the rest
        if failed:
            log.warning(
                "token of %s unusable (%s): %d queued call(s) failed without sending",
                self._operation,
                error.kind,
                failed,
            )
        self._dispatcher._answered(*answered)

    def _may_take(self) -> bool:
        dispatcher = self._dispatcher
        # Ask about these very slots: ``slots.lost`` is shared by every slot of every operation
        # and is cleared by whichever worker reconnects first.
        return not (
            self._halted
            or dispatcher._closing.is_set()
            or not all(dispatcher._slots.holds(self._operation, slot) for slot in self._slots)
        )

    def _take(self) -> QueuedCall | None:
        """The oldest reserved call, if one is at hand and the lane may go on."""
        if not (self._reserved and self._may_take()):
            return None
        call = self._reserved.popleft()
        if len(self._reserved) <= RESERVE_BATCH // 2:
            self._reserve_ahead()
        return call

    async def _next(self) -> QueuedCall | None:
        """The oldest reserved call, reserving more as needed; None when there is none left or
        the lane must stop."""
        while self._may_take():
            if self._reserved:
                return self._take()
            reserving = self._reservation()
            await asyncio.wait([reserving])
            if reserving is self._reserving:
                self._reserving = None
            if reserving.result() == 0 and not self._reserved:
                return None
        return None

    def _reserve_ahead(self) -> None:
        """Reserve more in the background, unless one is under way or none are left: the last
        reservation found none and nothing was queued since."""
        if self._work.is_set():
            self._work = self._dispatcher._signals.waiter(WORK, self._operation)
            self._dry = False
        if not self._dry:
            self._reservation()

    def _reservation(self) -> asyncio.Task[int]:
        """The reservation under way, or a new one."""
        if self._reserving is not None and self._reserving.done():
            done, self._reserving = self._reserving, None
            done.result()  # its failure (the database is away) stops the sender, and the lane
        if self._reserving is None:
            self._reserving = asyncio.create_task(
                self._reserve(), name=f"reserve-{self._operation}"
            )
        return self._reserving

    async def _reserve(self) -> int:
        calls = await self._queue.reserve(
            self._operation,
            replica_id=self._dispatcher._replica_id,
            slot=self._slots[0],
            limit=RESERVE_BATCH - len(self._reserved),
        )
        self._reserved.extend(calls)
        self._dry = not calls
        return len(calls)
