"""``tierwise bench synthetic``: a drifting synthetic workload, week by week, through the service.

Scenario: ``bench/scenarios/drift_model_swap.json`` (8 weeks; in week 4 the small tier's model is
swapped for a much better one at the same price and the mix shifts toward repository work).

Approaches, each on its own fresh service with the product's bootstrap policy
(``data/policy.default.json``), on the scenario's harness (``ci``, exploration as configured):

- **static rules**: the bootstrap, never retuned;
- **tierwise retuned weekly**: after each simulated week, ``run_retune`` on the telemetry so far;
  the service hot-reloads the champion before the next week starts;
- reference rows computed without a router: **monolithic frontier** (every task once on the
  frontier tier) and a **true-best-tier reference** (each task once on the simulator's true best tier:
  not a bound, since it never escalates; used to normalise cost per resolved week by week).

Every task, tier and attempt draw comes from the simulator's keyed generators, so both services
face the same tasks and the same luck. The router sees the request only.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.bench import routing_metrics as rm
from tierwise.bench.loop import (
    AttemptResult,
    ReplayTask,
    Trace,
    hashing_classifier_file,
    replay_traces,
    retune,
    service_env,
    settings_kwargs,
)
from tierwise.bench.paired import paired
from tierwise.bench.simulator import ScenarioWorld, SimTask, Simulator, load_corpus, load_scenario
from tierwise.service.client import TierwiseClient
from tierwise.service.paths import corpus_dir, default_policy_file

STATIC, TUNED_ONCE, WEEKLY, ADAPTIVE = ("static rules", "tierwise tuned once (frozen at drift)",
                                        "tierwise retuned weekly", "tierwise adaptive (weekly + online)")
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "drift_model_swap.json"
RECOVERY_WEEKS = 2


@dataclass
class SyntheticConfig:
    quick: bool = False
    seeds: Sequence[int] = (0,)
    weeks: int | None = None  # None: the scenario's
    tasks_per_week: int | None = 150
    trials: int = 30
    min_decisions: int = 100
    holdout_days: float | None = None
    fast_embedder: bool = False
    progress: bool = True
    work_dir: Path | None = None
    keep_homes: bool = False
    # Exploration share on harness ci in the (shared) bootstrap; None keeps the product default.
    exploration_ci: float | None = 0.2
    scenario: Path = SCENARIO
    # Retunes learn from the last N simulated weeks of traffic only (``tierwise retune --window``); None: all.
    retune_window_weeks: float | None = None
    # Hold out the last simulated week (what ``--holdout-days`` does with real time) instead of
    # the retune's default, which sees all of a bench's traffic as "the last 2 days" and hashes.
    holdout_last_week: bool = False
    # Arms run side by side (each its own service); None: all at once.
    parallel: int | None = None

    @classmethod
    def quick_config(cls, **kw: Any) -> SyntheticConfig:
        base: dict[str, Any] = {"quick": True, "weeks": 2, "tasks_per_week": 100, "trials": 5,
                                "min_decisions": 50, "fast_embedder": True}
        base.update(kw)
        return cls(**base)


def make_scenario(cfg: SyntheticConfig, seed: int) -> ScenarioWorld:
    """The drift scenario, resized for the run; in a shortened run the drift moves to the middle.

    Seed 0 keeps the scenario's own seed; other seeds offset it, so seeds give new task streams.
    """
    sc = load_scenario(cfg.scenario)
    weeks = cfg.weeks or sc.weeks
    events = list(sc.events)
    if weeks < sc.weeks:
        drift = max(1, weeks // 2)
        events = [dict(e, week=min(int(e["week"]), drift)) for e in events]
    return replace(sc, weeks=weeks, tasks_per_week=cfg.tasks_per_week or sc.tasks_per_week,
                   seed=sc.seed + seed, events=events)


def bootstrap_file(cfg: SyntheticConfig, work: Path) -> Path:
    """The bootstrap both arms start from: the product default, optionally with another ci exploration."""
    if cfg.exploration_ci is None:
        return default_policy_file()
    import json

    raw = json.loads(default_policy_file().read_text())
    raw["exploration"]["ci"] = cfg.exploration_ci
    path = work / f"bootstrap-explore-{cfg.exploration_ci:g}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2))
    return path


def drift_week(sc: ScenarioWorld) -> int:
    weeks = [int(e["week"]) for e in sc.events if e["kind"] == "swap_model"]
    return min(weeks) if weeks else sc.weeks


class SimOracle:
    """An attempt = the simulator's attempt; the simulator's tests are the detector (perfect)."""

    def __init__(self, sim: Simulator, by_id: dict[str, SimTask]) -> None:
        self.sim, self.by_id = sim, by_id

    def __call__(self, task: ReplayTask, tier: str, model: str, attempt: int) -> AttemptResult:
        a = self.sim.attempt(self.by_id[task.task_id], tier, attempt)
        return AttemptResult(resolved=a.resolved, reported_resolved=a.resolved, cost_usd=a.cost_usd,
                             input_tokens=a.input_tokens, output_tokens=a.output_tokens, latency_ms=a.latency_ms,
                             failure=a.failure, overridden_to=a.overridden_to, output=a.output)


def _reference(sim: Simulator, tasks: list[SimTask], kind: str) -> list[tuple[rm.Episode, int]]:
    """Router-free reference rows: one attempt each on the frontier tier, or on the true best tier."""
    out = []
    for t in tasks:
        tier = "frontier" if kind == "frontier" else sim.true_best_tier(t)
        a = sim.attempt(t, tier, 0)
        out.append((rm.Episode(t.task_id, a.resolved, a.cost_usd, 1, 0, False, t.complex, a.latency_ms, tier),
                    a.input_tokens + a.output_tokens))
    return out


def figures(episodes: list[rm.Episode], tokens: int) -> dict[str, float]:
    s = rm.summarize(episodes)
    resolved = sum(e.resolved for e in episodes)
    s["tokens"] = float(tokens)
    s["resolved_per_mtok"] = resolved / (tokens / 1e6) if tokens else math.nan
    return s


def run_approach(sim: Simulator, weekly: list[list[SimTask]], *, name: str, retune_weekly: bool, seed: int,
                 cfg: SyntheticConfig, work: Path, classifier_file: Path | None, retune_until: int | None = None,
                 adapt: bool = False) -> dict[str, Any]:
    """One approach over every week on its own service; returns traces per week and retune steps.

    ``retune_until``: retune only after weeks before it (the tuned-once arm freezes at the drift).
    ``adapt``: the service runs its online adaptation (``TIERWISE_ADAPT``)."""
    from tierwise.bench._server import Server

    home = work / f"{name}-seed{seed}"
    env = service_env(policy_file=bootstrap_file(cfg, work), seed=seed, fast=cfg.fast_embedder,
                      classifier_file=classifier_file)
    if adapt:
        env["TIERWISE_ADAPT"] = "true"
    skw = settings_kwargs(home / "svc", env)
    by_id = {t.task_id: t for week in weekly for t in week}
    oracle = SimOracle(sim, by_id)
    traces: list[list[Trace]] = []
    steps: list[dict[str, Any]] = []
    versions: list[str] = []
    t0 = time.monotonic()
    with Server(home / "svc", env=env).start() as srv, TierwiseClient(srv.url, timeout=120.0) as client:
        for w, tasks in enumerate(weekly):
            versions.append(str(client.policy().version))
            items = [ReplayTask(t.task_id, t.request, t.complex) for t in tasks]
            week_started = time.time()
            traces.append(replay_traces(client, items, oracle, desc=f"{name} week {w}", progress=cfg.progress))
            if retune_weekly and w < len(weekly) - 1 and (retune_until is None or w < retune_until):
                extra: dict[str, Any] = {}
                holdout_days = cfg.holdout_days
                if cfg.holdout_last_week:
                    holdout_days = (time.time() - week_started) / 86400.0
                if cfg.retune_window_weeks:
                    extra["window"] = max(1, round(cfg.retune_window_weeks * len(tasks)))
                step = retune(client, skw, trials=cfg.trials, seed=seed * 100 + w,
                              min_decisions=cfg.min_decisions, holdout_days=holdout_days, **extra)
                steps.append({"after_week": w, **step.to_json()})
    wall = time.monotonic() - t0
    if not cfg.keep_homes:
        shutil.rmtree(home, ignore_errors=True)
    return {"traces": traces, "retunes": steps, "policy_version_by_week": versions, "wall_s": wall}


# The approaches that run through a service: label -> short name (homes, arm_kwargs).
ARMS = {STATIC: "static", TUNED_ONCE: "tuned-once", WEEKLY: "tierwise", ADAPTIVE: "adaptive"}


def arm_kwargs(name: str, drift: int) -> dict[str, Any]:
    """How each arm runs: static never retunes; tuned-once retunes until the drift, then is frozen
    (the static-routing trap the adaptive arm is judged against); weekly retunes every week; the
    adaptive arm retunes weekly and adapts online between retunes."""
    kwargs: dict[str, dict[str, Any]] = {"static": {"retune_weekly": False},
                                         "tuned-once": {"retune_weekly": True, "retune_until": drift},
                                         "tierwise": {"retune_weekly": True},
                                         "adaptive": {"retune_weekly": True, "adapt": True}}
    return kwargs[name]


# What recovery is judged on: cost per resolved over that of the week's true-best-tier reference.
RECOVERY_METRIC = "cost_per_resolved_vs_oracle"


def recovery(ratio: list[float], drift: int) -> dict[str, Any]:
    """Whether an approach's cost per resolved catches up with the world after the drift.

    ``ratio[w]`` = cost per resolved of the approach / of the true-best-tier reference in week w.
    The reference routes each task to the tier that is best for it *in that week's world* (it sees
    the drift at once), on the same tasks with the same luck, so the ratio removes the week's mix,
    difficulty and the drift's own effect on what is achievable; what is left is how well the
    policy fits the current world. (Normalising by the monolithic frontier instead, as the first
    version did, hides a drift in the cheap tiers: the frontier does not see it either.)
    Baseline = mean ratio over the (up to) two weeks before the drift. Recovered in the first week
    w >= drift whose ratio is at or below the baseline (no tolerance); ``within_two_weeks`` asks
    for w - drift <= 2 (the drift week plus the two retunes after it). ``post_drift_ratio`` is the
    mean ratio from the drift on.
    """
    pre = [r for r in ratio[max(0, drift - 2):drift] if math.isfinite(r)]
    post = [r for r in ratio[drift:] if math.isfinite(r)]
    if not pre or not post:
        return {"baseline_ratio": math.nan, "post_drift_ratio": math.nan, "recovered_week": None,
                "weeks_to_recover": None, "within_two_weeks": None}
    base = float(np.mean(pre))
    week = next((w for w in range(drift, len(ratio)) if math.isfinite(ratio[w]) and ratio[w] <= base), None)
    return {"baseline_ratio": base, "post_drift_ratio": float(np.mean(post)), "recovered_week": week,
            "weeks_to_recover": None if week is None else week - drift,
            "within_two_weeks": week is not None and week - drift <= RECOVERY_WEEKS}


def run(cfg: SyntheticConfig) -> dict[str, Any]:
    started = time.monotonic()
    work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="tierwise-bench-synthetic-"))
    classifier_file = hashing_classifier_file(work / "cache") if cfg.fast_embedder else None
    corpus = load_corpus(corpus_dir(), split="test")  # prompts the classifier never trained on
    per_seed: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        sc = make_scenario(cfg, seed)
        sim = Simulator(sc, corpus)
        weekly = [sim.tasks_for_week(w) for w in range(sc.weeks)]
        # The two services are independent (own home, own seed, sequential traffic each), so they run
        # side by side; each stream stays sequential, so exploration draws remain reproducible.
        from concurrent.futures import ThreadPoolExecutor

        drift = drift_week(sc)
        with ThreadPoolExecutor(max_workers=cfg.parallel or len(ARMS)) as pool:
            futures = {label: pool.submit(run_approach, sim, weekly, name=name, seed=seed, cfg=cfg, work=work,
                                          classifier_file=classifier_file, **arm_kwargs(name, drift))
                       for label, name in ARMS.items()}
            runs = {label: f.result() for label, f in futures.items()}
        refs = {"monolithic frontier": [_reference(sim, week, "frontier") for week in weekly],
                "reference: true best tier, 1 attempt": [_reference(sim, week, "oracle") for week in weekly]}
        weekly_rows: dict[str, list[dict[str, float]]] = {}
        overall: dict[str, dict[str, float]] = {}
        for name, r in runs.items():
            weekly_rows[name] = [figures([t.episode for t in tr], sum(t.input_tokens + t.output_tokens for t in tr))
                                 for tr in r["traces"]]
            flat = [t for tr in r["traces"] for t in tr]
            overall[name] = figures([t.episode for t in flat], sum(t.input_tokens + t.output_tokens for t in flat))
        for name, ref in refs.items():
            weekly_rows[name] = [figures([e for e, _ in wk], sum(n for _, n in wk)) for wk in ref]
            flat_ref = [x for wk in ref for x in wk]
            overall[name] = figures([e for e, _ in flat_ref], sum(n for _, n in flat_ref))
        frontier_eff = overall["monolithic frontier"]["resolved_per_mtok"]
        for name in overall:
            overall[name]["token_efficiency_ratio"] = overall[name]["resolved_per_mtok"] / frontier_eff
            for w, row in enumerate(weekly_rows[name]):
                f = weekly_rows["monolithic frontier"][w]["resolved_per_mtok"]
                row["token_efficiency_ratio"] = row["resolved_per_mtok"] / f
                o = weekly_rows["reference: true best tier, 1 attempt"][w]["cost_per_resolved"]
                row["cost_per_resolved_vs_oracle"] = row["cost_per_resolved"] / o
                m = weekly_rows["monolithic frontier"][w]["cost_per_resolved"]
                row["cost_per_resolved_vs_frontier"] = row["cost_per_resolved"] / m
        rec = {name: recovery([row[RECOVERY_METRIC] for row in weekly_rows[name]], drift) for name in runs}
        per_seed.append({
            "seed": seed, "scenario_seed": sc.seed, "weeks": sc.weeks, "tasks_per_week": sc.tasks_per_week,
            "drift_week": drift, "overall": overall, "weekly": weekly_rows, "recovery": rec,
            "retunes": {n: r["retunes"] for n, r in runs.items()},
            "policy_version_by_week": {n: r["policy_version_by_week"] for n, r in runs.items()},
            "wall_s": {n: r["wall_s"] for n, r in runs.items()},
        })
    doc = {
        "name": "synthetic",
        "status": "ok",
        "quick": cfg.quick,
        "scenario": cfg.scenario.name,
        "config": {"seeds": list(cfg.seeds), "weeks": per_seed[0]["weeks"],
                   "tasks_per_week": per_seed[0]["tasks_per_week"], "trials": cfg.trials,
                   "min_decisions": cfg.min_decisions, "holdout_days": cfg.holdout_days,
                   "embedder": "hashing" if cfg.fast_embedder else "minilm",
                   "bootstrap_policy": str(default_policy_file().name), "harness": "ci",
                   "exploration_ci": cfg.exploration_ci, "retune_window_weeks": cfg.retune_window_weeks,
                   "holdout_last_week": cfg.holdout_last_week},
        "definitions": DEFINITIONS,
        "results": _aggregate(per_seed),
        "seeds": per_seed,
        "wall_s": time.monotonic() - started,
    }
    if not cfg.keep_homes and cfg.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return doc


def _stats(values: list[float]) -> dict[str, float]:
    a = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not a.size:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max())}


def _aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(per_seed[0]["overall"])
    keys = list(per_seed[0]["overall"][names[0]])
    overall = {n: {k: _stats([s["overall"][n][k] for s in per_seed]) for k in keys} for n in names}
    weeks = per_seed[0]["weeks"]
    wkeys = ("cost_per_10k", "cost_per_resolved", "resolution_rate", "complex_resolution_rate", "mean_latency_ms",
             "token_efficiency_ratio", "cost_per_resolved_vs_oracle", "cost_per_resolved_vs_frontier")
    weekly = {n: {k: [_stats([s["weekly"][n][w][k] for s in per_seed])["mean"] for w in range(weeks)]
                  for k in wkeys} for n in names}
    drift = per_seed[0]["drift_week"]
    rec = {n: {"within_two_weeks": [s["recovery"][n]["within_two_weeks"] for s in per_seed],
               "weeks_to_recover": [s["recovery"][n]["weeks_to_recover"] for s in per_seed],
               "baseline_ratio": [s["recovery"][n]["baseline_ratio"] for s in per_seed],
               "post_drift_ratio": [s["recovery"][n]["post_drift_ratio"] for s in per_seed],
               # the same test on the seed-mean curve (what the plot shows)
               "mean_curve": recovery(weekly[n][RECOVERY_METRIC], drift)}
           for n in per_seed[0]["recovery"]}
    arms = [n for n in ARMS if n in per_seed[0]["weekly"]]
    vs = {base: paired(per_seed, arms, base) for base in (STATIC, TUNED_ONCE) if base in arms}
    return {"overall": overall, "weekly_mean": weekly, "recovery": rec, "recovery_metric": RECOVERY_METRIC,
            "drift_week": drift, "paired": vs}


DEFINITIONS = {
    "cost_per_10k": "simulated list-price USD of every attempt (escalations pay again), per task, x 10,000",
    "mean_latency_ms": "average per task of the summed attempt latencies (escalations add up)",
    "complex_resolution_rate": "resolution rate on tasks with latent difficulty >= 0.6",
    "resolved_per_mtok": "resolved tasks per million tokens (input + output, all attempts)",
    "token_efficiency_ratio": ("resolved tasks per million tokens of the approach divided by the same for the "
                               "monolithic frontier (every task once on the frontier tier); > 1 means more "
                               "resolved work per token than always-frontier"),
    "cost_per_resolved_vs_oracle": ("cost per resolved task divided by that of the true-best-tier reference (each "
                                    "task once on the simulator's true best tier) in the same week"),
    "cost_per_resolved_vs_frontier": ("cost per resolved task divided by the monolithic frontier's in the same week "
                                      "(same tasks and luck): routing efficiency net of the week's mix"),
    "recovery": ("on cost_per_resolved_vs_oracle (the reference knows each week's world, so the ratio is the "
                 "policy's fit to the current world): baseline = mean over the two weeks before the drift; "
                 "recovered at the first week >= drift at or below it; within_two_weeks: at most "
                 f"{RECOVERY_WEEKS} weeks after the drift week; post_drift_ratio = mean from the drift on; "
                 "mean_curve = the same test on the seed-mean weekly curve"),
    "exploration": ("both arms start from data/policy.default.json with exploration on harness ci set to "
                    "config.exploration_ci (null: the product default 0.05)"),
    "spread": "mean, std (ddof=1), min, max across seeds",
    "paired": ("per seed, arm minus baseline (static rules, or the tuned-once arm) on the same tasks and luck: "
               "cost per resolved in % of the baseline's, resolution in percentage points; after_drift pools "
               "the weeks from the drift on, drift_week the drift week alone; mean over seeds with a 95% "
               "Student-t interval"),
}
