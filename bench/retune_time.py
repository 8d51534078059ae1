"""How long ``tierwise retune`` takes on 10k, 100k and 1M logged decisions (target: 1M ≤ 120 s).

For each size: synthetic decisions and their attempts (``tierwise.tuner.synthetic``, decided by the
service's own vectorised decision functions) are written straight into a fresh journal with
``Journal.insert_many`` in batches; the journal is exported to Parquet segments (the service's
background exporter does this continuously in production, so it is timed separately); then a
full retune runs with a fixed trial count, publishing to a local MLflow registry.

    .venv/bin/python -m tierwise.bench.retune_time [--sizes 10000,100000,1000000] [--trials 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from tierwise.service.paths import default_policy_file
from tierwise.service.policy.model import parse_policy
from tierwise.service.policy.registry import mlflow_environment
from tierwise.service.settings import load_settings
from tierwise.service.telemetry.store import TelemetryStore
from tierwise.tuner.retune import run_retune
from tierwise.tuner.synthetic import synthetic_batches

DAY = 86400.0


def one(n: int, trials: int, seed: int, keep: bool) -> dict[str, float | str]:
    home = Path(tempfile.mkdtemp(prefix=f"tierwise-retune-{n}-"))
    policy = parse_policy(default_policy_file().read_text(), version="1")
    now = time.time()
    store = TelemetryStore.open(home / "telemetry", catalog=False)
    t = time.perf_counter()
    nd = na = 0
    with tqdm(total=n, desc=f"write {n:,}", unit="dec", leave=False) as bar:
        for decisions, attempts in synthetic_batches(policy, n, seed=seed, start_ts=now - 10 * DAY, span_s=10 * DAY):
            nd += store.journal.insert_many("decisions", decisions)
            na += store.journal.insert_many("attempts", attempts)
            bar.update(len(decisions))
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    store.close()  # exports every committed row to Parquet segments
    export_s = time.perf_counter() - t
    settings = load_settings(home=home, use_registry=True)
    t = time.perf_counter()
    result = run_retune(settings, trials=trials, seed=seed, progress=True, now=now, min_decisions=1000)
    retune_s = time.perf_counter() - t
    if not keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return {"decisions": nd, "attempts": na, "write_s": write_s, "export_s": export_s, "retune_s": retune_s,
            "rows_per_s": nd / retune_s, "status": result.status, "split": result.split,
            **{k: v for k, v in result.timings.items()}}


def main() -> int:
    mlflow_environment()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    args = p.parse_args()
    console = Console(width=170)
    table = Table(title=f"retune wall time ({args.trials} trials, {os.cpu_count()} CPUs)")
    for col in ("decisions", "attempts", "write s", "export s", "retune s", "rows/s", "load", "fit", "search",
                "evaluate", "publish", "status"):
        table.add_column(col, justify="right")
    for n in [int(s) for s in args.sizes.split(",")]:
        r = one(n, args.trials, args.seed, args.keep)
        console.print(f"{n:,}: retune {float(r['retune_s']):.1f} s ({float(r['rows_per_s']):,.0f} decisions/s); "
                      f"write {float(r['write_s']):.1f} s, export {float(r['export_s']):.1f} s")
        table.add_row(f"{int(r['decisions']):,}", f"{int(r['attempts']):,}", f"{float(r['write_s']):.1f}",
                      f"{float(r['export_s']):.1f}", f"{float(r['retune_s']):.1f}", f"{float(r['rows_per_s']):,.0f}",
                      *(f"{float(r.get(k, 0.0)):.1f}" for k in ("load_s", "fit_s", "search_s", "evaluate_s",
                                                                "publish_s")),
                      str(r["status"]))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
