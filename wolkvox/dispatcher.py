"""The per-token queue every agent_display call goes through.

wolkvox forbids consuming one token simultaneously: "send the next call when the previous one has
answered", and its limits table allows at most 2 requests in flight per token. So each token gets
its own FIFO queue served by ``concurrency`` (1 by default, 2 at most) worker tasks: calls for one
token start in the order they were submitted and never exceed the limit, while different tokens
never wait for each other.

Transient failures are retried (tenacity) while the call still holds its token's slot, so retries
neither overtake later calls nor add to the in-flight count. This is safe because show/hide are
idempotent on wolkvox's side: repeating a call whose answer was lost changes nothing.

This enforces the limit inside one process only; a cross-process guard (e.g. a lease in the
database) belongs to the caller that owns storage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from wolkvox.errors import WolkvoxError
from wolkvox.model import Credentials, DisplayRequest, DisplayResult

__all__ = [
    "MAX_CONCURRENCY",
    "AgentDisplayClient",
    "CallOutcome",
    "Dispatcher",
    "DispatcherClosed",
    "InternalError",
    "QueueInfo",
    "RetryPolicy",
    "Ticket",
]

logger = logging.getLogger(__name__)

MAX_CONCURRENCY = 2
"""wolkvox's documented ceiling of simultaneous requests per token."""

_EWMA_ALPHA = 0.3
"""Weight of the newest observed duration in a token's running mean."""


class AgentDisplayClient(Protocol):
    """What the dispatcher needs from a wolkvox client: one agent_display call."""

    async def agent_display(
        self, credentials: Credentials, request: DisplayRequest
    ) -> DisplayResult: ...


class InternalError(WolkvoxError):
    """A failure inside agentbox (a bug, or an ``on_start`` hook that raised), not wolkvox's."""

    kind = "internal"
    transient = False
    explanation = "agentbox failed while handling the call; this is a bug, please report it."


class DispatcherClosed(RuntimeError):
    """The dispatcher shut down before this call finished (or was asked for new work after it did).

    A call handed back with this error may or may not have reached wolkvox if it had started;
    show/hide are idempotent, so running it again later is safe.
    """


@dataclass(frozen=True)
class RetryPolicy:
    """How transient errors are retried: exponential backoff with jitter, bounded tries."""

    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if min(self.initial_wait, self.max_wait, self.jitter) < 0:
            raise ValueError("initial_wait, max_wait and jitter must not be negative")


@dataclass(frozen=True)
class CallOutcome:
    """The end of one submitted call: a result, or the error of its last attempt."""

    request: DisplayRequest
    result: DisplayResult | None
    error: WolkvoxError | None
    attempts: int
    duration: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None


@dataclass(frozen=True)
class Ticket:
    """What ``submit`` hands back at once.

    ``position`` counts the calls ahead for the same token (waiting + in flight) at submit time; the
    call starts at once when ``position < concurrency``. ``estimated_wait`` is
    ``(position // concurrency) * mean duration`` for that token: 0 when a slot is free, one mean
    duration per full "round" of calls ahead otherwise.
    """

    position: int
    estimated_wait: float
    outcome: asyncio.Future[CallOutcome]


@dataclass(frozen=True)
class QueueInfo:
    waiting: int
    in_flight: int
    mean_duration: float
    #: False while ``mean_duration`` is only the configured default (no call finished yet).
    measured: bool = False


@dataclass(eq=False)
class _Job:
    credentials: Credentials
    request: DisplayRequest
    on_start: Callable[[], Awaitable[None]] | None
    future: asyncio.Future[CallOutcome]


@dataclass(eq=False)
class _Lane:
    """Everything the dispatcher holds for one token."""

    fingerprint: str
    mean_duration: float
    observations: int = 0
    waiting: int = 0
    # ``None`` is the shutdown sentinel: one per worker, put after the queue was drained.
    queue: asyncio.Queue[_Job | None] = field(default_factory=asyncio.Queue)
    workers: set[asyncio.Task[None]] = field(default_factory=set)
    running: dict[asyncio.Task[None], _Job] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return len(self.running)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, WolkvoxError) and exc.transient


def _backoff(policy: RetryPolicy) -> wait_exponential_jitter:
    # tenacity 9.2 renamed ``initial`` to ``multiplier`` (the old name warns); pyproject asks
    # for >= 9.2.
    return wait_exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
    )


def _hand_back(job: _Job, reason: str) -> None:
    if job.future.done():
        return
    job.future.set_exception(DispatcherClosed(reason))
    # Mark the exception as retrieved: a hand-back at shutdown is expected, and a caller that
    # already gave up on the future should not produce "exception was never retrieved" noise.
    job.future.exception()


def _resolve(job: _Job, outcome: CallOutcome) -> None:
    # The caller may have cancelled its future while the call ran; the call finished anyway.
    if not job.future.done():
        job.future.set_result(outcome)


class Dispatcher:
    """Runs agent_display calls one token at a time (or two at a time, never more)."""

    def __init__(
        self,
        client: AgentDisplayClient,
        *,
        concurrency: int = 1,
        retry: RetryPolicy = RetryPolicy(),  # frozen: sharing the default is safe
        default_duration: float = 1.0,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(
                f"concurrency must be between 1 and {MAX_CONCURRENCY} "
                f"(wolkvox allows at most {MAX_CONCURRENCY} calls in flight per token), "
                f"got {concurrency}"
            )
        if default_duration < 0:
            raise ValueError(f"default_duration must not be negative, got {default_duration}")
        self._client = client
        self._concurrency = concurrency
        self._retry = retry
        self._default_duration = default_duration
        self._lanes: dict[str, _Lane] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._closed: asyncio.Event | None = None

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def closed(self) -> bool:
        return self._closing

    def submit(
        self,
        credentials: Credentials,
        request: DisplayRequest,
        *,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> Ticket:
        """Queue one call for its token and return at once.

        ``on_start`` is awaited once when the call gets its slot, before the first attempt (e.g. to
        tell the user "running now"); it holds the token's slot while it runs, so keep it short.
        Must be called from the event loop; raises ``DispatcherClosed`` (a ``RuntimeError``)
        after ``aclose``.
        """
        loop = asyncio.get_running_loop()  # RuntimeError when called outside the event loop
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this Dispatcher is bound to another event loop")
        if self._closing:
            raise DispatcherClosed("the wolkvox dispatcher is shut down and takes no new calls")

        lane = self._lane(credentials.token_fingerprint)
        position = lane.waiting + lane.in_flight
        estimated_wait = (position // self._concurrency) * lane.mean_duration
        future: asyncio.Future[CallOutcome] = loop.create_future()
        lane.queue.put_nowait(_Job(credentials, request, on_start, future))
        lane.waiting += 1
        self._ensure_workers(lane)
        return Ticket(position=position, estimated_wait=estimated_wait, outcome=future)

    def queue_info(self, credentials: Credentials) -> QueueInfo:
        lane = self._lanes.get(credentials.token_fingerprint)
        if lane is None:
            return QueueInfo(waiting=0, in_flight=0, mean_duration=self._default_duration)
        return QueueInfo(
            waiting=lane.waiting,
            in_flight=lane.in_flight,
            mean_duration=lane.mean_duration,
            measured=lane.observations > 0,
        )

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop taking work, hand back queued calls, give in-flight ones ``grace`` seconds.

        Calls not started yet fail at once with ``DispatcherClosed``; calls still running after
        ``grace`` are cancelled and fail the same way. Returns when every worker has ended.
        Idempotent: a second call waits for the first to finish.
        """
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closing = True
        self._closed = asyncio.Event()
        try:
            handed_back = 0
            for lane in self._lanes.values():
                while True:
                    try:
                        job = lane.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if job is not None:
                        lane.waiting -= 1
                        handed_back += 1
                        _hand_back(job, "the wolkvox dispatcher shut down before the call started")
                for _ in lane.workers:
                    lane.queue.put_nowait(None)
            workers = [task for lane in self._lanes.values() for task in lane.workers]
            in_flight = sum(lane.in_flight for lane in self._lanes.values())
            logger.info(
                "dispatcher closing: %d queued calls handed back, %d in flight (grace %.1fs)",
                handed_back,
                in_flight,
                grace,
            )
            if workers:
                _, pending = await asyncio.wait(workers, timeout=max(0.0, grace))
                if pending:
                    logger.warning(
                        "wolkvox dispatcher: cancelling %d calls still running after %.1fs",
                        len(pending),
                        grace,
                    )
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
        except BaseException:
            # aclose itself was cancelled: do not leave workers behind.
            for lane in self._lanes.values():
                for task in lane.workers:
                    task.cancel()
            raise
        finally:
            self._closed.set()

    # -- internals -----------------------------------------------------------------------------

    def _lane(self, fingerprint: str) -> _Lane:
        lane = self._lanes.get(fingerprint)
        if lane is None:
            lane = _Lane(fingerprint=fingerprint, mean_duration=self._default_duration)
            self._lanes[fingerprint] = lane
        return lane

    def _ensure_workers(self, lane: _Lane) -> None:
        # Also heals a lane whose workers were cancelled from outside (see _on_worker_done).
        while len(lane.workers) < self._concurrency:
            self._spawn(lane)

    def _spawn(self, lane: _Lane) -> None:
        task = asyncio.get_running_loop().create_task(
            self._work(lane), name=f"wolkvox-dispatcher-{lane.fingerprint}"
        )
        lane.workers.add(task)  # the strong reference that keeps the task alive
        task.add_done_callback(lambda t: self._on_worker_done(lane, t))

    def _on_worker_done(self, lane: _Lane, task: asyncio.Task[None]) -> None:
        """Supervise: a worker that died of a bug is logged and replaced (unless closing)."""
        lane.workers.discard(task)
        if task.cancelled():
            if not self._closing:
                # Cancelled from outside (e.g. the loop shutting down): do not respawn here; the
                # next submit for this token tops the workers up again.
                logger.warning(
                    "wolkvox dispatcher worker for token %s was cancelled", lane.fingerprint
                )
            return
        exc = task.exception()
        if exc is None:
            return  # ended normally on the shutdown sentinel
        logger.error(
            "wolkvox dispatcher worker for token %s died%s",
            lane.fingerprint,
            "" if self._closing else "; starting a new one",
            exc_info=exc,
        )
        if not self._closing:
            self._spawn(lane)

    async def _work(self, lane: _Lane) -> None:
        me = asyncio.current_task()
        assert me is not None
        while True:
            job = await lane.queue.get()
            if job is None:
                return
            lane.waiting -= 1
            if job.future.done():
                continue  # the caller gave up (cancelled its future) before the call started
            lane.running[me] = job
            try:
                await self._serve(lane, job)
            except asyncio.CancelledError:
                _hand_back(job, "the wolkvox dispatcher shut down while the call was running")
                raise
            except BaseException as exc:
                # _serve turns every failure of the call into an outcome; reaching this is a bug
                # in the dispatcher itself. Answer the caller, then let the supervisor log it.
                _resolve(
                    job, CallOutcome(job.request, None, InternalError(type(exc).__name__), 0, 0.0)
                )
                raise
            finally:
                del lane.running[me]

    async def _serve(self, lane: _Lane, job: _Job) -> None:
        request = job.request
        logger.debug(
            "wolkvox call start: token=%s agent=%s display=%s button=%s",
            lane.fingerprint,
            request.agent_id,
            request.display.value,
            request.button.value,
        )
        held_since = time.monotonic()
        outcome = await self._call(lane, job)
        _resolve(job, outcome)
        logger.debug(
            "wolkvox call finish: token=%s agent=%s display=%s button=%s ok=%s error=%s "
            "attempts=%d duration=%.3fs",
            lane.fingerprint,
            request.agent_id,
            request.display.value,
            request.button.value,
            outcome.ok,
            outcome.error.kind if outcome.error is not None else None,
            outcome.attempts,
            outcome.duration,
        )
        self._observe(lane, time.monotonic() - held_since)

    async def _call(self, lane: _Lane, job: _Job) -> CallOutcome:
        """Run ``on_start`` and the call with retries; every failure becomes the outcome."""
        request = job.request
        if job.on_start is not None:
            try:
                await job.on_start()
            except Exception as exc:
                logger.exception(
                    "on_start hook failed: token=%s agent=%s button=%s",
                    lane.fingerprint,
                    request.agent_id,
                    request.button.value,
                )
                return CallOutcome(request, None, InternalError(type(exc).__name__), 0, 0.0)

        attempts = 0

        async def attempt() -> DisplayResult:
            nonlocal attempts
            attempts += 1
            return await self._client.agent_display(job.credentials, request)

        started = time.monotonic()
        error: WolkvoxError
        try:
            result: DisplayResult = await self._retrying(lane.fingerprint)(attempt)
        except WolkvoxError as exc:
            error = exc
        except Exception as exc:
            logger.exception(
                "unexpected error calling wolkvox: token=%s agent=%s button=%s",
                lane.fingerprint,
                request.agent_id,
                request.button.value,
            )
            error = InternalError(type(exc).__name__)
        else:
            return CallOutcome(request, result, None, attempts, time.monotonic() - started)
        return CallOutcome(request, None, error, attempts, time.monotonic() - started)

    def _retrying(self, fingerprint: str) -> AsyncRetrying:
        """A fresh retrier per call (tenacity keeps per-run state on the instance)."""
        policy = self._retry

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            logger.info(
                "wolkvox call for token %s failed (%s), attempt %d of %d; retrying in %.2fs",
                fingerprint,
                exc.kind if isinstance(exc, WolkvoxError) else type(exc).__name__,
                state.attempt_number,
                policy.attempts,
                wait,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=_backoff(policy),
            retry=retry_if_exception(_is_transient),
            reraise=True,
            before_sleep=log_retry,
        )

    def _observe(self, lane: _Lane, duration: float) -> None:
        """Fold how long a call held its slot into the token's running mean (EWMA)."""
        if lane.observations == 0:
            lane.mean_duration = duration
        else:
            lane.mean_duration += _EWMA_ALPHA * (duration - lane.mean_duration)
        lane.observations += 1
