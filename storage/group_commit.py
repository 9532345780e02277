"""Group commit: writes that arrive while one batch is being written go together in the next.

Two users. A burst of slash commands each needs one small write before its ack
(storage/changes.py): written one transaction at a time they form a convoy (on SQLite every writer
waits for the one lock; on PostgreSQL for a pooled connection), and each transaction's few round
trips stretch while the event loop serves everyone else, so the last command of a burst waits for
all the transactions before it. And the dispatcher's senders record each call's start and answer
(storage/queue.py) while the next call is in flight. Batched, either costs a handful of
transactions, each a few multi-row statements.

There is no timer: a lone write starts its batch at once, so an idle app adds no latency; only
writes that would have waited anyway are grouped. Batches are written one at a time, in the order
their items arrived.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: ``write(items)`` stores the items and returns one result per item, in order: an exception in
#: that list fails only its own item. Or it raises, and then none of them is stored.
BatchWriter = Callable[[Sequence[Item]], Awaitable[Sequence[Result | Exception]]]


class GroupCommit(Generic[Item, Result]):
    """Hands items to ``write`` in batches of at most ``max_batch``, one batch at a time."""

    def __init__(self, write: BatchWriter[Item, Result], *, max_batch: int = 100) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: Item) -> Result:
        """Store ``item`` with whatever else is waiting; its result once its batch committed."""
        # A caller cancelled while its batch is written cancels only its wait: the batch is
        # stored all the same, as a lone transaction already begun would have been.
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future[Result]:
        """:meth:`submit` without the wait: ``item`` joins the next batch now."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(RuntimeError("closed: shutting down"))
            return future
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return future

    async def aclose(self, grace: float | None = None) -> None:
        """Take no more items, and wait until every item handed in so far is written or has
        failed (shutdown: the database is disposed of next), ``grace`` seconds at most.
        Callers that stopped waiting do not stop this."""
        self._closed = True
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait([writer], timeout=grace)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            try:
                results = await self._write([item for item, _future in batch])
            except Exception as error:
                for _item, future in batch:
                    if not future.done():
                        future.set_exception(_own_copy(error))
                continue
            except BaseException:
                # Cancelled (shutdown): nothing more is written by this task, and whoever still
                # waits is cancelled with it.
                for _item, future in [*batch, *self._pending]:
                    future.cancel()
                self._pending.clear()
                raise
            if len(results) != len(batch):
                mismatch = RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
                for _item, future in batch:
                    if not future.done():
                        future.set_exception(mismatch)
                continue
            for (_item, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _own_copy(error: Exception) -> Exception:
    """``error`` for one of the callers it fails: one exception object raised in several tasks
    would collect every task's frames in one traceback, and each caller's log would show the
    others'. The copy's cause is the original, which no caller raises: it keeps the writer's
    own traceback."""
    try:
        copied = copy.copy(error)
    except Exception:
        return error
    copied.__cause__ = error
    return copied
