"""Telemetry of one router host when the journal is on PostgreSQL (``TIERWISE_JOURNAL_URL``).

The journal is shared by every host; the segments are on a shared location
(``TIERWISE_SEGMENTS_URL``) that every host and the tuner see. Each host runs the background
export; the advisory lock lets one at a time do it (``pg_export.py``). Retention of exported
rows and WAL checkpoints are SQLite concerns: PostgreSQL's own autovacuum and checkpointer do
the latter, and journal retention on PostgreSQL is not built yet (the journal grows).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from tierwise.service.telemetry.background import BackgroundExport
from tierwise.service.telemetry.disk import DiskUsage, measure
from tierwise.service.telemetry.health import JournalHealth
from tierwise.service.telemetry.pg_export import PgSegmentExporter
from tierwise.service.telemetry.pg_journal import ROUTE_CHECKOUT_TIMEOUT_S, UNREACHABLE, PgJournal, make_pool
from tierwise.service.telemetry.store import Retention
from tierwise.service.telemetry.warehouse import Warehouse, in_memory

log = logging.getLogger(__name__)


class PgTelemetryStore:
    """The same face as ``store.TelemetryStore`` (what the app and routes use), on PostgreSQL."""

    def __init__(self, journal: PgJournal, exporter: PgSegmentExporter) -> None:
        self.journal = journal
        # One pool serves both paths (no Python lock to queue behind); a route waits less for it.
        self.route_journal = PgJournal(journal.pool, journal.health, checkout_timeout_s=ROUTE_CHECKOUT_TIMEOUT_S)
        self.exporter = exporter
        self.health = journal.health
        self.segments = exporter.root
        self.retention = Retention()
        self._background = BackgroundExport(self._maintain, self.health, self.journal.probe_write)

    @classmethod
    def open(cls, url: str, segments: Path, *, pool_size: int = 8, durability: str = "normal") -> PgTelemetryStore:
        pool = make_pool(url, max_size=pool_size, durability=durability)
        journal = PgJournal(pool, JournalHealth())
        try:
            journal.migrate()
            exporter = PgSegmentExporter(pool, segments)
            exporter.ensure_layout()
        except BaseException:
            pool.close()
            raise
        return cls(journal, exporter)

    def disk_usage(self) -> DiskUsage:
        """Segments only: the journal's size is the database server's to report."""
        return measure(self.segments / "journal.none", self.segments)

    def export_now(self) -> dict[str, int]:
        return self.exporter.export_once(wait=True)

    def prune(self, now: float | None = None) -> dict[str, int]:
        return {}

    def warehouse(self, refresh: bool = True) -> Warehouse:
        if refresh:
            self.export_now()
        return in_memory(self.segments)

    def _maintain(self) -> None:
        try:
            self.exporter.export_once()
        except UNREACHABLE as exc:  # the journal is down: health says so, export resumes later
            self.health.failed("export", exc)

    def start_background_export(self, interval_s: float) -> None:
        self._background.start(interval_s)

    def close(self) -> None:
        self._background.stop()
        try:
            with contextlib.suppress(*UNREACHABLE):
                self.exporter.export_once()
        finally:
            self.journal.close()

def open_pg_warehouse(url: str, segments: Path, refresh: bool = True) -> Warehouse:
    """For readers (tuner, notebook, ``tierwise stats``): export what is committed, then query."""
    if refresh:
        pool = make_pool(url, max_size=1, name="tierwise-reader")
        try:
            exporter = PgSegmentExporter(pool, segments)
            exporter.ensure_layout()
            exporter.export_once(wait=True)
        finally:
            pool.close()
    return in_memory(segments)
