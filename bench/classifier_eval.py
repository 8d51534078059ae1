"""``tierwise eval``: the profile classifier on tasks it was not built from.

Four views, each printed and written to ``bench/results/classifier_eval.json``:
- ``ood``: the out-of-distribution set in ``data/eval/ood_*.jsonl``, written by other writers
  from another brief, with real harnesses' field habits; it is never trained or selected on;
- ``ood_text_files``: the same tasks with every structural field stripped but the files;
- ``corpus_test``: the corpus's own held-out split, for reference only (it shares its writers'
  style with training, so it measures memorisation more than generalisation);
- ``swebench``: 500 real SWE-bench Verified problem statements (``../shared/data/real``), when
  present: the AUC of the complexity score for the human label ("1-4 hours" or "> 4 hours"
  against "<15 min fix") and the profile mix.
A reliability diagram of the OOD set goes to ``classifier_reliability.png``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tierwise.bench.swebench_data import DataUnavailable
from tierwise.service.classify.evaluate import EvalReport, binary_auc, evaluate, text_and_files
from tierwise.service.classify.model import Scorer
from tierwise.service.classify.task import Task
from tierwise.service.classify.train import load_corpus
from tierwise.service.paths import corpus_dir, data_dir

SWE_HARD = ("1-4 hours", ">4 hours")
SWE_EASY = ("<15 min fix",)


def load_ood(folder: Path | None = None) -> tuple[list[Task], list[str], list[dict[str, Any]]]:
    """The OOD tasks as requests (only the fields each request carries), labels, and raw rows."""
    root = folder if folder is not None else data_dir() / "eval"
    rows = [json.loads(line) for path in sorted(root.glob("ood_*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise DataUnavailable(f"no out-of-distribution set under {root} (ood_*.jsonl)")
    return [Task.from_mapping(r["request"]) for r in rows], [r["profile"] for r in rows], rows


def swebench_check(classifier: Scorer, real_dir: Path | None = None) -> dict[str, Any]:
    """Complexity AUC for the human difficulty label, and the profile mix, on real statements."""
    from tierwise.bench.swebench_data import load_tasks

    tasks = load_tasks(real_dir)
    scores = classifier.score_many([Task(prompt=str(p)) for p in tasks["problem_statement"]])
    cx = [s.complexity for s in scores]
    labels = list(tasks["difficulty"])
    keep = [i for i, d in enumerate(labels) if d in SWE_HARD + SWE_EASY]
    mix = Counter(s.profile for s in scores)
    hard_vs_easy = binary_auc([cx[i] for i in keep], [labels[i] in SWE_HARD for i in keep])
    return {
        "n": len(scores),
        "complexity_auc_hard_vs_easy": round(hard_vs_easy, 4),
        "n_hard": sum(labels[i] in SWE_HARD for i in keep), "n_easy": sum(labels[i] in SWE_EASY for i in keep),
        "complexity_auc_over_15min": round(binary_auc(cx, [d not in SWE_EASY for d in labels]), 4),
        "profile_mix": {p: round(mix[p] / len(scores), 4) for p in classifier.profiles},
    }


def run(classifier: Scorer, real_dir: Path | None = None) -> tuple[dict[str, Any], list[EvalReport]]:
    tasks, labels, _ = load_ood()
    reports = [evaluate(classifier, tasks, labels, "ood"),
               evaluate(classifier, [text_and_files(t) for t in tasks], labels, "ood_text_files")]
    test = load_corpus(corpus_dir(), split="test")
    reports.append(evaluate(classifier, [Task.from_mapping(r) for r in test], [r["profile"] for r in test],
                            "corpus_test"))
    doc: dict[str, Any] = {"embedder": classifier.embedder.name, **{r.name: r.to_dict() for r in reports}}
    try:
        doc["swebench"] = swebench_check(classifier, real_dir)
    except DataUnavailable as exc:
        doc["swebench"] = {"status": "unavailable", "reason": str(exc)}
    return doc, reports


def reliability_plot(classifier: Scorer, path: Path) -> Path:
    import numpy as np

    from tierwise.bench.plots import pyplot

    plt = pyplot()

    tasks, labels, _ = load_ood()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, view in (("as sent", tasks), ("text + files", [text_and_files(t) for t in tasks])):
        scores = classifier.score_many(view)
        conf = np.array([max(s.profile_scores.values()) for s in scores])
        hit = np.array([s.profile == y for s, y in zip(scores, labels, strict=True)], dtype=float)
        edges = np.linspace(0, 1, 11)
        idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, 9)
        xs = [conf[idx == b].mean() for b in range(10) if (idx == b).any()]
        ys = [hit[idx == b].mean() for b in range(10) if (idx == b).any()]
        ax.plot(xs, ys, "o-", label=f"OOD, {name}")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlabel("top-profile probability")
    ax.set_ylabel("share correct")
    ax.set_title(f"Profile calibration on the OOD set ({len(tasks)} tasks)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
