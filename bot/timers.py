"""A background loop that does some work whenever it falls due: the expiry of approval requests,
the end of timed changes. Each is due at a time kept in the database (any replica may act on it),
so the loop looks again when the next one is due, and at least every ``at_most`` seconds for
those another replica just recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: However close the next one is, the loop waits at least this long between two looks.
MIN_WAIT_SECONDS = 0.1


async def run_when_due(
    work: Callable[[], Awaitable[object]],
    seconds_until_next: Callable[[], Awaitable[float | None]],
    *,
    at_most: float,
    what: str,
) -> None:
    """Run ``work`` now and whenever the next item is due, until cancelled; a failure is logged
    (``what`` names the work) and the loop goes on."""
    while True:
        try:
            await work()
            until = await seconds_until_next()
        except Exception:
            log.exception("could not %s", what)
            until = None
        await asyncio.sleep(
            at_most if until is None else min(max(until, MIN_WAIT_SECONDS), at_most)
        )
