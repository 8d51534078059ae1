"""Opening telemetry under ``TIERWISE_HOME``: journal, segments, catalog, background export."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.telemetry.background import BackgroundExport
from tierwise.service.telemetry.disk import DiskUsage, measure
from tierwise.service.telemetry.health import JournalHealth
from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.retention import apply_retention
from tierwise.service.telemetry.segments import SegmentExporter
from tierwise.service.telemetry.warehouse import Warehouse, build_catalog, in_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """How long exported rows stay in the journal, and how often the background thread prunes."""

    days: float = 7.0
    outcome_window_days: float = 30.0
    interval_s: float = 600.0


@dataclass(frozen=True)
class TelemetryPaths:
    root: Path

    @property
    def journal(self) -> Path:
        return self.root / "journal.sqlite"

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def catalog(self) -> Path:
        return self.root / "tierwise.duckdb"


class TelemetryStore:
    """The writer side of one process, plus a thread that exports to Parquet every few seconds."""

    def __init__(self, journal: Journal, exporter: SegmentExporter, paths: TelemetryPaths,
                 route_journal: Journal | None = None) -> None:
        """``route_journal`` is the route path's own connection (see ``connect(latency_critical=...)``),
        so a decision insert never queues behind an outcome on the same Python lock."""
        self.journal = journal
        self.route_journal = route_journal or journal
        self.exporter = exporter
        self.paths = paths
        self.health = journal.health
        self.retention = Retention()
        self._next_prune = 0.0
        self._background = BackgroundExport(self._maintain, self.health, self.journal.probe_write)

    @classmethod
    def open(cls, root: Path, *, durability: str = "normal", catalog: bool = True) -> TelemetryStore:
        paths = TelemetryPaths(root)
        conn = connect(paths.journal, durability=durability)
        health = JournalHealth()  # one per process: both connections write the same file
        journal = Journal(conn, health)
        journal.migrate()
        route_journal = Journal(connect(paths.journal, durability=durability, latency_critical=True), health)
        exporter = SegmentExporter(_export_conn(paths.journal), paths.segments)
        exporter.ensure_layout()
        floors = exporter.watermarks()  # rows written from now on sort above everything exported
        journal.set_rowid_floors(floors)
        route_journal.set_rowid_floors(floors)
        if catalog:
            try:
                build_catalog(paths.catalog, paths.segments)
            except Exception as exc:  # a CLI user holding the catalog must not stop the service
                log.warning("could not migrate %s (%s); programs use in-memory views", paths.catalog, exc)
        return cls(journal, exporter, paths, route_journal)

    def disk_usage(self) -> DiskUsage:
        return measure(self.paths.journal, self.paths.segments)

    def export_now(self) -> dict[str, int]:
        return self.exporter.export_once()

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Export, then drop from the journal what retention allows (under the export lock, so the
        watermarks hold still); returns rows deleted per table."""
        with self.exporter.locked():
            self.exporter.export_locked()
            return apply_retention(self.exporter.conn, self.exporter.watermarks(),
                                   retention_days=self.retention.days,
                                   outcome_window_days=self.retention.outcome_window_days, now=now)

    def checkpoint(self) -> tuple[int, int, int]:
        """Fold the WAL back into the journal (PASSIVE: never waits for writers). The route
        connection never checkpoints, so with route-only traffic nothing else would, and the WAL
        would grow without bound. Returns SQLite's (busy, wal pages, pages checkpointed)."""
        row = self.exporter.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def warehouse(self, refresh: bool = True) -> Warehouse:
        if refresh:
            self.export_now()
        return in_memory(self.paths.segments)

    def _maintain(self) -> None:
        """One background step: export, fold the WAL back, and now and then apply retention."""
        self.exporter.export_once()
        self.checkpoint()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.retention.interval_s
            self.prune()

    def start_background_export(self, interval_s: float) -> None:
        self._next_prune = time.monotonic() + self.retention.interval_s
        self._background.start(interval_s)

    def close(self) -> None:
        self._background.stop()
        try:
            self.exporter.export_once()
        finally:
            self.journal.close()
            if self.route_journal is not self.journal:
                self.route_journal.close()
            self.exporter.conn.close()


def _export_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_warehouse(home: Path, refresh: bool = True, *, journal_url: str | None = None,
                   segments: Path | None = None) -> Warehouse:
    """For readers (tuner, notebooks, ``tierwise stats``): export what is committed, then query
    in memory. Never blocks, and is never blocked by, a running service. With ``journal_url``
    (``TIERWISE_JOURNAL_URL``) the journal is the shared PostgreSQL one, and ``segments``
    (``TIERWISE_SEGMENTS_URL``) where every host exports to."""
    if journal_url:
        from tierwise.service.telemetry.pg_store import open_pg_warehouse

        return open_pg_warehouse(journal_url, segments or home / "telemetry" / "segments", refresh)
    paths = TelemetryPaths(home / "telemetry")
    if not paths.journal.exists():
        raise FileNotFoundError(f"no telemetry under {paths.root}; start the service first")
    try:
        _export_committed(paths, refresh)
    except (OSError, sqlite3.Error) as exc:
        # An analyst without write access to the home: the running service exports anyway, so
        # the segments are at most one export interval behind. Read them as they are.
        log.warning("cannot export under %s (%s); reading the segments already exported", paths.root, exc)
    return in_memory(paths.segments)


def _export_committed(paths: TelemetryPaths, refresh: bool) -> None:
    exporter = SegmentExporter(_export_conn(paths.journal), paths.segments)
    try:
        exporter.ensure_layout()
        if refresh:
            exporter.export_once()
    finally:
        exporter.conn.close()
