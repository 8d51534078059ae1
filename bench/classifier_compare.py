"""``make bench-classifier``: tierwise's classifier against aurelio semantic-router on the OOD set.

Both use the same encoder (int8 MiniLM, ``make_embedder("minilm-int8")``) and the same training
corpus: tierwise its shipped artefact trained on the corpus's training split, semantic-router
that split's prompts as the utterances of one route per profile. Both are scored on the
out-of-distribution set, one task per call, in this process, in the same run; latency is wall
clock per call. Writes ``bench/results/classifier_compare.{json,md}``.

Needs semantic-router: ``make bench-classifier`` installs it (``pip install '.[peer]'``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tierwise.bench.classifier_eval import load_ood
from tierwise.bench.cli import RESULTS, write_json
from tierwise.bench.semantic_router_peer import SemanticRouterPeer
from tierwise.service.classify.embed import make_embedder
from tierwise.service.classify.evaluate import EvalReport, report
from tierwise.service.classify.model import ProfileClassifier
from tierwise.service.classify.task import Task
from tierwise.service.classify.train import load_corpus
from tierwise.service.paths import corpus_dir, default_classifier_file


def _timed(name: str, fn: Callable[[Task], tuple[str, float]], tasks: Sequence[Task],
           labels: Sequence[str]) -> tuple[EvalReport, list[float]]:
    preds, conf, ms = [], [], []
    for task in tqdm(tasks, desc=name):
        start = time.perf_counter()
        profile, confidence = fn(task)
        ms.append((time.perf_counter() - start) * 1000.0)
        preds.append(profile)
        conf.append(confidence)
    return report(name, labels, preds, conf), ms


def _latency(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(q[98], 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


def run() -> dict[str, Any]:
    embedder = make_embedder("minilm-int8", threads=1)
    ours = ProfileClassifier.load(default_classifier_file("minilm-int8"), embedder)
    rows = load_corpus(corpus_dir(), split="train")
    t = time.perf_counter()
    peer = SemanticRouterPeer(rows, embedder)
    peer_build_s = time.perf_counter() - t
    tasks, labels, _ = load_ood()
    ours.score(tasks[0])  # load the encoder before the clock starts, for both
    peer.predict([tasks[0].prompt])

    def tierwise(task: Task) -> tuple[str, float]:
        s = ours.score(task)
        return s.profile, max(s.profile_scores.values())

    def semantic_router(task: Task) -> tuple[str, float]:
        # semantic-router gives no probability; its confidence is not comparable, so ECE is n/a.
        return peer.predict([task.prompt])[0], float("nan")

    out: dict[str, Any] = {"n_tasks": len(tasks), "n_utterances": len(rows), "encoder": embedder.name,
                           "peer": "semantic-router 1.1.1 IndexedRouter (LocalIndex, top_k 5, mean)",
                           "peer_build_s": round(peer_build_s, 2), "peer_fallbacks": 0}
    for name, fn in (("tierwise", tierwise), ("semantic_router", semantic_router)):
        rep, ms = _timed(name, fn, tasks, labels)
        out[name] = {"accuracy": round(rep.accuracy, 4), "macro_f1": round(rep.macro_f1, 4),
                     "ece": round(rep.ece, 4) if name == "tierwise" else None, **_latency(ms)}
    out["peer_fallbacks"] = peer.n_fallbacks
    out["latency_ratio_p50"] = round(out["semantic_router"]["p50_ms"] / out["tierwise"]["p50_ms"], 2)
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"OOD set: {doc['n_tasks']} tasks; both trained on the same {doc['n_utterances']} corpus rows, "
             f"same encoder ({doc['encoder']}), one task per call.", "",
             "| classifier | accuracy | macro-F1 | ECE | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for name in ("tierwise", "semantic_router"):
        r = doc[name]
        ece = f"{r['ece']:.3f}" if r["ece"] is not None else "n/a"
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {ece} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} |")
    lines.append("")
    lines.append(f"semantic-router's p50 is {doc['latency_ratio_p50']}× tierwise's in the same run.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tierwise.bench.classifier_compare", description=__doc__)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    doc = run()
    out = Path(args.out)
    write_json(doc, out / "classifier_compare.json")
    (out / "classifier_compare.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
