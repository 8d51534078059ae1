"""Turn scores into a decision under a policy. Pure, so the tuner replays it exactly.

Rule: the profile is the classifier's top profile, unless its probability is under the policy's
``unsure.threshold``: then the decision says so and routes by the more demanding of the two
leading profiles (or the profile the policy names). Among eligible tiers (the model can drive
every capability the task's tools need, and its input budget holds
the task), take the cheapest whose success score clears the harness/profile threshold; if none
clears it, the eligible tier with the best score (ties: the higher tier). With probability
``exploration[harness]``, pick uniformly among the other eligible tiers instead (by default only
the greedy tier's eligible neighbours on the ladder: ``explore_matrix``), and log the
propensity either way.

The greedy choice, eligibility and escalation chain are vectorised numpy functions over many
rows (``eligible_matrix``, ``greedy_indices``, ``escalation_chains``); ``decide`` calls them on
its single row and the tuner calls the very same functions on a whole log, so an offline
replay cannot drift from what the service does. Tier columns are in ``policy.ladder`` order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tierwise.service.classify import CAPABILITIES, PROFILES
from tierwise.service.classify.model import Scores
from tierwise.service.classify.success import tier_scores
from tierwise.service.classify.tools import vocabulary
from tierwise.service.errors import NoEligibleTier
from tierwise.service.policy.model import RoutingPolicy


@dataclass(frozen=True)
class TierPlan:
    """The executable part of a decision for one tier: what the harness needs to call a model."""

    tier: str
    model: str
    temperature: float
    max_input_tokens: int
    max_output_tokens: int
    output_schema: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    policy_version: str
    harness: str
    profile: str
    tier: str
    greedy_tier: str
    explored: bool
    propensity: float
    tier_scores: dict[str, float]
    eligible: tuple[str, ...]
    escalation_chain: tuple[str, ...]
    plan: TierPlan
    reasons: tuple[str, ...] = field(default_factory=tuple)
    unsure: bool = False


def context_tokens(policy: RoutingPolicy, prompt_tokens: Any, n_files: Any) -> Any:
    """Input tokens a task needs: its prompt plus ``tokens_per_file`` per file in scope. Works on
    ints (one decision) and on numpy arrays (a whole log), so the rule is written once."""
    return prompt_tokens + policy.tokens_per_file * n_files


def _can_drive(policy: RoutingPolicy, tier: str) -> frozenset[str]:
    caps = policy.tiers[tier].capabilities
    return frozenset(caps.tools) if caps.tool_use else frozenset()


def eligibility(policy: RoutingPolicy, tools: Sequence[str], needed_tokens: int) -> tuple[list[str], list[str]]:
    """Eligible tiers in ladder order, and one reason per excluded tier."""
    needs, _ = vocabulary().resolve(tools)
    eligible: list[str] = []
    excluded: list[str] = []
    for name in policy.ladder:
        tier = policy.tiers[name]
        missing = sorted(needs - _can_drive(policy, name), key=CAPABILITIES.index)
        if missing:
            excluded.append(f"{name} excluded: {tier.model} lacks capability {', '.join(missing)}")
        elif needed_tokens > tier.max_input_tokens:
            excluded.append(f"{name} excluded: task needs ~{needed_tokens} input tokens, "
                            f"budget is {tier.max_input_tokens}")
        else:
            eligible.append(name)
    return eligible, excluded


BoolMatrix = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FloatMatrix = NDArray[np.float64]


def tools_matrix(tool_lists: Sequence[Sequence[str]]) -> BoolMatrix:
    """[n, len(CAPABILITIES)]: which capabilities each task's tools need. A tool name the
    vocabulary does not know needs nothing: it is reported, never a reason to refuse."""
    out = np.zeros((len(tool_lists), len(CAPABILITIES)), dtype=bool)
    vocab = vocabulary()
    for r, tools in enumerate(tool_lists):
        caps, _ = vocab.resolve(tools)
        for c in caps:
            out[r, CAPABILITIES.index(c)] = True
    return out


def routed_profiles(profile_scores: FloatMatrix, policy: RoutingPolicy) -> tuple[FloatMatrix, IntArray, BoolMatrix]:
    """The profile scores the policy routes by [n, P], the routed profile index [n] (``PROFILES``
    order) and the "unsure" flags [n].

    The routed profile is the top one, or, where its probability is under
    ``policy.unsure.threshold``, the more demanding of the two leading profiles (``PROFILES`` runs
    from least to most demanding) or the profile the policy names. On an unsure row the top and
    the routed profile swap probabilities, so the tier scores, the threshold, the temperature and
    the schema all read the task as the routed profile leading. Ties go to the earlier profile,
    as ``Scores.profile`` does."""
    ps = np.asarray(profile_scores, dtype=np.float64)
    rows = np.arange(ps.shape[0])
    top = np.argmax(ps, axis=1)
    unsure: BoolMatrix = ps[rows, top] < policy.unsure.threshold
    if policy.unsure.route_as == "more_demanding":
        masked = ps.copy()
        masked[rows, top] = -np.inf
        alt = np.maximum(top, np.argmax(masked, axis=1))
    else:
        alt = np.full_like(top, PROFILES.index(policy.unsure.route_as))
    routed: IntArray = np.where(unsure, alt, top).astype(np.int64)
    swapped: FloatMatrix = ps.copy()
    swapped[rows, routed] = ps[rows, top]
    swapped[rows, top] = ps[rows, routed]
    return swapped, routed, unsure


def routed_success_features(x: FloatMatrix, policy: RoutingPolicy) -> FloatMatrix:
    """``SUCCESS_FEATURES`` rows [n, F] with their profile columns as the policy routes by them."""
    out: FloatMatrix = np.array(x, dtype=np.float64, copy=True)
    out[:, :len(PROFILES)] = routed_profiles(out[:, :len(PROFILES)], policy)[0]
    return out


def eligible_matrix(policy: RoutingPolicy, needs: BoolMatrix, needed_tokens: NDArray[Any]) -> BoolMatrix:
    """[n, T] in ladder order: the tier's model can drive every needed capability and its input budget holds
    the task (``needed_tokens`` = prompt tokens + tokens_per_file · files)."""
    has = np.array([[c in _can_drive(policy, name) for c in CAPABILITIES] for name in policy.ladder], dtype=bool)
    budget = np.array([policy.tiers[name].max_input_tokens for name in policy.ladder], dtype=np.int64)
    lacks = (np.asarray(needs, dtype=bool)[:, None, :] & ~has[None, :, :]).any(axis=2)
    over = np.asarray(needed_tokens, dtype=np.int64)[:, None] > budget[None, :]
    out: BoolMatrix = ~lacks & ~over
    return out


def greedy_indices(scores: NDArray[np.float64], eligible: BoolMatrix, thresholds: NDArray[np.float64]) -> IntArray:
    """The greedy tier (column index) per row; -1 where no tier is eligible.

    The first eligible column whose score is >= the row's threshold; if none clears it, the
    eligible column with the best score, ties going to the later (bigger) column.
    """
    s = np.asarray(scores, dtype=np.float64)
    el = np.asarray(eligible, dtype=bool)
    thr = np.asarray(thresholds, dtype=np.float64)
    n, k = el.shape
    # Column by column (few tiers, many rows): vector ops over rows, no per-row Python.
    first = np.full(n, -1, dtype=np.int64)
    for j in range(k - 1, -1, -1):  # walking down, so the cheapest clearing column wins
        first = np.where(el[:, j] & (s[:, j] >= thr), j, first)
    best = np.full(n, -np.inf)
    fallback = np.full(n, -1, dtype=np.int64)
    for j in range(k):  # >= so that a tie goes to the later (bigger) column
        better = el[:, j] & (s[:, j] >= best)
        best = np.where(better, s[:, j], best)
        fallback = np.where(better, j, fallback)
    out: IntArray = np.where(first >= 0, first, fallback)
    return out


def escalation_chains(policy: RoutingPolicy, tier_idx: IntArray, eligible: BoolMatrix) -> IntArray:
    """[n, max_steps] column indices of the escalation chain after ``tier_idx``, -1 padded: the
    eligible tiers above the first tier that the escalation ladder allows, cheapest first."""
    ladder = policy.ladder
    climb_names = policy.escalation.ladder if policy.escalation.ladder is not None else ladder
    climb = np.array([t in climb_names for t in ladder], dtype=bool)
    el = np.asarray(eligible, dtype=bool)
    ti = np.asarray(tier_idx, dtype=np.int64)
    above = np.arange(len(ladder))[None, :] > ti[:, None]
    cand = el & above & climb[None, :] & (ti[:, None] >= 0)
    pos = np.cumsum(cand, axis=1)
    steps = policy.escalation.max_steps
    out = np.full((el.shape[0], steps), -1, dtype=np.int64)
    for s in range(steps):
        hit = cand & (pos == s + 1)
        out[:, s] = np.where(hit.any(axis=1), np.argmax(hit, axis=1), -1)
    return out


def greedy_propensities(eligible: BoolMatrix, rates: NDArray[np.float64]) -> NDArray[np.float64]:
    """Probability of logging the greedy tier: 1 - rate when there is another eligible tier."""
    r = np.asarray(rates, dtype=np.float64)
    others = np.asarray(eligible, dtype=bool).sum(axis=1) > 1
    out: NDArray[np.float64] = np.where(others & (r > 0), 1.0 - r, 1.0)
    return out


def plan_for(policy: RoutingPolicy, tier: str, profile: str) -> TierPlan:
    t = policy.tiers[tier]
    schema = policy.output_schemas[profile]  # type: ignore[index]
    return TierPlan(tier=tier, model=t.model, temperature=policy.temperature[profile],  # type: ignore[index]
                    max_input_tokens=t.max_input_tokens, max_output_tokens=t.max_output_tokens,
                    output_schema={"name": schema.name, "schema": schema.json_schema})


def explore_matrix(policy: RoutingPolicy, eligible: BoolMatrix, greedy: NDArray[np.int64]) -> BoolMatrix:
    """[n, T]: the tiers an exploratory pick may take instead of the greedy one (ladder columns).

    ``policy.explore == "any"``: every other eligible tier. ``"adjacent"``: the nearest eligible
    tier below and the nearest above the greedy one."""
    el = np.asarray(eligible, dtype=bool)
    t = el.shape[1]
    g = np.asarray(greedy, dtype=np.int64)[:, None]
    cols = np.arange(t)[None, :]
    others: BoolMatrix = el & (cols != g) & (g >= 0)
    if policy.explore == "any":
        return others
    below = others & (cols < g)
    above = others & (cols > g)
    nearest_below = np.where(below.any(axis=1), t - 1 - np.argmax(below[:, ::-1], axis=1), -1)
    nearest_above = np.where(above.any(axis=1), np.argmax(above, axis=1), -1)
    out: BoolMatrix = (cols == nearest_below[:, None]) | (cols == nearest_above[:, None])
    return out & others


def decide(policy: RoutingPolicy, scores: Scores, *, tools: Sequence[str], n_files: int, harness: str,
           rng: random.Random | None) -> Decision:
    """The one decision function; ``rng=None`` disables exploration (replay, evaluation)."""
    ps = np.array([[scores.profile_scores[p] for p in PROFILES]], dtype=np.float64)
    as_routed, routed, unsure_flags = routed_profiles(ps, policy)
    profile, unsure = PROFILES[int(routed[0])], bool(unsure_flags[0])
    top = scores.profile
    needed = int(context_tokens(policy, scores.prompt_tokens, n_files))
    _, excluded = eligibility(policy, tools, needed)
    mask = eligible_matrix(policy, tools_matrix([tools]), np.array([needed], dtype=np.int64))
    eligible = [name for name, ok in zip(policy.ladder, mask[0], strict=True) if ok]
    if not eligible:
        if any("lacks capability" in e for e in excluded):
            field_name = "tools"
        else:  # too big: blame the files when the prompt alone would have fitted some tier
            fits_alone = any(scores.prompt_tokens <= policy.tiers[t].max_input_tokens for t in policy.ladder)
            field_name = "files" if n_files > 0 and fits_alone else "prompt"
        raise NoEligibleTier("no tier can take this task: " + "; ".join(excluded), field=field_name)
    routed_scores = replace(scores, profile_scores={p: float(v) for p, v in zip(PROFILES, as_routed[0], strict=True)})
    every = tier_scores(routed_scores, policy.ladder, policy.success_priors,
                        policy.success_model.to_model() if policy.success_model else None)
    ts = {name: every[name] for name in eligible}
    threshold = policy.thresholds[harness][profile]  # type: ignore[index]
    row = np.array([[every[name] for name in policy.ladder]], dtype=np.float64)
    greedy = policy.ladder[int(greedy_indices(row, mask, np.array([threshold]))[0])]
    if ts[greedy] >= threshold:
        why = f"{greedy}: success {ts[greedy]:.2f} ≥ threshold {threshold:.2f} ({harness}/{profile})"
    else:
        why = f"no tier clears threshold {threshold:.2f} ({harness}/{profile}); {greedy} scores best"
    rate = policy.exploration[harness]  # type: ignore[index]
    explorable = explore_matrix(policy, mask, np.array([policy.rank(greedy)], dtype=np.int64))[0]
    others = [policy.ladder[j] for j in np.nonzero(explorable)[0]]
    tier, explored, propensity = greedy, False, 1.0
    if others and rate > 0:
        propensity = 1.0 - rate
        if rng is not None and rng.random() < rate:
            tier, explored, propensity = rng.choice(others), True, rate / len(others)
    steps = escalation_chains(policy, np.array([policy.rank(tier)], dtype=np.int64), mask)[0]
    chain = tuple(policy.ladder[int(j)] for j in steps if j >= 0)
    reasons = [f"profile {top} (p={scores.profile_scores[top]:.2f}), complexity {scores.complexity:.2f}"]
    if unsure:
        reasons.append(f"unsure: top profile p={scores.profile_scores[top]:.2f} < {policy.unsure.threshold:.2f}; "
                       f"routing as {profile}")
    _, unknown = vocabulary().resolve(tools)
    if unknown:
        reasons.append(f"unknown tools (no capability assumed): {', '.join(unknown[:8])}"
                       + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""))
    reasons += [f"{p} cues: {', '.join(words[:4])}" for p, words in scores.keywords.items()]
    reasons.append(why)
    reasons += excluded
    if explored:
        reasons.append(f"explored: picked {tier} instead of {greedy} (p={propensity:.3f})")
    return Decision(
        policy_version=policy.version, harness=harness, profile=profile, tier=tier, greedy_tier=greedy,
        explored=explored, propensity=round(propensity, 6), tier_scores=ts, eligible=tuple(eligible),
        escalation_chain=chain, plan=plan_for(policy, tier, profile), reasons=tuple(reasons), unsure=unsure,
    )
