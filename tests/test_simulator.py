"""Tests for the synthetic workload simulator: it must be deterministic and honest to its own truth."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from tierwise.bench.simulator import (
    PROFILES,
    VALID_OUTPUT_SCHEMA,
    Attempt,
    ScenarioWorld,
    SimTask,
    Simulator,
    is_valid_output,
    load_corpus,
    load_scenario,
)

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "bench" / "scenarios"

BASE: dict[str, Any] = {
    "name": "t",
    "seed": 1,
    "weeks": 4,
    "tasks_per_week": 300,
    "mix": {"mechanical": 0.4, "local": 0.4, "repository": 0.1, "agentic": 0.1},
    "tiers": {
        "small": {"model": "s-1", "input_usd_per_mtok": 0.25, "output_usd_per_mtok": 2.0,
                  "success": {"mechanical": 0.9, "local": 0.6, "repository": 0.3, "agentic": 0.1},
                  "latency_ms_per_1k_output": 9000, "base_latency_ms": 1000},
        "medium": {"model": "m-1", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0,
                   "success": {"mechanical": 0.95, "local": 0.8, "repository": 0.6, "agentic": 0.4},
                   "latency_ms_per_1k_output": 15000, "base_latency_ms": 2000},
        "frontier": {"model": "f-1", "input_usd_per_mtok": 5.0, "output_usd_per_mtok": 25.0,
                     "success": {"mechanical": 0.98, "local": 0.9, "repository": 0.8, "agentic": 0.6},
                     "latency_ms_per_1k_output": 22000, "base_latency_ms": 3000},
    },
    "difficulty": {p: [2, 2] for p in PROFILES},
    "difficulty_slope": 4.0,
    "override_rate": {"mechanical": 0.3, "local": 0.5, "repository": 0.6, "agentic": 0.7},
    "schema_failure_rate": {"small": 0.05, "medium": 0.02, "frontier": 0.0},
    "tokens": {"mechanical": [3000, 400], "local": [12000, 1200], "repository": [40000, 4000],
               "agentic": [90000, 9000]},
    "events": [
        {"week": 2, "kind": "swap_model", "tier": "small", "model": "s-2",
         "success": {"local": 0.9, "repository": 0.7}},
        {"week": 2, "kind": "mix",
         "mix": {"mechanical": 0.1, "local": 0.2, "repository": 0.6, "agentic": 0.1}},
    ],
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _scenario(tmp_path: Path, **changes: Any) -> ScenarioWorld:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return load_scenario(_write(tmp_path, data))


@pytest.fixture
def corpus(tmp_path: Path) -> list[dict[str, Any]]:
    """A tiny corpus of our own, one file per profile, so tests never depend on data/corpus."""
    cdir = tmp_path / "corpus"
    cdir.mkdir()
    for profile in PROFILES:
        lines = []
        for i in range(10):
            row: dict[str, Any] = {
                "id": f"{profile}-{i}", "profile": profile, "prompt": f"Fix {profile} thing number {i}.",
                "files": [f"src/{profile}_{i}.py"],
                "repo": {"files": 50 + i, "modules_touched": 1 + i % 3, "languages": ["python"]},
                "diff_lines": 5 * (i + 1), "expected_output": "json" if i % 2 else "patch",
                "tools": ["pytest"], "complexity": 1 + i % 5, "ecosystem": "python",
            }
            if i % 3 == 0:
                row["split"] = "test"
            elif i % 3 == 1:
                row["split"] = "train"  # i % 3 == 2 has no split and must count as train
            lines.append(json.dumps(row))
        (cdir / f"{profile}.jsonl").write_text("\n".join(lines) + "\n\n")
    return load_corpus(cdir)


def _sim(tmp_path: Path, corpus: list[dict[str, Any]], **changes: Any) -> Simulator:
    return Simulator(_scenario(tmp_path, **changes), corpus)


def _within(successes: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(successes / n - p) <= sigmas * math.sqrt(p * (1 - p) / n) + 1e-9


def test_load_corpus_splits_and_bad_lines(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    cdir = tmp_path / "corpus"
    assert len(corpus) == 40
    train, test = load_corpus(cdir, "train"), load_corpus(cdir, "test")
    assert len(train) + len(test) == 40
    assert len(test) == 4 * 4  # i in {0, 3, 6, 9}
    assert all(r.get("split", "train") == "train" for r in train)
    assert any("split" not in r for r in train)
    (cdir / "broken.jsonl").write_text('{"id": "x"}\n{"id": \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        load_corpus(cdir)


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path, corpus: list[dict[str, Any]]) -> None:
    sc = load_scenario(path)
    sim = Simulator(sc, corpus)
    assert len(sim.tasks_for_week(sc.weeks - 1)) == sc.tasks_per_week
    assert set(sc.tiers) == {"small", "medium", "frontier"}


def test_drift_scenario_matches_brief() -> None:
    sc = load_scenario(SCENARIO_DIR / "drift_model_swap.json")
    assert sc.weeks == 8 and sc.tiers["small"].model == "gpt-5-mini"
    prices = {t: (v.input_usd_per_mtok, v.output_usd_per_mtok) for t, v in sc.tiers.items()}
    assert prices == {"small": (0.25, 2.0), "medium": (3.0, 15.0), "frontier": (5.0, 25.0)}
    swap = next(e for e in sc.events if e["kind"] == "swap_model")
    assert swap["week"] == 4 and swap["success"]["local"] > sc.tiers["small"].success["local"]
    assert "input_usd_per_mtok" not in swap  # same price
    assert load_scenario(SCENARIO_DIR / "steady.json").events == []


def test_determinism_same_seed_and_call_order(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    a, b = _sim(tmp_path, corpus), _sim(tmp_path, corpus)
    b.tasks_for_week(0)  # extra calls on b must not shift anything
    b.attempt(b.tasks_for_week(3)[0], "frontier", 5)
    assert a.tasks_for_week(1) == b.tasks_for_week(1)
    tasks = a.tasks_for_week(1)[:50]
    for task in reversed(tasks):
        b.attempt(task, "medium", 0)
    for task in tasks:
        for tier in ("small", "medium", "frontier"):
            assert a.attempt(task, tier, 0) == b.attempt(task, tier, 0)
    assert a.attempt(tasks[0], "small", 0) == a.attempt(tasks[0], "small", 0)


def test_different_seed_differs(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    a, b = _sim(tmp_path, corpus), _sim(tmp_path, corpus, seed=2)
    ta, tb = a.tasks_for_week(0), b.tasks_for_week(0)
    assert [t.profile for t in ta] != [t.profile for t in tb]
    assert [t.difficulty for t in ta] != [t.difficulty for t in tb]
    # Same task, same tier: the two seeds' luck must differ somewhere across many retries.
    outcomes_a = [a.attempt(ta[0], "small", i) for i in range(40)]
    outcomes_b = [b.attempt(ta[0], "small", i) for i in range(40)]
    assert [x.input_tokens for x in outcomes_a] != [x.input_tokens for x in outcomes_b]
    assert a.tasks_for_week(0) != a.tasks_for_week(1)


def test_tasks_are_well_formed(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    tasks = sim.tasks_for_week(0)
    assert len(tasks) == 300 and len({t.task_id for t in tasks}) == 300
    by_id = {r["id"]: r for r in corpus}
    for t in tasks:
        row = by_id[t.source_id]
        assert row["profile"] == t.profile and 0 < t.difficulty < 1
        assert t.complex == (t.difficulty >= 0.6)
        req = t.request
        assert set(req) == {"prompt", "files", "repo", "diff_lines", "expected_output", "tools", "harness",
                            "task_id"}
        assert req["task_id"] == t.task_id and req["harness"] == "ci"
        assert row["prompt"] in req["prompt"]  # only light surface variation
        assert req["files"] == row["files"] and req["diff_lines"] == row["diff_lines"]
    with pytest.raises(ValueError, match="week"):
        sim.tasks_for_week(4)


def test_difficulty_tracks_corpus_complexity(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    """The router only sees the request, so request features must carry signal about difficulty."""
    sim = _sim(tmp_path, corpus)
    complexity = {r["id"]: r["complexity"] for r in corpus}
    tasks = [t for w in range(4) for t in sim.tasks_for_week(w)]
    easy = [complexity[t.source_id] for t in tasks if t.difficulty < 0.3]
    hard = [complexity[t.source_id] for t in tasks if t.difficulty > 0.7]
    assert np.mean(hard) > np.mean(easy) + 1.5


def test_expected_success_formula(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    task = next(t for t in sim.tasks_for_week(0) if t.profile == "local")
    base = 0.6
    p = 1 / (1 + math.exp(-(math.log(base / (1 - base)) - 4.0 * (task.difficulty - 0.5))))
    assert sim.expected_success(task, "small") == pytest.approx(p * (1 - 0.05))
    assert sim.attempt(task, "small", 0).true_success_probability == pytest.approx(p * 0.95)
    hard, easy = (SimTask("x", 0, "local", d, d >= 0.6, task.request, task.source_id) for d in (0.9, 0.1))
    assert sim.expected_success(hard, "small") < sim.expected_success(easy, "small")


@pytest.mark.parametrize("tier", ["small", "medium", "frontier"])
def test_empirical_success_matches_expected(tmp_path: Path, corpus: list[dict[str, Any]], tier: str) -> None:
    sim = _sim(tmp_path, corpus)
    tasks = sim.tasks_for_week(0)
    # Repeated attempts at one task converge to its probability ...
    task = next(t for t in tasks if t.profile == "local" and 0.35 < t.difficulty < 0.65)
    n = 2000
    wins = sum(sim.attempt(task, tier, i).resolved for i in range(n))
    assert _within(wins, n, sim.expected_success(task, tier))
    # ... and across many tasks the resolve rate matches the mean probability.
    attempts = [sim.attempt(t, tier, 0) for t in tasks]
    expected = float(np.mean([sim.expected_success(t, tier) for t in tasks]))
    observed = float(np.mean([a.resolved for a in attempts]))
    assert abs(observed - expected) < 4.5 * math.sqrt(expected * (1 - expected) / len(tasks))


def test_swap_event_changes_small_tier_from_its_week(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    assert sim.tiers_at(1)["small"].model == "s-1" and sim.tiers_at(2)["small"].model == "s-2"
    swapped = {"mechanical": 0.9, "local": 0.9, "repository": 0.7, "agentic": 0.1}
    assert sim.tiers_at(3)["small"].success == swapped
    assert sim.tiers_at(3)["medium"] == sim.tiers_at(0)["medium"]
    assert sim.tiers_at(2)["small"].input_usd_per_mtok == 0.25

    def small_rate(week: int) -> tuple[int, int, float]:
        tasks = [t for t in sim.tasks_for_week(week) if t.profile in ("local", "repository")]
        results = [sim.attempt(t, "small", 0) for t in tasks]
        assert all(a.model == ("s-2" if week >= 2 else "s-1") for a in results)
        expected = float(np.mean([sim.expected_success(t, "small") for t in tasks]))
        return sum(a.resolved for a in results), len(results), expected

    before = [small_rate(w) for w in (0, 1)]
    after = [small_rate(w) for w in (2, 3)]
    for wins, n, expected in before + after:
        assert _within(wins, n, expected)
    rate_before = sum(w for w, _, _ in before) / sum(n for _, n, _ in before)
    rate_after = sum(w for w, _, _ in after) / sum(n for _, n, _ in after)
    assert rate_after > rate_before + 0.2
    # The same task evaluated in an earlier week uses the earlier model.
    task = next(t for t in sim.tasks_for_week(3) if t.profile == "local")
    assert sim.expected_success(task, "small", week=1) != sim.expected_success(task, "small", week=3)
    assert sim.expected_success(task, "medium", week=1) == sim.expected_success(task, "medium", week=3)


def test_success_scale_and_price_override(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    events = [{"week": 1, "kind": "swap_model", "tier": "small", "model": "s-cheap", "success_scale": 0.5,
               "input_usd_per_mtok": 0.05, "output_usd_per_mtok": 0.4}]
    sim = _sim(tmp_path, corpus, events=events)
    small = sim.tiers_at(1)["small"]
    assert small.success["local"] == pytest.approx(0.3) and small.output_usd_per_mtok == 0.4
    assert sim.tiers_at(0)["small"].success["local"] == 0.6


def test_mix_event_changes_profile_frequencies(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus, tasks_per_week=2000)
    assert sim.mix_at(1)["repository"] == 0.1 and sim.mix_at(2)["repository"] == 0.6
    for week, mix in ((0, BASE["mix"]), (1, BASE["mix"]), (2, BASE["events"][1]["mix"])):
        tasks = sim.tasks_for_week(week)
        for profile in PROFILES:
            count = sum(t.profile == profile for t in tasks)
            assert _within(count, len(tasks), mix[profile]), (week, profile)


def test_cost_is_tokens_times_price(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    for week in (0, 3):
        tiers = sim.tiers_at(week)
        for task in sim.tasks_for_week(week)[:60]:
            for tier, truth in tiers.items():
                a = sim.attempt(task, tier, 0)
                assert a.input_tokens > 0 and a.output_tokens > 0 and a.latency_ms > 0
                cost = a.input_tokens * truth.input_usd_per_mtok / 1e6
                cost += a.output_tokens * truth.output_usd_per_mtok / 1e6
                assert a.cost_usd == pytest.approx(cost, rel=1e-12)
                assert a.model == truth.model


def test_overrides_only_on_failed_non_frontier(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    tasks = sim.tasks_for_week(0)
    attempts: list[tuple[SimTask, Attempt]] = [(t, sim.attempt(t, tier, 0)) for t in tasks
                                              for tier in ("small", "medium", "frontier")]
    for _, a in attempts:
        if a.overridden_to is not None:
            assert not a.resolved and a.tier != "frontier"
            assert a.overridden_to == {"small": "medium", "medium": "frontier"}[a.tier]
        assert a.resolved == (a.failure is None)
    assert all(a.overridden_to is None for _, a in attempts if a.tier == "frontier")
    failed_local = [a for t, a in attempts
                    if t.profile == "local" and a.tier != "frontier" and not a.resolved]
    overridden = sum(a.overridden_to is not None for a in failed_local)
    assert len(failed_local) > 50 and _within(overridden, len(failed_local), 0.5)
    quiet = _sim(tmp_path, corpus, override_rate={})
    assert all(quiet.attempt(t, "small", 0).overridden_to is None for t in tasks)


def test_failure_kinds(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus, schema_failure_rate={})
    task = next(t for t in sim.tasks_for_week(0) if t.profile == "agentic")
    failures = [a.failure for a in (sim.attempt(task, "small", i) for i in range(2000)) if a.failure]
    share = {k: failures.count(k) / len(failures) for k in set(failures)}
    assert set(share) <= {"tests_failed", "timeout", "error", "refused"}
    assert share["tests_failed"] > 0.6 and 0 < share.get("refused", 0) < share["timeout"]


def test_schema_failures_violate_documented_shape(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus, schema_failure_rate={"small": 0.5})
    tasks = sim.tasks_for_week(0)
    attempts = [(t, sim.attempt(t, "small", i)) for t in tasks for i in range(3)]
    bad = [a for _, a in attempts if a.failure == "schema_invalid"]
    assert len(bad) > 50
    for a in bad:
        assert not a.resolved and a.output is not None and not is_valid_output(a.output)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(a.output, VALID_OUTPUT_SCHEMA)
    # Schema failures only hit attempts that would otherwise pass: their rate is pass-prob x 0.5.
    expected = sum(sim.expected_success(t, "small") for t, _ in attempts)  # already x (1 - 0.5)
    assert abs(len(bad) - expected) < 4.5 * math.sqrt(expected)
    json_ok = [a for t, a in attempts if a.resolved and t.request["expected_output"] == "json"]
    assert json_ok and all(is_valid_output(a.output) for a in json_ok)
    for a in json_ok:
        jsonschema.validate(a.output, VALID_OUTPUT_SCHEMA)
    assert all(a.output is None for t, a in attempts
               if t.request["expected_output"] == "patch" and a.failure != "schema_invalid")


def test_true_best_tier_prefers_cheap_when_good_enough(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus)
    task = next(t for t in sim.tasks_for_week(0) if t.profile == "agentic")
    assert sim.true_best_tier(task, tolerance=0.0) == "frontier"
    easy = SimTask("x", 0, "mechanical", 0.02, False, task.request, task.source_id)
    # small ~0.935 (schema failures included), medium ~0.971, frontier ~0.997
    assert sim.true_best_tier(easy, tolerance=0.0) == "frontier"
    assert sim.true_best_tier(easy, tolerance=0.05) == "medium"
    assert sim.true_best_tier(easy, tolerance=0.1) == "small"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["tiers"]["small"]["success"].__setitem__("local", 1.3), "tiers.small.success.local"),
        (lambda d: d["mix"].__setitem__("local", 0.2), "mix"),
        (lambda d: d["mix"].__setitem__("docs", 0.0), "mix.docs"),
        (lambda d: d["events"][0].__setitem__("week", 4), "events[0].week"),
        (lambda d: d["events"][0].__setitem__("tier", "huge"), "events[0].tier"),
        (lambda d: d["events"][1]["mix"].__setitem__("agentic", 0.5), "events[1].mix"),
        (lambda d: d["events"][1].__setitem__("kind", "explode"), "events[1]"),
        (lambda d: d["schema_failure_rate"].__setitem__("giant", 0.1), "schema_failure_rate.giant"),
        (lambda d: d["override_rate"].__setitem__("local", -0.1), "override_rate.local"),
        (lambda d: d.__setitem__("mixx", {}), "mixx"),
        (lambda d: d.pop("tokens"), "tokens"),
        (lambda d: d["tokens"].pop("agentic"), "tokens.agentic"),
        (lambda d: d["difficulty"].__setitem__("local", [0, 2]), "difficulty.local"),
        (lambda d: d["tiers"]["small"].pop("base_latency_ms"), "tiers.small.base_latency_ms"),
        (lambda d: d["tiers"].__setitem__("tiny", d["tiers"]["small"]), "tiers.tiny"),
        (lambda d: d.__setitem__("weeks", 0), "weeks"),
    ],
)
def test_validation_names_the_key(tmp_path: Path, change: Any, key: str) -> None:
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(ValueError) as info:
        load_scenario(_write(tmp_path, data))
    assert str(info.value).startswith(key), str(info.value)


def test_corpus_must_cover_used_profiles(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sc = _scenario(tmp_path)
    with pytest.raises(ValueError, match=r"corpus\.agentic"):
        Simulator(sc, [r for r in corpus if r["profile"] != "agentic"])


def test_token_means_follow_scenario(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    sim = _sim(tmp_path, corpus, tasks_per_week=2000)
    tasks = [t for t in sim.tasks_for_week(0) if t.profile == "local"]
    attempts = [sim.attempt(t, "medium", 0) for t in tasks]
    assert np.mean([a.input_tokens for a in attempts]) == pytest.approx(12000, rel=0.05)
    assert np.mean([a.output_tokens for a in attempts]) == pytest.approx(1200, rel=0.05)
    hard = [a.output_tokens for t, a in zip(tasks, attempts, strict=True) if t.difficulty > 0.7]
    easy = [a.output_tokens for t, a in zip(tasks, attempts, strict=True) if t.difficulty < 0.3]
    assert np.mean(hard) > np.mean(easy)  # harder tasks need more work


def test_bad_scenario_file_names_the_field_and_the_rule(tmp_path: Path) -> None:
    """The pydantic schema reports the dotted key and what is wrong with it, for a file and in code."""
    data = copy.deepcopy(BASE)
    data["tiers"]["medium"]["input_usd_per_mtok"] = "cheap"
    with pytest.raises(ValueError, match=r"^tiers\.medium\.input_usd_per_mtok: .*number"):
        load_scenario(_write(tmp_path, data))
    data = copy.deepcopy(BASE)
    data["events"][0]["success_scale"] = 0
    with pytest.raises(ValueError, match=r"^events\[0\]\.success_scale: .*greater than 0"):
        load_scenario(_write(tmp_path, data))
    sc = _scenario(tmp_path)
    with pytest.raises(ValueError, match=r"^weeks: "):
        dataclasses.replace(sc, weeks=0)  # constructing one in code is checked the same way
