"""Load shedding on the ack path: a slash command that could not be acknowledged within Slack's
3 s is told at once that agentbox is busy, instead of running into Slack's ``operation_timeout``.

The commands being taken share one event loop, so each waits for all the others (the benchmark's
ack bursts show about 12 ms of CPU per command on a 2-core machine). Past some number of them at
once, the last would be acknowledged after Slack's deadline, and its user would see an error that
says nothing about whether anything happened. Above ``limit`` commands in progress, the next one is
answered at once that nothing was recorded and to send it again.

The limit depends on the machine, hence a setting (``AGENTBOX_MAX_PENDING_COMMANDS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter

#: About 3 s of commands at ~12 ms each, with a margin (see the module docstring).
DEFAULT_LIMIT = 150
#: The longest that background work waits for the acks of a burst (:meth:`Admission.quiet`).
QUIET_WAIT_SECONDS = 2.0

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

    @contextmanager
    def enter(self) -> Iterator[bool]:
        """True inside if the command may be taken; False if it must be turned away."""
        if self.pending >= self.limit:
            COMMANDS_SHED.inc()
            yield False
            return
        self._count(+1)
        try:
            yield True
        finally:
            self._count(-1)

    async def quiet(self, at_most: float) -> bool:
        """Wait until no slash command is being taken, at most ``at_most`` seconds; True if so.

        Work that can wait (following a change's progress, refreshing App Home) waits here first,
        so that a burst's acks are not queued behind it on the event loop; the bound keeps a
        steady stream of commands from holding it back for ever.
        """
        if self._quiet.is_set():
            return True
        try:
            async with asyncio.timeout(at_most):
                await self._quiet.wait()
        except TimeoutError:
            return False
        return True

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
