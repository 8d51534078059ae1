"""Pin the SWE-bench reference figures (design doc + data README) to the code.

If one of these moves, a convention in the loader or the policy replay changed,
and every benchmark number downstream moved with it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tierwise.bench import routing_metrics as rm
from tierwise.bench import swebench_data
from tierwise.bench.swebench_data import DataUnavailable, SwebenchData, folds, load_swebench

try:
    DATA: SwebenchData = load_swebench()
except DataUnavailable as exc:  # CC BY-NC data is read in place, never vendored
    pytest.skip(str(exc), allow_module_level=True)

OPUS = "claude_opus_4_5_20251101"
MINI = "gpt_5_mini"
ALL = list(DATA.models.index)


def test_shapes_and_complex_count() -> None:
    assert DATA.tasks.shape[0] == 500
    assert DATA.resolved.shape == DATA.cost.shape == (500, 24)
    assert int(DATA.tasks["complex"].sum()) == 261 + 42 + 3
    assert DATA.prices(OPUS) == (5.0, 25.0)
    assert DATA.prices("kimi_k2_instruct") == (None, None)


def test_gold_patches_never_read() -> None:
    for mod in (swebench_data, rm):
        assert "gold_patches" not in Path(str(mod.__file__)).read_text()


def _linked(tmp_path: Path) -> Path:
    """The three inputs only (symlinks, no copy): the loader must not need anything else."""
    src = swebench_data.default_real_dir()
    for name in (swebench_data.TASKS_FILE, swebench_data.RUNS_FILE, swebench_data.MODELS_FILE):
        (tmp_path / name).symlink_to(src / name)
    return tmp_path


def test_loads_without_gold_file(tmp_path: Path) -> None:
    assert load_swebench(_linked(tmp_path)).resolved.shape == (500, 24)


def test_missing_data_raises_data_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataUnavailable, match=r"swebench_verified_tasks\.jsonl"):
        load_swebench(tmp_path)
    monkeypatch.setenv("TIERWISE_REAL_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataUnavailable, match="nope"):
        load_swebench()


def test_missing_run_row_is_value_error(tmp_path: Path) -> None:
    runs = _linked(tmp_path) / swebench_data.RUNS_FILE
    lines = runs.read_text().splitlines(keepends=True)
    runs.unlink()
    runs.write_text("".join(lines[:-1]))  # drop one (task, model) row, in tmp only
    with pytest.raises(ValueError, match="missing"):
        load_swebench(tmp_path)


def test_monolithic_opus() -> None:
    s = rm.summarize(rm.monolithic(DATA, OPUS))
    assert round(s["resolution_rate"], 3) == 0.744
    assert s["n"] * s["resolution_rate"] == pytest.approx(372)
    assert round(s["cost_per_10k"] / 10_000, 3) == 0.721
    assert round(s["cost_per_10k"]) == 7212
    assert s["mean_attempts"] == 1 and s["escalation_rate"] == 0 and s["human_rate"] == 0


def test_mini_opus_overlap_from_readme() -> None:
    mini, opus = DATA.resolved[MINI], DATA.resolved[OPUS]
    assert int((mini & opus).sum()) == 285
    assert int((mini & ~opus).sum()) == 14
    assert int((~mini & opus).sum()) == 87


def test_perfect_detection_cascade_mini_to_opus() -> None:
    eps = rm.cascade(DATA, [MINI, OPUS], recall=1.0, false_alarm=0.0)
    s = rm.summarize(eps)
    assert round(s["resolution_rate"], 3) == 0.772
    assert round(s["cost_per_10k"]) == 4291  # failed mini attempts are paid for too
    # Perfect detection: human queue == neither model resolves (114 in the README).
    assert s["human_rate"] == pytest.approx(114 / 500)


def test_oracle_all_models() -> None:
    s = rm.summarize(rm.oracle(DATA, ALL))
    assert round(s["resolution_rate"], 3) == 0.872
    # Spec convention (unresolved tasks pay the cheapest recorded cost): ~$753 per 10k.
    assert round(s["cost_per_10k"]) == 753
    # The design doc's ~$2,014 per 10k reproduces only if unresolved tasks pay Opus's cost.
    s_doc = rm.summarize(rm.oracle(DATA, ALL, fallback_model=OPUS))
    assert round(s_doc["resolution_rate"], 3) == 0.872
    assert round(s_doc["cost_per_10k"]) == 2014


def test_folds_partition_disjoint_deterministic() -> None:
    fs = folds(DATA, k=5, seed=0)
    tests = [set(test) for _, test in fs]
    assert sum(len(t) for t in tests) == 500
    assert set().union(*tests) == set(DATA.tasks.index)
    for train, test in fs:
        assert not set(train) & set(test)
        assert len(train) + len(test) == 500
    assert fs == folds(DATA, k=5, seed=0)
    assert fs != folds(DATA, k=5, seed=1)


def test_cascade_invariants() -> None:
    ladder = [MINI, "gpt_5", OPUS, "gemini_3_pro_preview_20251118"]
    perfect = rm.cascade(DATA, ladder, recall=1.0, false_alarm=0.0)
    noisy = rm.cascade(DATA, ladder, recall=0.8, false_alarm=0.1, seed=3)
    for eps in (perfect, noisy):
        assert all(1 <= e.attempts <= 3 and e.escalations == e.attempts - 1 for e in eps)
        assert all(not (e.human and e.resolved) for e in eps)
        # Human queue only after a flagged failure on the last rung (3rd attempt here).
        assert all(e.attempts == 3 for e in eps if e.human)
    assert rm.summarize(noisy)["resolution_rate"] < rm.summarize(perfect)["resolution_rate"]
    assert noisy == rm.cascade(DATA, ladder, recall=0.8, false_alarm=0.1, seed=3)
    # No human queue when the detector never flags anything.
    assert rm.summarize(rm.cascade(DATA, ladder, recall=0.0, false_alarm=0.0))["human_rate"] == 0


def test_summarize_empty_and_complex() -> None:
    assert rm.summarize([])["n"] == 0 and math.isnan(rm.summarize([])["resolution_rate"])
    e = [rm.Episode("a", True, 1.0, 1, 0, False, True), rm.Episode("b", False, 3.0, 2, 1, True, False)]
    s = rm.summarize(e)
    assert s["complex_resolution_rate"] == 1.0 and s["cost_per_resolved"] == 4.0
    assert s["cost_per_10k"] == 20_000 and s["escalation_rate"] == 0.5 and s["human_rate"] == 0.5


def test_pgr_apgr_cpt_hand_curves() -> None:
    weak, strong = 0.6, 0.8
    assert rm.pgr(0.7, weak, strong) == pytest.approx(0.5)
    assert rm.cost_share(5.0, 2.0, 8.0) == pytest.approx(0.5)
    assert rm.cost_share(9.0, 2.0, 8.0) == 1.0 and rm.cost_share(1.0, 2.0, 8.0) == 0.0
    line = [(0.0, weak), (1.0, strong)]
    assert rm.apgr(line, weak, strong) == pytest.approx(0.5)
    assert rm.apgr([(0.5, 0.7)], weak, strong) == pytest.approx(0.5)  # endpoints added
    assert rm.cpt(line, weak, strong, 0.8) == pytest.approx(0.8)
    fast = [(0.2, strong)]  # strong performance at 20% of the cost
    assert rm.apgr(fast, weak, strong) == pytest.approx(0.1 + 0.8)
    assert rm.cpt(fast, weak, strong, 0.8) == pytest.approx(0.16)
    assert rm.cpt(fast, weak, strong, 0.8) < 0.2
    # Running max: a worse, costlier point does not pull the curve down.
    assert rm.apgr([(0.2, strong), (0.5, weak)], weak, strong) == pytest.approx(0.9)
    # Never reached when the full-cost point itself falls short.
    assert math.isnan(rm.cpt([(1.0, 0.7)], weak, strong, 0.8))
