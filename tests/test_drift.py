"""Drift tests: known shifts must be flagged, same-distribution samples must not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tierwise.tuner.drift import DriftReport, drift_report, psi, psi_categorical


def _frame(
    n: int, seed: int, *, shift: float = 0.0, profile_p: tuple[float, float, float] = (0.7, 0.2, 0.1)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "prompt_tokens": rng.normal(1000.0 + 200.0 * shift, 200.0, n),
            "files_touched": rng.poisson(3.0, n),
            "profile": rng.choice(["default", "fast", "careful"], size=n, p=profile_p),
            "tier": rng.choice(["small", "medium", "large"], size=n),
            "resolved": rng.random(n) < 0.7,
        }
    )


def _report(train: pd.DataFrame, recent: pd.DataFrame) -> DriftReport:
    return drift_report(train, recent, numeric=["prompt_tokens", "files_touched"], categorical=["profile"])


def test_psi_same_distribution_is_small() -> None:
    rng = np.random.default_rng(0)
    assert psi(rng.normal(size=20_000), rng.normal(size=20_000)) < 0.02
    x = rng.normal(size=1_000)
    assert psi(x, x) == 0.0


def test_psi_mean_shift_of_one_sd_is_large() -> None:
    rng = np.random.default_rng(1)
    # Equal-variance normals one sd apart have symmetric KL 1; binning loses a bit.
    value = psi(rng.normal(size=20_000), rng.normal(1.0, 1.0, 20_000))
    assert 0.5 < value < 1.2


def test_psi_handles_empty_bins_ties_and_nan() -> None:
    rng = np.random.default_rng(2)
    far = psi(rng.random(1_000), 100.0 + rng.random(1_000))  # everything in the top bin
    assert math.isfinite(far) and far > 5.0
    assert psi(np.zeros(100), np.zeros(50)) == 0.0  # constant feature: one edge, two bins
    assert psi(np.zeros(100), np.ones(50)) > 5.0
    assert psi([1.0, 2.0, np.nan], [1.0, 2.0]) == pytest.approx(0.0)
    assert math.isnan(psi([], [1.0]))
    with pytest.raises(ValueError, match="bins"):
        psi([1.0], [1.0], bins=1)


def test_psi_categorical() -> None:
    same = psi_categorical(["a"] * 70 + ["b"] * 30, ["b"] * 30 + ["a"] * 70)
    assert same == 0.0
    shifted = psi_categorical(["a"] * 70 + ["b"] * 30, ["a"] * 30 + ["b"] * 70)
    assert shifted == pytest.approx(2 * 0.4 * math.log(7 / 3))
    new_cat = psi_categorical(["a"] * 100, ["a"] * 50 + ["c"] * 50)
    assert math.isfinite(new_cat) and new_cat > 1.0
    assert math.isnan(psi_categorical([], ["a"]))


def test_report_same_distribution_not_flagged() -> None:
    report = _report(_frame(5_000, 0), _frame(5_000, 1))
    assert not report.flagged, report.to_markdown()
    assert set(report.features) == {"prompt_tokens", "files_touched", "profile"}
    assert all(v < 0.02 for v in report.features.values())


def test_report_flags_numeric_shift_only() -> None:
    report = _report(_frame(5_000, 0), _frame(5_000, 1, shift=1.0))
    assert report.features["prompt_tokens"] > 0.2
    assert report.drifted == ["prompt_tokens"]
    assert report.flagged


def test_report_flags_categorical_mix_shift() -> None:
    report = _report(_frame(5_000, 0), _frame(5_000, 1, profile_p=(0.3, 0.3, 0.4)))
    assert report.features["profile"] > 0.2
    assert report.drifted == ["profile"]


def _tier_frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Exact success rates: tier -> (rows, resolved rows)."""
    rows = []
    for tier, (n, k) in counts.items():
        rows += [{"x": 0.0, "tier": tier, "resolved": i < k} for i in range(n)]
    return pd.DataFrame(rows)


def test_tier_success_delta_respects_min_rows() -> None:
    train = _tier_frame(
        {"small": (100, 80), "medium": (100, 80), "large": (100, 80), "xl": (20, 16), "edge": (30, 24)}
    )
    recent = _tier_frame(
        {
            "small": (40, 20),  # 0.80 -> 0.50 on 40 rows: flagged
            "edge": (30, 15),  # 0.80 -> 0.50 on exactly 30 rows each: flagged
            "medium": (29, 10),  # 0.80 -> 0.34 but only 29 recent rows: not flagged
            "large": (50, 37),  # 0.80 -> 0.74: under the 0.10 threshold
            "xl": (100, 10),  # big drop but only 20 training rows: not flagged
        }
    )
    report = drift_report(train, recent, numeric=["x"], categorical=[])
    assert report.drifted == ["success:edge", "success:small"]  # tiers in sorted order
    small = report.tier_success["small"]
    assert small["train_rate"] == pytest.approx(0.8)
    assert small["recent_rate"] == pytest.approx(0.5)
    assert small["delta"] == pytest.approx(-0.3)
    assert (small["n_train"], small["n_recent"]) == (100, 40)
    assert report.tier_success["medium"]["n_recent"] == 29
    # lowering the row floor lets the small samples count
    lowered = drift_report(train, recent, numeric=["x"], categorical=[], min_rows=20)
    assert set(lowered.drifted) == {"success:edge", "success:small", "success:medium", "success:xl"}


def test_tier_only_in_one_window_is_reported_not_flagged() -> None:
    train = _tier_frame({"small": (50, 40)})
    recent = _tier_frame({"small": (50, 40), "large": (50, 10)})
    report = drift_report(train, recent, numeric=[], categorical=[])
    assert math.isnan(report.tier_success["large"]["train_rate"])
    assert report.tier_success["large"]["n_train"] == 0
    assert not report.flagged


@pytest.mark.parametrize("missing", ["prompt_tokens", "profile", "tier", "resolved"])
def test_missing_column_is_named(missing: str) -> None:
    recent = _frame(100, 1).drop(columns=[missing])
    with pytest.raises(ValueError, match=f"recent.*'{missing}'"):
        _report(_frame(100, 0), recent)


def test_empty_frames_give_nan_and_no_flag() -> None:
    report = _report(_frame(1_000, 0), pd.DataFrame())
    assert all(math.isnan(v) for v in report.features.values())
    assert not report.flagged
    assert report.notes == ["recent window is empty"]
    assert all(s["n_recent"] == 0 for s in report.tier_success.values())
    assert not _report(pd.DataFrame(), pd.DataFrame()).flagged


def test_to_dict_and_markdown() -> None:
    report = _report(_frame(2_000, 0), _frame(2_000, 1, shift=1.0))
    d = report.to_dict()
    assert d["flagged"] is True
    assert d["drifted"] == ["prompt_tokens"]
    assert d["features"]["prompt_tokens"] == report.features["prompt_tokens"]
    assert set(d["tier_success"]) == {"small", "medium", "large"}
    md = report.to_markdown()
    assert md.startswith("## Drift report: FLAGGED: prompt_tokens")
    assert "| prompt_tokens |" in md and "| profile |" in md and "| small |" in md
    assert "n/a" in _report(_frame(10, 0), pd.DataFrame()).to_markdown()
