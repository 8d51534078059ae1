"""Group commit for decision rows: one writer thread, one transaction for every row waiting.

Why: a route is acknowledged only after its decision row commits (an outcome may follow at
once), but a commit per route, run on the request's own thread, made eight concurrent routes
queue for SQLite's write lock and for the GIL inside the measured span. Here the event loop
hands the row to one writer thread and awaits its commit without holding a thread: the rows
that arrive while a transaction runs go into the next one, so under load many routes share one
commit and the loop keeps answering. Alone, a route waits for exactly one small transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.telemetry.port import JournalPort

log = logging.getLogger(__name__)

# Rows per transaction at most: bounds one commit's time (and so one route's wait) under a burst.
MAX_BATCH = 256

_Item = tuple[Mapping[str, Any], asyncio.Future[None], asyncio.AbstractEventLoop]


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():  # the request was cancelled (client gone): nobody waits
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


class GroupCommitter:
    """``await committer.commit(row)`` returns once ``row`` is committed to ``table``, or raises
    ``TelemetryUnavailable`` (the journal refused the whole group)."""

    def __init__(self, journal: JournalPort, table: str, max_batch: int = MAX_BATCH) -> None:
        self.journal = journal
        self.table = table
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"tierwise-commit-{table}", daemon=True)
        self._closed = False
        self._thread.start()

    async def commit(self, row: Mapping[str, Any]) -> None:
        if self._closed:
            raise TelemetryUnavailable("telemetry is unavailable: the service is shutting down")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put((row, fut, loop))
        await fut

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Item]) -> None:
        error: BaseException | None = None
        try:
            self.journal.insert_many(self.table, [row for row, _, _ in batch])
        except TelemetryUnavailable as exc:
            error = exc
        except Exception as exc:  # never leave a request waiting forever; it becomes a lost write
            log.exception("group commit to %s failed", self.table)
            error = TelemetryUnavailable(f"telemetry is unavailable: {self.table} write failed ({exc})")
        for _, fut, loop in batch:
            with contextlib.suppress(RuntimeError):  # that request's loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, fut, error)

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
