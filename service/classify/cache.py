"""An LRU of scores keyed by the normalised task, for agents that ask about the same task again.

Harnesses re-ask: a retry loop, a planner that routes the same sub-task for each candidate, an
agent restarted after a crash. Scoring is pure (the same task gives the same scores), so a
repeated task can skip it. The key is a hash of the normalised prompt and every other field that
feeds the scores (files, repo facts, diff size, expected output, tools); the prompt that is
scored is the normalised one too, so a hit returns exactly what a miss would have computed.
Exploration and the decision itself still run per request; only the scores are reused.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from tierwise.service.classify.model import Scorer, Scores
from tierwise.service.classify.task import Task


def normalise_prompt(text: str) -> str:
    """NFC, one newline convention, no surrounding whitespace: the same text as a reader sees it.

    Deliberately no more than that: case, inner whitespace and indentation feed the features
    (code blocks are found by their indentation), so folding them would change the scores."""
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").strip()


def task_key(task: Task) -> bytes:
    """16 bytes naming everything that feeds the scores; ``task.prompt`` must be normalised."""
    h = hashlib.blake2b(digest_size=16)
    h.update(task.prompt.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(repr(replace(task, prompt="")).encode("utf-8", "surrogatepass"))
    return h.digest()


class CachedScorer:
    """Normalises each task's prompt, then answers from the LRU or from ``inner``.

    ``size`` 0 keeps the normalisation and caches nothing. Thread-safe: route handlers run in a
    thread pool. Two threads missing on the same key both score it; the results are equal."""

    def __init__(self, inner: Scorer, size: int) -> None:
        self.inner = inner
        self.size = size
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[bytes, Scores] = OrderedDict()
        self._lock = threading.Lock()
        # What reports (``tierwise eval``) read off a classifier, passed through.
        self.profiles: tuple[str, ...] = inner.profiles
        self.embedder = inner.embedder

    def score(self, task: Task) -> Scores:
        task = replace(task, prompt=normalise_prompt(task.prompt))
        if self.size == 0:
            return self.inner.score(task)
        key = task_key(task)
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        scores = self.inner.score(task)
        with self._lock:
            self._lru[key] = scores
            self._lru.move_to_end(key)
            while len(self._lru) > self.size:
                self._lru.popitem(last=False)
        return scores

    def score_many(self, tasks: Sequence[Task]) -> list[Scores]:
        return [self.score(t) for t in tasks]

    def warm(self) -> None:
        self.inner.warm()
