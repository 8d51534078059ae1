"""KPI views over a hand-built telemetry fixture whose every value is computed by hand below.

Ladder: small (rank 0), medium (1), frontier (2); ladder_size 3. Days are UTC.

policy v1
  D1 day1 small     a0 small ok        $0.01  100ms                     → resolved, 1 attempt, ttr 100
  D2 day1 small     a0 small tests_failed $0.01 200ms; a1 medium ok $0.10 300ms → resolved, esc, ttr 500, FP
  D3 day1 medium    a0 medium overridden→frontier $0.20 400ms; a1 frontier ok $0.50 600ms
                                                                         → resolved, esc, override, ttr 1000, FP
  D4 day2 small     a0 small timeout $0.01 1000ms; a1 medium schema_invalid $0.10 500ms;
                    a2 frontier error $0.50 700ms → human queue          → unresolved, esc, FP
  D5 day2 frontier  a0 frontier ok $0.40 800ms                          → resolved (top tier: not in FP)
  D6 day2 small     no outcome yet; explored (p=0.025)
policy v2
  D7 day2 frontier  a0 frontier refused $0.30 50ms → script queue       → unresolved (not human queue)
  D8 day2 small     a0 small ok $0.02 40ms                               → resolved, ttr 40

kpi_by_version
  v1: decisions 6, episodes 5 (D1–D5); resolved 4 → resolution 0.8
      total cost .01+.11+.70+.61+.40+0 = 1.83 → cost/resolved 1.83/4 = 0.4575, cost/task 1.83/5 = 0.366
      escalated D2 D3 D4 → 0.6; overridden D3 → 0.2
      FP over non-top first tiers with outcome (D1 D2 D3 D4): D2 failed, D3 overridden, D4 failed → 0.75
      mean attempts (1+2+2+3+1)/5 = 1.8
      ttr of resolved [100, 500, 800, 1000]: p50 = 650; p95 at 0.95·3 = 2.85 → 800 + .85·200 = 970
      human queue D4 → 0.2; exploration D6 → 1/6
      failures: tests_failed 1, schema_invalid 1, timeout 1, refused 0, error 1
  v2: decisions 2, episodes 2; resolved 1 → 0.5; cost .32 → cost/resolved 0.32, cost/task 0.16
      escalation 0, override 0; FP over D8 only → 0.0; mean attempts 1; ttr [40] → p50 = p95 = 40
      human queue 0 (D7 went to a script); exploration 0; failures: refused 1, the rest 0
kpi_by_day
  day1 (D1 D2 D3): decisions 3, episodes 3, resolution 1.0, cost .82 → cost/resolved .82/3, cost/task .82/3
      escalation 2/3, override 1/3, FP (D1 D2 D3) 2/3, mean attempts 5/3
      ttr [100, 500, 1000]: p50 500; p95 at 0.95·2 = 1.9 → 500 + .9·500 = 950
      human queue 0, exploration 0; failures: tests_failed 1
  day2 (D4–D8): decisions 5, episodes 4 (D4 D5 D7 D8); resolved D5 D8 → 0.5
      cost .61+.40+0+.30+.02 = 1.33 → cost/resolved 0.665, cost/task 0.3325
      escalation D4 → 0.25; override 0; FP over D4 D8 → 0.5; mean attempts (3+1+1+1)/4 = 1.5
      ttr [40, 800]: p50 420; p95 = 40 + .95·760 = 762
      human queue D4 → 0.25; exploration 1/5 = 0.2
      failures: timeout 1, schema_invalid 1, error 1, refused 1, tests_failed 0
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.cli import main
from tierwise.service.telemetry.store import TelemetryStore, open_warehouse

DAY1 = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)
RANK = {"small": 0, "medium": 1, "frontier": 2}


def ts(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).timestamp()


# (id, version, decision ts, first tier, explored, attempts[(tier, resolved, failure, override, cost, latency)],
#  queue kind or None)
EPISODES: list[tuple[str, str, float, str, bool, list[tuple[str, bool, str | None, str | None, float, float]],
                     str | None]] = [
    ("D1", "v1", ts(DAY1, 9), "small", False, [("small", True, None, None, 0.01, 100)], None),
    ("D2", "v1", ts(DAY1, 10), "small", False, [("small", False, "tests_failed", None, 0.01, 200),
                                                 ("medium", True, None, None, 0.10, 300)], None),
    # 23:59 UTC: still day1 in UTC, already day2 east of Greenwich.
    ("D3", "v1", ts(DAY1, 23, 59), "medium", False, [("medium", False, None, "frontier", 0.20, 400),
                                                      ("frontier", True, None, None, 0.50, 600)], None),
    ("D4", "v1", ts(DAY2, 1), "small", False, [("small", False, "timeout", None, 0.01, 1000),
                                                ("medium", False, "schema_invalid", None, 0.10, 500),
                                                ("frontier", False, "error", None, 0.50, 700)], "human"),
    ("D5", "v1", ts(DAY2, 2), "frontier", False, [("frontier", True, None, None, 0.40, 800)], None),
    ("D6", "v1", ts(DAY2, 3), "small", True, [], None),
    ("D7", "v2", ts(DAY2, 4), "frontier", False, [("frontier", False, "refused", None, 0.30, 50)], "script"),
    ("D8", "v2", ts(DAY2, 5), "small", False, [("small", True, None, None, 0.02, 40)], None),
]

EXPECTED_BY_VERSION: dict[str, dict[str, float]] = {
    "v1": {"decisions": 6, "episodes": 5, "resolution_rate": 0.8, "cost_per_resolved": 0.4575,
           "cost_per_task": 0.366, "escalation_rate": 0.6, "override_rate": 0.2, "false_positive_rate": 0.75,
           "mean_attempts": 1.8, "ttr_p50_ms": 650, "ttr_p95_ms": 970, "human_queue_rate": 0.2,
           "exploration_rate": 1 / 6, "failures_tests_failed": 1, "failures_schema_invalid": 1,
           "failures_timeout": 1, "failures_refused": 0, "failures_error": 1},
    "v2": {"decisions": 2, "episodes": 2, "resolution_rate": 0.5, "cost_per_resolved": 0.32,
           "cost_per_task": 0.16, "escalation_rate": 0.0, "override_rate": 0.0, "false_positive_rate": 0.0,
           "mean_attempts": 1.0, "ttr_p50_ms": 40, "ttr_p95_ms": 40, "human_queue_rate": 0.0,
           "exploration_rate": 0.0, "failures_tests_failed": 0, "failures_schema_invalid": 0,
           "failures_timeout": 0, "failures_refused": 1, "failures_error": 0},
}

EXPECTED_BY_DAY: dict[date, dict[str, float]] = {
    DAY1: {"decisions": 3, "episodes": 3, "resolution_rate": 1.0, "cost_per_resolved": 0.82 / 3,
           "cost_per_task": 0.82 / 3, "escalation_rate": 2 / 3, "override_rate": 1 / 3,
           "false_positive_rate": 2 / 3, "mean_attempts": 5 / 3, "ttr_p50_ms": 500, "ttr_p95_ms": 950,
           "human_queue_rate": 0.0, "exploration_rate": 0.0, "failures_tests_failed": 1,
           "failures_schema_invalid": 0, "failures_timeout": 0, "failures_refused": 0, "failures_error": 0},
    DAY2: {"decisions": 5, "episodes": 4, "resolution_rate": 0.5, "cost_per_resolved": 0.665,
           "cost_per_task": 0.3325, "escalation_rate": 0.25, "override_rate": 0.0, "false_positive_rate": 0.5,
           "mean_attempts": 1.5, "ttr_p50_ms": 420, "ttr_p95_ms": 762, "human_queue_rate": 0.25,
           "exploration_rate": 0.2, "failures_tests_failed": 0, "failures_schema_invalid": 1,
           "failures_timeout": 1, "failures_refused": 1, "failures_error": 1},
}


def build_fixture(home: Path) -> None:
    store = TelemetryStore.open(home / "telemetry")
    j = store.journal
    for did, version, t, tier, explored, attempts, queue in EPISODES:
        j.insert("decisions", {
            "decision_id": did, "ts": t, "policy_version": version, "harness": "ci", "task_id": f"task-{did}",
            "prompt_preview": f"prompt {did}", "profile": "local", "profile_scores": json.dumps({"local": 1.0}),
            "complexity": 0.5, "tier": tier, "tier_rank": RANK[tier], "ladder_size": 3, "greedy_tier": tier,
            "model": f"model-{tier}", "temperature": 0.2, "explored": int(explored),
            "propensity": 0.025 if explored else 0.95, "escalation_chain": "[]"})
        for n, (a_tier, ok, failure, override, cost, latency) in enumerate(attempts):
            last = n == len(attempts) - 1
            nxt = "done" if ok else (queue or "escalate") if last else "escalate"
            j.insert("attempts", {
                "decision_id": did, "attempt": n, "ts": t + 60 * (n + 1), "tier": a_tier, "model": f"model-{a_tier}",
                "resolved": int(ok), "claimed_resolved": int(ok), "cost_usd": cost, "input_tokens": 1000,
                "output_tokens": 100, "latency_ms": latency, "failure": failure, "overridden_to": override,
                "schema_valid": None, "next_action": nxt, "next_tier": None, "request_hash": f"{did}-{n}",
                "response": "{}"})
        if queue is not None:
            tried = [a[0] for a in attempts]
            j.insert("queue", {
                "decision_id": did, "ts": t + 600, "kind": queue, "script": "fix.sh" if queue == "script" else None,
                "profile": "local", "tiers_tried": json.dumps(tried),
                "failure_kinds": json.dumps([a[2] for a in attempts if a[2]]), "policy_version": version,
                "task_id": f"task-{did}", "prompt_preview": f"prompt {did}"})
    store.close()  # exports everything committed to Parquet


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    build_fixture(h)
    return h


def _check(row: dict[str, Any], expected: dict[str, float]) -> None:
    for column, value in expected.items():
        assert row[column] == pytest.approx(value, abs=1e-9), column


def test_kpi_by_version_matches_hand_computed_values(home: Path) -> None:
    wh = open_warehouse(home)
    try:
        df = wh.kpis(by="version")
        assert list(df["policy_version"]) == ["v1", "v2"]
        for row in df.to_dict("records"):
            _check(row, EXPECTED_BY_VERSION[row["policy_version"]])
        # the view and the method agree
        view = wh.df("SELECT * FROM kpi_by_version ORDER BY policy_version")
        assert view.to_dict("records") == df.to_dict("records")
    finally:
        wh.close()


def test_kpi_by_day_matches_hand_computed_values(home: Path) -> None:
    wh = open_warehouse(home)
    try:
        df = wh.kpis(by="day")
        days = [d.date() if hasattr(d, "date") else d for d in df["day"]]
        assert days == [DAY1, DAY2]
        for day, row in zip(days, df.to_dict("records"), strict=True):
            _check(row, EXPECTED_BY_DAY[day])
    finally:
        wh.close()


def test_days_are_utc_whatever_the_session_time_zone(home: Path) -> None:
    wh = open_warehouse(home)
    try:
        wh.con.execute("SET TimeZone = 'Pacific/Auckland'")
        df = wh.df("SELECT decision_id, day FROM episodes WHERE decision_id = 'D3'")
        assert df["day"][0].date() == DAY1
    finally:
        wh.close()


def test_kpis_since_reaggregate_over_the_window(home: Path) -> None:
    wh = open_warehouse(home)
    try:
        df = wh.kpis(by="version", since=DAY2)
        rows = {r["policy_version"]: r for r in df.to_dict("records")}
        # v1 on day2: D4 D5 D6 → decisions 3, episodes 2, resolved D5 → 0.5, cost 1.01 / 1
        _check(rows["v1"], {"decisions": 3, "episodes": 2, "resolution_rate": 0.5, "cost_per_resolved": 1.01,
                            "human_queue_rate": 0.5, "failures_timeout": 1, "failures_tests_failed": 0})
        _check(rows["v2"], EXPECTED_BY_VERSION["v2"])
    finally:
        wh.close()


def test_episodes_view(home: Path) -> None:
    wh = open_warehouse(home)
    try:
        ep = wh.df("SELECT * FROM episodes ORDER BY decision_id").set_index("decision_id")
        assert list(ep.index) == [f"D{i}" for i in range(1, 9)]
        assert ep.loc["D4", "n_attempts"] == 3 and bool(ep.loc["D4", "queued"])
        assert bool(ep.loc["D4", "human_queued"]) and not bool(ep.loc["D7", "human_queued"])
        assert bool(ep.loc["D7", "queued"])
        assert ep.loc["D4", "last_failure"] == "error"
        assert ep.loc["D3", "ttr_ms"] == 1000
        assert not bool(ep.loc["D6", "has_outcome"]) and ep.loc["D6", "cost_usd"] == 0.0
    finally:
        wh.close()


def test_empty_telemetry_gives_no_rows(tmp_path: Path) -> None:
    TelemetryStore.open(tmp_path / "telemetry").close()
    wh = open_warehouse(tmp_path)
    try:
        assert wh.kpis().empty
    finally:
        wh.close()


def test_tierwise_stats_prints_the_kpis(home: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(home))
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["policy_version"] == ["v1", "v2"]
    assert lines["cost_per_resolved"] == ["0.4575", "0.3200"]
    assert lines["resolution_rate"] == ["0.8000", "0.5000"]
    assert lines["false_positive_rate"] == ["0.7500", "0.0000"]
    assert lines["ttr_p95_ms"] == ["970.0000", "40.0000"]
    assert lines["human_queue_rate"] == ["0.2000", "0.0000"]
    assert main(["stats", "--by", "day"]) == 0
    out = capsys.readouterr().out
    assert "2026-11-20" in out and "2026-11-21" in out
    assert "0.6650" in out  # day2 cost per resolved
    assert main(["stats", "--since", "2026-11-21"]) == 0
    assert "1.0100" in capsys.readouterr().out  # v1 cost per resolved over day2 only


def test_tierwise_stats_on_an_empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    TelemetryStore.open(tmp_path / "telemetry").close()
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path))
    assert main(["stats"]) == 0
    assert "no decisions recorded yet" in capsys.readouterr().out


def test_on_disk_catalog_built_before_migration_2_is_upgraded(home: Path) -> None:
    """A catalog migrated by an older release (views v1 only) gets the v2 views on the next start."""
    import duckdb

    from tierwise.service.telemetry.warehouse import build_catalog, migrations

    catalog = home / "telemetry" / "tierwise.duckdb"
    segments = home / "telemetry" / "segments"
    catalog.unlink()
    con = duckdb.connect(str(catalog))
    con.execute("CREATE TABLE tierwise_schema (version INTEGER NOT NULL)")
    for sql in migrations(segments)[0]:
        con.execute(sql)
    con.execute("INSERT INTO tierwise_schema VALUES (1)")
    old = con.execute("SELECT human_queue_rate FROM kpi_by_version WHERE policy_version = 'v2'").fetchone()
    con.close()
    assert old == (0.5,)  # the v1 view counted D7's script take-over as human work
    build_catalog(catalog, segments)
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        versions = [r[0] for r in con.execute("SELECT version FROM tierwise_schema ORDER BY 1").fetchall()]
        assert versions == list(range(1, len(migrations(segments)) + 1))
        row = con.execute("SELECT human_queue_rate FROM kpi_by_version WHERE policy_version = 'v2'").fetchone()
        assert row == (0.0,)
    finally:
        con.close()
