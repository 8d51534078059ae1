"""Which files matter for a task: five signals fused by weighted reciprocal rank.

Signals: mentions in the task (paths, modules, frames, symbols), BM25, recency in the commits
the client sent, semantic similarity with the router's embedder, and PageRank over the import
and reference graph. Reciprocal-rank fusion adds ``weight / (k + rank)`` per signal, so signals
on unrelated scales (BM25 scores, cosines, probabilities) combine without calibration, and one
strong signal (a path named in a stack trace) lifts a file without the others agreeing.

The cheap signals (mentions, BM25, commits) rank every file; the pool of the best ``pool_size``
is then parsed with tree-sitter, embedded and put in the graph. Those costs are per pool, not per
repository, which is what keeps a 5,000-file repository inside the time budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tierwise.service.classify.embed import Embedder
from tierwise.service.context.graph import build_edges, pagerank
from tierwise.service.context.index import RepoIndex
from tierwise.service.context.mentions import mention_scores
from tierwise.service.context.model import Commit
from tierwise.service.context.tags import FileTags, TagCache
from tierwise.service.context.text import IDENTIFIER, words

# Characters of a file the embedder sees, after its path and the names it defines.
EMBED_CHARS = 800
# Test files rank below the code they test: a task's fix, and what a small model must read first,
# is the code; tests still come in where the budget allows (and rank by every signal).
_TEST_PATH = re.compile(r"(^|/)(tests|__tests__|src/test)/|(^|/)test_[^/]*$|_test\.[a-z]+$|\.(spec|test)\.[jt]sx?$|"
                        r"(^|/)conftest\.py$")


@dataclass(frozen=True)
class Weights:
    mentions: float = 3.0
    lexical: float = 1.0
    commits: float = 0.5
    semantic: float = 0.7
    graph: float = 0.7
    k: float = 10.0
    pool_size: int = 300
    tests: float = 0.5  # factor on a test file's fused score


@dataclass
class Ranking:
    order: list[int]
    fused: dict[int, float]
    centrality: dict[int, float]
    tags: dict[int, FileTags]
    relevant: set[int] = field(default_factory=set)


def rrf(scores: dict[int, float], weight: float, k: float) -> dict[int, float]:
    ranked = sorted((i for i, s in scores.items() if s > 0), key=lambda i: (-scores[i], i))
    return {i: weight / (k + r) for r, i in enumerate(ranked, start=1)}


def commit_scores(index: RepoIndex, commits: Sequence[Commit], task: str) -> dict[int, float]:
    """Recent commits first; a commit whose message shares words with the task counts double."""
    where = {f.path: i for i, f in enumerate(index.files)}
    task_words = set(words(task))
    out: dict[int, float] = {}
    for age, c in enumerate(commits):
        weight = 1.0 / (1 + age) * (2.0 if len(task_words & set(words(c.message))) >= 2 else 1.0)
        for path in c.files:
            i = where.get(path)
            if i is not None:
                out[i] = out.get(i, 0.0) + weight
    return out


def _combine(*parts: dict[int, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for part in parts:
        for i, v in part.items():
            out[i] = out.get(i, 0.0) + v
    return out


def rank(index: RepoIndex, task: str, commits: Sequence[Commit], tag_cache: TagCache,
         embedder: Embedder | None = None, w: Weights = Weights()) -> Ranking:
    mentions = mention_scores(task, [f.path for f in index.files], index.suffixes, index.definers)
    lexical = index.lexical.scores(task)
    prior = _combine(rrf(mentions, w.mentions, w.k),
                     rrf({i: float(s) for i, s in enumerate(lexical) if s > 0}, w.lexical, w.k),
                     rrf(commit_scores(index, commits, task), w.commits, w.k))
    pool = sorted(prior, key=lambda i: (-prior[i], i))[:w.pool_size]
    tags = {i: tag_cache.tags(index.files[i].path, index.files[i].content) for i in pool}
    extra: list[dict[int, float]] = []
    if pool and embedder is not None:
        missing = [i for i in pool if (embedder.name, i) not in index.vectors]
        docs = [" ".join([index.files[i].path, *(d.name for d in tags[i].definitions[:50]),
                          index.files[i].content[:EMBED_CHARS]]) for i in missing]
        vecs = embedder.encode([task, *docs])
        for i, v in zip(missing, vecs[1:], strict=True):
            index.vectors[(embedder.name, i)] = v
        cos = np.stack([index.vectors[(embedder.name, i)] for i in pool]) @ vecs[0]
        extra.append(rrf({i: float(c) for i, c in zip(pool, cos, strict=True)}, w.semantic, w.k))
    centrality: dict[int, float] = {}
    if pool:
        local = {i: n for n, i in enumerate(pool)}
        mentioned = set(IDENTIFIER.findall(task))
        edges = build_edges(index, pool, tags, mentioned)
        local_edges = {(local[a], local[b]): v for (a, b), v in edges.items()}
        pr = pagerank(len(pool), local_edges, np.array([prior[i] for i in pool]))
        centrality = {i: float(pr[local[i]]) for i in pool}
        extra.append(rrf(centrality, w.graph, w.k))
    fused = _combine(prior, *extra)
    for i in fused:
        if _TEST_PATH.search(index.files[i].path):
            fused[i] *= w.tests
    in_pool = set(pool)
    order = sorted(pool, key=lambda i: (-fused[i], i))
    order += sorted((i for i in prior if i not in in_pool), key=lambda i: (-prior[i], i))
    seen = set(order)
    order += [i for i in range(len(index.files)) if i not in seen]
    return Ranking(order=order, fused=fused, centrality=centrality, tags=tags, relevant=set(prior))


def lexical_order(index: RepoIndex, task: str) -> list[int]:
    """BM25 alone, the baseline the bench compares against."""
    s = index.lexical.scores(task)
    return sorted(range(len(index.files)), key=lambda i: (-float(s[i]), i))
