"""What the online path needs from a journal, whichever engine holds it.

Two engines implement it: ``journal.Journal`` (the embedded SQLite default) and
``pg_journal.PgJournal`` (PostgreSQL, for several router hosts). The router, the outcome
recorder and the routes see only this protocol. A transaction handle takes SQL with ``?``
placeholders and gives rows that can be read by column name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from tierwise.service.telemetry.health import JournalHealth

# Open human-queue items, oldest first: the same SQL on both engines.
OPEN_QUEUE_SQL = ("SELECT q.* FROM queue q LEFT JOIN queue_resolutions r USING (item_id) "
                  "WHERE r.item_id IS NULL ORDER BY q.ts, q.item_id")


class JournalConflict(Exception):
    """A write broke a uniqueness rule of the database (another host recorded the same key first).

    Not a domain error: the outcome recorder reads again and answers duplicate or 409."""


class JournalPort(Protocol):
    health: JournalHealth

    def transaction(self) -> AbstractContextManager[Any]: ...

    def insert(self, table: str, row: Mapping[str, Any], conn: Any = None) -> None: ...

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def last_id(self, tx: Any, table: str, key: str) -> int:
        """The ``key`` the last ``insert`` into ``table`` on ``tx`` got (an identity column)."""
        ...

    def lock_decision(self, tx: Any, decision_id: str) -> None:
        """Serialise writers of one decision until ``tx`` ends (escalation sequencing)."""
        ...

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def decision(self, decision_id: str) -> dict[str, Any] | None: ...

    def attempts(self, decision_id: str, conn: Any = None) -> list[dict[str, Any]]: ...

    def open_queue(self) -> list[dict[str, Any]]: ...

    def probe_write(self) -> None: ...

    def close(self) -> None: ...
