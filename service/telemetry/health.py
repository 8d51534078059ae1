"""Whether this process's journal takes writes, as ``/healthz`` reports it.

Why a tracker and not a probe per health check: the failure that matters (disk full, a file-size
limit, a read-only journal) shows up on the writes the service makes anyway, so every journal
write reports its outcome here and ``/healthz`` reads the last one. While degraded, the
background export thread probes with a tiny write (``Journal.probe_write``), so health recovers
even when no traffic arrives.
"""

from __future__ import annotations

import threading


class JournalHealth:
    """The last journal write failure of this process, cleared by the next successful write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure: str | None = None

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self._failure = f"telemetry: journal {what} failed: {exc}"

    def succeeded(self) -> None:
        if self._failure is not None:  # the common path takes no lock
            with self._lock:
                self._failure = None

    @property
    def degraded(self) -> bool:
        return self._failure is not None

    def causes(self) -> list[str]:
        """Human-readable causes for ``/healthz``; empty when the journal takes writes."""
        failure = self._failure
        return [failure] if failure is not None else []
