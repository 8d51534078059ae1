"""``tierwise retune``: registered into the service CLI when the tuner is installed."""

from __future__ import annotations

import argparse
import json

from tierwise.service.jsonsafe import jsonable
from tierwise.service.settings import Settings


def cmd_retune(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.tuner.retune import run_retune

    result = run_retune(settings, dry_run=args.dry_run, if_drift=args.if_drift, trials=args.trials,
                        holdout_days=args.holdout_days, min_decisions=args.min_decisions, seed=args.seed,
                        margin=args.margin, floor=args.floor, window=args.window, progress=not args.no_progress,
                        wait_s=args.wait, storage=args.storage)
    if args.json:
        print(json.dumps(jsonable(result.__dict__), indent=2))
        return 0
    print(f"retune: {result.status}" + (f" → policy version {result.version}" if result.version else "")
          + (f" (MLflow run {result.run_id})" if result.run_id else ""))
    print(f"  data: {result.n_decisions} decisions with outcomes; train {result.n_train}, holdout "
          f"{result.n_holdout} ({result.split} split); drift {'FLAGGED' if result.drift_flagged else 'none'}")
    for name, est in (("champion " + result.champion_version, result.champion), ("candidate", result.candidate)):
        if est:
            print(f"  {name:<20} resolution {est['resolution']:.4f} [{est['resolution_low']:.4f}, "
                  f"{est['resolution_high']:.4f}]  cost/resolved ${est['cost_per_resolved']:.5f} "
                  f"[{est['cost_per_resolved_low']:.5f}, {est['cost_per_resolved_high']:.5f}]")
    if result.shadow:
        print(f"  shadow: {int(result.shadow['shadow_rows'])} rows, agreement "
              f"{result.shadow['shadow_agreement']:.3f}")
    print(f"  {result.reason}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--window must be a positive integer, not {text!r}")
    return value


def _storage_url(text: str) -> str:
    from tierwise.service.urls import redact_url

    if "://" not in text or text.startswith(("http:", "https:", "file:")):
        raise argparse.ArgumentTypeError(f"--storage must be a database URL such as postgresql://host/db, "
                                         f"not {redact_url(text)!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--wait must be a number of seconds, not {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"--wait must be a number of seconds >= 0, not {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("retune", help="learn a new policy from telemetry, evaluate it off-policy, publish it")
    p.add_argument("--dry-run", action="store_true", help="evaluate only; publish nothing")
    p.add_argument("--if-drift", action="store_true", help="retune only if the drift report flags")
    p.add_argument("--trials", type=int, default=60, help="Optuna trials (default 60)")
    p.add_argument("--holdout-days", type=float, default=2.0, help="hold out the last N days (default 2)")
    p.add_argument("--min-decisions", type=int, default=1000,
                   help="refuse to retune on fewer decisions with outcomes (default 1000)")
    p.add_argument("--window", type=_positive_int, default=None,
                   help="learn from the N most recent decisions with outcomes only (default: all); after a "
                        "drift, older traffic describes a world that is gone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=float, default=0.03,
                   help="relative cost-per-resolved improvement needed to promote (default 0.03)")
    p.add_argument("--floor", type=float, default=None,
                   help="resolution-rate floor (default: champion estimate - 0.005)")
    p.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                   help="if another retune of this home is running, wait up to SECONDS for it (default 0: "
                        "exit 2 at once)")
    p.add_argument("--storage", type=_storage_url, default=None, metavar="URL",
                   help="run the Optuna study on this database (postgresql://...), so several machines "
                        "add trials to one study")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=cmd_retune)
