"""``tierwise bench swebench | synthetic | all``: run the benchmarks, write JSON, Markdown and plots.

Outputs go to ``--out`` (default ``bench/results``): ``<name>.json`` (every figure, per approach,
with its spread), ``<name>.md`` (the tables) and PNG plots; ``<name>`` gets a ``-quick`` suffix in
quick mode so a quick run never overwrites the full results.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tierwise.service.jsonsafe import jsonable

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n")
    return path


def _fmt(stat: dict[str, float] | None, kind: str) -> str:
    if stat is None:
        return "–"
    m, s = stat.get("mean"), stat.get("std")
    if m is None or not math.isfinite(m):
        return "–"
    spread = s is not None and math.isfinite(s) and s > 0
    s = s if s is not None else 0.0
    if kind == "pct":
        return f"{m * 100:.1f}%" + (f" ± {s * 100:.1f}" if spread else "")
    if kind == "usd0":
        return f"${m:,.0f}" + (f" ± {s:,.0f}" if spread else "")
    if kind == "usd3":
        return f"${m:.3f}" + (f" ± {s:.3f}" if spread else "")
    return f"{m:.2f}" + (f" ± {s:.2f}" if spread else "")


SWE_COLS = (("resolution_rate", "resolved", "pct"), ("complex_resolution_rate", "complex resolved", "pct"),
            ("cost_per_10k", "cost / 10k tasks", "usd0"), ("cost_per_resolved", "cost / resolved", "usd3"),
            ("mean_attempts", "attempts", "num"), ("escalation_rate", "escalated", "pct"),
            ("human_rate", "human queue", "pct"), ("apgr", "APGR", "num"), ("cpt50", "CPT(50%)", "num"),
            ("cpt80", "CPT(80%)", "num"))


def swebench_md(doc: dict[str, Any]) -> str:
    if doc.get("status") != "ok":
        return f"# SWE-bench bench\n\nSkipped: {doc.get('reason')}\n"
    c = doc["config"]
    lines = [f"# SWE-bench Verified bench{' (quick)' if doc['quick'] else ''}", "",
             f"{c['n_tasks']} tasks, {c['k']}-fold CV by task ({c['folds_run']} fold(s) run), seeds {c['seeds']}, "
             f"{c['warmup_passes']} warm-up pass(es) on harness ci, retune trials {c['trials']}, embedder "
             f"{c['embedder']}. Figures are mean ± std across folds × seeds on the held-out folds. "
             f"Wall time {doc['wall_s']:.0f} s.", "",
             f"Bench ladder (blended list price, cheapest first): {' → '.join(doc['bench_policy']['ladder'])}.",
             ""]
    tw = doc["tierwise_after_retune"]
    lines += [f"Retune status per fold: {tw['retune_statuses']}; promoted: {tw['promoted']}. Where the "
              "retune did not promote, the served champion is still the bootstrap, so 'tierwise after "
              "retune' equals 'static rules' on that fold (same policy, no exploration).", ""]
    for det, rows in doc["results"].items():
        lines += [f"## Detector {det}", "", "| approach | " + " | ".join(h for _, h, _ in SWE_COLS) + " |",
                  "|---|" + "---|" * len(SWE_COLS)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(r.get(k), kind) for k, _, kind in SWE_COLS) + " |")
        lines.append("")
    lines += ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in doc["definitions"].items()]
    lines += ["", "## Wall time per fold (s)", ""]
    for f in doc["folds"]:
        t = ", ".join(f"{k} {v:.0f}" for k, v in f["timings"].items())
        lines.append(f"- seed {f['seed']} fold {f['fold']}: {t}; retune: {f['retune']['status']}"
                     + (f" ({f['retune']['reason']})" if f["retune"]["reason"] else ""))
    return "\n".join(lines) + "\n"


SYN_COLS = (("cost_per_10k", "cost / 10k tasks", "usd0"), ("cost_per_resolved", "cost / resolved", "usd3"),
            ("resolution_rate", "resolved", "pct"), ("complex_resolution_rate", "complex resolved", "pct"),
            ("mean_latency_ms", "avg latency (ms)", "num0"), ("mean_attempts", "attempts", "num"),
            ("escalation_rate", "escalated", "pct"), ("human_rate", "human queue", "pct"),
            ("token_efficiency_ratio", "token efficiency", "num"))


def synthetic_md(doc: dict[str, Any]) -> str:
    c, res = doc["config"], doc["results"]
    lines = [f"# Synthetic drift bench{' (quick)' if doc['quick'] else ''}: {doc['scenario']}", "",
             f"{c['weeks']} weeks × {c['tasks_per_week']} tasks, seeds {c['seeds']}, drift at week "
             f"{res['drift_week']}, harness {c['harness']}, embedder {c['embedder']}, retune trials {c['trials']}. "
             f"Wall time {doc['wall_s']:.0f} s.", ""]
    lines += ["## Overall", "", "| approach | " + " | ".join(h for _, h, _ in SYN_COLS) + " |",
              "|---|" + "---|" * len(SYN_COLS)]
    for name, r in res["overall"].items():
        cells = []
        for k, _, kind in SYN_COLS:
            st = r.get(k)
            if kind == "num0" and st and st["mean"] is not None and math.isfinite(st["mean"]):
                cells.append(f"{st['mean']:,.0f}")
            else:
                cells.append(_fmt(st, kind))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Week by week (mean over seeds)", ""]
    weeks = c["weeks"]
    for key, label in (("cost_per_resolved", "cost per resolved (USD)"),
                       ("cost_per_resolved_vs_oracle", "cost per resolved / true-best-tier reference's "
                                                       "(the recovery yardstick)"),
                       ("cost_per_resolved_vs_frontier", "cost per resolved / monolithic frontier's"),
                       ("resolution_rate", "resolution rate")):
        lines += [f"**{label}**", "", "| approach | " + " | ".join(f"w{w}" for w in range(weeks)) + " |",
                  "|---|" + "---|" * weeks]
        for name, series in res["weekly_mean"].items():
            lines.append(f"| {name} | " + " | ".join("–" if v is None or not math.isfinite(v) else f"{v:.3f}"
                                                     for v in series[key]) + " |")
        lines.append("")
    lines += ["## Drift recovery", "", "Cost per resolved / the true-best-tier reference's, per seed; "
              "'mean curve' applies the same test to the seed-mean curve.", ""]
    for name, r in res["recovery"].items():
        m = r.get("mean_curve", {})
        lines.append(f"- {name}: weeks to recover {r['weeks_to_recover']}, within two weeks {r['within_two_weeks']}, "
                     f"pre-drift ratio {_num(r['baseline_ratio'])}, post-drift ratio {_num(r['post_drift_ratio'])}; "
                     f"mean curve: within two weeks {m.get('within_two_weeks')}, weeks to recover "
                     f"{m.get('weeks_to_recover')}")
    lines += paired_md(res.get("paired", {}))
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in doc["definitions"].items()]
    return "\n".join(lines) + "\n"


def paired_md(paired: dict[str, Any]) -> list[str]:
    """The paired differences as tables: one per baseline, mean [95% interval] over seeds."""
    def cell(st: dict[str, Any], unit: str) -> str:
        if not math.isfinite(st["mean"]):
            return "–"
        if not math.isfinite(st["lo"]):
            return f"{st['mean']:+.1f}{unit}"
        return f"{st['mean']:+.1f}{unit} [{st['lo']:+.1f}, {st['hi']:+.1f}]"

    lines: list[str] = []
    for base, rows in paired.items():
        lines += ["", f"## Paired difference to {base} (mean over seeds, 95% t interval)", "",
                  "| approach | cost / resolved after drift | resolved after drift | cost / resolved, drift week "
                  "| resolved, drift week |", "|---|---|---|---|---|"]
        for arm, r in rows.items():
            a, w = r["after_drift"], r["drift_week"]
            lines.append(f"| {arm} | {cell(a['cost_per_resolved_pct'], '%')} | {cell(a['resolution_pp'], ' pp')} "
                         f"| {cell(w['cost_per_resolved_pct'], '%')} | {cell(w['resolution_pp'], ' pp')} |")
    return lines


def _num(values: list[float | None]) -> str:
    return ", ".join("–" if v is None or not math.isfinite(v) else f"{v:.3f}" for v in values)


def _seeds(text: str) -> list[int]:
    """``--seeds 3`` means seeds 0,1,2; ``--seeds 0,5`` lists them (``--seeds 7,`` is seed 7 alone)."""
    from tierwise.service.errors import InvalidInput

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        raise InvalidInput(f"--seeds {text!r} is neither a count nor a comma list of integers",
                           field="seeds") from None
    if not seeds:
        raise InvalidInput(f"--seeds {text!r} runs no seed: give a count >= 1, or a list such as '0,'",
                           field="seeds")
    return seeds


def run_swebench(args: argparse.Namespace, out: Path, suffix: str) -> dict[str, Any]:
    from tierwise.bench import plots
    from tierwise.bench.swebench_bench import SwebenchConfig, run

    kw: dict[str, Any] = {"seeds": _seeds(args.seeds) if args.seeds else (0,), "progress": not args.no_progress}
    if args.trials is not None:
        kw["trials"] = args.trials
    if args.folds is not None:
        kw["max_folds"] = args.folds
    if args.passes is not None:
        kw["passes"] = args.passes
    if args.jobs is not None:
        kw["jobs"] = args.jobs
    if args.fast_embedder:
        kw["fast_embedder"] = True
    cfg = SwebenchConfig.quick_config(**kw) if args.quick else SwebenchConfig(**kw)
    doc = run(cfg)
    name = f"swebench{suffix}"
    write_json(doc, out / f"{name}.json")
    (out / f"{name}.md").write_text(swebench_md(doc))
    if doc.get("status") == "ok":
        plots.cost_vs_resolution(doc, out / f"{name}_cost_vs_resolution.png")
    else:
        print(f"swebench: skipped — {doc.get('reason')}", file=sys.stderr)
    return doc


def _scenario_path(name: str) -> Path:
    """A scenario by name (``bench/scenarios/<name>.json``) or by path; a new scenario needs no code."""
    from tierwise.service.errors import InvalidInput

    path = Path(name)
    if not path.suffix:
        path = Path(__file__).resolve().parent / "scenarios" / f"{name}.json"
    if not path.exists():
        raise InvalidInput(f"no scenario {name!r} (looked for {path})", field="scenario")
    return path


def run_synthetic(args: argparse.Namespace, out: Path, suffix: str) -> list[dict[str, Any]]:
    """One run per scenario in ``--scenario`` (a comma list; default drift_model_swap)."""
    from tierwise.bench import plots
    from tierwise.bench.synthetic_bench import SyntheticConfig, run

    kw: dict[str, Any] = {"seeds": _seeds(args.seeds) if args.seeds else (0,), "progress": not args.no_progress}
    if args.trials is not None:
        kw["trials"] = args.trials
    if args.fast_embedder:
        kw["fast_embedder"] = True
    if args.weeks is not None:
        kw["weeks"] = args.weeks
    if args.tasks_per_week is not None:
        kw["tasks_per_week"] = args.tasks_per_week
    if args.retune_window_weeks is not None:
        kw["retune_window_weeks"] = args.retune_window_weeks or None
    if args.holdout_last_week:
        kw["holdout_last_week"] = True
    scenarios = [_scenario_path(s.strip()) for s in args.scenario.split(",") if s.strip()] if args.scenario \
        else [None]
    docs = []
    for scenario in scenarios:
        kws = dict(kw, scenario=scenario) if scenario is not None else kw
        cfg = SyntheticConfig.quick_config(**kws) if args.quick else SyntheticConfig(**kws)
        doc = run(cfg)
        stem = cfg.scenario.stem
        name = f"synthetic{suffix}" if stem == "drift_model_swap" else f"synthetic-{stem}{suffix}"
        write_json(doc, out / f"{name}.json")
        (out / f"{name}.md").write_text(synthetic_md(doc))
        plots.weekly_curves(doc, out / f"{name}_weekly.png")
        docs.append(doc)
    return docs


def cmd_bench(args: argparse.Namespace, settings: object = None) -> int:
    import logging

    for noisy in ("httpx", "httpcore", "mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # one line per HTTP request otherwise
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    if args.which in ("swebench", "all"):
        t = time.monotonic()
        run_swebench(args, out, suffix)
        timings["swebench_s"] = time.monotonic() - t
    if args.which in ("synthetic", "all"):
        t = time.monotonic()
        run_synthetic(args, out, suffix)
        timings["synthetic_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t0
    path = out / f"timings{suffix}.json"
    try:  # ``make bench`` runs swebench and synthetic as two commands: keep both figures
        earlier = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        earlier = {}
    runs = {k: v for k, v in earlier.items() if k.endswith("_s") and k not in ("total_s", "last_command_s")} \
        if args.which != "all" else {}
    runs.update({k: v for k, v in timings.items() if k != "total_s"})
    write_json(dict(runs, total_s=sum(runs.values()), last_command_s=timings["total_s"]), path)
    print(f"bench {args.which}: wrote {out} in {timings['total_s']:.0f} s "
          + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if k != "total_s"))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", choices=["swebench", "synthetic", "all"])
    p.add_argument("--quick", action="store_true",
                   help="small slice: 1 fold of 60 tasks, 2 weeks x 100 tasks, few trials, hashing embedder")
    p.add_argument("--seeds", help="N (seeds 0..N-1) or a comma list; default 0")
    p.add_argument("--trials", type=int, help="Optuna trials per retune")
    p.add_argument("--folds", type=int, help="run only the first N folds (SWE-bench)")
    p.add_argument("--jobs", type=int, help="SWE-bench folds run side by side (default 2; quick 1)")
    p.add_argument("--passes", type=int, help="warm-up passes over the training tasks (SWE-bench)")
    p.add_argument("--weeks", type=int, help="simulated weeks (synthetic)")
    p.add_argument("--tasks-per-week", type=int, help="tasks per simulated week (synthetic)")
    p.add_argument("--scenario", help="synthetic scenario(s): names in bench/scenarios or JSON paths, "
                                      "comma-separated (default drift_model_swap)")
    p.add_argument("--retune-window-weeks", type=float,
                   help="synthetic retunes learn from the last N weeks of traffic only (0: all weeks)")
    p.add_argument("--holdout-last-week", action="store_true",
                   help="synthetic retunes hold out the last simulated week (default: a hash split)")
    p.add_argument("--fast-embedder", action="store_true", help="hashing embedder instead of MiniLM")
    p.add_argument("--out", help=f"output folder (default {RESULTS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_eval(args: argparse.Namespace, settings: Any = None) -> int:
    """The classifier on the OOD set (as sent, and text + files only), the corpus split and SWE-bench."""
    from tierwise.bench.classifier_eval import reliability_plot, run
    from tierwise.service.components import load_classifier
    from tierwise.service.settings import load_settings

    classifier = load_classifier(settings if settings is not None else load_settings())
    doc, reports = run(classifier)
    for r in reports:
        print(r.render() if args.verbose else r.headline())
    swe = doc["swebench"]
    if swe.get("status") == "unavailable":
        print(f"swebench: skipped ({swe['reason']})")
    else:
        mix = ", ".join(f"{p} {v:.0%}" for p, v in swe["profile_mix"].items())
        print(f"swebench: {swe['n']} problem statements   complexity AUC (1h+ vs <15 min, "
              f"{swe['n_hard']} vs {swe['n_easy']}) {swe['complexity_auc_hard_vs_easy']:.3f}   profile mix: {mix}")
    out = Path(args.out)
    write_json(doc, out / "classifier_eval.json")
    reliability_plot(classifier, out / "classifier_reliability.png")
    print(f"wrote {out / 'classifier_eval.json'} and {out / 'classifier_reliability.png'}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run the benchmarks (SWE-bench replay, synthetic drift)")
    add_arguments(p)
    p.set_defaults(fn=cmd_bench)
    e = sub.add_parser("eval", help="classifier accuracy, macro-F1 and calibration on tasks it never saw")
    e.add_argument("--out", default=str(RESULTS), help="folder for classifier_eval.json and the plot")
    e.add_argument("--verbose", "-v", action="store_true", help="also print confusion matrices")
    e.set_defaults(fn=cmd_eval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tierwise.bench.cli")
    add_arguments(p)
    return cmd_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
