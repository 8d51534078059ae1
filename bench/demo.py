"""``make demo``: the whole tierwise loop on a simulated workload, in a few minutes, in a temp home.

1. start ``tierwise serve`` on a fresh home (bootstrap policy = data/policy.default.json);
2. replay simulated traffic (bench/scenarios/steady.json) through it: route, attempt, report, escalate;
3. retune from that telemetry (Optuna + off-policy evaluation, logged to MLflow);
4. wait for the service to hot-reload the new champion (no restart);
5. replay more traffic from the same workload and print before/after.

Run: ``make demo`` (or ``.venv/bin/python -m tierwise.bench.demo [--fast] [--clean]``). ``--fast`` uses the hashing
embedder instead of MiniLM; the temporary home is kept (for MLflow and the notebook) unless ``--clean``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tierwise.bench import routing_metrics as rm
from tierwise.bench.loop import (
    ReplayTask,
    hashing_classifier_file,
    replay_traces,
    retune,
    service_env,
    settings_kwargs,
)
from tierwise.bench.simulator import Simulator, load_corpus, load_scenario
from tierwise.bench.synthetic_bench import SimOracle
from tierwise.service.client import TierwiseClient
from tierwise.service.paths import corpus_dir, default_policy_file

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "steady.json"


def _line(label: str, eps: list[rm.Episode]) -> str:
    s = rm.summarize(eps)
    return (f"  {label:<28} {int(s['n']):>5} tasks  resolved {s['resolution_rate']:6.1%}  "
            f"cost/resolved ${s['cost_per_resolved']:.4f}  cost/10k ${s['cost_per_10k']:,.0f}  "
            f"escalated {s['escalation_rate']:5.1%}  human {s['human_rate']:5.1%}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="hashing embedder instead of MiniLM")
    p.add_argument("--clean", action="store_true", help="delete the temporary home afterwards")
    p.add_argument("--tasks", type=int, default=300, help="tasks per simulated week (default 300)")
    p.add_argument("--trials", type=int, default=30, help="Optuna trials in the retune (default 30)")
    args = p.parse_args(argv)
    from tierwise.bench._server import Server

    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="tierwise-demo-"))
    classifier = hashing_classifier_file(home / "cache") if args.fast else None
    env = service_env(policy_file=default_policy_file(), seed=0, fast=args.fast, classifier_file=classifier)
    svc_home = home / "svc"
    sc = load_scenario(SCENARIO)
    sim = Simulator(sc, load_corpus(corpus_dir(), split="test"))
    before_weeks, after_weeks = (0, 1), (2, 3)
    weeks = {w: sim.tasks_for_week(w) for w in (*before_weeks, *after_weeks)}
    for w in weeks:
        weeks[w] = weeks[w][: args.tasks]
    by_id = {t.task_id: t for ts in weeks.values() for t in ts}
    oracle = SimOracle(sim, by_id)

    def tasks(ws: tuple[int, ...]) -> list[ReplayTask]:
        return [ReplayTask(t.task_id, t.request, t.complex) for w in ws for t in weeks[w]]

    print(f"tierwise demo — home {home}")
    print(f"1. starting the service ({'hashing' if args.fast else 'MiniLM'} encoder) ...", flush=True)
    try:
        with Server(svc_home, env=env).start() as srv, TierwiseClient(srv.url, timeout=120.0) as client:
            v0 = client.policy().version
            print(f"   up at {srv.url} in {srv.startup_s:.0f} s, serving policy version {v0} (bootstrap)")
            print(f"2. replaying {len(tasks(before_weeks))} simulated tasks ({sc.name}, weeks {before_weeks}) ...",
                  flush=True)
            before = replay_traces(client, tasks(before_weeks), oracle, desc="before retune")
            print("3. retuning from the telemetry (Optuna over thresholds, off-policy estimates) ...", flush=True)
            step = retune(client, settings_kwargs(svc_home, env), trials=args.trials, seed=0, min_decisions=200)
            print(f"   retune: {step.status} in {step.seconds:.0f} s — {step.reason}")
            if step.promoted:
                print(f"4. the service hot-reloaded policy {step.version_before} → {step.version_after} "
                      "(no restart)")
            else:
                print(f"4. no new champion: the service keeps policy {step.version_before} "
                      f"({'the candidate is a challenger' if step.status == 'challenger' else step.status})")
            v1 = client.policy().version
            print(f"5. replaying {len(tasks(after_weeks))} more tasks (weeks {after_weeks}) under policy {v1} ...",
                  flush=True)
            after = replay_traces(client, tasks(after_weeks), oracle, desc="after retune")
        print()
        print("before / after (same workload, simulated models):")
        print(_line(f"before retune (policy {v0})", [t.episode for t in before]))
        print(_line(f"after retune  (policy {v1})", [t.episode for t in after]))
        print()
        run_id = step.details.get("run_id")
        print(f"MLflow run {run_id}: .venv/bin/mlflow ui --backend-store-uri sqlite:///{svc_home}/mlflow/mlflow.db")
        print(f"Misroutes notebook: TIERWISE_HOME={svc_home} make notebook   (notebooks/misroutes.ipynb)")
        print(f"done in {time.monotonic() - t0:.0f} s")
    finally:
        if args.clean:
            shutil.rmtree(home, ignore_errors=True)
            print("(temporary home removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
