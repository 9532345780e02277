"""One agent_display call, retried while its failure is transient.

Retrying is safe because show/hide are idempotent on wolkvox's side: repeating a call whose answer
was lost (a timeout, a dropped connection) leaves the button exactly as the first call would have.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from wolkvox import metrics
from wolkvox.errors import N_, WolkvoxError
from wolkvox.model import Credentials, DisplayRequest, DisplayResult

log = logging.getLogger(__name__)


class AgentDisplayClient(Protocol):
    """What calling wolkvox needs: one agent_display call (wolkvox.client.WolkvoxClient)."""

    async def agent_display(
        self, credentials: Credentials, request: DisplayRequest
    ) -> DisplayResult: ...


class InternalError(WolkvoxError):
    """A failure inside agentbox (a bug), not wolkvox's."""

    kind = "internal"
    transient = False
    explanation = N_("agentbox failed while handling the call; this is a bug, please report it.")


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
    """The end of one call: a result, or the error of its last attempt."""

    request: DisplayRequest
    result: DisplayResult | None
    error: WolkvoxError | None
    attempts: int
    duration: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    @property
    def message(self) -> str:
        """wolkvox's ``data`` on success, else the error's sentence for the user."""
        if self.result is not None:
            return self.result.message
        assert self.error is not None
        return self.error.user_message


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, WolkvoxError) and exc.transient


async def call_with_retry(
    client: AgentDisplayClient,
    credentials: Credentials,
    request: DisplayRequest,
    policy: RetryPolicy,
    *,
    operation: str | None = None,
) -> CallOutcome:
    """Make the call, retrying transient failures; every failure becomes the outcome.

    ``operation`` labels the metrics (wolkvox/metrics.py); by default, the name the credentials
    were given there.
    """
    attempts = 0
    fingerprint = credentials.token_fingerprint
    label = operation or metrics.operation_of(credentials)

    async def attempt() -> DisplayResult:
        nonlocal attempts
        attempts += 1
        with metrics.WOLKVOX_REQUEST_SECONDS.labels(label).time():
            return await client.agent_display(credentials, request)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        kind = exc.kind if isinstance(exc, WolkvoxError) else type(exc).__name__
        metrics.WOLKVOX_RETRIES.labels(label, kind).inc()
        log.info(
            "wolkvox call for token %s failed (%s), attempt %d of %d; retrying in %.2fs",
            fingerprint,
            kind,
            state.attempt_number,
            policy.attempts,
            wait,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        # tenacity 9.2 renamed ``initial`` to ``multiplier``; pyproject asks for >= 9.2.
        wait=wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        ),
        retry=retry_if_exception(_is_transient),
        reraise=True,
        before_sleep=log_retry,
    )
    started = time.monotonic()
    error: WolkvoxError
    try:
        result: DisplayResult = await retrying(attempt)
    except WolkvoxError as exc:
        error = exc
    except Exception as exc:
        log.exception(
            "unexpected error calling wolkvox: token=%s agent=%s button=%s",
            fingerprint,
            request.agent_id,
            request.button.value,
        )
        error = InternalError(type(exc).__name__)
    else:
        metrics.WOLKVOX_RESULTS.labels(label, metrics.OK).inc()
        return CallOutcome(request, result, None, attempts, time.monotonic() - started)
    metrics.WOLKVOX_RESULTS.labels(label, error.kind).inc()
    return CallOutcome(request, None, error, attempts, time.monotonic() - started)
