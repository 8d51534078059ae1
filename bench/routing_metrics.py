"""Replay routing policies on recorded SWE-bench runs and score them.

Every outcome and cost comes from the recorded per-(task, model) runs; only the
failure detector is simulated, because the recorded runs say whether a patch was
truly correct but not whether the harness's own tests would have noticed.
Metrics follow RouteLLM (PGR / APGR / CPT) so results compare with that literature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from tierwise.bench.swebench_data import SwebenchData


@dataclass(frozen=True)
class Episode:
    """One task handled end to end by a policy; the unit every metric averages over."""

    task_id: str
    resolved: bool
    cost_usd: float
    attempts: int
    escalations: int
    human: bool
    complex: bool
    latency_ms: float = 0.0
    first_tier: str = ""


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarize(episodes: Sequence[Episode]) -> dict[str, float]:
    """Headline numbers for one policy; rates with an empty denominator are nan."""
    resolved = [e for e in episodes if e.resolved]
    total_cost = sum(e.cost_usd for e in episodes)
    return {
        "n": float(len(episodes)),
        "resolution_rate": _mean([float(e.resolved) for e in episodes]),
        "complex_resolution_rate": _mean([float(e.resolved) for e in episodes if e.complex]),
        "cost_per_10k": _mean([e.cost_usd for e in episodes]) * 10_000,
        "cost_per_resolved": total_cost / len(resolved) if resolved else math.nan,
        "mean_attempts": _mean([float(e.attempts) for e in episodes]),
        "escalation_rate": _mean([float(e.escalations >= 1) for e in episodes]),
        "human_rate": _mean([float(e.human) for e in episodes]),
        "mean_latency_ms": _mean([e.latency_ms for e in episodes]),
    }


def _ids(data: SwebenchData, task_ids: Sequence[str] | None) -> list[str]:
    return [str(t) for t in data.tasks.index] if task_ids is None else list(task_ids)


def monolithic(data: SwebenchData, model_key: str,
               task_ids: Sequence[str] | None = None) -> list[Episode]:
    """Baseline: always one model, one attempt, exactly as recorded."""
    ids = _ids(data, task_ids)
    res = data.resolved.loc[ids, model_key].to_numpy(dtype=bool)
    cost = data.cost.loc[ids, model_key].to_numpy(dtype=float)
    cplx = data.tasks.loc[ids, "complex"].to_numpy(dtype=bool)
    return [Episode(t, bool(r), float(c), 1, 0, False, bool(x), first_tier=model_key)
            for t, r, c, x in zip(ids, res, cost, cplx, strict=True)]


def oracle(data: SwebenchData, model_keys: Sequence[str], task_ids: Sequence[str] | None = None,
           *, fallback_model: str | None = None) -> list[Episode]:
    """Upper bound: a router that knows, per task, the cheapest model that will succeed.

    Convention for tasks no model resolves (the oracle still pays for one try):
    by default the cheapest recorded cost among ``model_keys`` for that task; with
    ``fallback_model`` set, that model's recorded cost instead (a router that
    sends hopeless tasks to its frontier model). Ties go to the earlier key.
    """
    ids, keys = _ids(data, task_ids), list(model_keys)
    res = data.resolved.loc[ids, keys].to_numpy(dtype=bool)
    cost = data.cost.loc[ids, keys].to_numpy(dtype=float)
    cplx = data.tasks.loc[ids, "complex"].to_numpy(dtype=bool)
    pick = np.where(res.any(axis=1), np.where(res, cost, np.inf).argmin(axis=1), cost.argmin(axis=1))
    if fallback_model is not None:
        pick = np.where(res.any(axis=1), pick, keys.index(fallback_model))
    rows = np.arange(len(ids))
    return [Episode(t, bool(res[i, j]), float(cost[i, j]), 1, 0, False, bool(cplx[i]),
                    first_tier=keys[j]) for i, t, j in zip(rows, ids, pick, strict=True)]


def cascade(data: SwebenchData, ladder: Sequence[str], *, recall: float = 0.9,
            false_alarm: float = 0.05, seed: int = 0, task_ids: Sequence[str] | None = None,
            max_escalations: int = 2) -> list[Episode]:
    """Cheap-first escalation with an imperfect failure detector (the harness's tests).

    Each attempt's outcome and cost are the recorded ones, and every attempt is paid
    for. A true failure is flagged with probability ``recall``; a true success is
    wrongly flagged with probability ``false_alarm``. Unflagged: stop, and the true
    outcome stands (an unnoticed failure is final). Flagged: escalate one rung; if no
    rung or escalation budget is left, the task goes to the human queue (human=True,
    unresolved: the agent's output is discarded even if it was a false alarm).
    One uniform draw per (task, rung) from a pre-drawn matrix, so runs with different
    recall/false_alarm share random numbers and compare without extra noise.
    """
    if not ladder:
        raise ValueError("ladder must name at least one model")
    ids = _ids(data, task_ids)
    rungs = list(ladder)[: max_escalations + 1]
    res = data.resolved.loc[ids, rungs].to_numpy(dtype=bool)
    cost = data.cost.loc[ids, rungs].to_numpy(dtype=float)
    cplx = data.tasks.loc[ids, "complex"].to_numpy(dtype=bool)
    draws = np.random.default_rng(seed).random((len(ids), len(rungs)))
    out: list[Episode] = []
    for i, task in enumerate(ids):
        spent, resolved, human = 0.0, False, False
        for j in range(len(rungs)):
            spent += float(cost[i, j])
            flagged = draws[i, j] < (false_alarm if res[i, j] else recall)
            if not flagged:
                resolved = bool(res[i, j])
                break
            human = j == len(rungs) - 1
        out.append(Episode(task, resolved, spent, j + 1, j, human, bool(cplx[i]),
                           first_tier=rungs[0]))
    return out


def pgr(perf: float, weak: float, strong: float) -> float:
    """Performance gap recovered: 0 at the weak model, 1 at the strong one."""
    if strong == weak:
        raise ValueError("PGR is undefined when strong and weak perform equally")
    return (perf - weak) / (strong - weak)


def cost_share(cost: float, weak_cost: float, strong_cost: float) -> float:
    """Router cost as a share of the weak→strong cost gap, clipped to [0, 1].

    RouteLLM's x-axis is the share of calls sent to the strong model; with recorded
    per-task costs (and escalation paying twice) normalised cost is the honest analogue:
    cost_share = (router cost − weak cost) / (strong cost − weak cost).
    """
    if strong_cost == weak_cost:
        raise ValueError("cost share is undefined when strong and weak cost the same")
    return min(1.0, max(0.0, (cost - weak_cost) / (strong_cost - weak_cost)))


def _envelope(points: Sequence[tuple[float, float]], weak: float,
              strong: float) -> tuple[list[float], list[float]]:
    """Sorted (cost_share, PGR) curve with endpoints, as its running max.

    The running max is the upper envelope: at a given budget a router can always
    fall back to any cheaper operating point.
    """
    curve = sorted((min(1.0, max(0.0, x)), pgr(p, weak, strong)) for x, p in points)
    if not any(x == 0.0 for x, _ in curve):
        curve.insert(0, (0.0, 0.0))
    if not any(x == 1.0 for x, _ in curve):
        curve.append((1.0, 1.0))
    xs = [x for x, _ in curve]
    ys = np.maximum.accumulate([y for _, y in curve]).tolist()
    return xs, [float(y) for y in ys]


def apgr(points: Sequence[tuple[float, float]], weak: float, strong: float) -> float:
    """Average PGR: trapezoid area under the PGR envelope over cost share 0..1."""
    xs, ys = _envelope(points, weak, strong)
    return sum((x1 - x0) * (y0 + y1) / 2
               for (x0, y0), (x1, y1) in pairwise(zip(xs, ys, strict=True)))


def cpt(points: Sequence[tuple[float, float]], weak: float, strong: float,
        target: float) -> float:
    """Call-performance threshold: least cost share whose PGR reaches ``target``.

    ``target`` is a fraction (0.8 for RouteLLM's CPT(80%)). Linear interpolation
    between operating points; nan if the envelope never reaches it.
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target is a fraction in [0, 1], got {target}")
    xs, ys = _envelope(points, weak, strong)
    if ys[0] >= target:
        return xs[0]
    for (x0, y0), (x1, y1) in pairwise(zip(xs, ys, strict=True)):
        if y0 < target <= y1:
            return x0 + (target - y0) / (y1 - y0) * (x1 - x0)
    return math.nan
