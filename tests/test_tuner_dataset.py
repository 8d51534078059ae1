"""The tuner's dataset: one row per decision, labels per (decision, tier tried), holdout split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.service.classify import PROFILES
from tierwise.service.telemetry.store import TelemetryStore
from tierwise.tuner.dataset import load_logged, split_holdout, training_rows


def _decision(did: str, tier: str, chain: list[str], propensity: float = 0.95, ts: float = 1000.0) -> dict[str, Any]:
    return {
        "decision_id": did, "ts": ts, "policy_version": "1", "harness": "ci", "profile": "local",
        "profile_scores": json.dumps(dict(zip(PROFILES, [0.1, 0.7, 0.1, 0.1], strict=True))), "complexity": 0.4,
        "features": json.dumps({"log_prompt_tokens": 5.0, "log_files": 1.0, "log_diff_lines": 2.0,
                                "log_modules_touched": 0.5, "n_tools": 2.0}),
        "prompt_tokens": 150, "n_files": 2, "tools": '["read_file", "edit_file"]', "tier": tier,
        "tier_rank": 0, "ladder_size": 3, "greedy_tier": tier, "model": "m", "explored": 0,
        "propensity": propensity, "escalation_chain": json.dumps(chain),
    }


def _attempt(did: str, k: int, tier: str, resolved: bool, *, override: str | None = None,
             nxt: str | None = None, cost: float = 0.01) -> dict[str, Any]:
    action = "done" if resolved else ("escalate" if nxt else "human")
    return {"decision_id": did, "attempt": k, "ts": 1000.0 + k, "tier": tier, "resolved": int(resolved),
            "claimed_resolved": int(resolved), "cost_usd": cost, "overridden_to": override,
            "next_action": action, "next_tier": nxt, "request_hash": f"{did}{k}", "response": "{}"}


def _home(tmp_path: Path, decisions: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> Path:
    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    store.journal.insert_many("decisions", decisions)
    store.journal.insert_many("attempts", attempts)
    store.close()
    return tmp_path


def test_labels_escalation_reveals_failure_and_override_is_failure(tmp_path: Path) -> None:
    decisions = [
        _decision("a", "small", ["medium", "frontier"], propensity=0.95),  # small fails, medium resolves
        _decision("b", "small", ["medium", "frontier"], propensity=0.025),  # override to medium, which resolves
        _decision("c", "medium", ["frontier"]),  # resolved at once
        _decision("d", "small", ["medium", "frontier"]),  # claimed resolved but escalated anyway
        _decision("e", "small", ["medium"]),  # no outcome yet: not in the dataset
    ]
    attempts = [
        _attempt("a", 0, "small", False, nxt="medium"), _attempt("a", 1, "medium", True),
        _attempt("b", 0, "small", False, override="medium", nxt="medium"), _attempt("b", 1, "medium", True),
        _attempt("c", 0, "medium", True),
        _attempt("d", 0, "small", True, nxt="medium"), _attempt("d", 1, "medium", False, nxt="frontier"),
        _attempt("d", 2, "frontier", True),
    ]
    data, total = load_logged(_home(tmp_path, decisions, attempts))
    assert total == 5 and len(data) == 4
    by_id = {d: i for i, d in enumerate(data.decision_id)}
    labels = data.attempt_labels
    assert labels[by_id["a"]].tolist() == [False, True, False]
    assert labels[by_id["b"]].tolist() == [False, True, False]
    assert bool(data.att_overridden[by_id["b"], 0])
    assert labels[by_id["c"]].tolist() == [True, False, False]
    # An escalation reveals that the lower tier failed, whatever the attempt claimed.
    assert labels[by_id["d"]].tolist() == [False, False, True]
    assert data.resolved.all()
    assert np.isclose(data.cost[by_id["d"]], 0.03)
    assert data.chain[by_id["a"]].tolist() == ["medium", "frontier"]
    assert data.chain[by_id["c"]].tolist() == ["frontier", ""]

    rows = training_rows(data)
    assert len(rows.tier) == 2 + 2 + 1 + 3
    got = sorted(zip(rows.tier.tolist(), rows.label.tolist(), np.round(rows.weight, 3).tolist(), strict=True))
    assert ("small", False, 40.0) in got  # decision b: 1 / 0.025 on every attempt of the path
    assert ("medium", True, 40.0) in got
    assert ("frontier", True, round(1 / 0.95, 3)) in got


def test_holdout_is_last_days_or_hash_split(tmp_path: Path) -> None:
    day = 86400.0
    decisions = [_decision(f"x{i}", "small", [], ts=i * day / 10) for i in range(100)]  # 10 days
    attempts = [_attempt(f"x{i}", 0, "small", True) for i in range(100)]
    data, _ = load_logged(_home(tmp_path, decisions, attempts))
    now = 100 * day / 10
    split = split_holdout(data, holdout_days=3.0, now=now)
    assert split.kind == "time"
    assert split.holdout.sum() == 30 and (data.ts[split.holdout] >= now - 3 * day).all()
    # Everything inside the window (simulated traffic that all happened "now"): hash split.
    split = split_holdout(data, holdout_days=30.0, now=now)
    assert split.kind == "hash" and 15 <= split.holdout.sum() <= 45
    again = split_holdout(data, holdout_days=30.0, now=now + 1)
    assert (again.holdout == split.holdout).all()  # deterministic
    assert not (split.holdout & split.train).any()


def test_hash_holdout_keys_on_the_task_not_the_decision_id(tmp_path: Path) -> None:
    """Replaying the same traffic gives the same split although decision ids embed the clock, and
    every decision of one task sits on one side."""
    def logged(run: str, home: Path) -> Any:
        decisions, attempts = [], []
        for i in range(300):
            did = f"{run}-{i}"
            decisions.append(dict(_decision(did, "small", []), task_id=f"TASK-{i % 100}"))
            attempts.append(_attempt(did, 0, "small", True))
        data, _ = load_logged(_home(home, decisions, attempts))
        return data

    first, second = logged("run1", tmp_path / "a"), logged("run2", tmp_path / "b")
    s1 = split_holdout(first, holdout_days=30.0, now=2000.0)
    s2 = split_holdout(second, holdout_days=30.0, now=2000.0)
    assert s1.kind == s2.kind == "hash"
    held = lambda data, s: sorted(set(data.task_key[s.holdout]))  # noqa: E731
    assert held(first, s1) == held(second, s2)
    assert not set(first.task_key[s1.holdout]) & set(first.task_key[s1.train])  # no task on both sides
    assert 0.2 <= s1.holdout.mean() <= 0.4


def test_a_log_of_one_task_still_gets_a_holdout(tmp_path: Path) -> None:
    decisions = [dict(_decision(f"d{i}", "small", []), task_id="LOADTEST") for i in range(200)]
    attempts = [_attempt(f"d{i}", 0, "small", True) for i in range(200)]
    data, _ = load_logged(_home(tmp_path, decisions, attempts))
    split = split_holdout(data, holdout_days=30.0, now=2000.0)
    assert 0.2 <= split.holdout.mean() <= 0.4  # decision ids decide when the tasks cannot
