"""The route path's isolation from outcome traffic: the ingest lane and the polling journal."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from tierwise.service.api.lane import IngestLane
from tierwise.service.telemetry.journal import connect
from tierwise.service.telemetry.store import TelemetryStore


def _whoami() -> tuple[str, int]:
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_lane_runs_work_on_its_own_reniced_threads() -> None:
    lane = IngestLane(threads=1, nice=10)
    try:
        name, nice = asyncio.run(lane.run(_whoami))
    finally:
        lane.close()
    assert name.startswith("tierwise-ingest")
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    # the caller's own priority is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == os.getpriority(os.PRIO_PROCESS, 0)


def test_lane_propagates_exceptions() -> None:
    lane = IngestLane(threads=1, nice=0)

    def boom() -> None:
        raise ValueError("no")

    try:
        with pytest.raises(ValueError, match="no"):
            asyncio.run(lane.run(boom))
    finally:
        lane.close()


def test_route_connection_waits_for_a_held_write_lock_then_writes(tmp_path: Path) -> None:
    """A latency-critical connection has no busy handler; Journal polls, so a decision insert
    that meets another writer's lock waits for it instead of failing with 'database is locked'."""
    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    try:
        rj = store.route_journal
        assert rj is not store.journal
        assert rj.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert rj.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
        holder = connect(store.paths.journal)
        holder.execute("BEGIN IMMEDIATE")
        released = threading.Event()

        def release() -> None:
            time.sleep(0.3)
            holder.execute("COMMIT")
            released.set()

        threading.Thread(target=release).start()
        t0 = time.monotonic()
        rj.insert("queue_resolutions", {"item_id": 1, "ts": 1.0, "resolved_by": "t", "note": None})
        waited = time.monotonic() - t0
        assert released.is_set() and waited >= 0.25
        assert store.journal.fetch_one("SELECT count(*) AS n FROM queue_resolutions")["n"] == 1  # type: ignore[index]
        holder.close()
    finally:
        store.close()


def test_checkpoint_folds_route_only_writes_back(tmp_path: Path) -> None:
    """The route connection never checkpoints; the store's checkpoint must, or the WAL grows forever."""
    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    try:
        for i in range(300):
            store.route_journal.insert("queue_resolutions", {"item_id": i, "ts": 1.0, "resolved_by": "t" * 200,
                                                             "note": None})
        busy, wal_pages, done = store.checkpoint()
        assert busy == 0 and wal_pages > 0 and done == wal_pages
    finally:
        store.close()
