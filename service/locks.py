"""One inter-process file lock, for work that two processes must not do at once (exporting
telemetry segments, building the ONNX encoder). Pure stdlib, so ``classify`` may use it too."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class LockHeld(TimeoutError):
    """``owned_lock`` gave up: ``owner`` is what the holder wrote (``pid N since T``), if anything."""

    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(f"{path} is held by {owner or 'another process'}")
        self.owner = owner


@contextmanager
def owned_lock(path: Path, *, wait_s: float = 0.0, poll_s: float = 0.2) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` that says who holds it: the holder writes
    ``pid N since <UTC time>`` into the file, so a process that finds it busy can tell the operator
    which one to wait for. Waits up to ``wait_s`` seconds, then raises ``LockHeld``. The kernel
    drops the lock when the holder dies (even by ``kill -9``), so a stale file never blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(path, os.pread(fd, 200, 0).decode(errors="replace").strip()) from None
                time.sleep(poll_s)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {since}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
