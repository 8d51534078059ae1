"""Online adaptation: change detection, corrections that are changes, exact propensities, and the
route path reading its statistics from a real journal (shared by workers, not process memory)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tierwise.service.classify.features import structural_features
from tierwise.service.classify.model import Scores
from tierwise.service.classify.task import Task
from tierwise.service.online.source import OnlineSource, flagged_now, load_rows
from tierwise.service.online.stats import AdaptConfig, OnlineView, OutcomeRow, TierStat, build_view, page_hinkley
from tierwise.service.policy.adaptive import AdaptRates, adapt, tier_distribution
from tierwise.service.policy.decide import decide
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.settings import load_settings
from tierwise.service.telemetry.store import TelemetryStore

CFG = AdaptConfig()


def _rows(rates: list[tuple[int, float]], predicted: float, seed: int, profile: str = "local",
          tier: str = "medium") -> list[OutcomeRow]:
    """Bernoulli outcomes: ``n`` rows at success ``p`` for each (n, p), oldest first."""
    rng = np.random.default_rng(seed)
    return [OutcomeRow(profile, tier, "m", predicted, bool(rng.random() < p)) for n, p in rates for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_level_change_alarms_near_its_change_point(seed: int) -> None:
    rows = _rows([(200, 0.86), (80, 0.3)], predicted=0.84, seed=seed)
    alarms = page_hinkley([r.resolved - r.predicted for r in rows], CFG.ph_delta, CFG.ph_lambda)
    after = [(a, c) for a, c in alarms if a >= 200]
    assert after, alarms
    alarm, change = after[0]
    assert alarm - 200 <= 25 and abs(change - 200) <= 15


def test_a_constant_miscalibration_gets_no_correction() -> None:
    """Success 0.95 where 0.7 was predicted, throughout: the policy was tuned on those scores, so
    the online layer leaves them alone (a drop of the same size would be corrected)."""
    view = build_view(_rows([(300, 0.95)], predicted=0.7, seed=4), CFG)
    st = view.tiers[("local", "medium")]
    assert st.observed > 0.9 and st.correction == 0.0 and not view.drifting


def test_a_drop_is_corrected_and_flagged_for_a_bounded_budget() -> None:
    rows = _rows([(200, 0.86), (40, 0.3)], predicted=0.84, seed=5)
    view = build_view(rows, CFG)
    st = view.tiers[("local", "medium")]
    assert st.alarms >= 1 and -0.6 < st.correction < -0.25
    assert ("local", "medium") in view.drifting and view.drifting_tiers("local") == ["medium"]
    # The profile's traffic goes on elsewhere (small); after the budget the boost ends.
    later = rows + _rows([(CFG.boost_outcomes + 5, 0.7)], predicted=0.7, seed=6, tier="small")
    assert ("local", "medium") not in build_view(later, CFG).drifting


def _scores(profile: str = "local") -> Scores:
    ps = {p: (0.85 if p == profile else 0.05) for p in ("mechanical", "local", "repository", "agentic")}
    return Scores(profile_scores=ps, complexity=0.3, features=structural_features(Task(prompt="fix the bug")),
                  prototype_similarity={}, keywords={}, prompt_tokens=10)


@pytest.fixture
def policy(policy_dict: dict[str, Any]) -> RoutingPolicy:
    return parse_policy(policy_dict)


def _view(correction: float, drifting: bool) -> OnlineView:
    st = TierStat(n=30.0, observed=0.3, predicted=0.85, correction=correction, alarms=1, since_alarm=5)
    return OnlineView({("local", "medium"): st}, {}, frozenset({("local", "medium")}) if drifting else frozenset())


def test_a_degraded_greedy_tier_is_routed_around_with_exact_propensities(policy: RoutingPolicy) -> None:
    base = decide(policy, _scores(), tools=[], n_files=0, harness="ci", rng=None)
    assert base.greedy_tier == "medium"
    view = _view(-0.4, drifting=True)
    p, g, reasons = tier_distribution(policy, base, view, AdaptRates(boost_rate=0.3, floor=0.02))
    assert policy.ladder[g] == "frontier" and p.sum() == pytest.approx(1.0)
    assert p[policy.rank("medium")] == pytest.approx(0.3) and p[g] == pytest.approx(0.68)
    assert p[policy.rank("small")] == pytest.approx(0.02)
    assert any("drift flagged" in r for r in reasons)
    rng = random.Random(1)
    draws = [adapt(policy, base, view, AdaptRates(), rng) for _ in range(20_000)]
    counts = Counter(d.tier for d in draws)
    for d in draws[:50]:  # the logged propensity is the probability the tier was drawn with
        assert d.propensity == pytest.approx(p[policy.rank(d.tier)], abs=1e-6)
        assert d.greedy_tier == "medium" and d.explored == (d.tier != "medium")
        assert d.escalation_chain == tuple(policy.ladder[policy.rank(d.tier) + 1:])
    for tier, n in counts.items():
        assert n / 20_000 == pytest.approx(p[policy.rank(tier)], abs=0.012), tier


def test_without_evidence_the_policy_decides_as_tuned(policy: RoutingPolicy) -> None:
    base = decide(policy, _scores(), tools=[], n_files=0, harness="ci", rng=None)
    p, g, _ = tier_distribution(policy, base, OnlineView(), AdaptRates(floor=0.0))
    assert policy.ladder[g] == base.greedy_tier
    assert p[g] == pytest.approx(base.propensity)  # 1 - exploration, as decide logs it


def test_the_route_path_reads_outcomes_from_the_journal(tmp_path: Path, policy: RoutingPolicy,
                                                        hashing_classifier_file: Path) -> None:
    """Outcomes written by another connection (another worker) reach the router's view: local
    work that starts failing on medium is flagged and routed around, and the journal's decision
    rows still carry the policy's greedy tier and the served tier's exact propensity."""
    from tierwise.service.classify.embed import HashingEmbedder
    from tierwise.service.classify.model import ProfileClassifier
    from tierwise.service.policy.holder import PolicyHolder
    from tierwise.service.routing import Router

    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    classifier = ProfileClassifier.load(hashing_classifier_file, HashingEmbedder())
    source = OnlineSource(store.route_journal, CFG, refresh_decisions=1)
    router = Router(classifier, PolicyHolder(policy, "test"), store.route_journal, random.Random(0), online=source)
    task = Task(prompt="Fix the off-by-one bug in the pagination helper in utils.py")
    rng = np.random.default_rng(7)
    served: list[tuple[str, str]] = []
    for i in range(260):
        routed = router.route(task, harness="ci")
        d = routed.decision
        p_ok = 0.86 if i < 200 else 0.2
        ok = bool(rng.random() < p_ok) if d.tier == "medium" else True
        store.journal.insert("attempts", {
            "decision_id": routed.decision_id, "attempt": 0, "ts": float(i), "tier": d.tier, "model": d.plan.model,
            "resolved": int(ok), "claimed_resolved": int(ok), "cost_usd": 0.01, "next_action": "done",
            "request_hash": "x", "response": "{}"})
        served.append((d.greedy_tier, d.tier))
    assert {g for g, _ in served} == {"medium"}  # the policy's own choice never moved
    assert sum(t == "medium" for _, t in served[:200]) > 150
    assert sum(t == "medium" for _, t in served[-30:]) < 15  # routed around after the change
    view = source.compute(policy.version)
    assert ("local", "medium") in view.drifting
    assert len(load_rows(store.journal, 3000, policy.version)) == 260
    assert load_rows(store.journal, 3000, "another-version") == []
    rows = store.journal.fetch_all("SELECT tier, greedy_tier, explored, propensity FROM decisions")
    assert all(r["greedy_tier"] == "medium" and bool(r["explored"]) == (r["tier"] != "medium") for r in rows)
    assert all(0.0 < r["propensity"] <= 1.0 for r in rows)
    store.close()
    # What ``tierwise retune --if-drift`` asks, from a fresh connection to the same journal.
    settings = load_settings(home=tmp_path)
    assert flagged_now(settings, policy.version) == [("local", "medium")]
    assert flagged_now(settings, "another-version") == []
    assert flagged_now(load_settings(home=tmp_path / "empty"), policy.version) == []


def test_metrics_show_the_drift_flags_and_corrections() -> None:
    from tierwise.service.api.metrics import make_metrics, publish_online, scrape

    view = build_view(_rows([(200, 0.86), (40, 0.3)], predicted=0.84, seed=5), CFG)
    m = make_metrics()
    publish_online(m, view)
    text = scrape(m.registry).decode()
    assert 'tierwise_online_drift_flagged{profile="local",tier="medium"} 1.0' in text
    line = next(x for x in text.splitlines() if x.startswith('tierwise_online_correction{profile="local"'))
    assert float(line.split()[-1]) < -0.25
    assert 'tierwise_online_model_success{model="m"}' in text
