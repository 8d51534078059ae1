"""tierwise.tuner.analysis on a hand-built telemetry fixture whose misroutes, costs and rates are known.

The fixture is written through the service's own journal and read back through ``open_warehouse``, so
the tests also pin the column names and view definitions the notebook relies on.

Fixture (ladder small → medium → frontier, harness ci, policy "1" on 2026-01-01, "2" on 2026-01-02):
- mechanical: 20 decisions on small and 12 on medium, all resolved first time (a cheaper tier does as
  well: the 12 on medium are over-routed);
- local: 10 on small; 6 resolve, 2 fail and escalate to medium (resolved), 1 is overridden to medium
  (resolved), 1 fails on all three tiers and lands in the human queue: 4 under-routed;
- local: 1 explored decision on frontier (evidence, not a misroute) and 1 with no outcome yet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import tierwise.tuner.analysis as an
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.store import open_warehouse
from tierwise.tuner import notebook_report

LADDER = ("small", "medium", "frontier")
DAY1 = datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 1, 2, 12, tzinfo=UTC).timestamp()
COST = {"small": 0.01, "medium": 0.10, "frontier": 0.30}
PRIORS = {
    "mechanical": {"small": 0.93, "medium": 0.97, "frontier": 0.98},
    "local": {"small": 0.70, "medium": 0.85, "frontier": 0.90},
}


@dataclass
class Builder:
    decisions: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    n: int = 0

    def decision(self, profile: str, tier: str, ts: float, version: str, *, explored: bool = False,
                 propensity: float = 0.95) -> str:
        self.n += 1
        did = f"d{self.n:03d}"
        pscores = {p: (0.97 if p == profile else 0.01) for p in ("mechanical", "local", "repository", "agentic")}
        tscores = {t: PRIORS[profile][t] for t in LADDER}
        self.decisions.append({
            "decision_id": did, "ts": ts + self.n, "policy_version": version, "harness": "ci",
            "task_id": f"task-{self.n:03d}", "prompt_preview": f"{profile} task number {self.n}",
            "prompt_chars": 100 + self.n, "prompt_tokens": 25 + self.n % 7, "n_files": 1 + self.n % 3,
            "tools": json.dumps(["read_file"]), "expected_output": "patch", "diff_lines": self.n % 11,
            "repo_files": 100, "modules_touched": 1 + self.n % 2, "languages": json.dumps(["python"]),
            "features": json.dumps({"log_prompt_tokens": 3.3, "log_files": 0.7, "log_diff_lines": 1.0,
                                   "log_modules_touched": 0.7, "n_tools": 1.0}), "profile": profile,
            "profile_scores": json.dumps(pscores), "complexity": 0.2 if profile == "mechanical" else 0.5,
            "tier_scores": json.dumps(tscores), "eligible": json.dumps(list(LADDER)), "tier": tier,
            "tier_rank": LADDER.index(tier), "ladder_size": 3, "greedy_tier": tier, "model": f"model-{tier}",
            "temperature": 0.1, "explored": int(explored), "propensity": propensity,
            "escalation_chain": json.dumps(list(LADDER[LADDER.index(tier) + 1:])),
            "reasons": json.dumps([f"profile {profile}", f"{tier}: success clears threshold"]),
            "latency_ms": 1.0, "shadow_version": None, "shadow_tier": None,
        })
        return did

    def attempt(self, did: str, no: int, tier: str, resolved: bool, *, failure: str | None = None,
                overridden_to: str | None = None, next_action: str = "done", next_tier: str | None = None) -> None:
        ts = next(d["ts"] for d in self.decisions if d["decision_id"] == did) + 0.1 * (no + 1)
        self.attempts.append({
            "decision_id": did, "attempt": no, "ts": ts, "tier": tier, "model": f"model-{tier}",
            "resolved": int(resolved), "claimed_resolved": int(resolved), "cost_usd": COST[tier],
            "input_tokens": 1000, "output_tokens": 100, "latency_ms": 500.0,
            "failure": None if resolved else (failure or ("error" if overridden_to is None else None)),
            "overridden_to": overridden_to, "schema_valid": None, "next_action": next_action,
            "next_tier": next_tier, "request_hash": f"{did}-{no}", "response": "{}",
        })
        if next_action == "escalate":
            self.escalations.append({"decision_id": did, "from_attempt": no, "from_tier": tier,
                                     "to_tier": str(next_tier), "cause": failure or "override", "ts": ts})


def build_fixture(home: Path) -> Builder:
    b = Builder([], [], [], [])
    for i in range(20):
        ts, version = (DAY1, "1") if i < 10 else (DAY2, "2")
        b.attempt(b.decision("mechanical", "small", ts, version), 0, "small", True)
    for i in range(12):
        ts, version = (DAY1, "1") if i < 6 else (DAY2, "2")
        b.attempt(b.decision("mechanical", "medium", ts, version), 0, "medium", True)
    for i in range(6):
        ts, version = (DAY1, "1") if i < 3 else (DAY2, "2")
        b.attempt(b.decision("local", "small", ts, version), 0, "small", True)
    for _ in range(2):
        did = b.decision("local", "small", DAY1, "1")
        b.attempt(did, 0, "small", False, failure="tests_failed", next_action="escalate", next_tier="medium")
        b.attempt(did, 1, "medium", True)
    did = b.decision("local", "small", DAY2, "2")
    b.attempt(did, 0, "small", False, overridden_to="medium", next_action="escalate", next_tier="medium")
    b.attempt(did, 1, "medium", True)
    queued = b.decision("local", "small", DAY2, "2")
    b.attempt(queued, 0, "small", False, failure="tests_failed", next_action="escalate", next_tier="medium")
    b.attempt(queued, 1, "medium", False, failure="timeout", next_action="escalate", next_tier="frontier")
    b.attempt(queued, 2, "frontier", False, failure="error", next_action="human")
    b.queue.append({"decision_id": queued, "ts": DAY2 + 500, "kind": "human", "script": None, "profile": "local",
                    "tiers_tried": json.dumps(list(LADDER)),
                    "failure_kinds": json.dumps(["tests_failed", "timeout", "error"]), "policy_version": "2",
                    "task_id": "task-q", "prompt_preview": "queued"})
    b.attempt(b.decision("local", "frontier", DAY2, "2", explored=True, propensity=0.025), 0, "frontier", True)
    b.decision("local", "medium", DAY2, "2")  # no outcome reported yet
    journal = Journal(connect(home / "telemetry" / "journal.sqlite"))
    journal.migrate()
    for table, rows in (("decisions", b.decisions), ("attempts", b.attempts), ("escalations", b.escalations),
                        ("queue", b.queue)):
        if rows:
            journal.insert_many(table, rows)
    journal.close()
    return b


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    build_fixture(h)
    return h


@pytest.fixture(scope="module")
def tel(home: Path) -> an.Telemetry:
    wh = open_warehouse(home)
    try:
        return an.load_telemetry(wh)
    finally:
        wh.close()


@pytest.fixture(scope="module")
def labels(tel: an.Telemetry) -> pd.DataFrame:
    return an.label_misroutes(tel)


class FakeRegistry:
    def __init__(self, champion: str | None, history: list[str], challenger: str | None = None) -> None:
        self._aliases = {"champion": champion, "challenger": challenger}
        self._history = history
        self._policy = parse_policy(default_policy_file().read_text())

    def versions(self) -> list[Any]:
        created = {"1": DAY1 - 3600, "2": DAY2 - 3600, "3": DAY2 + 3600}
        return [SimpleNamespace(version=v, creation_timestamp=t * 1000) for v, t in created.items()]

    def alias(self, alias: str) -> str | None:
        return self._aliases.get(alias)

    def history(self) -> list[str]:
        return list(self._history)

    def load(self, version: str) -> RoutingPolicy:
        return parse_policy(self._policy.canonical_json(), version=version)


# --- loading -------------------------------------------------------------------------------------

def test_load_telemetry_whole_and_windowed(home: Path, tel: an.Telemetry) -> None:
    assert len(tel.decisions) == 44
    assert len(tel.episodes) == 44
    assert len(tel.queue) == 1 and tel.queue["resolved_by"].isna().all()
    assert "44 decisions (43 with outcomes)" in tel.describe()
    wh = open_warehouse(home)
    try:
        day1 = an.load_telemetry(wh, "2026-01-01", "2026-01-01")
        day2 = an.load_telemetry(wh, start="2026-01-02")
        kpi = an.kpi_table(wh, day1)
    finally:
        wh.close()
    assert set(day1.decisions["policy_version"]) == {"1"}
    assert len(day1.decisions) == 21 and len(day2.decisions) == 23
    assert set(day1.attempts["decision_id"]) <= set(day1.decisions["decision_id"])
    assert day1.queue.empty and len(day2.queue) == 1
    assert kpi["policy_version"].tolist() == ["1"] and int(kpi["decisions"].iloc[0]) == len(day1.decisions)


def test_window_bounds() -> None:
    lo, hi = an.window_bounds("2026-01-01", "2026-01-01")
    assert hi - lo == 86400 and lo == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    lo, hi = an.window_bounds(None, None)
    assert lo < 0 < 1e12 < hi
    with pytest.raises(ValueError, match="before START_DATE"):
        an.window_bounds("2026-01-02", "2026-01-01")


def test_resolve_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "h" / "telemetry").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert an.resolve_home("h") == (tmp_path / "h").resolve()
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "elsewhere"))
    assert an.resolve_home(None) == tmp_path / "elsewhere"
    monkeypatch.delenv("TIERWISE_HOME")
    assert an.resolve_home(None) == (an.REPO_ROOT / "var").resolve()


# --- promotions and KPIs -------------------------------------------------------------------------

def test_promotions_from_registry_use_first_served_time(tel: an.Telemetry) -> None:
    promos = an.promotions(FakeRegistry("2", ["1"]), tel.decisions)
    assert promos["version"].tolist() == ["1", "2"]
    assert (promos["source"] == "registry").all()
    first2 = tel.decisions.loc[tel.decisions["policy_version"] == "2", "ts"].min()
    assert promos["promoted_at"].iloc[1] == an.to_utc(first2)
    # a champion that never served falls back to its registration time
    promos3 = an.promotions(FakeRegistry("3", ["1", "2"]), tel.decisions)
    assert promos3["version"].tolist() == ["1", "2", "3"]
    assert promos3["promoted_at"].iloc[2] == promos3["registered_at"].iloc[2]


def test_promotions_without_registry_come_from_first_decisions(tel: an.Telemetry) -> None:
    promos = an.promotions(None, tel.decisions)
    assert promos["version"].tolist() == ["1", "2"]
    assert promos["source"].str.startswith("telemetry").all()
    # versions that served but are missing from the registry's sequence (a rollback) are added
    promos = an.promotions(FakeRegistry("1", []), tel.decisions)
    assert promos["version"].tolist() == ["1", "2"]
    assert promos["source"].tolist() == ["registry", "telemetry (first decision)"]


def test_kpis_over_time_match_hand_counts(tel: an.Telemetry) -> None:
    k = an.kpis_over_time(tel.episodes, freq="1D")
    assert k["policy_version"].tolist() == ["1", "2"]
    day1 = k.iloc[0]
    # day 1: 10 + 6 mechanical, 3 + 2 local; all resolved; 2 escalated, no override
    assert day1["episodes"] == 21 and day1["resolution_rate"] == 1.0
    assert day1["escalation_rate"] == pytest.approx(2 / 21) and day1["override_rate"] == 0.0
    cost1 = 10 * 0.01 + 6 * 0.10 + 3 * 0.01 + 2 * (0.01 + 0.10)
    assert day1["cost_per_resolved"] == pytest.approx(cost1 / 21)
    day2 = k.iloc[1]  # 22 with outcomes: 1 queued (unresolved), 1 overridden
    assert day2["episodes"] == 22 and day2["resolution_rate"] == pytest.approx(21 / 22)
    assert day2["override_rate"] == pytest.approx(1 / 22)


def test_pick_freq() -> None:
    assert an.pick_freq(pd.Series([0.0, 20.0])) == "1s"
    assert an.pick_freq(pd.Series([0.0, 3600.0])) == "5min"
    assert an.pick_freq(pd.Series([0.0, 20 * 86400.0])) == "1D"
    assert an.pick_freq(pd.Series([], dtype=float)) == "1D"


# --- misroutes -----------------------------------------------------------------------------------

def test_episode_outcomes(tel: an.Telemetry, labels: pd.DataFrame) -> None:
    counts = labels["outcome"].value_counts().to_dict()
    assert counts == {"resolved": 20 + 12 + 6 + 1, "escalated→resolved": 2, "overridden": 1, "queued": 1,
                      "pending": 1}
    assert an.episode_outcome({"has_outcome": True, "first_resolved": False, "first_overridden": False,
                               "resolved": False, "queued": False}) == "failed"


def test_tier_evidence_is_propensity_weighted(tel: an.Telemetry) -> None:
    ev = an.tier_evidence(tel.decisions, tel.episodes, tel.attempts).set_index(["profile", "tier"])
    mech_small = ev.loc[("mechanical", "small")]
    assert mech_small["n_first"] == 20 and mech_small["first_success"] == 1.0
    assert mech_small["first_ess"] == pytest.approx(20.0)
    # local/small: 10 first attempts, 6 resolved, equal weights -> 0.6
    assert ev.loc[("local", "small"), "first_success"] == pytest.approx(0.6)
    # the single explored frontier row carries weight 40: ESS 1, so it is never enough on its own
    assert ev.loc[("local", "frontier"), "first_ess"] == pytest.approx(1.0)
    assert ev.loc[("local", "frontier"), "n_explored"] == 1
    # escalation attempts on medium for local: 3 resolved of 4
    assert ev.loc[("local", "medium"), "n_escalated"] == 4
    assert ev.loc[("local", "medium"), "escalated_success"] == pytest.approx(0.75)


def test_label_misroutes(labels: pd.DataFrame) -> None:
    by = labels.set_index("decision_id")
    under = labels[labels["kind"] == "under"]
    assert len(under) == 4 and set(under["profile"]) == {"local"} and set(under["tier"]) == {"small"}
    assert under["excess_cost_usd"].sum() == pytest.approx(4 * COST["small"])
    over = labels[labels["kind"] == "over"]
    assert len(over) == 12 and set(over["tier"]) == {"medium"} and set(over["cheaper_tier"]) == {"small"}
    assert over["excess_cost_usd"].iloc[0] == pytest.approx(COST["medium"] - COST["small"])
    explored = labels[labels["explored"]]
    assert len(explored) == 1 and explored["kind"].iloc[0] == "ok"
    assert "not assessable" in explored["evidence"].iloc[0]
    assert by.loc[labels.loc[labels["outcome"] == "pending", "decision_id"].iloc[0], "kind"] == "ok"


def test_over_routing_needs_a_big_enough_sample(tel: an.Telemetry) -> None:
    strict = an.label_misroutes(tel, min_n=25)
    assert (strict["kind"] == "over").sum() == 0
    assert "too little exploration" in an.misroute_summary(strict)


def test_misroute_matrix_and_summary(labels: pd.DataFrame) -> None:
    m = an.misroute_matrix(labels)
    assert list(m.index) == [("local", "small"), ("local", "medium"), ("mechanical", "small"),
                             ("mechanical", "medium")]  # explored local/frontier left out; ladder order
    row = m.loc[("local", "small")]
    assert (row["resolved"], row["escalated→resolved"], row["overridden"], row["queued"]) == (6, 2, 1, 1)
    assert row["under"] == 4 and row["under_cost_usd"] == pytest.approx(0.04)
    assert m.loc[("mechanical", "medium"), "over"] == 12
    assert m.loc[("local", "medium"), "pending"] == 1
    assert len(an.misroute_matrix(labels, include_explored=True)) == 5
    text = an.misroute_summary(labels)
    assert "under-routed: 4 of 42" in text and "over-routed: 12 of 42" in text


def test_top_misroutes_and_explain(tel: an.Telemetry, labels: pd.DataFrame) -> None:
    top = an.top_misroutes(labels, tel.decisions, n=5)
    assert len(top) == 5
    assert (top["kind"] == "over").all()  # 0.09 excess each beats 0.01 for the under-routed
    assert top["excess_cost_usd"].is_monotonic_decreasing
    assert top["tier_scores"].iloc[0].startswith("frontier 0.98")
    text = an.explain(top.iloc[0].to_dict(), tel.attempts)
    assert "[over-routed]" in text and "reason: profile mechanical" in text and "attempt 0 on medium" in text
    all_bad = an.top_misroutes(labels, tel.decisions, n=100)
    assert len(all_bad) == 16
    queued = all_bad[all_bad["outcome"] == "queued"].iloc[0].to_dict()
    assert "attempt 2 on frontier: failed (error)" in an.explain(queued, tel.attempts)


# --- queue, calibration, drift ---------------------------------------------------------------------

def test_queue_signatures(tel: an.Telemetry) -> None:
    sigs = an.queue_signatures(tel.queue)
    assert sigs.to_dict("records") == [{
        "kind": "human", "profile": "local", "tiers_tried": "small → medium → frontier",
        "failure_kinds": "tests_failed, timeout, error",
        "signature": "small → medium → frontier : tests_failed, timeout, error", "n": 1, "open": 1}]


def test_calibration_table(tel: an.Telemetry) -> None:
    cal = an.calibration_table(tel.decisions, tel.episodes, by_version=False).set_index(["tier", "bin"])
    assert set(cal["policy_version"]) == {"all"}
    # small: 20 mechanical at 0.93 (all resolved), 10 local at 0.70 (6 resolved)
    assert cal.loc[("small", 9), "n"] == 20 and cal.loc[("small", 9), "observed"] == 1.0
    assert cal.loc[("small", 7), "predicted"] == pytest.approx(0.70)
    assert cal.loc[("small", 7), "observed"] == pytest.approx(0.6)
    brier = (20 * 0.07**2 + 6 * 0.30**2 + 4 * 0.70**2) / 30
    assert cal.loc[("small", 9), "brier"] == pytest.approx(brier)
    assert int(cal.loc[("medium", 9), "tier_n"]) == 12  # the pending medium decision is left out


def test_calibration_keeps_versions_apart(tel: an.Telemetry) -> None:
    cal = an.calibration_table(tel.decisions, tel.episodes).set_index(["policy_version", "tier", "bin"])
    # version 1 (day 1): small = 10 mechanical + 3 local resolved + 2 local failed
    assert cal.loc[("1", "small", 9), "n"] == 10 and cal.loc[("1", "small", 7), "n"] == 5
    assert cal.loc[("1", "small", 7), "observed"] == pytest.approx(3 / 5)
    assert int(cal.loc[("1", "small", 9), "tier_n"]) == 15
    # version 2: 10 mechanical + 3 resolved + 2 failed local on small; the explored frontier decision
    assert int(cal.loc[("2", "small", 9), "tier_n"]) == 15 and cal.loc[("2", "frontier", 9), "n"] == 1


def test_split_windows_and_drift(tel: an.Telemetry) -> None:
    frame = an.drift_frame(tel.decisions, tel.episodes)
    assert frame["first_resolved"].isna().sum() == 1
    promos = an.promotions(None, tel.decisions)
    w = an.split_windows(frame, promos)
    assert "v2 became champion" in w.how
    assert set(w.train["policy_version"]) == {"1"} and set(w.recent["policy_version"]) == {"2"}
    report = an.drift(w, min_rows=5)
    assert set(report.features) == {*an.DRIFT_NUMERIC, *an.DRIFT_CATEGORICAL}
    assert report.features["harness"] == 0.0
    assert report.tier_success["small"]["n_train"] == 15.0
    forced = an.split_windows(frame, promos, "2026-01-01T12:00:10")
    assert forced.how.startswith("given split") and len(forced.train) == 9
    halves = an.split_windows(frame, promos.iloc[0:0])
    assert "half" in halves.how and abs(len(halves.train) - len(halves.recent)) <= 1


# --- what-if -------------------------------------------------------------------------------------

def test_shifted_policy_is_labelled_and_clipped() -> None:
    policy = parse_policy(default_policy_file().read_text(), version="7")
    down = an.shifted_policy(policy, -0.05)
    assert "illustrative" in down.version and "illustrative" in down.description
    for harness, row in policy.thresholds.items():
        for profile, t in row.items():
            assert down.thresholds[harness][profile] == pytest.approx(max(0.0, t - 0.05))
    assert all(v <= 1.0 for row in an.shifted_policy(policy, 0.9).thresholds.values() for v in row.values())


def test_contenders(tmp_path: Path) -> None:
    real = an.contenders(FakeRegistry("2", ["1"], challenger="3"), tmp_path)
    assert real.challenger_is_real and real.challenger.version == "3" and real.champion.version == "2"
    assert real.challenger_label == "challenger v3"
    fake = an.contenders(FakeRegistry("2", ["1"]), tmp_path, shift=-0.1)
    assert not fake.challenger_is_real and "ILLUSTRATIVE" in fake.challenger_label
    assert "no 'challenger' alias" in fake.note and fake.champion.version == "2"
    none = an.contenders(None, tmp_path)
    assert "no policy registry" in none.note and none.champion.version == "bootstrap"


def test_replay_and_what_if(tel: an.Telemetry) -> None:
    policy = parse_policy(default_policy_file().read_text())
    pair = {"champion": policy, "challenger": an.shifted_policy(policy, -0.5)}
    targets = an.replay_targets(tel.decisions, tel.episodes, pair)
    assert len(targets) == 43
    assert set(targets["champion"]) <= set(LADDER)
    assert (targets["challenger"] == "small").all()  # every threshold ≤ 0.35: the cheapest tier clears it
    summary = an.what_if(targets, {"champion": "champion", "challenger": "cheap"}, n_boot=50)
    assert summary["policy"].tolist() == ["logged (what happened)", "champion", "cheap"]
    logged = summary.iloc[0]
    assert logged["resolution_rate"] == pytest.approx(targets["resolved"].mean())
    cheap = summary.iloc[2]
    assert cheap["match_rate"] == pytest.approx((targets["logged"] == "small").mean())
    assert 0 < cheap["ess"] <= 43 and cheap["cost_per_task"] < logged["cost_per_task"]
    dis = an.disagreements(targets, "champion", "challenger")
    assert dis["n"].sum() == int((targets["champion"] != "small").sum())


def test_what_if_on_policy_equals_the_log() -> None:
    t = pd.DataFrame({"decision_id": ["a", "b", "c", "d"], "profile": ["local"] * 4,
                      "logged": ["small", "small", "medium", "medium"], "propensity": [1.0] * 4,
                      "resolved": [1.0, 0.0, 1.0, 1.0], "cost_usd": [0.1, 0.1, 0.5, 0.3],
                      "same": ["small", "small", "medium", "medium"]})
    s = an.what_if(t, {"same": "same"}, n_boot=20).set_index("policy")
    assert s.loc["same", "resolution_rate"] == pytest.approx(0.75)
    assert s.loc["same", "cost_per_resolved"] == pytest.approx(1.0 / 3)
    assert s.loc["same", "match_rate"] == 1.0


# --- plots and the empty window ------------------------------------------------------------------

def test_plots_render(tel: an.Telemetry, labels: pd.DataFrame) -> None:
    promos = an.promotions(None, tel.decisions)
    w = an.split_windows(an.drift_frame(tel.decisions, tel.episodes), promos)
    policy = parse_policy(default_policy_file().read_text())
    targets = an.replay_targets(tel.decisions, tel.episodes, {"champion": policy})
    figs = [
        an.plot_kpis(an.kpis_over_time(tel.episodes), promos),
        an.plot_misroute_matrix(an.misroute_matrix(labels)),
        an.plot_queue_signatures(an.queue_signatures(tel.queue)),
        an.plot_calibration(an.calibration_table(tel.decisions, tel.episodes), LADDER),
        an.plot_drift(w, an.drift(w), LADDER),
        an.plot_what_if(an.what_if(targets, {"champion": "champion"}, n_boot=10), "what if"),
    ]
    for fig in figs:
        assert isinstance(fig, Figure) and fig.axes
        fig.canvas.draw()
    kpi_fig = figs[0]
    assert any("v2 champion" in t.get_text() for ax in kpi_fig.axes for t in ax.texts)


def test_empty_window_degrades_to_no_data(home: Path, tmp_path: Path) -> None:
    wh = open_warehouse(home)
    try:
        empty = an.load_telemetry(wh, "2030-01-01", "2030-01-02")
    finally:
        wh.close()
    assert empty.decisions.empty and empty.describe() == "no decisions in this window"
    labels = an.label_misroutes(empty)
    frame = an.drift_frame(empty.decisions, empty.episodes)
    promos = an.promotions(None, empty.decisions)
    w = an.split_windows(frame, promos)
    targets = an.replay_targets(empty.decisions, empty.episodes, {"champion": an.policy_from_home(tmp_path)})
    figs = [
        an.plot_kpis(an.kpis_over_time(empty.episodes), promos),
        an.plot_misroute_matrix(an.misroute_matrix(labels)),
        an.plot_queue_signatures(an.queue_signatures(empty.queue)),
        an.plot_calibration(an.calibration_table(empty.decisions, empty.episodes)),
        an.plot_drift(w, an.drift(w)),
        an.plot_what_if(an.what_if(targets, {"champion": "champion"}), "what if"),
    ]
    for fig in figs:
        fig.canvas.draw()
    assert an.top_misroutes(labels, empty.decisions).empty
    assert an.misroute_summary(labels).startswith("no routed decisions")
    assert math.isnan(an.drift(w).features["complexity"])
    assert an.disagreements(targets, "champion", "champion").empty


# --- the committed notebook and the report runner --------------------------------------------------

def test_committed_notebook_is_stripped_and_parameterised() -> None:
    nb = nbformat.read(notebook_report.NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("TIERWISE_HOME", "START_DATE", "END_DATE"):
        assert f"{name} = " in params[0].source
    assert "import tierwise.tuner.analysis as an" in "".join(c.source for c in code)


def test_inject_parameters_and_strip() -> None:
    nb = nbformat.read(notebook_report.NOTEBOOK, as_version=4)
    injected = notebook_report.inject_parameters(nb, {"TIERWISE_HOME": "/x", "START_DATE": None})
    index = next(i for i, c in enumerate(injected.cells) if "parameters" in c.metadata.get("tags", []))
    cell = injected.cells[index + 1]
    assert "injected-parameters" in cell.metadata["tags"]
    assert "TIERWISE_HOME = '/x'" in cell.source and "START_DATE = None" in cell.source
    again = notebook_report.inject_parameters(injected, {"TIERWISE_HOME": "/y"})
    assert len(again.cells) == len(injected.cells)  # a re-injection replaces, never stacks
    cell.outputs = [nbformat.v4.new_output("stream", text="x")]
    cell.execution_count = 3
    stripped = notebook_report.strip_outputs(injected)
    assert all(not c.get("outputs") for c in stripped.cells if c.cell_type == "code")
    assert cell.outputs  # the input is not modified


def test_report_path_and_missing_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime(2026, 11, 27, 9, 5, 3, tzinfo=UTC)
    assert notebook_report.report_path(tmp_path, when) == tmp_path / "reports" / "misroutes-20261127T090503Z.html"
    assert notebook_report.main(["--home", str(tmp_path / "nothing")]) == 2
    assert "no telemetry" in capsys.readouterr().err


def test_numpy_is_not_leaking_into_outputs(labels: pd.DataFrame) -> None:
    # the notebook prints these; plain Python types keep the printed text readable
    assert all(isinstance(v, str) for v in labels["kind"]) and isinstance(labels["explored"].iloc[0], bool | np.bool_)


class BrokenRegistry(FakeRegistry):
    def load(self, version: str) -> RoutingPolicy:
        raise OSError("artifact store unreachable")

    def history(self) -> list[str]:
        raise OSError("registered model gone")


def test_an_unreadable_registry_falls_back(tel: an.Telemetry, tmp_path: Path) -> None:
    broken = BrokenRegistry("2", ["1"], challenger="3")
    pair = an.contenders(broken, tmp_path)
    assert not pair.challenger_is_real and "artifact store unreachable" in pair.note
    assert pair.champion.version == "bootstrap"
    promos = an.promotions(broken, tel.decisions)
    assert promos["source"].str.startswith("telemetry").all() and promos["version"].tolist() == ["1", "2"]
