"""Bounded disk: exported rows the service no longer needs leave the journal; nothing else does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.errors import ConfigError
from tierwise.service.settings import load_settings
from tierwise.service.telemetry.disk import measure
from tierwise.service.telemetry.store import Retention, TelemetryStore
from tierwise.service.telemetry.warehouse import in_memory

DAY = 86_400.0
NOW = time.time()


def _decision(name: str, age_days: float) -> dict[str, Any]:
    return {"decision_id": name, "ts": NOW - age_days * DAY, "policy_version": "1", "harness": "ci",
            "profile": "mechanical", "profile_scores": "{}", "tier": "small", "tier_rank": 0, "ladder_size": 3,
            "model": "m", "explored": 0, "propensity": 1.0, "prompt_preview": "x" * 200}


def _attempt(name: str, age_days: float, next_action: str) -> dict[str, Any]:
    return {"decision_id": name, "attempt": 0, "ts": NOW - age_days * DAY, "tier": "small", "resolved": 0,
            "claimed_resolved": 0, "cost_usd": 0.01, "next_action": next_action, "request_hash": "h",
            "response": "{}"}


def _queue(name: str, age_days: float) -> dict[str, Any]:
    return {"decision_id": name, "ts": NOW - age_days * DAY, "kind": "human", "profile": "mechanical",
            "tiers_tried": "[]", "failure_kinds": "[]", "policy_version": "1"}


def _ids(store: TelemetryStore) -> set[str]:
    return {r["decision_id"] for r in store.journal.fetch_all("SELECT decision_id FROM decisions")}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = TelemetryStore.open(tmp_path / "telemetry")
    s.retention = Retention(days=7, outcome_window_days=30)
    yield s
    s.close()


def test_retention_keeps_what_the_service_needs(store: TelemetryStore) -> None:
    j = store.journal
    j.insert_many("decisions", [_decision("closed-old", 9), _decision("open-old", 10), _decision("escalated-old", 10),
                                _decision("human-open", 12), _decision("human-done", 12),
                                _decision("abandoned", 40), _decision("closed-new", 1)])
    j.insert_many("attempts", [_attempt("closed-old", 9, "done"), _attempt("escalated-old", 10, "escalate"),
                               _attempt("human-open", 12, "human"), _attempt("human-done", 12, "human"),
                               _attempt("closed-new", 1, "done")])
    j.insert("queue", _queue("human-done", 12))
    j.insert("queue", _queue("human-open", 12))
    done_item = j.fetch_one("SELECT item_id FROM queue WHERE decision_id = 'human-done'")["item_id"]  # type: ignore[index]
    j.insert("queue_resolutions", {"item_id": done_item, "ts": NOW - 11 * DAY, "resolved_by": "me"})
    j.insert("queue_resolutions", {"item_id": 999, "ts": NOW - 11 * DAY, "resolved_by": "x"})  # newest row stays
    store.export_now()
    j.insert_many("decisions", [_decision("closed-unexported", 20), _decision("latest", 0)])
    j.insert("attempts", _attempt("closed-unexported", 20, "done"))

    deleted = store.prune()
    # prune exports first, so "closed-unexported" left too, once it was safe in a segment.
    assert _ids(store) == {"open-old", "escalated-old", "human-open", "closed-new", "latest"}
    assert deleted["decisions"] == 4
    # What the online path reads for the kept episodes is all still there.
    assert [a["next_action"] for a in j.attempts("escalated-old")] == ["escalate"]
    assert [q["decision_id"] for q in j.open_queue()] == ["human-open"]
    assert j.fetch_one("SELECT count(*) AS n FROM queue WHERE decision_id = 'human-done'") == {"n": 0}
    assert j.fetch_one("SELECT count(*) AS n FROM attempts WHERE decision_id = 'closed-old'") == {"n": 0}
    # History is untouched: every decision is still in the segments, once.
    wh = in_memory(store.paths.segments)
    try:
        assert wh.con.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").fetchone() == (9, 9)
    finally:
        wh.close()
    # The WAL went back to zero bytes.
    assert not store.paths.journal.with_name("journal.sqlite-wal").exists() or \
        store.paths.journal.with_name("journal.sqlite-wal").stat().st_size == 0


def test_rows_written_after_pruning_everything_are_still_exported(store: TelemetryStore) -> None:
    j = store.journal
    j.insert_many("decisions", [_decision(f"old-{i}", 40) for i in range(5)])
    store.prune()
    assert _ids(store) == {"old-4"}  # the newest row stays: it keeps rowids above the watermark
    j.insert("decisions", _decision("new", 0))
    assert store.export_now()["decisions"] == 1


def test_pruning_shrinks_the_journal_file(store: TelemetryStore) -> None:
    j = store.journal
    j.insert_many("decisions", [_decision(f"d{i:05d}", 40) for i in range(5000)])
    store.export_now()
    store.checkpoint()
    before = measure(store.paths.journal, store.paths.segments).journal_bytes
    store.prune()
    after = measure(store.paths.journal, store.paths.segments).journal_bytes
    assert after < before / 4, (before, after)


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_JOURNAL_RETENTION_DAYS", "3")
    assert load_settings().journal_retention_days == 3
    monkeypatch.setenv("TIERWISE_JOURNAL_RETENTION_DAYS", "-1")
    with pytest.raises(ConfigError, match="TIERWISE_JOURNAL_RETENTION_DAYS"):
        load_settings()
