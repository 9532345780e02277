"""Wake-ups between the parts of agentbox, and between replicas on PostgreSQL.

A signal only says "look again": the database stays the truth. Two topics exist: ``work`` (keyed by
operation: calls were queued) and ``change`` (keyed by change id: one of its calls was answered).
Within a process, :meth:`Signals.notify` wakes waiters directly. On PostgreSQL the same signals
travel as NOTIFY (sent inside the writing transaction, so they arrive only once it commits), and a
listener connection turns other replicas' notifications into local wake-ups; every waiter also
re-checks after a bounded time, so a lost notification delays work, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import asyncpg_dsn
from wolkvox.dispatcher import WORK

log = logging.getLogger(__name__)

CHANGE = "agentbox_change"
TOPICS = (WORK, CHANGE)


class Pulse:
    """An event that wakes everyone waiting at the moment it fires, then re-arms.

    Take :meth:`waiter` *before* checking the state you wait on; a pulse fired in between is then
    not missed.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it fired."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
            return True
    return False


class Signals:
    def __init__(self, database_url: str | None = None) -> None:
        """``database_url``: a PostgreSQL URL to listen on, or None within one process."""
        self._pulses: dict[tuple[str, str], Pulse] = {}
        self._dsn = asyncpg_dsn(database_url) if database_url else None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def shared(self) -> bool:
        """True when signals cross processes (PostgreSQL)."""
        return self._dsn is not None

    def pulse(self, topic: str, key: str) -> Pulse:
        return self._pulses.setdefault((topic, key), Pulse())

    def waiter(self, topic: str, key: str) -> asyncio.Event:
        return self.pulse(topic, key).waiter()

    def notify(self, topic: str, key: str) -> None:
        """Wake this process's waiters."""
        pulse = self._pulses.get((topic, key))
        if pulse is not None:
            pulse.fire()

    def keys(self, topic: str) -> list[str]:
        """The keys of ``topic`` someone is (or was recently) waiting on."""
        return [key for (pulse_topic, key) in self._pulses if pulse_topic == topic]

    def forget(self, topic: str, key: str) -> None:
        self._pulses.pop((topic, key), None)

    async def publish(self, session: AsyncSession, topic: str, key: str) -> None:
        """Tell other replicas, from inside the transaction whose commit they should see."""
        if self.shared:
            await session.execute(
                text("SELECT pg_notify(:topic, :key)"), {"topic": topic, "key": key}
            )

    async def start(self) -> None:
        if self._dsn is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="signals-listener")

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        """Hold a LISTEN connection; reconnect with backoff when PostgreSQL goes away."""
        assert self._dsn is not None
        delay = 0.2
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                for topic in TOPICS:
                    await connection.add_listener(topic, self._on_notification)
                self.listening.set()
                delay = 0.2
                lost = asyncio.Event()
                connection.add_termination_listener(_setter(lost))
                # Everything may have moved while we were not listening: wake every waiter once.
                for pulse in list(self._pulses.values()):
                    pulse.fire()
                await lost.wait()
                log.warning("lost the PostgreSQL LISTEN connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("cannot LISTEN on PostgreSQL (%s); retrying in %.1fs", error, delay)
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_notification(self, _connection: Any, _pid: int, topic: str, key: str) -> None:
        self.notify(topic, key)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _connection: event.set()
