"""Numbered schema migrations for the SQLite journal, applied in order on start.

Each entry runs once, inside a transaction, and bumps ``PRAGMA user_version``; never edit a
released entry, append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from tierwise.service.telemetry.schema import TABLES


def _create(table: str) -> str:
    cols = ",\n  ".join(f"{name} {sqltype}" for name, sqltype, _ in TABLES[table])
    extra = ",\n  PRIMARY KEY (decision_id, attempt)" if table == "attempts" else ""
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}{extra}\n)"


def _m001_initial(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(_create(table))


def _m002_indexes(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX IF NOT EXISTS escalations_decision ON escalations (decision_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_indexes]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations under an immediate lock, so two processes starting at once are safe."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for number, step in enumerate(MIGRATIONS, start=1):
            if number > current:
                step(conn)
                conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
