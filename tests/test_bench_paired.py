"""The bench's paired comparison: per-seed differences on the same tasks, with a t interval."""

from __future__ import annotations

import math

import pytest

from tierwise.bench.paired import interval, paired
from tierwise.bench.synthetic_bench import ARMS, STATIC, TUNED_ONCE, arm_kwargs


def test_interval_is_the_student_t_interval_of_the_differences() -> None:
    st = interval([1.0, 2.0, 3.0])
    assert st["mean"] == pytest.approx(2.0) and st["n"] == 3
    assert st["hi"] - st["mean"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    one = interval([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["lo"])


def _week(cost_per_task: float, res: float) -> dict[str, float]:
    return {"cost_per_10k": cost_per_task * 10_000, "resolution_rate": res}


def test_paired_differences_pool_the_weeks_after_the_drift() -> None:
    # Drift at week 1; the arm halves its cost after the drift in both seeds at equal resolution.
    seeds = [{"drift_week": 1, "weekly": {STATIC: [_week(1.0, 0.8)] * 3,
                                          "arm": [_week(1.0, 0.8), _week(0.5, 0.8), _week(0.5 + k, 0.8)]}}
             for k in (0.0, 0.1)]
    out = paired(seeds, [STATIC, "arm"], STATIC)
    assert set(out) == {"arm"}
    after = out["arm"]["after_drift"]["cost_per_resolved_pct"]
    assert after["per_seed"] == pytest.approx([-50.0, -45.0])
    assert out["arm"]["drift_week"]["cost_per_resolved_pct"]["per_seed"] == pytest.approx([-50.0, -50.0])
    assert out["arm"]["after_drift"]["resolution_pp"]["mean"] == pytest.approx(0.0)


def test_the_tuned_once_arm_freezes_at_the_drift() -> None:
    assert set(ARMS) >= {STATIC, TUNED_ONCE}
    assert arm_kwargs("tuned-once", 3) == {"retune_weekly": True, "retune_until": 3}
    assert arm_kwargs("adaptive", 3)["adapt"] is True
    assert arm_kwargs("static", 3) == {"retune_weekly": False}
