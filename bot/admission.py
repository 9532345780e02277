"""Load shedding on the ack path: a slash command that could not be acknowledged within Slack's
3 s is told at once that agentbox is busy, instead of running into Slack's ``operation_timeout``.

The commands being taken share one event loop, so each waits for all the others (the benchmark's
ack bursts show about 1 ms of CPU per command on a 2-core machine). Past some number of them at
once, the last would be acknowledged after Slack's deadline, and its user would see an error that
says nothing about whether anything happened. Above ``limit`` commands in progress, the next one is
answered at once that nothing was recorded and to send it again.

The limit depends on the machine, hence a setting (``AGENTBOX_MAX_PENDING_COMMANDS``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter

#: About 1 s of commands at the ~1 ms of CPU each that the benchmark measures on a 2-core machine
#: (bench/report/REPORT.md), leaving the rest of Slack's 3 s to a slower or busier machine.
DEFAULT_LIMIT = 1000
#: The longest that background work waits for the acks of a burst (:meth:`Admission.quiet`).
QUIET_WAIT_SECONDS = 2.0
#: A burst is over when no command arrived for this long (Slack delivers a busy minute's commands
#: milliseconds apart; a person types the next one seconds later).
QUIET_GAP_SECONDS = 0.1

COMMANDS_SHED = Counter(
    "agentbox_commands_shed",
    "Slash commands answered 'busy, send it again' because too many were being taken at once",
)


class Admission:
    """Counts the slash commands being taken; refuses one more above ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        #: Set while ``limit`` commands are being taken (the next one is turned away).
        self.full = asyncio.Event()
        #: Set while no command is being taken.
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._last_arrival = float("-inf")

    @contextmanager
    def enter(self) -> Iterator[bool]:
        """True inside if the command may be taken; False if it must be turned away."""
        if self.pending >= self.limit:
            COMMANDS_SHED.inc()
            yield False
            return
        self._last_arrival = time.monotonic()
        self._count(+1)
        try:
            yield True
        finally:
            self._count(-1)

    async def quiet(self, at_most: float, *, gap: float = QUIET_GAP_SECONDS) -> bool:
        """Wait until no slash command is being taken and none arrived for ``gap`` seconds, at
        most ``at_most`` seconds; True if it got quiet.

        Work that can wait (following a new change's progress, and the App Home refresh after
        it: bot/app.py) waits here first, so that a burst's acks are not queued behind it on the
        event loop. The gap makes it wait for the end of a burst, not for a moment between two
        of its commands; the bound keeps a steady stream of commands from holding it back for
        ever.
        """
        try:
            async with asyncio.timeout(at_most):
                while True:
                    await self._quiet.wait()
                    remaining = self._last_arrival + gap - time.monotonic()
                    if remaining <= 0:
                        return True
                    await asyncio.sleep(remaining)
        except TimeoutError:
            return False

    def _count(self, step: int) -> None:
        self.pending += step
        if self.pending:
            self._quiet.clear()
        else:
            self._quiet.set()
        if self.pending >= self.limit:
            self.full.set()
        else:
            self.full.clear()
