"""OPE tests against a synthetic log whose true target-policy value is known exactly.

Setup: x ~ U(0, 1) is task difficulty. Tier a solves a task with probability
sigmoid(K (H[a] - x)) (bigger tiers cope with harder tasks) and costs
COST[a] (1 + x) on average. The logging policy prefers the small tier on easy tasks
and the large tier on hard ones (70/20/10, mirrored); the candidate is a cheaper
threshold policy. Both the sigmoid and the cost have closed-form integrals, so the
candidate's true values are exact, and the naive log mean is far from them.
"""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.tuner.ope import (
    Estimate,
    PolicyEstimate,
    doubly_robust,
    estimate_policy,
    ips_weights,
    snips,
)

TIERS = np.array(["small", "medium", "large"])
H = np.array([0.40, 0.65, 0.90])  # difficulty at which each tier succeeds half the time
K = 15.0
COST = np.array([0.02, 0.10, 0.50])
LOGGING_EASY = np.array([0.7, 0.2, 0.1])  # for x < 0.5; mirrored for x >= 0.5
CUTS = np.array([0.5, 0.8])  # candidate: small below 0.5, medium below 0.8, else large
SEGMENTS = [(0.0, 0.5, 0), (0.5, 0.8, 1), (0.8, 1.0, 2)]


def p_resolve(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-K * (H[a] - x))), dtype=np.float64)


def _sigmoid_integral(h: float, lo: float, hi: float) -> float:
    # antiderivative of sigmoid(K (h - x)) is -log(1 + exp(K (h - x))) / K
    return float(np.logaddexp(0.0, K * (h - lo)) - np.logaddexp(0.0, K * (h - hi))) / K


def _cost_integral(c: float, lo: float, hi: float) -> float:
    return c * ((hi - lo) + (hi**2 - lo**2) / 2)


TRUE_RESOLUTION = sum(_sigmoid_integral(H[a], lo, hi) for lo, hi, a in SEGMENTS)
TRUE_COST = sum(_cost_integral(COST[a], lo, hi) for lo, hi, a in SEGMENTS)
TRUE_CPR = TRUE_COST / TRUE_RESOLUTION


class Log:
    def __init__(self, n: int, seed: int, cuts: np.ndarray = CUTS) -> None:
        rng = np.random.default_rng(seed)
        x = rng.random(n)
        probs = np.where(x[:, None] < 0.5, LOGGING_EASY, LOGGING_EASY[::-1])
        a = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
        t = np.digitize(x, cuts)
        self.logged = TIERS[a]
        self.target = TIERS[t]
        self.propensity = probs[np.arange(n), a]
        self.p_res_logged = p_resolve(x, a)
        self.p_res_target = p_resolve(x, t)
        self.cost_logged = COST[a] * (1 + x)
        self.cost_target = COST[t] * (1 + x)
        self.resolved = (rng.random(n) < self.p_res_logged).astype(np.float64)
        # gamma(16, 1/16) has mean 1: multiplicative noise around the expected cost
        self.cost = self.cost_logged * rng.gamma(16.0, 1 / 16, n)

    def estimate(self, perfect_q: bool = False, seed: int = 0) -> PolicyEstimate:
        q = (self.p_res_logged, self.p_res_target, self.cost_logged, self.cost_target)
        ql_r, qt_r, ql_c, qt_c = q if perfect_q else (None, None, None, None)
        return estimate_policy(
            self.logged,
            self.propensity,
            self.target,
            self.resolved,
            self.cost,
            q_resolved_logged=ql_r,
            q_resolved_target=qt_r,
            q_cost_logged=ql_c,
            q_cost_target=qt_c,
            seed=seed,
        )


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(50_000, seed=123)


@pytest.fixture(scope="module")
def est(log: Log) -> PolicyEstimate:
    return log.estimate()


def _contains(e: Estimate, truth: float) -> bool:
    return e.low <= truth <= e.high


def test_truth_is_what_the_setup_says() -> None:
    # Monte Carlo cross-check of the analytic integrals, so a typo there can't hide.
    rng = np.random.default_rng(7)
    x = rng.random(1_000_000)
    t = np.digitize(x, CUTS)
    assert np.mean(p_resolve(x, t)) == pytest.approx(TRUE_RESOLUTION, abs=1e-3)
    assert np.mean(COST[t] * (1 + x)) == pytest.approx(TRUE_COST, rel=2e-3)


def test_naive_log_mean_is_biased(log: Log) -> None:
    # The log over-represents the tier that fits each task, so it looks better and
    # dearer than the cheaper candidate really is.
    se_res = log.resolved.std() / np.sqrt(log.resolved.size)
    assert log.resolved.mean() - TRUE_RESOLUTION > 0.05
    assert log.resolved.mean() - TRUE_RESOLUTION > 20 * se_res
    assert log.cost.mean() / TRUE_COST - 1 > 0.3


def test_point_estimates_close_to_truth(est: PolicyEstimate) -> None:
    # ~4.5 standard errors, yet several times tighter than the naive bias (>0.05, >30%)
    assert est.resolution_snips.value == pytest.approx(TRUE_RESOLUTION, abs=0.015)
    assert est.resolution_dr.value == pytest.approx(TRUE_RESOLUTION, abs=0.015)
    assert est.cost_snips.value == pytest.approx(TRUE_COST, rel=0.03)
    assert est.cost_dr.value == pytest.approx(TRUE_COST, rel=0.03)
    assert est.cost_per_resolved_snips.value == pytest.approx(TRUE_CPR, rel=0.04)
    assert est.cost_per_resolved_dr.value == pytest.approx(TRUE_CPR, rel=0.04)


def test_intervals_contain_truth_and_are_tight(est: PolicyEstimate) -> None:
    # One fixed log; calibration across logs is checked by the coverage test below.
    pairs = [
        (est.resolution_snips, TRUE_RESOLUTION),
        (est.resolution_dr, TRUE_RESOLUTION),
        (est.cost_snips, TRUE_COST),
        (est.cost_dr, TRUE_COST),
        (est.cost_per_resolved_snips, TRUE_CPR),
        (est.cost_per_resolved_dr, TRUE_CPR),
    ]
    for e, truth in pairs:
        assert _contains(e, truth), (e, truth)
        assert e.low < e.value < e.high
        assert e.high - e.low < 0.1 * truth


def test_interval_coverage_is_roughly_nominal() -> None:
    # 60 independent small logs; a 95% interval should cover the truth ~57 times
    # (0.94 measured over 200 logs). Too-narrow intervals would fail this.
    covered = [
        _contains(Log(4_000, seed=s).estimate(seed=s).resolution_snips, TRUE_RESOLUTION) for s in range(60)
    ]
    assert np.mean(covered) >= 0.85


def test_matches_standalone_estimators(log: Log, est: PolicyEstimate) -> None:
    w = ips_weights(log.logged, log.propensity, log.target)
    assert est.resolution_snips.value == pytest.approx(snips(log.resolved, w), rel=1e-12)
    assert est.cost_snips.value == pytest.approx(snips(log.cost, w), rel=1e-12)
    assert est.n == log.logged.size
    assert est.match_rate == pytest.approx(np.mean(log.logged == log.target))
    assert est.ess == pytest.approx(w.sum() ** 2 / (w @ w))
    assert 0 < est.ess < est.n


def _width(e: Estimate) -> float:
    return e.high - e.low


def test_perfect_model_dr_beats_snips_on_variance(log: Log) -> None:
    perfect = log.estimate(perfect_q=True)
    assert perfect.resolution_dr.value == pytest.approx(TRUE_RESOLUTION, abs=0.015)
    assert perfect.cost_dr.value == pytest.approx(TRUE_COST, rel=0.02)
    # The gain here is ~13% of the width, about the size of one log's sampling noise
    # in a width, so average the (paired: same seed, same resamples) ratio over logs.
    ratios = []
    for seed in range(4):
        p = Log(50_000, seed=seed).estimate(perfect_q=True)
        ratios.append(
            [
                _width(p.resolution_dr) / _width(p.resolution_snips),
                _width(p.cost_dr) / _width(p.cost_snips),
                _width(p.cost_per_resolved_dr) / _width(p.cost_per_resolved_snips),
            ]
        )
    assert np.all(np.mean(ratios, axis=0) < 0.95)


def test_perfect_model_dr_gain_is_large_where_weights_are_heavy() -> None:
    # "Always small" is matched with propensity 0.1 on hard tasks, where the outcome
    # model explains most of the variation: DR should roughly halve the interval.
    log = Log(50_000, seed=5, cuts=np.array([2.0, 3.0]))
    truth = _sigmoid_integral(H[0], 0.0, 1.0)
    perfect = log.estimate(perfect_q=True)
    assert perfect.resolution_dr.value == pytest.approx(truth, abs=0.01)
    assert perfect.resolution_snips.value == pytest.approx(truth, abs=0.02)
    assert _width(perfect.resolution_dr) < 0.75 * _width(perfect.resolution_snips)


def test_deterministic_given_seed(log: Log, est: PolicyEstimate) -> None:
    assert log.estimate(seed=0) == est
    other = log.estimate(seed=1)
    assert other.resolution_snips.value == est.resolution_snips.value
    assert other.resolution_snips.low != est.resolution_snips.low


def test_to_dict_is_flat_floats(est: PolicyEstimate) -> None:
    d = est.to_dict()
    assert d["resolution_snips"] == est.resolution_snips.value
    assert d["resolution_snips_low"] == est.resolution_snips.low
    assert d["cost_per_resolved_dr_high"] == est.cost_per_resolved_dr.high
    assert d["n"] == float(est.n)
    assert len(d) == 6 * 3 + 3
    assert all(type(v) is float for v in d.values())


def test_small_hand_examples() -> None:
    w = ips_weights(np.array(["a", "b", "a"]), np.array([0.5, 0.25, 0.5]), np.array(["a", "a", "a"]))
    np.testing.assert_allclose(w, [2.0, 0.0, 2.0])
    v, q_logged, q_target = [1.0, 5.0, 0.0], [0.25, 0.9, 0.5], [0.5, 0.5, 0.5]
    assert snips(v, w) == pytest.approx(0.5)  # (2*1 + 2*0) / 4
    assert np.isnan(snips([1.0, 2.0], [0.0, 0.0]))
    # mean([0.5 + 2*(1 - 0.25), 0.5, 0.5 + 2*(0 - 0.5)]) = 2/3
    assert doubly_robust(v, w, q_logged, q_target) == pytest.approx(2 / 3)
    # self-normalised: 0.5 + (2*0.75 + 2*(-0.5)) / 4
    assert doubly_robust(v, w, q_logged, q_target, self_normalised=True) == pytest.approx(0.625)


def test_fallback_model_uses_global_mean_for_unlogged_target() -> None:
    # "xl" was never logged: its q is the global mean, and its IPS weight is 0.
    e = estimate_policy(
        ["s", "s", "m", "m"], [1.0] * 4, ["xl"] * 4, [1, 0, 1, 1], [1.0, 1.0, 2.0, 2.0], n_boot=0
    )
    assert e.resolution_dr.value == pytest.approx(0.75)
    assert e.cost_dr.value == pytest.approx(1.5)
    assert np.isnan(e.resolution_snips.value)
    assert np.isnan(e.resolution_dr.low)
    assert e.match_rate == 0.0 and e.ess == 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(propensity=[0.5, 0.0, 0.5]), "propensity"),
        (dict(propensity=[0.5, 1.5, 0.5]), "propensity"),
        (dict(propensity=[0.5, -0.1, 0.5]), "propensity"),
        (dict(propensity=[0.5, np.nan, 0.5]), "propensity"),
        (dict(propensity=[0.5, 0.5]), "propensity"),
        (dict(target=["a", "b"]), "target"),
        (dict(resolved=[1, 0]), "resolved"),
        (dict(resolved=[1, 2, 0]), "resolved"),
        (dict(cost=[1.0, np.inf, 0.0]), "cost"),
        (dict(q_resolved_logged=[0.5] * 3), "q_resolved"),
        (dict(q_cost_logged=[0.5] * 3, q_cost_target=[0.5] * 2), "q_cost_target"),
    ],
)
def test_invalid_inputs_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = dict(
        logged=["a", "b", "a"],
        propensity=[0.5, 0.5, 0.5],
        target=["a", "a", "a"],
        resolved=[1, 0, 1],
        cost=[1.0, 2.0, 3.0],
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        estimate_policy(**args)  # type: ignore[arg-type]


def test_ips_weights_validates_lengths() -> None:
    with pytest.raises(ValueError, match="propensity"):
        ips_weights(np.array(["a"]), np.array([0.5, 0.5]), np.array(["a"]))
    with pytest.raises(ValueError, match="target"):
        ips_weights(np.array(["a"]), np.array([0.5]), np.array(["a", "b"]))
