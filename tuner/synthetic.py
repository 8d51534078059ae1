"""Synthetic logged telemetry with a known truth, for tests and ``bench/retune_time.py``.

Decisions are made by the service's own vectorised decision functions under a logging policy
(greedy choice, exploration with logged propensities, escalation chains), and outcomes follow
``tierwise.service.outcomes``' rules: a failed attempt escalates along the chain (or to the override
tier) at most ``max_steps`` times, then the task goes to the human queue. Rows are built as the
journal stores them, so they can be written with ``Journal.insert_many``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.classify.success import SUCCESS_FEATURES, tier_score_matrix
from tierwise.service.policy.decide import (
    context_tokens,
    eligible_matrix,
    escalation_chains,
    explore_matrix,
    greedy_indices,
    greedy_propensities,
    routed_profiles,
    tools_matrix,
)
from tierwise.service.policy.escalation import next_step
from tierwise.service.policy.model import RoutingPolicy
from tierwise.tuner.counterfactual import threshold_table

TOOL_SETS: tuple[tuple[str, ...], ...] = (
    (), ("read_file", "edit_file"), ("read_file", "edit_file", "run_tests"),
    ("read_file", "search_code", "shell"), ("db_query",), ("read_file", "browser"),
)
TOOL_WEIGHTS = (0.2, 0.35, 0.3, 0.1, 0.03, 0.02)
COST_PER_TIER = {"small": 0.004, "medium": 0.05, "frontier": 0.09}
PROFILE_COST_SCALE = {"mechanical": 0.3, "local": 1.0, "repository": 3.0, "agentic": 6.0}


@dataclass(frozen=True)
class SyntheticWorld:
    """P(attempt resolves) = sigmoid(logit(success[profile][tier]) - slope · (complexity - 0.5))."""

    success: Mapping[str, Mapping[str, float]]
    slope: float = 3.0
    override_rate: float = 0.1
    mix: Mapping[str, float] = field(default_factory=lambda: {"mechanical": 0.3, "local": 0.35,
                                                               "repository": 0.2, "agentic": 0.15})
    harness_mix: Mapping[str, float] = field(default_factory=lambda: {"local": 0.0, "ci": 0.6, "prod": 0.4})

    def p_success(self, profile_idx: np.ndarray[Any, Any], complexity: np.ndarray[Any, Any],
                  ladder: list[str]) -> np.ndarray[Any, Any]:
        base = np.array([[self.success[p][t] for t in ladder] for p in PROFILES])[profile_idx]
        z = np.log(base / (1 - base)) - self.slope * (complexity[:, None] - 0.5)
        out: np.ndarray[Any, Any] = 1.0 / (1.0 + np.exp(-z))
        return out


# Small models are better than the bootstrap priors think on local/repository work, so a
# retune that learns this can route more of it to the cheap tier.
DEFAULT_WORLD = SyntheticWorld(success={
    "mechanical": {"small": 0.95, "medium": 0.97, "frontier": 0.98},
    "local": {"small": 0.88, "medium": 0.9, "frontier": 0.92},
    "repository": {"small": 0.7, "medium": 0.8, "frontier": 0.85},
    "agentic": {"small": 0.2, "medium": 0.55, "frontier": 0.7},
})


def _fmt_dict(keys: tuple[str, ...], values: np.ndarray[Any, Any]) -> list[str]:
    return ["{" + ", ".join(f'"{k}": {float(v)!r}' for k, v in zip(keys, row, strict=True)) + "}"
            for row in values]


def synthetic_batches(policy: RoutingPolicy, n: int, *, seed: int = 0, world: SyntheticWorld = DEFAULT_WORLD,
                      start_ts: float = 1.7e9, span_s: float = 7 * 86400.0, batch: int = 50_000,
                      id_prefix: str = "syn") -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Yield (decision rows, attempt rows) in batches, ``n`` decisions in all."""
    rng = np.random.default_rng(seed)
    ladder = list(policy.ladder)
    model = policy.success_model.to_model() if policy.success_model else None
    thr_table = threshold_table(policy)
    rates = np.array([policy.exploration[h] for h in HARNESSES])
    tool_needs = tools_matrix(TOOL_SETS)
    tool_json = ["[" + ", ".join(f'"{t}"' for t in ts) + "]" for ts in TOOL_SETS]
    done = 0
    while done < n:
        m = min(batch, n - done)
        true_p = rng.choice(len(PROFILES), size=m, p=np.array([world.mix[p] for p in PROFILES]))
        alpha = np.full((m, len(PROFILES)), 0.6)
        alpha[np.arange(m), true_p] = 6.0
        ps = np.round(rng.gamma(alpha), 12)
        ps = np.round(ps / ps.sum(axis=1, keepdims=True), 6)
        ps_routed, profile_idx, _ = routed_profiles(ps, policy)
        complexity = np.round(np.clip(rng.beta(2, 2, m) * 0.6 + 0.1 * true_p + rng.normal(0, 0.05, m), 0, 1), 6)
        prompt_tokens = np.maximum(5, rng.lognormal(5.5 + 0.4 * true_p, 0.8)).astype(np.int64)
        n_files = rng.poisson(1 + 3 * true_p)
        diff = rng.poisson(10 + 40 * true_p)
        modules = rng.poisson(0.5 + true_p)
        tool_idx = rng.choice(len(TOOL_SETS), size=m, p=np.array(TOOL_WEIGHTS))
        n_tools = np.array([len(TOOL_SETS[i]) for i in tool_idx], dtype=np.float64)
        feats = np.column_stack([np.log1p(prompt_tokens), np.log1p(n_files), np.log1p(diff), np.log1p(modules),
                                 n_tools])
        x = np.column_stack([ps, complexity, feats])
        assert x.shape[1] == len(SUCCESS_FEATURES)
        harness_idx = rng.choice(len(HARNESSES), size=m, p=np.array([world.harness_mix[h] for h in HARNESSES]))
        needed = context_tokens(policy, prompt_tokens, n_files)
        eligible = eligible_matrix(policy, tool_needs[tool_idx], needed)
        keep = eligible.any(axis=1)
        scores = tier_score_matrix(np.column_stack([ps_routed, complexity, feats]), ladder, policy.success_priors,
                                   model)
        greedy = greedy_indices(scores, eligible, thr_table[harness_idx, profile_idx])
        # Exploration exactly as decide(): with prob. rate, uniform over explore_matrix's tiers.
        rate = rates[harness_idx]
        others = explore_matrix(policy, eligible, greedy)
        n_others = others.sum(axis=1)
        explore = (n_others > 0) & (rate > 0) & (rng.random(m) < rate)
        pick = np.floor(rng.random(m) * np.maximum(n_others, 1)).astype(np.int64)
        order = np.cumsum(others, axis=1) - 1
        explored_tier = np.argmax(others & (order == pick[:, None]), axis=1)
        tier = np.where(explore, explored_tier, greedy)
        propensity = np.where(explore, rate / np.maximum(n_others, 1), greedy_propensities(eligible, rate))
        chains = escalation_chains(policy, tier, eligible)
        p_true = world.p_success(profile_idx, complexity, ladder)
        u = rng.random(m)  # common random number across attempts: a harder task is hard for all tiers
        u_override = rng.random((m, 3))
        cost_noise = rng.lognormal(-0.045, 0.3, (m, 3))
        ts = start_ts + np.sort(rng.random(m)) * span_s if span_s > 0 else np.full(m, start_ts)
        ps_json = _fmt_dict(PROFILES, ps)
        feat_json = _fmt_dict(SUCCESS_FEATURES[len(PROFILES) + 1:], feats)
        decisions: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for i in np.nonzero(keep)[0]:
            did = f"{id_prefix}-{seed}-{done + int(i):08d}"
            t_first = ladder[int(tier[i])]
            chain = [ladder[int(c)] for c in chains[i] if c >= 0]
            profile = PROFILES[int(profile_idx[i])]
            decisions.append({
                "decision_id": did, "ts": float(ts[i]), "policy_version": policy.version,
                "harness": HARNESSES[int(harness_idx[i])], "prompt_tokens": int(prompt_tokens[i]),
                "n_files": int(n_files[i]), "tools": tool_json[int(tool_idx[i])], "diff_lines": int(diff[i]),
                "modules_touched": int(modules[i]), "features": feat_json[i], "profile": profile,
                "profile_scores": ps_json[i], "complexity": float(complexity[i]),
                "tier": t_first, "tier_rank": int(tier[i]), "ladder_size": len(ladder),
                "greedy_tier": ladder[int(greedy[i])], "model": policy.tiers[t_first].model,
                "explored": int(explore[i]), "propensity": round(float(propensity[i]), 6),
                "escalation_chain": "[" + ", ".join(f'"{c}"' for c in chain) + "]",
            })
            tried: list[str] = []
            current = t_first
            for k in range(policy.escalation.max_steps + 1):
                j = ladder.index(current)
                ok = bool(u[i] < p_true[i, j])
                bigger = ladder[j + 1:]
                overridden = (not ok) and bool(bigger) and bool(u_override[i, k] < world.override_rate)
                over_to = bigger[0] if overridden else None
                tried.append(current)
                cost = COST_PER_TIER.get(current, 0.05) * PROFILE_COST_SCALE[profile] * float(cost_noise[i, k])
                action, nxt = ("done", None) if ok else next_step(
                    policy, chain=chain, tier=current, attempt=k, tried=tried, overridden_to=over_to,
                    profile=profile)
                attempts.append({
                    "decision_id": did, "attempt": k, "ts": float(ts[i]) + 60.0 * (k + 1), "tier": current,
                    "model": policy.tiers[current].model, "resolved": int(ok), "claimed_resolved": int(ok),
                    "cost_usd": round(cost, 8), "failure": None if ok else ("tests_failed" if not over_to else None),
                    "overridden_to": over_to, "next_action": action,
                    "next_tier": nxt if action == "escalate" else None, "request_hash": did + str(k),
                    "response": "{}",
                })
                if action != "escalate" or nxt is None:
                    break
                current = nxt
        done += m
        yield decisions, attempts


def write_synthetic(journal: Any, policy: RoutingPolicy, n: int, **kwargs: Any) -> tuple[int, int]:
    """Write ``n`` synthetic decisions (and their attempts) into a journal; returns row counts."""
    nd = na = 0
    for decisions, attempts in synthetic_batches(policy, n, **kwargs):
        nd += journal.insert_many("decisions", decisions)
        na += journal.insert_many("attempts", attempts)
    return nd, na

