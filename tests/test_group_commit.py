"""The decision group committer: a route is answered only after its row commits, concurrent rows
share transactions, a refused group reaches every waiter, and close() loses nothing queued."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.telemetry.group_commit import GroupCommitter
from tierwise.service.telemetry.journal import Journal, connect


class CountingJournal(Journal):
    """A real SQLite journal that remembers the size of each committed group."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.groups: list[int] = []

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        n = super().insert_many(table, rows)
        self.groups.append(n)
        return n


def _row(i: int) -> dict[str, Any]:
    return {"decision_id": f"d{i:06d}", "from_attempt": 0, "from_tier": "small", "to_tier": "medium",
            "cause": "tests_failed", "ts": 1.0}


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM escalations").fetchone()[0])


@pytest.fixture()
def journal(tmp_path: Path) -> CountingJournal:
    j = CountingJournal(connect(tmp_path / "journal.sqlite"))
    j.migrate()
    return j


def test_a_commit_returns_after_the_row_is_readable_by_another_connection(journal: CountingJournal,
                                                                           tmp_path: Path) -> None:
    committer = GroupCommitter(journal, "escalations")

    async def one() -> int:
        await committer.commit(_row(1))
        return _count(tmp_path / "journal.sqlite")

    try:
        assert asyncio.run(one()) == 1
    finally:
        committer.close()


def test_concurrent_rows_share_transactions_and_all_commit(journal: CountingJournal, tmp_path: Path) -> None:
    committer = GroupCommitter(journal, "escalations")

    async def many() -> None:
        await asyncio.gather(*(committer.commit(_row(i)) for i in range(400)))

    try:
        asyncio.run(many())
    finally:
        committer.close()
    assert _count(tmp_path / "journal.sqlite") == 400
    assert sum(journal.groups) == 400
    # 400 rows queued at once: far fewer transactions than rows, none above the cap.
    assert len(journal.groups) < 400 / 4
    assert max(journal.groups) <= committer.max_batch


def test_a_refused_group_fails_every_waiter_and_the_next_commit_works(journal: CountingJournal,
                                                                     tmp_path: Path) -> None:
    committer = GroupCommitter(journal, "escalations")
    bad = {**_row(2), "cause": None}  # NOT NULL: the database refuses the whole group

    async def attempt() -> list[BaseException | None]:
        results = await asyncio.gather(committer.commit(_row(1)), committer.commit(bad), return_exceptions=True)
        return list(results)

    try:
        results = asyncio.run(attempt())
        # Either both rows were in one refused group, or the good one committed alone first.
        assert isinstance(results[1], TelemetryUnavailable)
        assert results[0] is None or isinstance(results[0], TelemetryUnavailable)
        before = _count(tmp_path / "journal.sqlite")
        asyncio.run(committer.commit(_row(3)))
        assert _count(tmp_path / "journal.sqlite") == before + 1
    finally:
        committer.close()


def test_close_commits_what_is_queued_then_refuses(journal: CountingJournal, tmp_path: Path) -> None:
    committer = GroupCommitter(journal, "escalations")

    async def queue_then_close() -> None:
        waiting = [asyncio.ensure_future(committer.commit(_row(i))) for i in range(50)]
        await asyncio.sleep(0)  # every commit() has queued its row
        committer.close()
        await asyncio.gather(*waiting)

    asyncio.run(queue_then_close())
    assert _count(tmp_path / "journal.sqlite") == 50
    with pytest.raises(TelemetryUnavailable, match="shutting down"):
        asyncio.run(committer.commit(_row(99)))
