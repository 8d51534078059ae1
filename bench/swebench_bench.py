"""``tierwise bench swebench``: the comparison table on real SWE-bench Verified runs, through the loop.

Protocol (per seed, per cross-validation fold, by task):

1. Start a fresh ``tierwise serve`` (own home, own MLflow registry) whose bootstrap is the bench
   policy (``tierwise.bench.bench_policy``: list prices only, blind to results).
2. **Static rules** = that bootstrap, evaluated on the held-out fold.
3. **Warm-up**: the training tasks, ``passes`` times, on harness ``ci`` with exploration on; the
   agent reports what its failure detector saw.
4. **Retune** with ``tierwise.tuner.retune.run_retune`` on that telemetry; the service hot-reloads the
   champion (if the tuner promoted one).
5. **Tierwise after retune** = the champion, evaluated on the held-out fold.
6. **Operating curve**: copies of the retuned policy with every threshold pushed toward 1 by a
   fraction (``bench_policy.shift_threshold``), each registered
   and promoted like any policy and replayed on the held-out fold.

Evaluation never explores: it runs on harness ``ci`` with a *copy* of the served policy whose
exploration is 0 for every harness, registered as its own version (so thresholds tuned for ``ci``
are the ones evaluated). Warm-up and retune use the default detector (recall 0.9, false alarm 0.05);
evaluation is repeated under every detector setting.

The router sees only ``Repository: <repo>`` plus the problem statement; an attempt's outcome and
cost are the recorded ``resolved`` / ``cost_usd`` of that tier's model on that task. A failed
attempt is flagged with probability ``recall``, a success with probability ``false_alarm`` (one
draw per task × model, shared by every approach); an unflagged failure is final and unresolved,
a flag escalates (or queues for a human). Monolithic, cascade and oracle rows need no router and
come from ``tierwise.bench.routing_metrics`` on the same held-out tasks.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.bench import routing_metrics as rm
from tierwise.bench.bench_policy import (
    BENCH_MODELS,
    STRONG_MODEL,
    WEAK_MODEL,
    build_policy,
    shifted_thresholds,
    write_policy,
)
from tierwise.bench.loop import (
    AttemptResult,
    ReplayTask,
    RetuneStep,
    Trace,
    hashing_classifier_file,
    publish_and_promote,
    replay_traces,
    retune,
    service_env,
    settings_kwargs,
    wait_for_policy,
)
from tierwise.bench.swebench_data import DataUnavailable, SwebenchData, folds, load_swebench
from tierwise.service.client import TierwiseClient
from tierwise.service.policy.model import parse_policy

DETECTORS: tuple[tuple[float, float], ...] = ((0.9, 0.05), (1.0, 0.0), (0.8, 0.1))
DEFAULT_DETECTOR = DETECTORS[0]
METRICS = ("resolution_rate", "complex_resolution_rate", "cost_per_10k", "cost_per_resolved",
           "mean_attempts", "escalation_rate", "human_rate", "apgr", "cpt50", "cpt80")
EVAL_WORKERS = 2  # evaluation never explores, so concurrent requests cannot change a decision
TOOLS = ["read_file", "edit_file", "search_code", "run_tests", "shell"]


@dataclass
class SwebenchConfig:
    quick: bool = False
    seeds: Sequence[int] = (0,)
    k: int = 5
    max_folds: int | None = None  # None: all k folds
    n_tasks: int | None = None  # None: all 500; else a seeded subset
    passes: int = 2
    jobs: int = 2  # folds run side by side (one service each)
    trials: int = 30
    min_decisions: int = 200
    holdout_days: float | None = None
    sweep: Sequence[float] = (0.2,)  # threshold pushes toward 1 for the operating curve
    fast_embedder: bool = False
    progress: bool = True
    work_dir: Path | None = None
    keep_homes: bool = False
    extra_retune: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_config(cls, **kw: Any) -> SwebenchConfig:
        base: dict[str, Any] = {"quick": True, "max_folds": 1, "n_tasks": 60, "passes": 2, "trials": 5,
                                "min_decisions": 50, "sweep": (0.2,), "fast_embedder": True, "jobs": 1}
        base.update(kw)
        return cls(**base)


def subset(data: SwebenchData, n: int | None, seed: int) -> SwebenchData:
    """A seeded random subset of tasks (the quick mode's slice), same tables otherwise."""
    if n is None or n >= len(data.tasks):
        return data
    ids = sorted(np.random.default_rng(seed).choice(np.asarray(data.tasks.index), size=n, replace=False))
    return SwebenchData(tasks=data.tasks.loc[ids], resolved=data.resolved.loc[ids], cost=data.cost.loc[ids],
                        models=data.models)


def replay_task(data: SwebenchData, task_id: str) -> ReplayTask:
    """What the router may see: the repo name and the problem statement. Nothing else."""
    row = data.tasks.loc[task_id]
    prompt = f"Repository: {row['repo']}\n\n{row['problem_statement']}"
    return ReplayTask(task_id, {"prompt": prompt, "tools": list(TOOLS), "expected_output": "patch",
                                "repo": {"languages": ["python"]}}, bool(row["complex"]))


def _uniform(seed: int, task_id: str, model: str) -> float:
    """One fixed uniform per (seed, task, model): the harness's tests give the same verdict every time."""
    key = f"{seed}\x1f{task_id}\x1f{model}".encode()
    return float(np.random.default_rng(list(key)).random())


class RecordedWorld:
    """An attempt = that model's recorded run on the task; the detector is the only simulation."""

    def __init__(self, data: SwebenchData, recall: float, false_alarm: float, seed: int) -> None:
        self.data, self.recall, self.false_alarm, self.seed = data, recall, false_alarm, seed

    def __call__(self, task: ReplayTask, tier: str, model: str, attempt: int) -> AttemptResult:
        resolved = bool(self.data.resolved.at[task.task_id, tier])
        cost = float(self.data.cost.at[task.task_id, tier])
        flagged = _uniform(self.seed, task.task_id, tier) < (self.false_alarm if resolved else self.recall)
        return AttemptResult(resolved=resolved, reported_resolved=not flagged, cost_usd=cost,
                             failure="tests_failed" if flagged else None)


def _eval_copy(raw_policy: dict[str, Any], version: str, push: float = 0.0) -> str:
    """The policy with exploration 0 on every harness (and thresholds pushed by ``push``), as JSON."""
    pol = parse_policy(raw_policy)
    text = shifted_thresholds(pol, push, version)
    raw = json.loads(text)
    raw["exploration"] = {h: 0.0 for h in raw["exploration"]}
    return json.dumps(raw, indent=2)


def _serve(client: TierwiseClient, skw: dict[str, Any], text: str, description: str) -> str:
    """Register ``text`` as a new version, promote it, and wait until the service serves it."""
    from tierwise.service.settings import load_settings

    version = publish_and_promote(load_settings(**skw), text, description)
    wait_for_policy(client, version=version)
    return version


def _evaluate(client: TierwiseClient, data: SwebenchData, test: list[str], seed: int,
              progress: bool, label: str) -> dict[str, list[Trace]]:
    tasks = [replay_task(data, t) for t in test]
    out: dict[str, list[Trace]] = {}
    for recall, fa in DETECTORS:
        oracle = RecordedWorld(data, recall, fa, seed)
        out[_det_key(recall, fa)] = replay_traces(client, tasks, oracle, harness="ci", desc=f"{label} {recall}/{fa}",
                                                  progress=progress, workers=EVAL_WORKERS)
    return out


def _content(policy: dict[str, Any]) -> dict[str, Any]:
    """A policy's decision-relevant content: everything but its version and description."""
    return {k: v for k, v in policy.items() if k not in ("version", "description")}


def _det_key(recall: float, fa: float) -> str:
    return f"recall={recall:g},false_alarm={fa:g}"


def run_fold(data: SwebenchData, train: list[str], test: list[str], *, fold: int, seed: int,
             cfg: SwebenchConfig, work: Path, classifier_file: Path | None) -> dict[str, Any]:
    """One fold through a fresh service: static eval, warm-up, retune, tierwise eval, sweep."""
    from tierwise.bench._server import Server

    home = work / f"seed{seed}-fold{fold}"
    policy_file = write_policy(build_policy(data.models), home / "bench_policy.json")
    env = service_env(policy_file=policy_file, seed=seed * 1000 + fold, fast=cfg.fast_embedder,
                      classifier_file=classifier_file)
    skw = settings_kwargs(home / "svc", env)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    out: dict[str, Any] = {"fold": fold, "seed": seed, "n_train": len(train), "n_test": len(test)}
    with Server(home / "svc", env=env).start() as srv, TierwiseClient(srv.url, timeout=120.0) as client:
        timings["startup_s"] = time.monotonic() - t0
        bootstrap = client.policy()
        # 1. Warm-up on the training tasks under the bootstrap, exploring (harness ci).
        t = time.monotonic()
        warm_oracle = RecordedWorld(data, *DEFAULT_DETECTOR, seed)
        warm_tasks = [replay_task(data, tid) for tid in train]
        rng = np.random.default_rng(seed * 7919 + fold)
        n_warm = 0
        for p in range(cfg.passes):
            order = [warm_tasks[i] for i in rng.permutation(len(warm_tasks))]
            n_warm += len(replay_traces(client, order, warm_oracle, harness="ci",
                                        desc=f"f{fold} warm-up {p + 1}/{cfg.passes}", progress=cfg.progress))
        timings["warmup_s"] = time.monotonic() - t
        out["n_warmup_decisions"] = n_warm
        # 2. Retune on that telemetry only. Every evaluation below happens after it, so no held-out
        #    task ever reaches the tuner.
        step: RetuneStep = retune(client, skw, trials=cfg.trials, seed=seed, min_decisions=cfg.min_decisions,
                                  holdout_days=cfg.holdout_days, **cfg.extra_retune)
        timings["retune_s"] = step.seconds
        out["retune"] = step.to_json()
        retuned = client.policy()
        # 3. Static rules: a no-exploration copy of the bootstrap.
        t = time.monotonic()
        _serve(client, skw, _eval_copy(bootstrap.policy, f"eval-static-f{fold}"),
               f"bench eval copy of bootstrap v{bootstrap.version} (exploration 0)")
        static = _evaluate(client, data, test, seed, cfg.progress, f"f{fold} static")
        timings["static_eval_s"] = time.monotonic() - t
        sweep: dict[str, dict[str, float]] = {}
        out["retuned_policy_version"] = str(retuned.version)
        out["retuned_policy"] = retuned.policy
        # 4. Tierwise after retune: a no-exploration copy of the served champion. If the retune did
        #    not promote, the champion *is* the bootstrap: same policy, no exploration, so every
        #    decision would repeat the static replay's; that replay is reused (and flagged).
        t = time.monotonic()
        same = _content(retuned.policy) == _content(bootstrap.policy)
        out["tierwise_is_bootstrap"] = same
        tierwise: dict[str, list[Trace]] = static
        if not same:
            _serve(client, skw, _eval_copy(retuned.policy, f"eval-tierwise-f{fold}"),
                   f"bench eval copy of retuned v{retuned.version} (exploration 0)")
            tierwise = _evaluate(client, data, test, seed, cfg.progress, f"f{fold} tierwise")
        timings["tierwise_eval_s"] = time.monotonic() - t
        # 5. Operating curve: threshold-pushed copies of the retuned champion, default detector.
        t = time.monotonic()
        oracle = RecordedWorld(data, *DEFAULT_DETECTOR, seed)
        tasks = [replay_task(data, tid) for tid in test]
        for push in cfg.sweep:
            _serve(client, skw, _eval_copy(retuned.policy, f"sweep-{push:+g}", push),
                   f"bench sweep: retuned v{retuned.version} thresholds pushed {push:+g} (exploration 0)")
            traces = replay_traces(client, tasks, oracle, harness="ci", desc=f"f{fold} sweep {push:+g}",
                                   progress=cfg.progress, workers=EVAL_WORKERS)
            sweep[f"{push:+g}"] = rm.summarize([tr.episode for tr in traces])
        timings["sweep_s"] = time.monotonic() - t
    timings["fold_s"] = time.monotonic() - t0
    out["timings"] = timings
    out["static"] = static
    out["tierwise"] = tierwise
    out["sweep"] = sweep
    if not cfg.keep_homes:
        shutil.rmtree(home, ignore_errors=True)
    else:
        out["home"] = str(home)
    return out


def _points_metrics(points: list[tuple[float, float]], weak: dict[str, float],
                    strong: dict[str, float]) -> dict[str, float]:
    """APGR and CPT(50%/80%) for an approach's operating points (cost per task, resolution)."""
    w_res, s_res = weak["resolution_rate"], strong["resolution_rate"]
    w_cost, s_cost = weak["cost_per_10k"], strong["cost_per_10k"]
    if w_res == s_res or w_cost == s_cost:
        return {"apgr": math.nan, "cpt50": math.nan, "cpt80": math.nan}
    pts = [(rm.cost_share(c, w_cost, s_cost), r) for c, r in points]
    return {"apgr": rm.apgr(pts, w_res, s_res), "cpt50": rm.cpt(pts, w_res, s_res, 0.5),
            "cpt80": rm.cpt(pts, w_res, s_res, 0.8)}


def baseline_rows(data: SwebenchData, test: Sequence[str], *, recall: float, false_alarm: float,
                  seed: int) -> dict[str, dict[str, float]]:
    """The router-free rows on ``test``: monolithic per ladder model, the fixed cascade, the oracles."""
    ladder = build_policy(data.models).ladder
    ids = list(test)
    rows: dict[str, dict[str, float]] = {f"monolithic {m}": rm.summarize(rm.monolithic(data, m, ids)) for m in ladder}
    rows[f"cascade {WEAK_MODEL} -> {STRONG_MODEL}"] = rm.summarize(
        rm.cascade(data, [WEAK_MODEL, STRONG_MODEL], recall=recall, false_alarm=false_alarm, seed=seed, task_ids=ids))
    rows["oracle (5 bench tiers)"] = rm.summarize(rm.oracle(data, list(BENCH_MODELS), ids,
                                                            fallback_model=STRONG_MODEL))
    rows["oracle (all 24 models)"] = rm.summarize(rm.oracle(data, list(data.models.index), ids,
                                                            fallback_model=STRONG_MODEL))
    return rows


ORDER = ("monolithic", "static rules", "cascade", "tierwise after retune", "oracle")


def fold_rows(data: SwebenchData, fold: dict[str, Any], test: list[str], seed: int) -> dict[str, dict[str, Any]]:
    """Per detector setting: approach → figures for one fold (router rows from the service replays)."""
    out: dict[str, dict[str, Any]] = {}
    for recall, fa in DETECTORS:
        key = _det_key(recall, fa)
        rows: dict[str, Any] = baseline_rows(data, test, recall=recall, false_alarm=fa, seed=seed)
        rows["static rules"] = rm.summarize([t.episode for t in fold["static"][key]])
        rows["tierwise after retune"] = rm.summarize([t.episode for t in fold["tierwise"][key]])
        rows = dict(sorted(rows.items(), key=lambda kv: next(i for i, p in enumerate(ORDER) if kv[0].startswith(p))))
        weak, strong = rows[f"monolithic {WEAK_MODEL}"], rows[f"monolithic {STRONG_MODEL}"]
        for name, row in rows.items():
            points = [(row["cost_per_10k"], row["resolution_rate"])]
            if name == "tierwise after retune" and (recall, fa) == DEFAULT_DETECTOR:
                points += [(s["cost_per_10k"], s["resolution_rate"]) for s in fold["sweep"].values()]
            row.update(_points_metrics(points, weak, strong))
        out[key] = rows
    return out


def aggregate(per_fold: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean, std, min, max of every figure across folds × seeds, per detector and approach."""
    out: dict[str, dict[str, Any]] = {}
    for det in per_fold[0]:
        out[det] = {}
        names = list(dict.fromkeys(n for f in per_fold for n in f[det]))
        for name in names:
            rows = [f[det][name] for f in per_fold if name in f[det]]
            agg: dict[str, Any] = {"n_folds": len(rows)}
            for m in (*METRICS, "n"):
                vals = np.array([r[m] for r in rows], dtype=float)
                finite = vals[np.isfinite(vals)]
                agg[m] = {"mean": float(finite.mean()) if finite.size else math.nan,
                          "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0 if finite.size else math.nan,
                          "min": float(finite.min()) if finite.size else math.nan,
                          "max": float(finite.max()) if finite.size else math.nan}
            out[det][name] = agg
    return out


def run(cfg: SwebenchConfig) -> dict[str, Any]:
    """The whole benchmark; returns the result document (``status: skipped`` if data is absent)."""
    try:
        full = load_swebench()
    except DataUnavailable as exc:
        return {"name": "swebench", "status": "skipped", "reason": str(exc)}
    started = time.monotonic()
    work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="tierwise-bench-swebench-"))
    classifier_file = hashing_classifier_file(work / "cache") if cfg.fast_embedder else None
    per_fold: list[dict[str, dict[str, Any]]] = []
    folds_out: list[dict[str, Any]] = []
    jobs = []
    for seed in cfg.seeds:
        data = subset(full, cfg.n_tasks, seed)
        splits = folds(data, k=cfg.k, seed=seed)
        jobs += [(seed, f, data, train, test) for f, (train, test) in enumerate(splits[: cfg.max_folds or cfg.k])]
    # Folds are independent (own service, home and registry), so ``cfg.jobs`` of them run side by
    # side; within a fold, warm-up traffic stays sequential so exploration draws are reproducible.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
        futures = [pool.submit(run_fold, data, train, test, fold=f, seed=seed, cfg=cfg, work=work,
                               classifier_file=classifier_file) for seed, f, data, train, test in jobs]
        results = [fut.result() for fut in futures]
    for (seed, _, data, _, test), fold in zip(jobs, results, strict=True):
        per_fold.append(fold_rows(data, fold, test, seed))
        folds_out.append({k: v for k, v in fold.items() if k not in ("static", "tierwise")}
                         | {"rows": per_fold[-1]})
    agg = aggregate(per_fold)
    statuses = [f["retune"] for f in folds_out]
    pol = build_policy(full.models)
    doc: dict[str, Any] = {
        "name": "swebench",
        "status": "ok",
        "quick": cfg.quick,
        "config": {"seeds": list(cfg.seeds), "k": cfg.k, "folds_run": cfg.max_folds or cfg.k, "n_tasks":
                   cfg.n_tasks or len(full.tasks), "warmup_passes": cfg.passes, "jobs": cfg.jobs, "trials": cfg.trials,
                   "min_decisions": cfg.min_decisions, "holdout_days": cfg.holdout_days,
                   "sweep_threshold_pushes": list(cfg.sweep), "embedder": "hashing" if cfg.fast_embedder else "minilm",
                   "detectors": [{"recall": r, "false_alarm": f} for r, f in DETECTORS],
                   "default_detector": _det_key(*DEFAULT_DETECTOR)},
        "bench_policy": {"ladder": pol.ladder, "description": pol.description,
                         "prices": {t: [pol.tiers[t].input_usd_per_mtok, pol.tiers[t].output_usd_per_mtok]
                                    for t in pol.ladder}},
        "weak_model": WEAK_MODEL, "strong_model": STRONG_MODEL,
        "tierwise_after_retune": {"retune_statuses": [s["status"] for s in statuses],
                                  "promoted": [s["promoted"] for s in statuses],
                                  "served_policy_is_bootstrap": [f.get("tierwise_is_bootstrap") for f in folds_out]},
        "definitions": DEFINITIONS,
        "results": agg,
        "folds": folds_out,
        "wall_s": time.monotonic() - started,
    }
    if not cfg.keep_homes and cfg.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return doc


DEFINITIONS = {
    "resolution_rate": "share of held-out tasks whose final accepted attempt truly resolved the task",
    "complex_resolution_rate": "resolution rate on tasks annotated '15 min - 1 hour' or harder",
    "cost_per_10k": "recorded USD of every attempt (escalations pay again), per task, x 10,000",
    "cost_per_resolved": "total cost / resolved tasks",
    "mean_attempts": "attempts per task (1 + escalations)",
    "escalation_rate": "share of tasks with at least one escalation",
    "human_rate": "share of tasks that ended in the human queue (unresolved)",
    "apgr": ("RouteLLM average performance-gap recovered between monolithic gpt_5_mini (weak) and "
             "claude_opus_4_5 (strong) over normalised cost share; tierwise uses its retuned point plus "
             "the threshold-push sweep (default detector only; thresholds moved toward 1 by each push); "
             "other approaches their one point; the envelope adds (0,0) and (1,1)"),
    "cpt50/cpt80": "least cost share reaching 50%/80% of the weak→strong resolution gap (nan: never)",
    "spread": "mean, std (ddof=1), min, max across folds × seeds",
}
