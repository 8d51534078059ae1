"""decide(): eligibility by tools and context, exploration and its logged propensities."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MECHANICAL

from tierwise.service.classify.features import structural_features
from tierwise.service.classify.model import Scores
from tierwise.service.classify.task import Task
from tierwise.service.errors import NoEligibleTier, PolicyInvalid
from tierwise.service.policy.decide import decide, routed_profiles
from tierwise.service.policy.model import RoutingPolicy, parse_policy


def scores(profile: str = "mechanical", prompt_tokens: int = 50, p: float = 1.0) -> Scores:
    others = [q for q in ("mechanical", "local", "repository", "agentic") if q != profile]
    profile_scores = {profile: p, **{q: (1.0 - p) / 3 for q in others}}
    return Scores(profile_scores=profile_scores, complexity=0.2,
                  features=structural_features(Task(prompt="rename x" * (prompt_tokens // 2))),
                  prototype_similarity={}, keywords={"mechanical": ["rename"]}, prompt_tokens=prompt_tokens)


@pytest.fixture
def policy(policy_dict: dict[str, Any]) -> RoutingPolicy:
    return parse_policy(policy_dict)


@pytest.fixture
def restricted(restricted_policy_dict: dict[str, Any]) -> RoutingPolicy:
    return parse_policy(restricted_policy_dict)


def test_mechanical_task_takes_the_cheapest_tier_that_clears_the_threshold(policy: RoutingPolicy) -> None:
    d = decide(policy, scores("mechanical"), tools=(), n_files=0, harness="local", rng=None)
    assert d.tier == "small"
    assert d.greedy_tier == "small"
    assert d.escalation_chain == ("medium", "frontier")
    assert d.plan.temperature == policy.temperature["mechanical"]
    assert d.plan.model == policy.tiers["small"].model
    assert (d.explored, d.propensity) == (False, 1.0)


def test_agentic_task_with_no_tier_clearing_goes_to_the_best(policy: RoutingPolicy) -> None:
    d = decide(policy, scores("agentic"), tools=(), n_files=0, harness="ci", rng=None)
    # priors for agentic: small 0.15, medium 0.5, frontier 0.65; threshold 0.6 → frontier
    assert d.tier == "frontier"
    assert d.escalation_chain == ()
    assert any("frontier" in r for r in d.reasons)


# --- eligibility by tools -------------------------------------------------------------------------

def test_a_tool_only_frontier_has_forces_frontier(restricted: RoutingPolicy) -> None:
    d = decide(restricted, scores("mechanical"), tools=("browser",), n_files=0, harness="ci", rng=random.Random(1))
    assert d.tier == "frontier"
    assert d.eligible == ("frontier",)
    assert d.escalation_chain == ()
    # A single eligible tier is never explored away from, and its propensity is 1.
    assert (d.explored, d.propensity) == (False, 1.0)
    assert any("small excluded" in r and "browser" in r for r in d.reasons)
    assert any("medium excluded" in r and "browser" in r for r in d.reasons)


def test_a_tool_small_lacks_skips_small(restricted: RoutingPolicy) -> None:
    d = decide(restricted, scores("mechanical"), tools=("db_query",), n_files=0, harness="local", rng=None)
    assert d.eligible == ("medium", "frontier")
    assert d.tier == "medium"
    # Another harness's name for the same capability has the same effect.
    d = decide(restricted, scores("mechanical"), tools=("run_sql", "Bash"), n_files=0, harness="local", rng=None)
    assert d.eligible == ("medium", "frontier")


def test_unknown_tools_exclude_nothing_and_are_named(restricted: RoutingPolicy) -> None:
    d = decide(restricted, scores("mechanical"), tools=("mcp__jira__get_issue", "Bash", "frobnicate"), n_files=0,
               harness="local", rng=None)
    assert d.eligible == ("small", "medium", "frontier")
    assert d.tier == "small"
    assert any(r == "unknown tools (no capability assumed): mcp__jira__get_issue, frobnicate" for r in d.reasons)


def test_a_model_without_tool_use_drives_no_capability(policy_dict: dict[str, Any]) -> None:
    policy_dict["tiers"]["small"]["capabilities"]["tool_use"] = False
    policy = parse_policy(policy_dict)
    assert decide(policy, scores("mechanical"), tools=("Bash",), n_files=0, harness="local",
                  rng=None).eligible == ("medium", "frontier")
    # Control tools need no capability, so a tool-less model still takes a task that only has them.
    assert decide(policy, scores("mechanical"), tools=("finish", "think"), n_files=0, harness="local",
                  rng=None).tier == "small"


def test_a_tool_no_tier_has_is_no_eligible_tier_naming_tools(restricted_policy_dict: dict[str, Any]) -> None:
    restricted_policy_dict["tiers"]["frontier"]["capabilities"]["tools"].remove("browser")
    policy = parse_policy(restricted_policy_dict)
    with pytest.raises(NoEligibleTier) as info:
        decide(policy, scores(), tools=("browser",), n_files=0, harness="ci", rng=None)
    assert info.value.field == "tools"


# --- eligibility by context -----------------------------------------------------------------------

def test_a_huge_prompt_makes_small_ineligible(policy: RoutingPolicy) -> None:
    d = decide(policy, scores("mechanical", prompt_tokens=130_000), tools=(), n_files=0, harness="local",
               rng=None)
    assert "small" not in d.eligible
    assert d.tier == "medium"
    assert any("small excluded" in r and "130000" in r for r in d.reasons)


def test_many_files_make_small_ineligible(policy: RoutingPolicy) -> None:
    # 50 prompt tokens + 450 files × 300 tokens = 135,050 > small's 128,000 budget.
    d = decide(policy, scores("mechanical"), tools=(), n_files=450, harness="local", rng=None)
    assert d.eligible == ("medium", "frontier")
    # just under small's budget still fits: 50 + 426 × 300 = 127,850
    d = decide(policy, scores("mechanical"), tools=(), n_files=426, harness="local", rng=None)
    assert d.tier == "small"


def test_context_beyond_every_tier_is_no_eligible_tier(policy: RoutingPolicy) -> None:
    with pytest.raises(NoEligibleTier) as info:
        decide(policy, scores(prompt_tokens=170_000), tools=(), n_files=0, harness="ci", rng=None)
    assert info.value.field == "prompt"


def test_context_overflow_from_files_names_files(policy: RoutingPolicy) -> None:
    with pytest.raises(NoEligibleTier) as info:
        decide(policy, scores(prompt_tokens=10), tools=(), n_files=600, harness="ci", rng=None)
    assert info.value.field == "files"


# --- exploration ----------------------------------------------------------------------------------

def _frequencies(policy: RoutingPolicy, harness: str, n: int, seed: int) -> tuple[Counter[str], dict[str, set[float]],
                                                                                   list[tuple[str, bool, float]]]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    props: dict[str, set[float]] = {}
    trace: list[tuple[str, bool, float]] = []
    s = scores("mechanical")
    for _ in range(n):
        d = decide(policy, s, tools=(), n_files=0, harness=harness, rng=rng)
        counts[d.tier] += 1
        props.setdefault(d.tier, set()).add(d.propensity)
        trace.append((d.tier, d.explored, d.propensity))
    return counts, props, trace


@pytest.mark.parametrize("explore", ["any", "adjacent"])
@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_empirical_tier_frequencies_match_logged_propensities(policy_dict: dict[str, Any], rate: float,
                                                              explore: str) -> None:
    policy_dict["exploration"]["ci"] = rate
    policy_dict["explore"] = explore
    policy = parse_policy(policy_dict)
    n = 4000
    counts, props, trace = _frequencies(policy, "ci", n, seed=7)
    # Each tier is always chosen with one logged propensity, and the propensities sum to 1.
    assert all(len(v) == 1 for v in props.values())
    logged = {t: next(iter(v)) for t, v in props.items()}
    assert logged["small"] == pytest.approx(1 - rate)
    if explore == "any":  # uniform over the two other tiers
        assert set(logged) == {"small", "medium", "frontier"}
        assert logged["medium"] == pytest.approx(rate / 2)
    else:  # greedy small has one neighbour: medium; frontier is never an exploratory pick
        assert set(logged) == {"small", "medium"}
        assert logged["medium"] == pytest.approx(rate)
    assert sum(logged.values()) == pytest.approx(1.0)
    for tier, p in logged.items():
        # binomial standard error at n=4000 is ≤ 0.008; 4.5 standard errors of slack
        se = (p * (1 - p) / n) ** 0.5
        assert abs(counts[tier] / n - p) < 4.5 * se + 1e-9, (tier, counts[tier] / n, p)
    # Explored decisions are exactly the non-greedy ones.
    assert all(explored == (tier != "small") for tier, explored, _ in trace)


def test_adjacent_exploration_picks_the_nearest_eligible_rungs(policy_dict: dict[str, Any]) -> None:
    from tierwise.service.policy.decide import explore_matrix

    policy = parse_policy(policy_dict)  # ladder small, medium, frontier; "adjacent" is the default
    assert policy.explore == "adjacent"
    eligible = np.array([[True, True, True]] * 3 + [[True, False, True]])
    greedy = np.array([0, 1, 2, 0])
    got = explore_matrix(policy, eligible, greedy)
    assert got.tolist() == [[False, True, False],   # small -> medium only
                            [True, False, True],    # medium -> both neighbours
                            [False, True, False],   # frontier -> medium only
                            [False, False, True]]   # medium ineligible: the next eligible rung up
    wide = explore_matrix(policy.model_copy(update={"explore": "any"}), eligible, greedy)
    assert wide.tolist()[0] == [False, True, True]


def test_local_harness_never_explores(policy: RoutingPolicy) -> None:
    counts, props, trace = _frequencies(policy, "local", 2000, seed=3)
    assert counts == Counter({"small": 2000})
    assert props == {"small": {1.0}}
    assert not any(explored for _, explored, _ in trace)


def test_seeded_runs_are_reproducible_and_seeds_differ(policy_dict: dict[str, Any]) -> None:
    policy_dict["exploration"]["ci"] = 0.3
    policy = parse_policy(policy_dict)
    a = _frequencies(policy, "ci", 500, seed=11)[2]
    b = _frequencies(policy, "ci", 500, seed=11)[2]
    c = _frequencies(policy, "ci", 500, seed=12)[2]
    assert a == b
    assert a != c


def test_no_rng_means_no_exploration(policy_dict: dict[str, Any]) -> None:
    policy_dict["exploration"]["ci"] = 0.5
    policy = parse_policy(policy_dict)
    for _ in range(200):
        d = decide(policy, scores("mechanical"), tools=(), n_files=0, harness="ci", rng=None)
        assert d.tier == "small" and not d.explored
        # The logged propensity is still the probability the exploring service would pick it.
        assert d.propensity == pytest.approx(0.5)


def test_explored_decision_escalates_only_above_its_tier(policy_dict: dict[str, Any]) -> None:
    policy_dict["exploration"]["ci"] = 0.5
    policy_dict["explore"] = "any"  # so that every tier gets picked
    policy = parse_policy(policy_dict)
    rng = random.Random(5)
    seen = set()
    for _ in range(300):
        d = decide(policy, scores("mechanical"), tools=(), n_files=0, harness="ci", rng=rng)
        seen.add(d.tier)
        assert all(policy.rank(t) > policy.rank(d.tier) for t in d.escalation_chain)
        assert len(d.escalation_chain) <= 2
        if d.explored:
            assert any(r.startswith("explored:") for r in d.reasons)
    assert seen == {"small", "medium", "frontier"}


# --- the service's router uses the seed -----------------------------------------------------------

def test_service_routing_is_reproducible_under_a_seed(make_settings: Callable[..., Any], tmp_path: Path,
                                                      policy_dict: dict[str, Any],
                                                      write_policy: Callable[[dict[str, Any]], Path]) -> None:
    from tierwise.service.classify.task import Task
    from tierwise.service.components import build

    policy_dict["exploration"]["ci"] = 0.4
    path = write_policy(policy_dict)

    def run(seed: int) -> list[str]:
        parts = build(make_settings(seed=seed, policy_file=path), telemetry=False)
        return [parts.router.route(Task(prompt=MECHANICAL), harness="ci").decision.tier for _ in range(60)]

    assert run(1) == run(1)
    assert run(1) != run(2)


# --- unsure: the policy, not the classifier, decides what a close call routes as ----------------

def close_call(top: str, second: str, p_top: float, p_second: float) -> Scores:
    rest = [q for q in ("mechanical", "local", "repository", "agentic") if q not in (top, second)]
    left = (1.0 - p_top - p_second) / 2
    return Scores(profile_scores={top: p_top, second: p_second, **{q: left for q in rest}}, complexity=0.3,
                  features=structural_features(Task(prompt="fix it")), prototype_similarity={}, keywords={},
                  prompt_tokens=10)


def test_a_sure_top_profile_routes_as_itself(policy: RoutingPolicy) -> None:
    d = decide(policy, close_call("local", "agentic", 0.79, 0.2), tools=(), n_files=1, harness="ci", rng=None)
    assert (d.profile, d.unsure) == ("local", False)
    assert not any(r.startswith("unsure") for r in d.reasons)


def test_an_unsure_call_routes_as_the_more_demanding_of_the_two_leaders(policy: RoutingPolicy) -> None:
    assert policy.unsure.threshold == 0.6 and policy.unsure.route_as == "more_demanding"
    d = decide(policy, close_call("local", "repository", 0.45, 0.4), tools=(), n_files=1, harness="ci", rng=None)
    assert (d.profile, d.unsure) == ("repository", True)
    sure = decide(policy, close_call("local", "repository", 0.65, 0.3), tools=(), n_files=1, harness="ci", rng=None)
    assert d.tier_scores["small"] < sure.tier_scores["small"]  # read as repository: less likely to succeed small
    assert d.plan.temperature == policy.temperature["repository"]
    assert d.plan.output_schema["name"] == policy.output_schemas["repository"].name
    assert d.reasons[0].startswith("profile local (p=0.45)")
    assert "unsure: top profile p=0.45 < 0.60; routing as repository" in d.reasons
    # The more demanding one leads: it stays.
    d = decide(policy, close_call("agentic", "mechanical", 0.45, 0.4), tools=(), n_files=1, harness="ci", rng=None)
    assert (d.profile, d.unsure) == ("agentic", True)


def test_an_unsure_call_can_route_as_a_named_profile(policy_dict: dict[str, Any]) -> None:
    policy_dict["unsure"] = {"threshold": 0.6, "route_as": "agentic"}
    policy = parse_policy(policy_dict)
    d = decide(policy, close_call("agentic", "mechanical", 0.55, 0.4), tools=(), n_files=0, harness="ci", rng=None)
    assert (d.profile, d.unsure) == ("agentic", True)
    d = decide(policy, close_call("mechanical", "local", 0.55, 0.4), tools=(), n_files=0, harness="ci", rng=None)
    assert (d.profile, d.unsure) == ("agentic", True)
    # The tier scores read agentic as leading with 0.55 (mechanical keeps agentic's 0.025): small
    # 0.40 and medium 0.66 against agentic's threshold 0.60, so medium, where the classifier's own
    # reading (mechanical first) would have sent it to small.
    assert d.tier_scores["small"] == pytest.approx(0.55 * 0.15 + 0.4 * 0.7 + 0.025 * 0.93 + 0.025 * 0.4, abs=1e-6)
    assert d.tier == "medium"


def test_routed_profiles_vectorised_match_the_rule(policy_dict: dict[str, Any]) -> None:
    policy = parse_policy(policy_dict)
    ps = np.array([[0.9, 0.05, 0.03, 0.02],   # sure: mechanical
                   [0.4, 0.45, 0.1, 0.05],    # unsure, local vs mechanical: local is more demanding
                   [0.3, 0.0, 0.3, 0.4],      # unsure, agentic leads: stays
                   [0.25, 0.25, 0.25, 0.25]])  # a four-way tie: top is mechanical (first), second local
    swapped, idx, unsure = routed_profiles(ps, policy)
    assert idx.tolist() == [0, 1, 3, 1]
    assert unsure.tolist() == [False, True, True, True]
    # Unsure rows read as the routed profile leading: its probability and the top one's swap.
    assert swapped.tolist() == [[0.9, 0.05, 0.03, 0.02], [0.4, 0.45, 0.1, 0.05], [0.3, 0.0, 0.3, 0.4],
                                [0.25, 0.25, 0.25, 0.25]]


@pytest.mark.parametrize(("unsure", "field"), [
    ({"threshold": 1.5}, "unsure.threshold"), ({"route_as": "frontier"}, "unsure.route_as"),
])
def test_a_bad_unsure_rule_names_its_field(policy_dict: dict[str, Any], unsure: dict[str, Any], field: str) -> None:
    policy_dict["unsure"] = unsure
    with pytest.raises(PolicyInvalid) as exc:
        parse_policy(policy_dict)
    assert exc.value.field.startswith(field)
