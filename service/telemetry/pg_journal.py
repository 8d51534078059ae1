"""The journal on PostgreSQL: one journal for many router hosts (``TIERWISE_JOURNAL_URL``).

Same contract as the SQLite journal (``journal.py``, ``port.JournalPort``), across hosts:

- an outcome is acknowledged only after its transaction commits (synchronous commit is
  PostgreSQL's default: the commit record is flushed to the WAL before ``COMMIT`` returns);
- ``(decision_id, attempt)`` is the attempts table's primary key, so two hosts racing on one
  report cannot both store it: the loser gets a unique violation, raised as
  ``JournalConflict``, and the recorder reads again and answers duplicate or 409;
- escalation sequencing is atomic: ``lock_decision`` takes the decision's row lock
  (``SELECT ... FOR UPDATE``), so writers of one decision queue up while other decisions
  proceed in parallel (SQLite has one write lock for everything).

Connections come from a psycopg 3 pool; each call borrows one for one statement or one
transaction. An unreachable server or an exhausted pool raises ``TelemetryUnavailable`` (503
with ``Retry-After`` for an outcome; a route still answers) and marks ``health`` degraded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.telemetry.health import JournalHealth
from tierwise.service.telemetry.pg_migrations import Conn, migrate
from tierwise.service.telemetry.port import OPEN_QUEUE_SQL, JournalConflict
from tierwise.service.telemetry.schema import column_names
from tierwise.service.urls import redact_url

log = logging.getLogger(__name__)

# A borrowed connection is given up on after this long; the route path waits less (a decision
# is answered even when its log line is lost, and must not hang on a dead server).
CHECKOUT_TIMEOUT_S = 5.0
ROUTE_CHECKOUT_TIMEOUT_S = 0.5
CONNECT_TIMEOUT_S = 3
# Failures that mean "the server cannot take this now", as opposed to a bug in a statement.
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def make_pool(url: str, *, min_size: int = 1, max_size: int = 8, name: str = "tierwise-journal",
              wait_s: float = 30.0, durability: str = "normal") -> ConnectionPool[Conn]:
    """A pool of autocommit connections with dict rows; waits until one connection works.

    ``durability`` as for SQLite (``TIERWISE_DURABILITY``): ``full`` waits for the WAL flush
    (fsync) on every commit, so a commit survives a power cut of the database server;
    ``normal`` (the default) commits without waiting for it (``synchronous_commit = off``): a
    commit is visible to every host at once and survives any router host's crash, and a crash
    of the database server itself may lose its last fraction of a second of commits, never
    corrupting anything. That is the SQLite default's promise (``synchronous=NORMAL``: survives
    ``kill -9``, not a power cut). On this project's VM one fsync costs ~35 ms."""
    sync = "on" if durability == "full" else "off"
    pool: ConnectionPool[Conn] = ConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=False, timeout=CHECKOUT_TIMEOUT_S,
        kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": name, "options": f"-c synchronous_commit={sync}"})
    try:
        pool.open(wait=True, timeout=wait_s)
    except PoolTimeout as exc:
        pool.close()
        raise TelemetryUnavailable(f"telemetry is unavailable: cannot connect to the journal at "
                                   f"{redact_url(url)} within {wait_s:.0f}s", field="TIERWISE_JOURNAL_URL") from exc
    return pool


def _qmarks(sql: str) -> str:
    """The online path's SQL uses ``?`` (SQLite's style); psycopg wants ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgTx:
    """One transaction's connection, taking ``?`` placeholders as the SQLite handle does."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[dict[str, Any]]:
        return self.conn.execute(_qmarks(sql), params)


class PgJournal:
    """Row-level reads and writes of the online path on PostgreSQL. The pool is injected."""

    def __init__(self, pool: ConnectionPool[Conn], health: JournalHealth | None = None,
                 checkout_timeout_s: float = CHECKOUT_TIMEOUT_S) -> None:
        self.pool = pool
        self.health = health or JournalHealth()
        self.checkout_timeout_s = checkout_timeout_s

    def _borrow(self) -> AbstractContextManager[Conn]:
        return self.pool.connection(timeout=self.checkout_timeout_s)

    def _unavailable(self, what: str, exc: Exception) -> TelemetryUnavailable:
        self.health.failed(what, exc)
        log.warning("telemetry journal %s failed: %s", what, exc)
        # After a server restart every idle pooled connection is dead: drop them all now, so the
        # requests after this one get fresh connections instead of failing one by one.
        try:
            self.pool.check()
        except Exception as check_exc:  # the pool refills in the background; this is best effort
            log.debug("pool check after a journal failure: %s", check_exc)
        return TelemetryUnavailable(f"telemetry is unavailable: journal {what} failed ({type(exc).__name__}); "
                                    "retry later")

    def migrate(self) -> int:
        try:
            with self._borrow() as conn:
                return migrate(conn)
        except UNREACHABLE as exc:
            raise self._unavailable("migration", exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[PgTx]:
        try:
            with self._borrow() as conn, conn.transaction():
                yield PgTx(conn)
        except psycopg.errors.UniqueViolation as exc:
            raise JournalConflict(str(exc)) from exc
        except UNREACHABLE as exc:
            raise self._unavailable("write", exc) from exc
        self.health.succeeded()

    def probe_write(self) -> None:
        """A write that changes no row: taking a transaction id makes the commit write WAL, so it
        tells whether writes commit again (and touches no row an exporter may be updating)."""
        with self.transaction() as tx:
            tx.execute("SELECT pg_current_xact_id()")

    @staticmethod
    def _insert_sql(table: str, cols: list[str]) -> str:
        return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)})"

    def insert(self, table: str, row: Mapping[str, Any], conn: PgTx | None = None) -> None:
        cols = [c for c in column_names(table) if c in row]
        values = [row[c] for c in cols]
        if conn is not None:
            conn.conn.execute(self._insert_sql(table, cols), values)
            return
        with self.transaction() as tx:
            tx.conn.execute(self._insert_sql(table, cols), values)

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        cols = [c for c in column_names(table) if any(c in r for r in rows)]
        with self.transaction() as tx, tx.conn.cursor() as cur:
            cur.executemany(self._insert_sql(table, cols), [[r.get(c) for c in cols] for r in rows])
        return len(rows)

    def last_id(self, tx: PgTx, table: str, key: str) -> int:
        row = tx.execute(f"SELECT currval(pg_get_serial_sequence('{table}', '{key}')) AS id").fetchone()
        assert row is not None
        return int(row["id"])

    def lock_decision(self, tx: PgTx, decision_id: str) -> None:
        tx.execute("SELECT 1 FROM decisions WHERE decision_id = ? FOR UPDATE", (decision_id,))

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        try:
            with self._borrow() as conn:
                return conn.execute(_qmarks(sql), params).fetchone()
        except UNREACHABLE as exc:
            raise self._unavailable("read", exc) from exc

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            with self._borrow() as conn:
                return conn.execute(_qmarks(sql), params).fetchall()
        except UNREACHABLE as exc:
            raise self._unavailable("read", exc) from exc

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.fetch_one("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,))

    def attempts(self, decision_id: str, conn: PgTx | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM attempts WHERE decision_id = ? ORDER BY attempt"
        if conn is not None:
            return conn.execute(sql, (decision_id,)).fetchall()
        return self.fetch_all(sql, (decision_id,))

    def open_queue(self) -> list[dict[str, Any]]:
        return self.fetch_all(OPEN_QUEUE_SQL)

    def close(self) -> None:
        self.pool.close()
