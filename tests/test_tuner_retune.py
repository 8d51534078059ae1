"""``run_retune`` and ``tierwise retune``: gate, too-thin, dry-run, --if-drift, publish, shadow."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tierwise.service.errors import TelemetryTooThin
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.policy.registry import CHALLENGER, CHAMPION, make_registry
from tierwise.service.settings import Settings, load_settings
from tierwise.service.telemetry.store import TelemetryStore
from tierwise.tuner.retune import EXPERIMENT, promotion_gate, run_retune
from tierwise.tuner.synthetic import DEFAULT_WORLD, synthetic_batches, write_synthetic

DATA = Path(__file__).resolve().parent.parent / "data"
DAY = 86400.0
NOW = 1_800_000_000.0


def _policy() -> RoutingPolicy:
    raw = parse_policy((DATA / "policy.default.json").read_text(), version="1")
    # More exploration than the shipped 5% so a few thousand rows support OPE.
    return raw.model_copy(update={"exploration": {"local": 0.2, "ci": 0.2, "prod": 0.2}})


def _settings(home: Path) -> Settings:
    return load_settings(home=home, use_registry=True)


def _write(home: Path, n: int, *, days: tuple[float, float] = (10, 0), seed: int = 0, **kw: object) -> None:
    store = TelemetryStore.open(home / "telemetry", catalog=False)
    start, end = NOW - days[0] * DAY, NOW - days[1] * DAY
    write_synthetic(store.journal, _policy(), n, seed=seed, start_ts=start, span_s=end - start,
                    id_prefix=f"s{seed}", **kw)  # type: ignore[arg-type]
    store.close()


def test_gate_promotes_only_with_margin_and_floor() -> None:
    ok = promotion_gate(1.00, 0.90, 0.95, floor=0.90, margin=0.03)
    assert ok.promote
    assert not promotion_gate(1.00, 0.98, 0.95, floor=0.90, margin=0.03).promote  # 2% is not 3%
    below = promotion_gate(1.00, 0.50, 0.89, floor=0.90, margin=0.03)  # cheap, but surely worse
    assert not below.promote and "floor" in below.reason
    assert not promotion_gate(1.00, float("nan"), 0.95, floor=0.90, margin=0.03).promote
    # the doubly robust estimate must agree when it is given
    assert promotion_gate(1.00, 0.90, 0.95, floor=0.90, margin=0.03, champion_cpr_dr=1.0, candidate_cpr_dr=0.95).promote
    split = promotion_gate(1.00, 0.90, 0.95, floor=0.90, margin=0.03, champion_cpr_dr=1.0, candidate_cpr_dr=0.99)
    assert not split.promote and "doubly robust" in split.reason
    assert not promotion_gate(1.00, 0.90, 0.95, floor=0.90, margin=0.03, champion_cpr_dr=float("nan"),
                              candidate_cpr_dr=0.5).promote


def test_too_thin_raises_and_cli_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TelemetryTooThin):
        run_retune(_settings(tmp_path / "empty"), progress=False)
    _write(tmp_path, 400)
    with pytest.raises(TelemetryTooThin, match="400"):
        run_retune(_settings(tmp_path), min_decisions=1000, progress=False, now=NOW)
    from tierwise.service.cli import main

    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path))
    assert main(["retune", "--no-progress", "--min-decisions", "1000"]) == 2
    assert "telemetry_too_thin" in capsys.readouterr().err
    assert make_registry(_settings(tmp_path)).versions() == []  # nothing published


def test_dry_run_publishes_nothing(tmp_path: Path) -> None:
    _write(tmp_path, 3000)
    result = run_retune(_settings(tmp_path), dry_run=True, trials=8, progress=False, now=NOW)
    assert result.status == "dry_run" and result.version is None and result.run_id is None
    assert result.n_decisions == 3000 and result.n_train + result.n_holdout == 3000
    assert result.champion["n"] == result.n_holdout and result.candidate["cost_per_resolved"] > 0
    reg = make_registry(_settings(tmp_path))
    assert reg.versions() == [] and reg.alias(CHAMPION) is None
    assert reg.client.get_experiment_by_name(EXPERIMENT) is None


def test_window_learns_from_the_most_recent_decisions_only(tmp_path: Path) -> None:
    _write(tmp_path, 1500, days=(20, 10), seed=1)  # old traffic
    _write(tmp_path, 1500, days=(10, 0), seed=2)  # recent traffic
    full = run_retune(_settings(tmp_path), dry_run=True, trials=4, progress=False, now=NOW)
    recent = run_retune(_settings(tmp_path), dry_run=True, trials=4, progress=False, now=NOW, window=1500)
    assert full.n_decisions == 3000
    assert recent.n_decisions == 1500 and recent.n_train + recent.n_holdout == 1500
    # the window is the last 1,500 by time (days 10..0), so the last two days are a fifth of it
    assert recent.split == "time" and 250 < recent.n_holdout < 350
    with pytest.raises(TelemetryTooThin):
        run_retune(_settings(tmp_path), dry_run=True, trials=4, progress=False, now=NOW, window=500,
                   min_decisions=1000)


def test_if_drift_skips_without_drift_and_runs_with_it(tmp_path: Path) -> None:
    steady = tmp_path / "steady"
    _write(steady, 3000)
    result = run_retune(_settings(steady), if_drift=True, dry_run=False, trials=5, holdout_days=3,
                        progress=False, now=NOW)
    assert result.status == "no_drift" and result.split == "time" and not result.drift_flagged
    assert make_registry(_settings(steady)).versions() == []

    drifted = tmp_path / "drifted"
    _write(drifted, 2400, days=(10, 2), seed=1)
    mix = {"mechanical": 0.05, "local": 0.15, "repository": 0.3, "agentic": 0.5}
    _write(drifted, 1200, days=(2, 0), seed=2, world=dataclasses.replace(DEFAULT_WORLD, mix=mix))
    result = run_retune(_settings(drifted), if_drift=True, dry_run=True, trials=5, progress=False, now=NOW)
    assert result.drift_flagged and result.status == "dry_run" and result.split == "time"


def test_publish_promote_then_second_retune_does_not_promote(tmp_path: Path) -> None:
    _write(tmp_path, 5000)
    settings = _settings(tmp_path)
    first = run_retune(settings, trials=25, progress=False, now=NOW)
    reg = make_registry(settings)
    assert first.champion_version == "1"  # the bootstrap file became version 1
    assert first.status == "promoted", first.reason
    assert reg.alias(CHAMPION) == first.version == "2"
    assert first.candidate["cost_per_resolved"] <= 0.97 * first.champion["cost_per_resolved"]
    policy = reg.load("2")
    assert policy.success_model is not None
    run = reg.client.get_run(str(first.run_id))
    assert run.data.params["split"] == "hash" and int(run.data.params["n_holdout"]) == first.n_holdout
    assert "candidate_cost_per_resolved_snips_low" in run.data.metrics
    artifacts = {a.path for a in reg.client.list_artifacts(str(first.run_id))}
    assert {"plots", "drift", "policy", "estimates.json"} <= artifacts
    assert {a.path for a in reg.client.list_artifacts(str(first.run_id), "policy")} == {
        "policy/policy.json", "policy/success_model.json"}

    second = run_retune(settings, trials=25, progress=False, now=NOW + 60)
    assert second.champion_version == "2"
    assert second.status == "challenger", second.reason
    assert reg.alias(CHAMPION) == "2" and reg.alias(CHALLENGER) == second.version == "3"


def test_shadow_rows_are_reported(tmp_path: Path) -> None:
    store = TelemetryStore.open(tmp_path / "telemetry", catalog=False)
    for decisions, attempts in synthetic_batches(_policy(), 2000, seed=0, start_ts=NOW - DAY, span_s=DAY):
        for i, d in enumerate(decisions):
            # Half the traffic was shadowed by a challenger that disagrees on half of that.
            d.update(shadow_version="2" if i % 2 == 0 else None,
                     shadow_tier=None if i % 2 else "frontier" if i % 4 == 0 else d["greedy_tier"])
        store.journal.insert_many("decisions", decisions)
        store.journal.insert_many("attempts", attempts)
    store.close()
    result = run_retune(_settings(tmp_path), dry_run=True, trials=3, progress=False, now=time.time())
    assert result.shadow["shadow_rows"] == 1000
    assert 0.6 < result.shadow["shadow_agreement"] < 0.95
    assert 0.0 < result.shadow["shadow_resolution_snips"] <= 1.0
