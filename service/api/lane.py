"""The ingest lane: outcome reports run on their own small pool of lower-priority threads.

Why: on a 2-core box a burst of reports (HTTP parsing aside, each one is a jsonschema check, a
policy lookup and a journal transaction) would otherwise take the CPU the encoder needs, and
``/v1/route`` latency would follow the report rate. Linux applies ``nice`` per thread, so the
lane's threads yield the CPU to the route threads whenever both want it, while a report is
still acknowledged only after its transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def _lower_priority(nice: int) -> None:
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        # PRIO_PROCESS with a thread id renices just this thread on Linux. Relative to the
        # process's own niceness: under `nice -n 5 tierwise serve` the lane still yields to routes.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except OSError as exc:  # not permitted here: the lane still bounds concurrency
        log.warning("could not renice the ingest thread to %d: %s", nice, exc)


class IngestLane:
    def __init__(self, threads: int, nice: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tierwise-ingest",
                                        initializer=_lower_priority, initargs=(nice,))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
