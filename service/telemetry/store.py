"""Opening telemetry under ``TIERWISE_HOME``: journal, segments, catalog, background export."""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.segments import SegmentExporter
from tierwise.service.telemetry.warehouse import Warehouse, build_catalog, in_memory

log = logging.getLogger(__name__)


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, root: Path, *, durability: str = "normal", catalog: bool = True) -> TelemetryStore:
        paths = TelemetryPaths(root)
        conn = connect(paths.journal, durability=durability)
        journal = Journal(conn)
        journal.migrate()
        route_journal = Journal(connect(paths.journal, durability=durability, latency_critical=True))
        exporter = SegmentExporter(_export_conn(paths.journal), paths.segments)
        exporter.ensure_layout()
        if catalog:
            try:
                build_catalog(paths.catalog, paths.segments)
            except Exception as exc:  # a CLI user holding the catalog must not stop the service
                log.warning("could not migrate %s (%s); programs use in-memory views", paths.catalog, exc)
        return cls(journal, exporter, paths, route_journal)

    def export_now(self) -> dict[str, int]:
        return self.exporter.export_once()

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

    def start_background_export(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.exporter.export_once()
                    self.checkpoint()
                except Exception:
                    log.exception("telemetry export failed; will retry")

        self._thread = threading.Thread(target=loop, name="tierwise-export", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
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


def open_warehouse(home: Path, refresh: bool = True) -> Warehouse:
    """For readers (tuner, notebooks, ``tierwise stats``): export what is committed, then query
    in memory. Never blocks, and is never blocked by, a running service."""
    paths = TelemetryPaths(home / "telemetry")
    if not paths.journal.exists():
        raise FileNotFoundError(f"no telemetry under {paths.root}; start the service first")
    exporter = SegmentExporter(_export_conn(paths.journal), paths.segments)
    try:
        exporter.ensure_layout()
        if refresh:
            exporter.export_once()
    finally:
        exporter.conn.close()
    return in_memory(paths.segments)
