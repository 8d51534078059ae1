"""The durable journal: SQLite in WAL mode, shared by every service process.

Why SQLite and not the DuckDB file: DuckDB lets one process hold a file, and nobody else can
then even read it; SQLite in WAL mode takes many writers (serialised by its lock) and never
blocks readers, and a committed transaction is in the WAL before ``commit()`` returns, so an
acknowledged outcome survives ``kill -9``. DuckDB reads the exported Parquet segments.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.telemetry.health import JournalHealth
from tierwise.service.telemetry.migrations import migrate
from tierwise.service.telemetry.port import OPEN_QUEUE_SQL
from tierwise.service.telemetry.schema import column_names

log = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0
POLL_S = 0.0002


def connect(path: Path, *, durability: str = "normal", latency_critical: bool = False) -> sqlite3.Connection:
    """A journal connection; ``durability='full'`` also fsyncs every commit (power-loss safe).

    ``latency_critical`` is for the route path. SQLite's own busy handler sleeps 1, 2, 5, 10, 15,
    20, 25 ... ms between tries, so under a stream of outcome commits a decision insert could wait
    50 ms for a lock that is held for 0.1 ms; such a connection has no busy handler and
    ``Journal`` polls every 0.2 ms instead. It also never runs the WAL checkpoint (the store's
    background export thread does, ``TelemetryStore.checkpoint``), so a route never pays for one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=0.0 if latency_critical else LOCK_WAIT_S, isolation_level=None,
                           check_same_thread=False)
    # Before any table exists (a no-op after): lets retention hand freed pages back to the disk.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    if latency_critical:
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA wal_autocheckpoint=0")
    else:
        conn.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_S * 1000)}")
    conn.row_factory = sqlite3.Row
    return conn


def _begin_polling(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried every ``POLL_S`` for up to ``LOCK_WAIT_S`` while another writer holds the lock."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


class Journal:
    """Row-level reads and writes of the online path. The connection is injected.

    A write the database refuses (disk full, file-size limit, read-only file, lock wait exhausted)
    raises ``TelemetryUnavailable`` and is reported to ``health``; the next write that commits
    clears it. Callers decide what a lost write means (a route still answers, an outcome is 503).
    """

    def __init__(self, conn: sqlite3.Connection, health: JournalHealth | None = None) -> None:
        self.conn = conn
        self.health = health or JournalHealth()
        self._lock = threading.RLock()
        # A connection without a busy handler (``connect(latency_critical=True)``) polls for the lock.
        self._poll = conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
        # Per table, the lowest rowid a new row may take (see ``set_rowid_floors``).
        self._floors: dict[str, int] = {}

    def set_rowid_floors(self, floors: Mapping[str, int]) -> None:
        """New rows of a table get a rowid above its floor (the export watermark at open).

        Why: SQLite gives a new row ``max(rowid) + 1``, so a journal deleted and recreated (or
        emptied) would restart at 1, below the segments' watermark, and the exporter would never
        copy those rows. With a floor, rowids keep rising across journal generations."""
        self._floors = {t: int(f) for t, f in floors.items() if f > 0}

    def _unavailable(self, what: str, exc: sqlite3.Error) -> TelemetryUnavailable:
        self.health.failed(what, exc)
        log.warning("telemetry journal %s failed: %s", what, exc)
        return TelemetryUnavailable(f"telemetry is unavailable: journal {what} failed ({exc}); retry later")

    def _rollback(self) -> None:
        if not self.conn.in_transaction:  # SQLite already rolled back (e.g. SQLITE_FULL)
            return
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("telemetry journal rollback failed: %s", exc)

    def probe_write(self) -> None:
        """A write that changes nothing (rewrites ``user_version``): tells whether writes commit again."""
        with self.transaction() as tx:
            version = int(tx.execute("PRAGMA user_version").fetchone()[0])
            tx.execute(f"PRAGMA user_version = {version}")

    def migrate(self) -> int:
        with self._lock:
            return migrate(self.conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front, so read-check-write is atomic
        across processes (two workers racing on the same report cannot both insert)."""
        with self._lock:
            try:
                if self._poll:
                    _begin_polling(self.conn)
                else:
                    self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._unavailable("write", exc) from exc
            try:
                yield self.conn
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise self._unavailable("write", exc) from exc
            except BaseException:
                self._rollback()
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise self._unavailable("write", exc) from exc
            self.health.succeeded()

    def _insert_sql(self, table: str, cols: list[str]) -> tuple[str, list[Any]]:
        """The INSERT statement and its leading parameters (the rowid floor, when there is one)."""
        floor = self._floors.get(table)
        if floor is None:
            return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", []
        return (f"INSERT INTO {table} (rowid, {', '.join(cols)}) VALUES "
                f"((SELECT max(coalesce(max(rowid), 0), ?) + 1 FROM {table}), {', '.join('?' for _ in cols)})",
                [floor])

    def insert(self, table: str, row: Mapping[str, Any], conn: sqlite3.Connection | None = None) -> None:
        cols = [c for c in column_names(table) if c in row]
        sql, lead = self._insert_sql(table, cols)
        if conn is not None:
            conn.execute(sql, [*lead, *(row[c] for c in cols)])
            return
        with self.transaction() as tx:
            tx.execute(sql, [*lead, *(row[c] for c in cols)])

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Batched insert in one transaction: the fast path for bulk ingest and replays."""
        if not rows:
            return 0
        cols = [c for c in column_names(table) if any(c in r for r in rows)]
        sql, lead = self._insert_sql(table, cols)
        with self.transaction() as tx:
            tx.executemany(sql, [[*lead, *(r.get(c) for c in cols)] for r in rows])
        return len(rows)

    def last_id(self, tx: sqlite3.Connection, table: str, key: str) -> int:
        """The rowid SQLite gave the last insert on ``tx`` (``key`` is the table's rowid alias)."""
        return int(tx.execute("SELECT last_insert_rowid()").fetchone()[0])

    def lock_decision(self, tx: sqlite3.Connection, decision_id: str) -> None:
        """Nothing to do: an IMMEDIATE transaction already holds the whole journal's write lock."""

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            try:
                row = self.conn.execute(sql, params).fetchone()
            except sqlite3.OperationalError as exc:
                raise self._unavailable("read", exc) from exc
        return dict(row) if row is not None else None

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return [dict(r) for r in self.conn.execute(sql, params).fetchall()]
            except sqlite3.OperationalError as exc:
                raise self._unavailable("read", exc) from exc

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.fetch_one("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,))

    def attempts(self, decision_id: str, conn: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM attempts WHERE decision_id = ? ORDER BY attempt"
        if conn is not None:
            return [dict(r) for r in conn.execute(sql, (decision_id,)).fetchall()]
        return self.fetch_all(sql, (decision_id,))

    def open_queue(self) -> list[dict[str, Any]]:
        return self.fetch_all(OPEN_QUEUE_SQL)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
