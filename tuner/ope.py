"""Off-policy evaluation (OPE) of a candidate routing policy from exploration logs.

Why this exists: the router only sees the outcome of the tier it actually chose, and
it chose tiers non-uniformly (cheap tiers on easy-looking tasks, big tiers on hard
ones). The plain mean of the logs therefore describes the *logging* policy, not a
candidate. Inverse propensity weighting re-weights the rows where the logging policy
happened to agree with the candidate, which is unbiased as long as the logged
propensities are right and every tier the candidate picks had a non-zero chance of
being logged.

Two estimators are reported side by side because they fail differently: SNIPS has no
model to get wrong but its variance grows with the weights; doubly robust (DR) uses an
outcome model to soak up variance and stays unbiased if *either* the model or the
propensities are correct.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Replicates are drawn one at a time (so results do not depend on chunking) but
# aggregated with one matrix product per chunk; this caps the chunk's count matrix.
_CHUNK_CELLS = 1 << 23


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a bootstrap percentile interval (95% unless alpha says otherwise)."""

    value: float
    low: float
    high: float


def _vector(name: str, x: ArrayLike, n: int | None = None) -> NDArray[Any]:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    return arr


def _floats(name: str, x: ArrayLike, n: int | None = None) -> FloatArray:
    raw = _vector(name, x, n)
    try:
        arr = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def ips_weights(logged: ArrayLike, propensity: ArrayLike, target: ArrayLike) -> FloatArray:
    """Inverse propensity weights 1[a_i == t_i] / p_i.

    Propensities must be in (0, 1]: a zero propensity means the logged action could
    not have been chosen, i.e. the log is corrupt, and we refuse rather than divide.
    """
    a = _vector("logged", logged)
    p = _floats("propensity", propensity, a.shape[0])
    t = _vector("target", target, a.shape[0])
    if np.any(p <= 0.0) or np.any(p > 1.0):
        raise ValueError("propensity values must be in (0, 1]")
    return np.asarray(a == t, dtype=np.float64) / p


def snips(values: ArrayLike, weights: ArrayLike) -> float:
    """Self-normalised IPS: sum(w v) / sum(w); nan when no row matches the target.

    Normalising by sum(w) instead of n trades a small bias for a large variance cut
    when the realised weights happen to be far from their expectation of 1.
    """
    w = _floats("weights", weights)
    v = _floats("values", values, w.shape[0])
    total = float(w.sum())
    return float(w @ v / total) if total != 0.0 else float("nan")


def doubly_robust(
    values: ArrayLike,
    weights: ArrayLike,
    q_logged: ArrayLike,
    q_target: ArrayLike,
    *,
    self_normalised: bool = False,
) -> float:
    """Doubly robust estimate mean(q_target + w (v - q_logged)).

    The default is the plain (unbiased) DR, which is what `estimate_policy` reports.
    `self_normalised=True` divides the correction term by sum(w) instead of n, which
    is steadier with heavy weights; with no matching rows it falls back to the
    model-only value mean(q_target).
    """
    w = _floats("weights", weights)
    n = w.shape[0]
    v = _floats("values", values, n)
    ql = _floats("q_logged", q_logged, n)
    qt = _floats("q_target", q_target, n)
    if n == 0:
        return float("nan")
    correction = w @ (v - ql)
    if self_normalised:
        total = float(w.sum())
        return float(qt.mean() + (correction / total if total != 0.0 else 0.0))
    return float(qt.mean() + correction / n)


@dataclass(frozen=True)
class PolicyEstimate:
    """Everything the tuner logs about one candidate policy on one held-out log.

    DR fields use the plain (not self-normalised) doubly robust estimator.
    """

    resolution_snips: Estimate
    resolution_dr: Estimate
    cost_snips: Estimate
    cost_dr: Estimate
    cost_per_resolved_snips: Estimate
    cost_per_resolved_dr: Estimate
    match_rate: float
    ess: float
    n: int

    def to_dict(self) -> dict[str, float]:
        """Flat float dict, the shape `mlflow.log_metrics` wants."""
        out: dict[str, float] = {}
        for name, est in asdict(self).items():
            if isinstance(est, dict):
                out[name] = float(est["value"])
                out[f"{name}_low"] = float(est["low"])
                out[f"{name}_high"] = float(est["high"])
            else:
                out[name] = float(est)
        return out


def _action_mean_model(
    logged: NDArray[Any], target: NDArray[Any], outcome: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-action mean outcome, as (q at logged action, q at target action).

    Deliberately crude: it only has to remove the between-tier variance from the IPS
    term. Tiers the candidate picks but the log never saw get the global mean.
    """
    codes = np.unique(np.concatenate([logged, target]), return_inverse=True)[1]
    code_l, code_t = codes[: logged.shape[0]], codes[logged.shape[0] :]
    k = int(codes.max()) + 1
    counts = np.bincount(code_l, minlength=k)
    sums = np.bincount(code_l, weights=outcome, minlength=k)
    q = np.full(k, outcome.mean())
    np.divide(sums, counts, out=q, where=counts > 0)
    return q[code_l], q[code_t]


def _outcome_model(
    name: str,
    q_logged: ArrayLike | None,
    q_target: ArrayLike | None,
    logged: NDArray[Any],
    target: NDArray[Any],
    outcome: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    if q_logged is None and q_target is None:
        return _action_mean_model(logged, target, outcome)
    if q_logged is None or q_target is None:
        raise ValueError(f"q_{name}_logged and q_{name}_target must be given together")
    n = outcome.shape[0]
    return _floats(f"q_{name}_logged", q_logged, n), _floats(f"q_{name}_target", q_target, n)


def _estimates_from_sums(s: FloatArray) -> FloatArray:
    """Map column sums (rows = replicates) to the six estimates.

    Every estimator here is a ratio of sums of per-row terms, which is what lets one
    matrix product per bootstrap chunk do all the work. Column order:
    [1, w, w r, w c, dr_r, dr_c].
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        res_snips = s[:, 2] / s[:, 1]
        cost_snips = s[:, 3] / s[:, 1]
        res_dr = s[:, 4] / s[:, 0]
        cost_dr = s[:, 5] / s[:, 0]
        return np.column_stack(
            [res_snips, res_dr, cost_snips, cost_dr, cost_snips / res_snips, cost_dr / res_dr]
        )


def estimate_policy(
    logged: ArrayLike,
    propensity: ArrayLike,
    target: ArrayLike,
    resolved: ArrayLike,
    cost: ArrayLike,
    *,
    q_resolved_logged: ArrayLike | None = None,
    q_resolved_target: ArrayLike | None = None,
    q_cost_logged: ArrayLike | None = None,
    q_cost_target: ArrayLike | None = None,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> PolicyEstimate:
    """Estimate a deterministic candidate's resolution rate, cost/task and cost/resolved.

    Cost per resolved is a ratio of two estimates, so it is formed inside each
    bootstrap replicate rather than by dividing interval endpoints. The bootstrap
    resamples rows with replacement and holds the outcome model fixed (refitting a
    per-tier mean on thousands of rows moves it far less than the IPS term moves).
    Point values come from the full sample, not from the replicates.
    """
    a = _vector("logged", logged)
    n = a.shape[0]
    if n == 0:
        raise ValueError("logged is empty")
    if n_boot < 0:
        raise ValueError("n_boot must be >= 0")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    t = _vector("target", target, n)
    w = ips_weights(a, propensity, t)
    r = _floats("resolved", resolved, n)
    if np.any(r < 0.0) or np.any(r > 1.0):
        raise ValueError("resolved values must be in [0, 1]")
    c = _floats("cost", cost, n)
    qr_l, qr_t = _outcome_model("resolved", q_resolved_logged, q_resolved_target, a, t, r)
    qc_l, qc_t = _outcome_model("cost", q_cost_logged, q_cost_target, a, t, c)

    terms = np.column_stack([np.ones(n), w, w * r, w * c, qr_t + w * (r - qr_l), qc_t + w * (c - qc_l)])
    point = _estimates_from_sums(terms.sum(axis=0, keepdims=True))[0]

    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, point.shape[0]))
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        counts = np.empty((stop - start, n))
        for i in range(stop - start):
            counts[i] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        reps[start:stop] = _estimates_from_sums(counts @ terms)

    bounds = np.full((2, point.shape[0]), np.nan)
    if n_boot > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan column -> nan bounds
            bounds = np.nanquantile(reps, [alpha / 2, 1 - alpha / 2], axis=0)
    est = [Estimate(float(v), float(lo), float(hi)) for v, lo, hi in zip(point, *bounds, strict=True)]
    w_sq = float(w @ w)
    return PolicyEstimate(
        resolution_snips=est[0],
        resolution_dr=est[1],
        cost_snips=est[2],
        cost_dr=est[3],
        cost_per_resolved_snips=est[4],
        cost_per_resolved_dr=est[5],
        match_rate=float(np.mean(w > 0)),
        ess=float(w.sum()) ** 2 / w_sq if w_sq > 0 else 0.0,
        n=n,
    )
