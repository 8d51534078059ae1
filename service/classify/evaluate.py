"""How well the profile classifier does on labelled tasks: accuracy, macro-F1, calibration.

Expected calibration error (ECE) is the gap between how sure the classifier says it is and how
often it is right, averaged over confidence bins; the policy's "unsure" threshold and the tier
scores both read the probabilities, so a miscalibrated classifier costs money even when its
argmax is right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from tierwise.service.classify import PROFILES
from tierwise.service.classify.model import Scorer
from tierwise.service.classify.task import Task

ECE_BINS = 10


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Top-label ECE over equal-width confidence bins, weighted by the share of rows in each."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(total)


@dataclass(frozen=True)
class EvalReport:
    name: str
    n: int
    accuracy: float
    macro_f1: float
    ece: float
    labels: tuple[str, ...]
    confusion: list[list[int]]

    def headline(self) -> str:
        return (f"{self.name}: {self.n} tasks   accuracy {self.accuracy:.3f}   macro-F1 {self.macro_f1:.3f}   "
                f"ECE {self.ece:.3f}")

    def render(self) -> str:
        width = max(len(p) for p in self.labels) + 2
        lines = [self.headline(), "confusion matrix (rows = true, columns = predicted):",
                 " " * width + "".join(p[:10].rjust(12) for p in self.labels)]
        for label, row in zip(self.labels, self.confusion, strict=True):
            lines.append(label.ljust(width) + "".join(str(v).rjust(12) for v in row))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "ece": round(self.ece, 4), "confusion": self.confusion}


def report(name: str, y_true: Sequence[str], y_pred: Sequence[str], confidence: Sequence[float]) -> EvalReport:
    labels = list(PROFILES)
    return EvalReport(
        name=name, n=len(y_true),
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        ece=expected_calibration_error(confidence, [t == p for t, p in zip(y_true, y_pred, strict=True)]),
        labels=tuple(labels),
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    )


def evaluate(classifier: Scorer, tasks: Sequence[Task], labels: Sequence[str], name: str) -> EvalReport:
    scores = classifier.score_many(tasks)
    return report(name, labels, [s.profile for s in scores], [max(s.profile_scores.values()) for s in scores])


def text_and_files(task: Task) -> Task:
    """The task with every structural field stripped but the files in scope."""
    return Task(prompt=task.prompt, files=task.files)


def binary_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """ROC AUC of ``scores`` for the positive class; NaN when only one class is present."""
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        return float("nan")
    return float(roc_auc_score(pos, np.asarray(scores, dtype=np.float64)))
