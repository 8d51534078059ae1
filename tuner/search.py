"""Off-policy evaluation of candidate policies and the Optuna search over thresholds.

A candidate's choice for every logged decision comes from the service's own decision functions
(``tierwise.tuner.counterfactual.replay_greedy`` → ``tierwise.service.policy.decide.greedy_indices`` and
``escalation_chains``), and its value from ``tierwise.tuner.ope.estimate_policy``. What OPE matches on is
the whole action: the first tier *and* the escalation chain behind it, since both decide what an
episode costs and whether it resolves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.policy.decide import escalation_chains, greedy_indices
from tierwise.service.policy.model import Escalation, RoutingPolicy
from tierwise.tuner.counterfactual import ReplayBase, action_codes, replay_base, row_thresholds, tier_codes
from tierwise.tuner.dataset import LoggedData
from tierwise.tuner.ope import PolicyEstimate, estimate_policy

THRESHOLD_LOW, THRESHOLD_HIGH = 0.05, 0.99


def _action_means(logged: np.ndarray[Any, Any], target: np.ndarray[Any, Any],
                  values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per-action mean outcome at the logged and the target action (the global mean for an
    action never logged): ``tierwise.tuner.ope``'s default outcome model, computed with ``bincount``
    on the small non-negative action codes instead of a sort, because it runs every trial."""
    size = int(max(logged.max(initial=0), target.max(initial=0))) + 2
    lc, tc = logged + 1, target + 1  # -1 (no action) becomes bucket 0
    counts = np.bincount(lc, minlength=size)
    q = np.full(size, values.mean() if values.shape[0] else 0.0)
    np.divide(np.bincount(lc, weights=values, minlength=size), counts, out=q, where=counts > 0)
    return q[lc], q[tc]


@dataclass
class Evaluator:
    """OPE of policies on one slice of the log, with everything threshold-independent cached."""

    data: LoggedData
    logged_codes: np.ndarray[Any, np.dtype[np.int64]]
    resolved: np.ndarray[Any, np.dtype[np.float64]]
    cost: np.ndarray[Any, np.dtype[np.float64]]
    _tables: dict[tuple[Any, ...], np.ndarray[Any, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, data: LoggedData, ladder: Sequence[str]) -> Evaluator:
        tier = tier_codes(data.tier, ladder)
        chain = np.column_stack([tier_codes(data.chain[:, s], ladder) for s in range(data.chain.shape[1])]) \
            if len(data) else np.zeros((0, 2), dtype=np.int64)
        return cls(data, action_codes(tier, chain), data.resolved.astype(np.float64), data.cost)

    def _codes_by_tier(self, policy: RoutingPolicy, base: ReplayBase) -> np.ndarray[Any, Any]:
        """[n, T]: the action code if the row's first tier were column j. The chain after a tier
        depends only on the row's eligibility and the escalation settings, so it is computed once
        per escalation ladder with ``escalation_chains``, not once per trial."""
        key = (id(base), tuple(policy.escalation.ladder or ()), policy.escalation.max_steps)
        table = self._tables.get(key)
        if table is None:
            n, width = len(self.data), self.data.chain.shape[1]
            cols = []
            for j in range(len(policy.ladder)):
                idx = np.full(n, j, dtype=np.int64)
                chain = escalation_chains(policy, idx, base.eligible)
                if chain.shape[1] < width:
                    chain = np.column_stack([chain, np.full((n, width - chain.shape[1]), -1)])
                cols.append(action_codes(idx, chain[:, :width]))
            table = np.column_stack(cols) if cols else np.zeros((n, 0), dtype=np.int64)
            self._tables[key] = table
        return table

    def target_codes(self, policy: RoutingPolicy, base: ReplayBase | None = None) -> np.ndarray[Any, Any]:
        """The candidate's action per row: greedy tier from ``greedy_indices`` (via
        ``replay_greedy``), chain from ``escalation_chains``, both the service's own functions."""
        b = base if base is not None else replay_base(policy, self.data)
        idx = greedy_indices(b.scores, b.eligible, row_thresholds(policy, self.data))
        table = self._codes_by_tier(policy, b)
        out: np.ndarray[Any, Any] = np.where(idx >= 0, table[np.arange(idx.shape[0]), np.maximum(idx, 0)], -1)
        return out

    def estimate(self, policy: RoutingPolicy, *, base: ReplayBase | None = None, n_boot: int = 0,
                 seed: int = 0) -> PolicyEstimate:
        target = self.target_codes(policy, base)
        qr_l, qr_t = _action_means(self.logged_codes, target, self.resolved)
        qc_l, qc_t = _action_means(self.logged_codes, target, self.cost)
        return estimate_policy(self.logged_codes, self.data.propensity, target, self.resolved, self.cost,
                               q_resolved_logged=qr_l, q_resolved_target=qr_t, q_cost_logged=qc_l,
                               q_cost_target=qc_t, n_boot=n_boot, seed=seed)


def headline(est: PolicyEstimate) -> dict[str, float]:
    """The numbers the gate and the objective read (SNIPS), plus DR for the record."""
    return {
        "resolution": est.resolution_snips.value,
        "resolution_low": est.resolution_snips.low,
        "resolution_high": est.resolution_snips.high,
        "cost_per_task": est.cost_snips.value,
        "cost_per_resolved": est.cost_per_resolved_snips.value,
        "cost_per_resolved_low": est.cost_per_resolved_snips.low,
        "cost_per_resolved_high": est.cost_per_resolved_snips.high,
        "resolution_dr": est.resolution_dr.value,
        "cost_per_resolved_dr": est.cost_per_resolved_dr.value,
        "match_rate": est.match_rate,
        "ess": est.ess,
        "n": float(est.n),
    }


@dataclass
class TrialRecord:
    number: int
    resolution: float
    cost_per_resolved: float
    feasible: bool
    params: dict[str, Any] = field(default_factory=dict)


def with_params(policy: RoutingPolicy, params: dict[str, Any], harnesses: Sequence[str],
                profiles: Sequence[str]) -> RoutingPolicy:
    """``policy`` with the thresholds (``thr:<harness>:<profile>``) and escalation ladder
    (``esc:<tier>`` booleans for the inner rungs) from ``params``; the rest is unchanged."""
    thresholds = {h: dict(policy.thresholds[h]) for h in policy.thresholds}
    for h in harnesses:
        for p in profiles:
            key = f"thr:{h}:{p}"
            if key in params:
                thresholds[h][p] = round(float(params[key]), 4)  # type: ignore[index]
    update: dict[str, Any] = {"thresholds": thresholds}
    inner = policy.ladder[1:-1]
    if len(policy.ladder) > 3 and any(f"esc:{t}" in params for t in inner):
        rungs = [policy.ladder[0], *(t for t in inner if params.get(f"esc:{t}", True)), policy.ladder[-1]]
        update["escalation"] = Escalation(max_steps=policy.escalation.max_steps, ladder=rungs,
                                          scripts=policy.escalation.scripts)
    return policy.model_copy(update=update)


def champion_params(policy: RoutingPolicy, harnesses: Sequence[str], profiles: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h in harnesses:
        for p in profiles:
            value = policy.thresholds[h][p]  # type: ignore[index]
            out[f"thr:{h}:{p}"] = min(max(value, THRESHOLD_LOW), THRESHOLD_HIGH)
    if len(policy.ladder) > 3:
        climb = policy.escalation.ladder if policy.escalation.ladder is not None else policy.ladder
        for rung in policy.ladder[1:-1]:
            out[f"esc:{rung}"] = rung in climb
    return out


@dataclass(frozen=True)
class StudyResult:
    best_params: dict[str, Any]
    best_number: int
    trials: list[TrialRecord]
    harnesses: Sequence[str]
    profiles: Sequence[str]


# Minimum effective sample size of a candidate, as a share of the rows it is judged on.
MIN_ESS_SHARE = 0.10


def run_study(template: RoutingPolicy, evaluator: Evaluator, *, trials: int, floor: float, seed: int,
              progress: bool = True, on_trial: Callable[[TrialRecord], None] | None = None,
              storage: str | None = None, study_name: str = "tierwise-retune") -> StudyResult:
    """TPE over thresholds (and the escalation ladder when there are more than 3 tiers):
    minimise SNIPS cost per resolved subject to SNIPS resolution >= ``floor``. The template's own
    parameters are enqueued as trial 0, so the study never does worse than where it starts.

    ``storage`` (an SQLAlchemy URL, e.g. PostgreSQL) puts the study in a database, so several
    machines running the same retune add trials to one study (``load_if_exists``); the best
    parameters are still chosen among this process's trials, whose constraints it evaluated."""
    import optuna
    from tqdm.auto import tqdm

    from tierwise.service.urls import sqlalchemy_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = evaluator.data
    harnesses = [h for h in HARNESSES if bool(np.any(data.harness == h))]
    profiles = [p for p in PROFILES if bool(np.any(data.profile == p))]
    base = replay_base(template, data)
    records: list[TrialRecord] = []

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        for h in harnesses:
            for p in profiles:
                params[f"thr:{h}:{p}"] = trial.suggest_float(f"thr:{h}:{p}", THRESHOLD_LOW, THRESHOLD_HIGH)
        if len(template.ladder) > 3:
            for t in template.ladder[1:-1]:
                params[f"esc:{t}"] = trial.suggest_categorical(f"esc:{t}", [True, False])
        est = evaluator.estimate(with_params(template, params, harnesses, profiles), base=base)
        res, cpr = est.resolution_snips.value, est.cost_per_resolved_snips.value
        ok = math.isfinite(res) and math.isfinite(cpr)
        # A candidate that departs from the logging policy where almost nothing was explored is
        # judged on a handful of heavily weighted rows; such estimates are noise, not evidence.
        support = est.ess / max(1, est.n) if math.isfinite(est.ess) else 0.0
        trial.set_constraint("resolution_floor", (floor - res) if ok else 1.0)
        trial.set_constraint("support", MIN_ESS_SHARE - support)
        rec = TrialRecord(trial.number, res, cpr, ok and res >= floor and support >= MIN_ESS_SHARE, params)
        records.append(rec)
        if on_trial is not None:
            on_trial(rec)
        return cpr if ok else 1e9

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler, study_name=study_name,
                                storage=sqlalchemy_url(storage) if storage else None, load_if_exists=True)
    study.enqueue_trial(champion_params(template, harnesses, profiles))
    with tqdm(total=trials, desc="retune trials", disable=not progress, leave=False) as bar:
        def tick(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            bar.update(1)
            if records:
                bar.set_postfix(best_cpr=f"{min(r.cost_per_resolved for r in records if r.feasible) :.4f}"
                                if any(r.feasible for r in records) else "n/a")

        study.optimize(objective, n_trials=trials, callbacks=[tick])
    feasible = [r for r in records if r.feasible]
    best = min(feasible, key=lambda r: (r.cost_per_resolved, r.number)) if feasible else records[0]
    return StudyResult(best.params, best.number, records, harnesses, profiles)
