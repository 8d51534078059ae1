"""The profile classifier at inference time: two linear experts read from a JSON artefact.

- the semantic expert: the MiniLM embedding, its similarity to each profile's prototype, and
  the structural features of the fields the request carries;
- the lexical expert: TF-IDF word n-grams of the whole prompt (``lexical.py``).
Their logits are pooled with a fixed weight and calibrated with one temperature, both chosen on
writers the training held out. The artefact is plain numbers (no pickle), so it loads under any
numpy/scikit-learn version and can be diffed in review. Training lives in ``tierwise.service.classify.train``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tierwise.service.classify import Stage
from tierwise.service.classify.embed import Embedder
from tierwise.service.classify.features import (
    PROFILE_FEATURES,
    estimate_tokens,
    keyword_hits,
    profile_mask,
    structural_features,
)
from tierwise.service.classify.lexical import Tfidf
from tierwise.service.classify.task import Task
from tierwise.service.errors import ArtifactMissing

ARTIFACT_FORMAT = 2


@dataclass(frozen=True)
class Scores:
    """What the classifier says about one task; numbers only, no routing decision."""

    profile_scores: dict[str, float]
    complexity: float
    features: dict[str, float]
    prototype_similarity: dict[str, float]
    keywords: dict[str, list[str]]
    prompt_tokens: int
    # Which scorer produced these numbers (the two-stage scorer's answer to "who decided").
    stage: Stage = "encoder"

    @property
    def profile(self) -> str:
        return max(self.profile_scores, key=lambda p: self.profile_scores[p])


class Scorer(Protocol):
    """What the router needs from a classifier: one ``ProfileClassifier``, the two-stage scorer,
    or either behind the score cache."""

    profiles: tuple[str, ...]
    embedder: Embedder

    def score(self, task: Task) -> Scores: ...

    def score_many(self, tasks: Sequence[Task]) -> list[Scores]: ...

    def warm(self) -> None: ...


def design_row(features: dict[str, float], mask: Sequence[float], embedding: np.ndarray, prototypes: np.ndarray,
               mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """One input row: scaled structural features, the embedding, and prototype similarities.

    A feature whose field is absent (``mask`` 0) is exactly 0 after scaling, so it adds nothing
    to any logit: leaving a field out gives the prediction from the fields that are there."""
    raw = np.array([features[n] for n in PROFILE_FEATURES], dtype=np.float64)
    struct = (raw - mean) / scale * np.asarray(mask, dtype=np.float64)
    sims = prototypes @ embedding.astype(np.float64)
    return np.concatenate([struct, embedding.astype(np.float64), sims])


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class ProfileClassifier:
    """Calibrated profile probabilities plus a 0..1 complexity score for a task."""

    def __init__(self, artifact: dict[str, Any], embedder: Embedder) -> None:
        if artifact.get("format") != ARTIFACT_FORMAT:
            raise ArtifactMissing(f"classifier artefact format {artifact.get('format')!r} is not "
                                  f"{ARTIFACT_FORMAT}; rebuild it with `tierwise train`", field="format")
        if artifact.get("embedder") != embedder.name:
            raise ArtifactMissing(
                f"classifier was trained with embedder {artifact.get('embedder')!r} but the service "
                f"uses {embedder.name!r}; rebuild it with `tierwise train`", field="embedder")
        if tuple(artifact["feature_names"]) != PROFILE_FEATURES:
            raise ArtifactMissing("classifier feature names differ from the code; rebuild it "
                                  "with `tierwise train`", field="feature_names")
        self.artifact = artifact
        self.embedder = embedder
        self.stage: Stage = getattr(embedder, "stage", "encoder")
        self.profiles: tuple[str, ...] = tuple(artifact["profiles"])
        self._mean = np.array(artifact["scaler"]["mean"])
        self._scale = np.array(artifact["scaler"]["scale"])
        self._prototypes = np.array([artifact["prototypes"][p] for p in self.profiles])
        self._coef = np.array(artifact["coef"])
        self._intercept = np.array(artifact["intercept"])
        lex = artifact["lexical"]
        self._tfidf = Tfidf({t: i for i, t in enumerate(lex["vocabulary"])}, lex["idf"])
        self._lex_coef = np.array(lex["coef"])
        self._lex_intercept = np.array(lex["intercept"])
        self._mix = float(artifact["mix"])
        self._temperature = float(artifact["temperature"])
        self._cx_coef = np.array(artifact["complexity"]["coef"])
        self._cx_lex_coef = np.array(artifact["complexity"]["lexical_coef"])
        self._cx_intercept = float(artifact["complexity"]["intercept"])

    @classmethod
    def load(cls, path: Path, embedder: Embedder) -> ProfileClassifier:
        if not path.exists():
            raise ArtifactMissing(f"classifier artefact {path} does not exist; build it with "
                                  "`tierwise train`", field="classifier_file")
        return cls(json.loads(path.read_text()), embedder)

    def score(self, task: Task) -> Scores:
        return self.score_many([task])[0]

    def warm(self) -> None:
        """Loading is lazy; one score builds and loads what the encoder derives (the ONNX file,
        the static table), so a broken artefact or cache fails here, not on a request."""
        self.score(Task(prompt="warm up the encoder before the first request"))

    def score_many(self, tasks: Sequence[Task]) -> list[Scores]:
        embeddings = self.embedder.encode([t.prompt for t in tasks])
        out = []
        for task, emb in zip(tasks, embeddings, strict=True):
            hits = keyword_hits(task.prompt)
            feats = structural_features(task, hits)
            x = design_row(feats, profile_mask(task), emb, self._prototypes, self._mean, self._scale)
            idx, val = self._tfidf.sparse(task.prompt)
            semantic = self._coef @ x + self._intercept
            lexical = self._lex_coef[:, idx] @ val + self._lex_intercept
            probs = softmax((self._mix * semantic + (1.0 - self._mix) * lexical) / self._temperature)
            sims = self._prototypes @ emb.astype(np.float64)
            cx_raw = self._cx_coef @ x + self._cx_lex_coef[idx] @ val + self._cx_intercept
            cx = float(np.clip(cx_raw, 0.0, 1.0))
            out.append(Scores(
                profile_scores={p: round(float(v), 6) for p, v in zip(self.profiles, probs, strict=True)},
                complexity=round(cx, 6),
                features=feats,
                prototype_similarity={p: round(float(s), 6) for p, s in zip(self.profiles, sims, strict=True)},
                keywords={p: w for p, w in hits.items() if w},
                prompt_tokens=estimate_tokens(task.prompt),
                stage=self.stage,
            ))
        return out
