"""Bounded disk: exported rows the service no longer needs leave the journal.

The Parquet segments are the history; the journal only has to hold what the online path reads:
a decision and its attempts until its episode is closed (an outcome may still arrive), and a
human-queue item until it is resolved. So a row leaves when all of these hold:

- it is exported (its rowid is at or below the table's segment watermark);
- it is older than the retention;
- its episode is closed (last attempt's next step is ``done``, ``human`` or ``script``) and any
  human-queue item of it is resolved, or the episode is open but older than the outcome window
  (a report that late gets 404);
- it is not its table's newest row: SQLite numbers a new row ``max(rowid) + 1``, so keeping the
  newest row keeps rowids rising above the watermark (see ``Journal.set_rowid_floors``).

Then the WAL is checkpointed to zero bytes and freed pages go back to the file system.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

DAY_S = 86_400.0
# A journal smaller than this is VACUUMed once to switch on incremental vacuum (a full rewrite,
# cheap at this size); a bigger legacy journal keeps its size and reuses freed pages instead.
VACUUM_MAX_BYTES = 64 * 1024 * 1024

_CLOSED = ("SELECT a.decision_id FROM attempts a WHERE a.next_action IN ('done', 'human', 'script')")
_OPEN_HUMAN = ("SELECT q.decision_id FROM queue q LEFT JOIN queue_resolutions r USING (item_id) "
               "WHERE r.item_id IS NULL AND q.kind = 'human'")


def _common(table: str) -> str:
    return f"rowid <= :wm_{table} AND ts < :cutoff AND rowid < (SELECT max(rowid) FROM {table})"


def _statements() -> list[tuple[str, str]]:
    """(table, DELETE) in dependency order: decisions first, then what hangs off a gone decision."""
    gone = "decision_id NOT IN (SELECT decision_id FROM decisions)"
    return [
        ("decisions",
         f"DELETE FROM decisions WHERE {_common('decisions')} AND decision_id NOT IN ({_OPEN_HUMAN}) "
         f"AND (decision_id IN ({_CLOSED}) OR ts < :outcome_cutoff)"),
        ("attempts", f"DELETE FROM attempts WHERE {_common('attempts')} AND {gone}"),
        ("escalations", f"DELETE FROM escalations WHERE {_common('escalations')} AND {gone}"),
        ("queue", f"DELETE FROM queue WHERE {_common('queue')} AND {gone} AND item_id NOT IN "
                  "(SELECT item_id FROM queue q LEFT JOIN queue_resolutions r USING (item_id) "
                  "WHERE r.item_id IS NULL AND q.kind = 'human')"),
        ("queue_resolutions", f"DELETE FROM queue_resolutions WHERE {_common('queue_resolutions')} "
                              "AND item_id NOT IN (SELECT item_id FROM queue)"),
    ]


def apply_retention(conn: sqlite3.Connection, watermarks: Mapping[str, int], *, retention_days: float,
                    outcome_window_days: float, now: float | None = None) -> dict[str, int]:
    """Delete what may go (one transaction), then shrink the files; returns rows deleted per table.

    Call it holding the exporter's lock, so the watermarks cannot move under it."""
    now = time.time() if now is None else now
    params: dict[str, float] = {f"wm_{t}": float(w) for t, w in watermarks.items()}
    params["cutoff"] = now - retention_days * DAY_S
    params["outcome_cutoff"] = now - max(outcome_window_days, retention_days) * DAY_S
    deleted: dict[str, int] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, sql in _statements():
            deleted[table] = conn.execute(sql, params).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    shrink(conn)
    if any(deleted.values()):
        log.info("telemetry retention removed %s from the journal", deleted)
    return deleted


def shrink(conn: sqlite3.Connection) -> None:
    """WAL back to zero bytes, then hand free pages back (incremental vacuum, or one cheap VACUUM)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
    if mode == 2:
        _incremental_vacuum(conn)
    else:
        pages, size = (int(conn.execute(f"PRAGMA {p}").fetchone()[0]) for p in ("page_count", "page_size"))
        if pages * size <= VACUUM_MAX_BYTES:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _incremental_vacuum(conn: sqlite3.Connection, max_pages: int = 65_536) -> None:
    """Through Python's driver each ``PRAGMA incremental_vacuum`` frees one page (measured), so
    loop, in one transaction, up to ``max_pages`` (256 MiB at 4 KiB) per maintenance pass."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        for _ in range(min(free, max_pages)):
            conn.execute("PRAGMA incremental_vacuum")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
