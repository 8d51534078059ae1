"""Parity: replaying logged decisions under the logging policy reproduces the logged tiers.

Decisions are made by the service's real routing path (classifier → ``decide`` → journal), with
exploration on, then read back through the tuner's dataset (DuckDB over the exported segments)
and replayed by the tuner's vectorised path and by the per-row ``replay_tier``. Both must give
the logged ``greedy_tier`` on every row, and the logged ``tier`` on every unexplored row.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RESTRICTED_CAPABILITIES

from tierwise.service.classify.embed import HashingEmbedder
from tierwise.service.classify.model import ProfileClassifier
from tierwise.service.classify.success import SUCCESS_FEATURES
from tierwise.service.classify.task import Task
from tierwise.service.errors import NoEligibleTier
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.routing import Router
from tierwise.service.telemetry.store import TelemetryStore
from tierwise.tuner.counterfactual import replay_chain, replay_greedy, replay_tier
from tierwise.tuner.dataset import load_logged
from tierwise.tuner.search import Evaluator

DATA = Path(__file__).resolve().parent.parent / "data"


def _policies(default: dict[str, Any]) -> list[RoutingPolicy]:
    rng = np.random.default_rng(3)
    # Tiers that differ in capabilities, so tool names exclude tiers in some rows.
    tiers = {name: dict(t, capabilities=dict(t["capabilities"], tools=RESTRICTED_CAPABILITIES[name]))
             for name, t in default["tiers"].items()}
    explore = dict(default, tiers=tiers, exploration={"local": 0.2, "ci": 0.3, "prod": 0.1})
    learned = dict(explore, success_model={
        "feature_names": list(SUCCESS_FEATURES), "mean": [0.2] * 4 + [0.5, 5.0, 1.0, 2.0, 0.5, 2.0],
        "scale": [0.3] * 4 + [0.25, 1.5, 0.8, 1.5, 0.6, 1.2],
        "coef": {t: [float(v) for v in rng.normal(0, 0.6, len(SUCCESS_FEATURES))] for t in default["ladder"]},
        "intercept": {"small": 0.3, "medium": 1.0, "frontier": 1.4}})
    learned["thresholds"] = {h: {"mechanical": 0.7, "local": 0.72, "repository": 0.75, "agentic": 0.8}
                             for h in ("local", "ci", "prod")}
    # An escalation ladder that skips a rung, so chains differ from the plain ladder.
    skipping = dict(explore, escalation={"max_steps": 2, "ladder": ["small", "frontier"], "scripts": {}})
    # Unsure below 0.9 (most rows here), routed as the more demanding or as a named profile.
    unsure = dict(learned, unsure={"threshold": 0.9, "route_as": "more_demanding"})
    named = dict(explore, unsure={"threshold": 0.8, "route_as": "repository"})
    return [parse_policy(p, version=str(i + 1)) for i, p in enumerate((explore, learned, skipping, unsure, named))]


def _tasks(n: int) -> list[tuple[Task, str]]:
    from tierwise.service.classify.train import load_corpus

    rows = load_corpus(DATA / "corpus")
    rng = random.Random(11)
    out = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        if i % 3 == 0:  # other harnesses' names for the same capabilities
            row["tools"] = rng.choice([["Bash", "Read", "Edit"], ["execute_bash", "str_replace_editor", "browser"],
                                       ["query_db"], ["mcp__x__y"]])
        if i % 5 == 0:  # some tasks whose context only the big tiers hold, or that need a rare tool
            row["files"] = [f"src/m{k}.py" for k in range(rng.randint(200, 480))]
        if i % 7 == 0:
            row["tools"] = [*row.get("tools", []), rng.choice(["db_query", "browser"])]
        out.append((Task.from_mapping(row), rng.choice(["local", "ci", "prod"])))
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, hashing_classifier_file: Path,
           default_policy_dict: dict[str, Any]) -> tuple[Path, list[RoutingPolicy]]:
    home = tmp_path_factory.mktemp("parity")
    store = TelemetryStore.open(home / "telemetry", catalog=False)
    classifier = ProfileClassifier.load(hashing_classifier_file, HashingEmbedder())
    policies = _policies(default_policy_dict)
    tasks = _tasks(600)
    for k, policy in enumerate(policies):
        router = Router(classifier, PolicyHolder(policy, "test"), store.journal, random.Random(k))
        for i, (task, harness) in enumerate(tasks):
            try:
                routed = router.route(task, harness=harness, task_id=f"{k}-{i}")
            except NoEligibleTier:
                continue
            store.journal.insert("attempts", {  # an outcome, so the decision enters the dataset
                "decision_id": routed.decision_id, "attempt": 0, "ts": 0.0, "tier": routed.decision.tier,
                "resolved": 1, "claimed_resolved": 1, "cost_usd": 0.01, "next_action": "done",
                "request_hash": "x", "response": "{}"})
    store.close()
    return home, policies


def test_vectorised_replay_reproduces_logged_tiers(logged: tuple[Path, list[RoutingPolicy]]) -> None:
    home, policies = logged
    data, total = load_logged(home)
    assert len(data) == total > 1500
    assert data.explored.sum() > 100  # exploration really happened
    assert {p.version for p in policies} == set(data.policy_version)
    for policy in policies:
        rows = data.subset(data.policy_version == policy.version)
        idx, chain = replay_greedy(policy, rows)
        replayed = np.array([policy.ladder[i] for i in idx], dtype=object)
        assert (replayed == rows.greedy_tier).all()
        unexplored = ~rows.explored
        assert (replayed[unexplored] == rows.tier[unexplored]).all()
        # Chains too: the logged chain of an unexplored row is the replayed one.
        names = np.array([[policy.ladder[j] if j >= 0 else "" for j in c] for c in chain], dtype=object)
        assert (names[unexplored] == rows.chain[unexplored]).all()
        # And OPE sees the logging policy as matching every unexplored row.
        ev = Evaluator.build(rows, policy.ladder)
        target = ev.target_codes(policy)
        assert (target[unexplored] == ev.logged_codes[unexplored]).all()


def test_per_row_replay_agrees(logged: tuple[Path, list[RoutingPolicy]]) -> None:
    home, policies = logged
    from tierwise.service.telemetry.store import open_warehouse

    wh = open_warehouse(home)
    rows = wh.df("SELECT * FROM decisions").to_dict("records")
    wh.close()
    by_version = {p.version: p for p in policies}
    for row in rows[::3]:
        policy = by_version[row["policy_version"]]
        assert replay_tier(policy, row) == row["greedy_tier"]
        if not row["explored"]:
            first, chain = replay_chain(policy, row)
            assert first == row["tier"] and list(chain) == json.loads(row["escalation_chain"])
