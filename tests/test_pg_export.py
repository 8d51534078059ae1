"""Exactly-once export from the PostgreSQL journal (``pg_export.py``), on a real cluster.

Rows are committed by many writers while several exporters race, and an exporter dies between
writing its segments and committing its watermark: every committed row must reach the Parquet
segments exactly once, and DuckDB must read them.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.telemetry.pg_export import PgSegmentExporter
from tierwise.service.telemetry.pg_journal import PgJournal, make_pool
from tierwise.service.telemetry.warehouse import in_memory


def _escalation(i: int) -> dict[str, Any]:
    return {"decision_id": uuid.uuid4().hex, "from_attempt": 0, "from_tier": "small", "to_tier": "medium",
            "cause": f"c{i}", "ts": time.time()}


@pytest.fixture
def journal(pg_url: str) -> Any:
    pool = make_pool(pg_url, max_size=12)
    j = PgJournal(pool)
    j.migrate()
    yield j
    pool.close()


def _exported_causes(root: Path) -> list[str]:
    wh = in_memory(root)
    try:
        return list(wh.df("SELECT cause FROM escalations")["cause"])
    finally:
        wh.close()


def test_racing_writers_and_exporters_export_each_row_once(journal: PgJournal, tmp_path: Path) -> None:
    root = tmp_path / "segments"
    PgSegmentExporter(journal.pool, root).ensure_layout()
    stop = threading.Event()
    written: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def write(w: int) -> None:
        i = 0
        while not stop.is_set():
            rows = [_escalation(w * 1_000_000 + i + k) for k in range(1 + i % 3)]
            journal.insert_many("escalations", rows)  # committed before it returns
            with lock:
                written.extend(r["cause"] for r in rows)
            i += len(rows)

    def export() -> None:
        exporter = PgSegmentExporter(journal.pool, root)
        try:
            while not stop.is_set():
                exporter.export_once(wait=False)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=export) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[0]
    PgSegmentExporter(journal.pool, root).export_once(wait=True)  # a reader's final catch-up
    exported = _exported_causes(root)
    assert len(written) > 200
    assert len(exported) == len(set(exported)), "a row was exported twice"
    assert sorted(exported) == sorted(written), "a committed row never reached the segments"


class _DiesBeforeCommit(PgSegmentExporter):
    """Writes its segments, then dies before the watermark commits (as ``kill -9`` there would)."""

    def _export_table(self, conn: Any, table: str, wm: int, xmin: int) -> int:
        n = super()._export_table(conn, table, wm, xmin)
        if n:
            raise SystemExit("killed after writing segments")
        return n


def test_an_exporter_that_dies_mid_export_leaves_nothing_twice(journal: PgJournal, tmp_path: Path) -> None:
    root = tmp_path / "segments"
    PgSegmentExporter(journal.pool, root).ensure_layout()
    journal.insert_many("escalations", [_escalation(i) for i in range(10)])
    first = PgSegmentExporter(journal.pool, root).export_once()
    assert first["escalations"] == 10
    journal.insert_many("escalations", [_escalation(i) for i in range(10, 25)])
    with pytest.raises(SystemExit):
        _DiesBeforeCommit(journal.pool, root).export_once()
    # Its segment is on disk, but its watermark never committed: a reader right now may see it.
    assert len(_exported_causes(root)) == 25
    assert journal.fetch_one("SELECT xid FROM export_watermarks WHERE tbl = 'escalations'") is not None
    again = PgSegmentExporter(journal.pool, root).export_once()
    assert again["escalations"] == 15
    causes = _exported_causes(root)
    assert sorted(causes) == sorted(f"c{i}" for i in range(25))
    assert not list((root / "escalations").glob("*.tmp"))


def test_one_exporter_at_a_time(journal: PgJournal, tmp_path: Path) -> None:
    """While one host holds the export lock, another host's background export does nothing."""
    from tierwise.service.telemetry.pg_migrations import EXPORT_LOCK

    root = tmp_path / "segments"
    PgSegmentExporter(journal.pool, root).ensure_layout()
    journal.insert_many("escalations", [_escalation(i) for i in range(3)])
    with journal.pool.connection() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (EXPORT_LOCK,))
        try:
            assert PgSegmentExporter(journal.pool, root).export_once(wait=False) == {}
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (EXPORT_LOCK,))
    assert PgSegmentExporter(journal.pool, root).export_once(wait=False)["escalations"] == 3
