"""Exactly-once export from the PostgreSQL journal to Parquet segments on a shared location.

Why not a rowid or sequence watermark, as for SQLite: a PostgreSQL sequence value is taken at
insert time, not commit time, so row 10 can commit before row 9; an exporter that moved past
10 would never see 9. Every row instead records the id of the transaction that inserted it
(``xid``), and an export copies the rows with ``watermark <= xid < xmin``, where ``xmin`` is
the oldest transaction still running when the export's snapshot is taken: every transaction
below it has ended, so each committed row lands in exactly one export, and a later commit can
never fall behind the watermark.

One exporter at a time, whichever host it runs on: a session-level advisory lock. The
watermark lives in the database (``export_watermarks``). An export writes its segments first
(temp file, fsync, rename), then commits the new watermark; a host that dies in between leaves
segments above the committed watermark, which the next exporter deletes before it writes the
same rows again. So nothing is half-written (a reader sees a whole segment or none) and nothing
is exported twice. Segments are named ``<watermark>-<xmin - 1>.parquet`` (a range of xids).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from tierwise.service.telemetry.pg_migrations import EXPORT_LOCK, Conn
from tierwise.service.telemetry.schema import TABLES, column_names
from tierwise.service.telemetry.segments import ensure_layout, segment_name, segment_ranges, write_segment

log = logging.getLogger(__name__)


class PgSegmentExporter:
    """Copies committed journal rows into segments under ``root``; safe from any host, any time."""

    def __init__(self, pool: ConnectionPool[Conn], root: Path) -> None:
        self.pool = pool
        self.root = root

    def ensure_layout(self) -> None:
        ensure_layout(self.root)

    def watermarks(self) -> dict[str, int]:
        with self.pool.connection() as conn:
            return {r["tbl"]: int(r["xid"]) for r in conn.execute("SELECT tbl, xid FROM export_watermarks")}

    def export_once(self, wait: bool = False) -> dict[str, int]:
        """Export everything committed so far; returns rows written per table.

        ``wait=False`` (the service's background thread): if another host holds the export lock,
        return at once with nothing written, as that host is exporting the same rows. ``wait=True``
        (a reader about to query): wait for it, then export what is left."""
        with self.pool.connection() as conn:
            if wait:
                conn.execute("SELECT pg_advisory_lock(%s)", (EXPORT_LOCK,))
            else:
                row = conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (EXPORT_LOCK,)).fetchone()
                if not row or not row["got"]:
                    return {}
            try:
                return self._export(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (EXPORT_LOCK,))

    def _export(self, conn: Conn) -> dict[str, int]:
        written: dict[str, int] = {}
        # The snapshot is taken after the lock is held, so the previous exporter's commit is in it.
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin").fetchone()
            assert row is not None
            xmin = int(row["xmin"])
            marks = {r["tbl"]: int(r["xid"]) for r in conn.execute("SELECT tbl, xid FROM export_watermarks")}
            for table in TABLES:
                wm = marks.get(table, 0)
                self._drop_uncommitted(table, wm)
                if xmin <= wm:
                    written[table] = 0
                    continue
                written[table] = self._export_table(conn, table, wm, xmin)
                conn.execute("UPDATE export_watermarks SET xid = %s WHERE tbl = %s", (xmin, table))
        return written

    def _drop_uncommitted(self, table: str, wm: int) -> None:
        """Segments at or above the committed watermark were written by an exporter that died
        before its commit: their rows are exported again now, so the files must go first."""
        for _, hi, path in segment_ranges(self.root / table):
            if hi > 0 and hi >= wm:
                log.warning("removing segment %s left by an interrupted export", path)
                path.unlink(missing_ok=True)

    def _export_table(self, conn: Conn, table: str, wm: int, xmin: int) -> int:
        cols = column_names(table)
        rows: list[dict[str, Any]] = conn.execute(
            f"SELECT {', '.join(cols)} FROM {table} WHERE xid >= %s AND xid < %s ORDER BY xid, seq",
            (wm, xmin)).fetchall()
        if rows:
            write_segment(table, [[r[c] for r in rows] for c in cols],
                          self.root / table / segment_name(max(wm, 1), xmin - 1))
        return len(rows)
