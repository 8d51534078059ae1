"""The Optuna search: champion enqueued as trial 0, feasibility constraint, ladder search (> 3 tiers)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.telemetry.store import TelemetryStore
from tierwise.tuner.dataset import load_logged
from tierwise.tuner.search import Evaluator, champion_params, run_study, with_params
from tierwise.tuner.synthetic import SyntheticWorld, write_synthetic

DATA = Path(__file__).resolve().parent.parent / "data"


def _four_tiers() -> RoutingPolicy:
    raw: dict[str, Any] = json.loads((DATA / "policy.default.json").read_text())
    large = copy.deepcopy(raw["tiers"]["medium"])
    large["model"] = "large-model"
    raw["tiers"]["large"] = large
    raw["ladder"] = ["small", "medium", "large", "frontier"]
    for row in raw["success_priors"].values():
        row["large"] = round((row["medium"] + row["frontier"]) / 2, 3)
    raw["exploration"] = {"local": 0.2, "ci": 0.2, "prod": 0.2}
    return parse_policy(raw, version="1")


def test_study_enqueues_champion_and_searches_the_ladder(tmp_path: Path) -> None:
    policy = _four_tiers()
    world = SyntheticWorld(success={p: {"small": s, "medium": s + 0.05, "large": s + 0.07, "frontier": s + 0.1}
                           for p, s in (("mechanical", 0.85), ("local", 0.7), ("repository", 0.5),
                                        ("agentic", 0.3))})
    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    write_synthetic(store.journal, policy, 3000, seed=4, world=world)
    store.close()
    data, _ = load_logged(tmp_path)
    ev = Evaluator.build(data, policy.ladder)
    floor = ev.estimate(policy).resolution_snips.value - 0.05
    result = run_study(policy, ev, trials=12, floor=floor, seed=0, progress=False)
    first = result.trials[0]
    assert first.params == champion_params(policy, result.harnesses, result.profiles)  # trial 0 = champion
    assert {"esc:medium", "esc:large"} <= set(first.params) and first.params["esc:large"] is True
    assert len(result.trials) == 12 and any(t.feasible for t in result.trials)
    best = next(t for t in result.trials if t.number == result.best_number)
    assert best.feasible and best.resolution >= floor
    assert best.cost_per_resolved == min(t.cost_per_resolved for t in result.trials if t.feasible)
    # A ladder that skips a rung changes the escalation chains OPE matches on.
    skip = with_params(policy, {**first.params, "esc:medium": False}, result.harnesses, result.profiles)
    assert skip.escalation.ladder == ["small", "large", "frontier"]
    same = ev.target_codes(policy)
    other = ev.target_codes(skip)
    assert (same != other).any()
    assert np.isclose(first.resolution, ev.estimate(policy).resolution_snips.value)
