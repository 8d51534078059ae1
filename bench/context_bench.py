"""``make bench-context``: does the packed context hold the files a fix touches?

For each SWE-bench Verified task whose gold-edited files exist in the project's release near the
task's time (``context_sources.py``), the problem statement is packed against that release's
files at the small, medium and frontier budgets of the bootstrap policy, and the bench reports
the **file recall**: the share of gold-edited files that made it into the context (in any mode,
and in full). The gold patch is the label only; the packer sees the problem statement and the
files. A BM25-only ranking, packed the same way over the same files, is measured in the same run.

Speed: a repository of 5,000 real files (releases pooled) is packed cold (new packer, empty
caches) and again (caches warm), against building and querying a BM25 index alone in the same run.

The data is non-commercial and stays where it is; without it the bench says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tierwise.bench.context_sources import Release, load_source, release_for
from tierwise.bench.plots import pyplot
from tierwise.bench.swebench_data import default_real_dir
from tierwise.service.classify.embed import Embedder, make_embedder
from tierwise.service.context.index import RepoIndex
from tierwise.service.context.lexical import Lexical
from tierwise.service.context.model import Packed, SourceFile
from tierwise.service.context.pack import Packer
from tierwise.service.context.rank import Ranking, lexical_order
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.model import RoutingPolicy, parse_policy

RESULTS = Path(__file__).resolve().parent / "results"
SPEED_FILES = 5_000
# Releases pooled (paths prefixed by release) into the 5,000-file speed repository.
SPEED_RELEASES = [Release(repo, project, version) for repo, project, version in (
    ("django/django", "Django", "4.1"), ("scikit-learn/scikit-learn", "scikit-learn", "1.3.0"),
    ("matplotlib/matplotlib", "matplotlib", "3.7.1"), ("astropy/astropy", "astropy", "5.3"),
    ("sphinx-doc/sphinx", "Sphinx", "7.1.2"), ("pylint-dev/pylint", "pylint", "3.0.3"),
    ("pydata/xarray", "xarray", "2023.1.0"), ("pytest-dev/pytest", "pytest", "7.4.4"),
    ("django/django", "Django", "5.0"), ("django/django", "Django", "3.0"))]
_DIFF = re.compile(r"^diff --git a/(\S+) b/", re.M)


def gold_files(patch: str) -> list[str]:
    return list(dict.fromkeys(_DIFF.findall(patch)))


def bm25_ranking(index: RepoIndex, task: str) -> Ranking:
    scores = index.lexical.scores(task)
    return Ranking(order=lexical_order(index, task), fused={}, centrality={}, tags={},
                   relevant={i for i, s in enumerate(scores) if s > 0})


def recall(packed: Packed, gold: list[str], full_only: bool = False) -> float:
    got = {i.path for i in packed.included if not full_only or i.mode == "full"}
    return sum(g in got for g in gold) / len(gold)


def _load(data: Path) -> list[dict[str, Any]]:
    tasks = {r["instance_id"]: r for r in map(json.loads, (data / "swebench_verified_tasks.jsonl").open())}
    out = []
    for row in map(json.loads, (data / "swebench_verified_gold_patches.jsonl").open()):
        t = tasks[row["instance_id"]]
        out.append({"id": t["instance_id"], "repo": t["repo"], "task": t["problem_statement"],
                    "gold": gold_files(row["patch"])})
    return out


def recall_run(tasks: list[dict[str, Any]], policy: RoutingPolicy, cache: Path,
               embedder: Embedder | None) -> dict[str, Any]:
    budgets = {tier: policy.context_budget(tier) for tier in policy.ladder}
    by_release: dict[Release, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        rel = release_for(t["repo"], int(t["id"].rsplit("-", 1)[1]))
        if rel is not None:
            by_release[rel].append(t)
    packer = Packer(embedder=embedder)
    rows: list[dict[str, Any]] = []
    uncovered = 0
    bar = tqdm(total=len(tasks), desc="context recall", unit="task")
    for rel, group in sorted(by_release.items(), key=lambda kv: (kv[0].repo, kv[0].version)):
        files = load_source(cache, rel)
        paths = {f.path for f in files}
        t0 = time.perf_counter()
        index = packer.index(files)
        index_s = time.perf_counter() - t0
        for t in group:
            bar.update(1)
            if not t["gold"] or not all(g in paths for g in t["gold"]):
                uncovered += 1
                continue
            row: dict[str, Any] = {"id": t["id"], "release": f"{rel.project}=={rel.version}",
                                   "files": len(files), "index_s": index_s}
            t0 = time.perf_counter()
            _, ranking = packer.rank(t["task"], files)
            row["rank_s"] = time.perf_counter() - t0
            base = bm25_ranking(index, t["task"])
            for tier, (budget, strategy) in budgets.items():
                t0 = time.perf_counter()
                ours = packer.fill(index, ranking, budget, strategy)
                row[f"fill_s_{tier}"] = time.perf_counter() - t0
                theirs = packer.fill(index, base, budget, strategy)
                row[f"recall_{tier}"] = recall(ours, t["gold"])
                row[f"recall_full_{tier}"] = recall(ours, t["gold"], full_only=True)
                row[f"bm25_{tier}"] = recall(theirs, t["gold"])
                row[f"bm25_full_{tier}"] = recall(theirs, t["gold"], full_only=True)
                row[f"tokens_{tier}"] = ours.tokens
                assert ours.tokens <= budget and theirs.tokens <= budget
            rows.append(row)
    bar.close()
    return {"budgets": {k: list(v) for k, v in budgets.items()}, "rows": rows, "uncovered": uncovered,
            "tasks": len(tasks)}


def speed_run(cache: Path, embedder: Embedder | None, task: str, other_task: str) -> dict[str, Any]:
    """5,000 real files; cold pack, warm pack, and BM25 alone over the same files."""
    files: list[SourceFile] = []
    for rel in SPEED_RELEASES:
        if len(files) >= SPEED_FILES:
            break
        files += [SourceFile(f"{rel.project}-{rel.version}/{f.path}", f.content) for f in load_source(cache, rel)]
    files = files[:SPEED_FILES]
    t0 = time.perf_counter()
    Lexical(files).scores(task)
    bm25_s = time.perf_counter() - t0
    packer = Packer(embedder=embedder)
    packer.counter.count("warm the tokenizer file load")  # loading the tokenizer is not packing
    if embedder is not None:
        embedder.encode(["warm the embedder"])
    t0 = time.perf_counter()
    packer.pack(task, files, 8_000, "focused")
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    packer.pack(task, files, 8_000, "focused")
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # same files, another task: index, tags and vectors cached, ranking not
    packer.pack(other_task, files, 8_000, "focused")
    new_task_s = time.perf_counter() - t0
    return {"files": len(files), "megabytes": sum(len(f.content) for f in files) / 1e6,
            "cold_s": cold_s, "warm_s": warm_s, "new_task_s": new_task_s, "bm25_s": bm25_s,
            "cold_over_bm25": cold_s / bm25_s}


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    out: dict[str, Any] = {"covered": len(rows), "tasks": run["tasks"], "uncovered": run["uncovered"]}
    for tier in run["budgets"]:
        for key in ("recall", "recall_full", "bm25", "bm25_full"):
            out[f"{key}_{tier}"] = statistics.fmean(r[f"{key}_{tier}"] for r in rows) if rows else float("nan")
    if rows:
        pack_s = [r["rank_s"] + r[f"fill_s_{next(iter(run['budgets']))}"] for r in rows]
        out["pack_s_median"] = statistics.median(pack_s)
        out["pack_s_p90"] = sorted(pack_s)[int(0.9 * (len(pack_s) - 1))]
    return out


def report(summary: dict[str, Any], run: dict[str, Any], speed: dict[str, Any] | None) -> str:
    lines = ["# Context packing: file recall on SWE-bench Verified", "",
             f"Tasks covered: {summary['covered']} of {summary['tasks']} (the rest: gold files not in the "
             "release chosen for the task, or no release table).", "",
             "| tier | budget | strategy | recall (any mode) | BM25-only | recall (full) | BM25-only (full) |",
             "|---|---|---|---|---|---|---|"]
    for tier, (budget, strategy) in run["budgets"].items():
        lines.append(f"| {tier} | {budget} | {strategy} | {summary[f'recall_{tier}']:.3f} | "
                     f"{summary[f'bm25_{tier}']:.3f} | {summary[f'recall_full_{tier}']:.3f} | "
                     f"{summary[f'bm25_full_{tier}']:.3f} |")
    if "pack_s_median" in summary:
        lines += ["", f"Packing time per task at the small budget (rank + fill, index cached per release): "
                      f"median {summary['pack_s_median']:.3f} s, p90 {summary['pack_s_p90']:.3f} s."]
    if speed:
        lines += ["", f"Speed, {speed['files']} real files ({speed['megabytes']:.1f} MB): cold pack "
                      f"{speed['cold_s']:.2f} s, repeat {speed['warm_s'] * 1000:.0f} ms, same files with another task "
                      f"{speed['new_task_s']:.2f} s; BM25 index + query alone "
                      f"{speed['bm25_s']:.2f} s in the same run (cold pack / BM25 = {speed['cold_over_bm25']:.2f})."]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], run: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    tiers = list(run["budgets"])
    x = range(len(tiers))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([i - 0.2 for i in x], [summary[f"recall_{t}"] for t in tiers], 0.4, label="tierwise packer")
    ax.bar([i + 0.2 for i in x], [summary[f"bm25_{t}"] for t in tiers], 0.4, label="BM25 only")
    ax.set_xticks(list(x), [f"{t}\n{run['budgets'][t][0]} tokens" for t in tiers])
    ax.set_ylim(0, 1)
    ax.set_ylabel("gold-file recall in context")
    ax.set_title(f"SWE-bench Verified, {summary['covered']} tasks")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-context", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="the SWE-bench folder (default: shared/data/real)")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tierwise" / "context-bench")
    p.add_argument("--limit", type=int, default=0, help="every n-th task only (0: all)")
    p.add_argument("--embedder", choices=["static", "hashing", "none"], default="static")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--speed-only", action="store_true", help="only the 5,000-file speed run")
    p.add_argument("--out", type=Path, default=RESULTS / "context.md")
    args = p.parse_args(argv)
    data = args.data or default_real_dir()
    if not (data / "swebench_verified_gold_patches.jsonl").is_file():
        print(f"bench-context: SWE-bench data not found at {data}; set TIERWISE_REAL_DATA. Skipped.")
        return 0
    tasks = _load(data)
    if args.limit > 1:
        tasks = tasks[::args.limit]
    policy = parse_policy(default_policy_file().read_text())
    embedder = None if args.embedder == "none" else make_embedder(args.embedder)
    speed = None if args.no_speed else speed_run(args.cache, embedder, tasks[0]["task"], tasks[1]["task"])
    if args.speed_only:
        print(json.dumps(speed, indent=1))
        return 0
    run = recall_run(tasks, policy, args.cache, embedder)
    summary = summarise(run)
    text = report(summary, run, speed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "speed": speed,
                                                         "budgets": run["budgets"], "rows": run["rows"]}, indent=1))
    plot(summary, run, args.out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
