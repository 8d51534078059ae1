"""The benchmark's quick mode end to end, and the monolithic rows against the recorded data.

Both start real ``tierwise serve`` processes (hashing embedder, so no MiniLM load) and drive
them over HTTP; the SWE-bench parts skip cleanly when the shared data folder is absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tierwise.bench import cli
from tierwise.bench.swebench_data import DataUnavailable, load_swebench

OPUS = "claude_opus_4_5_20251101"


def _data():  # type: ignore[no-untyped-def]
    try:
        return load_swebench()
    except DataUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-quick")
    assert cli.main(["all", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_synthetic_outputs(quick_out: Path) -> None:
    for name in ("synthetic-quick.json", "synthetic-quick.md", "synthetic-quick_weekly.png", "timings-quick.json"):
        assert (quick_out / name).stat().st_size > 0, name
    doc = json.loads((quick_out / "synthetic-quick.json").read_text())
    assert doc["status"] == "ok" and doc["quick"] is True
    assert {"definitions", "results", "seeds"} <= set(doc)
    assert "token_efficiency_ratio" in doc["definitions"]
    overall = doc["results"]["overall"]
    assert {"static rules", "tierwise retuned weekly", "monolithic frontier",
            "reference: true best tier, 1 attempt"} <= set(overall)
    # One retune after the first of the two weeks, and it ran (published or kept the champion).
    (step,) = doc["seeds"][0]["retunes"]["tierwise retuned weekly"]
    assert step["after_week"] == 0 and step["status"] in ("promoted", "challenger", "telemetry_too_thin")
    for row in overall.values():
        for key in ("cost_per_10k", "mean_latency_ms", "complex_resolution_rate", "token_efficiency_ratio",
                    "cost_per_resolved", "resolution_rate"):
            assert {"mean", "std", "min", "max"} <= set(row[key]), key
    assert overall["monolithic frontier"]["token_efficiency_ratio"]["mean"] == pytest.approx(1.0)
    weekly = doc["results"]["weekly_mean"]["static rules"]["cost_per_resolved"]
    assert len(weekly) == doc["config"]["weeks"] == 2
    assert set(doc["results"]["recovery"]) >= {"static rules"}


def test_quick_swebench_outputs(quick_out: Path) -> None:
    doc = json.loads((quick_out / "swebench-quick.json").read_text())
    if doc["status"] == "skipped":
        pytest.skip(doc["reason"])
    for name in ("swebench-quick.md", "swebench-quick_cost_vs_resolution.png"):
        assert (quick_out / name).stat().st_size > 0, name
    assert doc["config"]["n_tasks"] == 60 and doc["config"]["folds_run"] == 1
    assert set(doc["results"]) == {"recall=0.9,false_alarm=0.05", "recall=1,false_alarm=0",
                                   "recall=0.8,false_alarm=0.1"}
    rows = doc["results"]["recall=0.9,false_alarm=0.05"]
    expected = {f"monolithic {OPUS}", "monolithic gpt_5_mini", "static rules",
                f"cascade gpt_5_mini -> {OPUS}", "oracle (all 24 models)", "oracle (5 bench tiers)"}
    assert expected <= set(rows)
    assert "tierwise after retune" in rows
    assert len(doc["tierwise_after_retune"]["retune_statuses"]) == 1
    for row in rows.values():
        for key in ("resolution_rate", "complex_resolution_rate", "cost_per_10k", "cost_per_resolved",
                    "mean_attempts", "escalation_rate", "human_rate", "apgr", "cpt50", "cpt80"):
            assert {"mean", "std", "min", "max"} <= set(row[key]), key
    # The monolithic rows on the held-out fold equal the recorded data on those tasks.
    data = _data()
    from tierwise.bench.swebench_bench import folds, subset

    sub = subset(data, 60, 0)
    _, test = folds(sub, k=5, seed=0)[0]
    assert rows[f"monolithic {OPUS}"]["resolution_rate"]["mean"] == pytest.approx(
        float(data.resolved.loc[test, OPUS].mean()))
    assert rows[f"monolithic {OPUS}"]["cost_per_10k"]["mean"] == pytest.approx(
        float(data.cost.loc[test, OPUS].mean()) * 10_000)


def test_monolithic_rows_reproduce_the_data_exactly() -> None:
    """Opus alone: 372/500 = 74.4% at $0.721245 mean per task, by the bench's row builder and by
    replaying a one-tier policy through the real service with the bench's oracle."""
    from tierwise.bench._server import Server
    from tierwise.bench.bench_policy import monolithic_policy, write_policy
    from tierwise.bench.loop import hashing_classifier_file, replay, service_env
    from tierwise.bench.swebench_bench import RecordedWorld, baseline_rows, replay_task
    from tierwise.service.client import TierwiseClient

    data = _data()
    ids = [str(t) for t in data.tasks.index]
    rows = baseline_rows(data, ids, recall=0.9, false_alarm=0.05, seed=0)
    opus = rows[f"monolithic {OPUS}"]
    assert opus["resolution_rate"] == pytest.approx(0.744, abs=1e-12)
    assert opus["cost_per_10k"] == pytest.approx(7212.45, abs=0.01)
    assert rows["oracle (all 24 models)"]["resolution_rate"] == pytest.approx(0.872)
    assert round(rows["oracle (all 24 models)"]["cost_per_10k"]) == 2014

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        policy_file = write_policy(monolithic_policy(data.models, OPUS), home / "mono.json")
        env = service_env(policy_file=policy_file, seed=0, fast=True,
                          classifier_file=hashing_classifier_file(home / "cache"))
        with Server(home / "svc", env=env).start() as srv, TierwiseClient(srv.url, timeout=60.0) as client:
            # No failure detector (recall 0, false alarm 0): the harness accepts every attempt.
            episodes = replay(client, [replay_task(data, t) for t in ids], RecordedWorld(data, 0.0, 0.0, 0),
                              harness="ci", progress=False)
    assert len(episodes) == 500
    assert sum(e.resolved for e in episodes) == 372
    assert all(e.first_tier == OPUS and e.attempts == 1 for e in episodes)
    assert math.isclose(sum(e.cost_usd for e in episodes) / 500, 0.721245, abs_tol=5e-7)


def test_ingest_route_plot_renders_every_measurement(tmp_path: Path) -> None:
    from tierwise.bench.plots import route_under_load

    def run(rate: float | None, ratio: float) -> dict[str, object]:
        return {"offered_rows_s": rate, "p99_ratio": ratio, "no_ingest_ms": {"p50": 10.0, "p99": 13.0},
                "under_ingest_ms": {"p50": 11.0, "p99": 13.0 * ratio}}

    doc = {"targets": {"route_p99_ratio": 1.2},
           "http": {"route_under_ingest": [run(200.0, 1.3), run(None, 2.2)], "route_under_healthz": run(200.0, 1.1)}}
    png = route_under_load(doc, tmp_path / "route.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert route_under_load({"http": {}}, tmp_path / "none.png") is None  # nothing measured, no file
    assert not (tmp_path / "none.png").exists()


def test_a_retune_crash_fails_the_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken tuner must fail the bench, not turn into a recorded 'unavailable' step."""
    from tierwise.bench import loop
    from tierwise.bench import synthetic_bench as sb
    from tierwise.bench.simulator import Simulator, load_corpus
    from tierwise.service.paths import corpus_dir

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tuner is broken")

    monkeypatch.setattr(loop, "run_retune", broken)
    cfg = sb.SyntheticConfig.quick_config(tasks_per_week=10, progress=False, work_dir=tmp_path)
    sc = sb.make_scenario(cfg, 0)
    sim = Simulator(sc, load_corpus(corpus_dir(), split="test"))
    weekly = [sim.tasks_for_week(w) for w in range(sc.weeks)]
    with pytest.raises(RuntimeError, match="tuner is broken"):
        sb.run_approach(sim, weekly, name="tierwise", retune_weekly=True, seed=0, cfg=cfg, work=tmp_path,
                        classifier_file=loop.hashing_classifier_file(tmp_path / "cache"))
