"""The telemetry thread of a service process: export (and maintenance) every interval.

Shared by both journals' stores. A step that fails is logged and retried next interval; while
the journal is degraded, a tiny probe write runs every interval, so health recovers without
waiting for traffic (a failed probe is recorded in ``health``, and /healthz names the cause).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.telemetry.health import JournalHealth

log = logging.getLogger(__name__)


class BackgroundExport:
    def __init__(self, step: Callable[[], None], health: JournalHealth, probe: Callable[[], None]) -> None:
        self.step = step
        self.health = health
        self.probe = probe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.step()
                except Exception:
                    log.exception("telemetry export failed; will retry")
                if self.health.degraded:
                    with contextlib.suppress(TelemetryUnavailable):
                        self.probe()

        self._thread = threading.Thread(target=loop, name="tierwise-export", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
