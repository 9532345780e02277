"""Token slots: who may have a call in flight for an operation's token right now.

An operation with concurrency C has slots 0..C-1. The holder of slot 0 is the one replica that
sends the token's calls (wolkvox/dispatcher.py), and only it takes slot 1, to send two at once; a
call is sent only under the slot it is marked with, so at most C calls are in flight for the token
across every replica that shares the database.

On PostgreSQL a slot is a session-level advisory lock, ``pg_try_advisory_lock(operation key,
slot)``, taken on one dedicated connection per replica (one connection holds any number of locks,
so slots cost no connections). If the replica dies, PostgreSQL drops the connection and with it the
locks: another replica can take the slot at once and re-run the call that was in flight.

The known edge: a replica that loses its *database* connection while its call to wolkvox is still
running loses the lock too; another replica may then start the next call before the first one's
answer arrives, so for at most one call duration (60 s at worst) the token can have one call more in
flight than allowed. The replica notices (``lost``) and stops claiming until it has reconnected.

On SQLite (one process by design) slots are plain in-process bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

import asyncpg

from storage.database import asyncpg_dsn

log = logging.getLogger(__name__)


def operation_key(operation: str) -> int:
    """A stable signed 32-bit key for an operation (advisory locks take int4 pairs)."""
    value = zlib.crc32(f"agentbox:{operation}".encode())
    return value - (1 << 32) if value >= (1 << 31) else value


class SlotLocks:
    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._held: set[tuple[str, int]] = set()
        self._connection: Any = None
        self._lock = asyncio.Lock()  # one statement at a time on the lock connection
        self.lost = asyncio.Event()  # set when the lock connection dropped with locks held

    @property
    def shared(self) -> bool:
        return self._dsn is not None

    async def try_acquire(self, operation: str, slot: int) -> bool:
        if (operation, slot) in self._held:
            return True
        if self._dsn is None:
            self._held.add((operation, slot))
            return True
        async with self._lock:
            try:
                connection = await self._connect()
                acquired = bool(
                    await connection.fetchval(
                        "SELECT pg_try_advisory_lock($1, $2)", operation_key(operation), slot
                    )
                )
            except Exception as error:
                log.warning("cannot take slot %s/%s: %s", operation, slot, error)
                await self._drop()
                return False
        if acquired:
            self._held.add((operation, slot))
        return acquired

    async def release(self, operation: str, slot: int) -> None:
        if (operation, slot) not in self._held:
            return
        self._held.discard((operation, slot))
        if self._dsn is None:
            return
        async with self._lock:
            if self._connection is None or self._connection.is_closed():
                return
            try:
                await self._connection.execute(
                    "SELECT pg_advisory_unlock($1, $2)", operation_key(operation), slot
                )
            except Exception as error:
                log.warning("cannot release slot %s/%s: %s", operation, slot, error)
                await self._drop()

    def holds(self, operation: str, slot: int) -> bool:
        return (operation, slot) in self._held

    async def aclose(self) -> None:
        async with self._lock:
            self._held.clear()
            await self._drop()

    async def _connect(self) -> Any:
        if self._connection is None or self._connection.is_closed():
            self.lost.clear()
            self._connection = await asyncpg.connect(self._dsn, timeout=5)
            self._connection.add_termination_listener(self._terminated)
        return self._connection

    def _terminated(self, _connection: Any) -> None:
        if self._held:
            log.error("lost the slot-lock connection while holding %s", sorted(self._held))
            self._held.clear()
            self.lost.set()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=1)
            except Exception:
                connection.terminate()
