"""The durable journal: SQLite in WAL mode, shared by every service process.

Why SQLite and not the DuckDB file: DuckDB lets one process hold a file, and nobody else can
then even read it; SQLite in WAL mode takes many writers (serialised by its lock) and never
blocks readers, and a committed transaction is in the WAL before ``commit()`` returns, so an
acknowledged outcome survives ``kill -9``. DuckDB reads the exported Parquet segments.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.telemetry.migrations import migrate
from service.telemetry.schema import column_names


def connect(path: Path, *, durability: str = "normal") -> sqlite3.Connection:
    """A journal connection; ``durability='full'`` also fsyncs every commit (power-loss safe)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.row_factory = sqlite3.Row
    return conn


class Journal:
    """Row-level reads and writes of the online path. The connection is injected."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._lock = threading.RLock()

    def migrate(self) -> int:
        with self._lock:
            return migrate(self.conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front, so read-check-write is atomic
        across processes (two workers racing on the same report cannot both insert)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def insert(self, table: str, row: Mapping[str, Any], conn: sqlite3.Connection | None = None) -> None:
        cols = [c for c in column_names(table) if c in row]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        if conn is not None:
            conn.execute(sql, [row[c] for c in cols])
            return
        with self.transaction() as tx:
            tx.execute(sql, [row[c] for c in cols])

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Batched insert in one transaction: the fast path for bulk ingest and replays."""
        if not rows:
            return 0
        cols = [c for c in column_names(table) if any(c in r for r in rows)]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        with self.transaction() as tx:
            tx.executemany(sql, [[r.get(c) for c in cols] for r in rows])
        return len(rows)

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.fetch_one("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,))

    def attempts(self, decision_id: str, conn: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM attempts WHERE decision_id = ? ORDER BY attempt"
        if conn is not None:
            return [dict(r) for r in conn.execute(sql, (decision_id,)).fetchall()]
        return self.fetch_all(sql, (decision_id,))

    def open_queue(self) -> list[dict[str, Any]]:
        return self.fetch_all(
            "SELECT q.* FROM queue q LEFT JOIN queue_resolutions r USING (item_id) "
            "WHERE r.item_id IS NULL ORDER BY q.ts, q.item_id")

    def close(self) -> None:
        with self._lock:
            self.conn.close()
