"""The import and symbol-reference graph of the candidate pool, and PageRank over it.

As in Aider's repository map: file A points at file B when A uses a name B defines, weighted
so that rare, specific names count more than common ones (``__init__``, ``get``), and names the
task mentions count most; an import of B by A is an edge too. PageRank, personalised by the
task relevance of each file, then says which files the relevant ones lean on.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.sparse import csr_matrix

from tierwise.service.context.index import RepoIndex
from tierwise.service.context.tags import FileTags, Language, language_of

IMPORT_WEIGHT = 2.0
MENTIONED_NAME_FACTOR = 10.0
PRIVATE_NAME_FACTOR = 0.1
DAMPING = 0.85
ITERATIONS = 40


def resolve_import(index: RepoIndex, importer: int, module: str) -> list[int]:
    """The files an import names, or none when it is outside the candidates (a library)."""
    path = index.files[importer].path
    lang: Language | None = language_of(path)
    here = posixpath.dirname(path)
    if lang in ("javascript", "typescript", "tsx"):
        if not module.startswith("."):
            return index.suffixes.get("/".join(module.split("/")[-2:]), [])
        target = posixpath.normpath(posixpath.join(here, module))
        return [i for i in index.suffixes.get("/".join(target.split("/")[-4:]), [])
                if index.files[i].path.startswith(target)]
    if lang == "go":
        return index.dirs.get("/".join(module.split("/")[-2:]), [])
    if lang == "python" and module.startswith("."):
        dots = len(module) - len(module.lstrip("."))
        base = here
        for _ in range(dots - 1):
            base = posixpath.dirname(base)
        rest = module[dots:].replace(".", "/")
        target = posixpath.join(base, rest) if rest else base
        parts = target.split("/")
        return index.suffixes.get("/".join(parts[-4:]), [])
    parts = module.split(".")
    for k in range(len(parts), 0, -1):  # ``a.b.c`` may be module ``a.b`` and its name ``c``
        hit = index.suffixes.get("/".join(parts[:k][-4:]), [])
        if hit:
            return hit if len(hit) <= 3 else []
    return []


def build_edges(index: RepoIndex, pool: Sequence[int], tags: Mapping[int, FileTags],
                mentioned: set[str]) -> dict[tuple[int, int], float]:
    defined: dict[str, list[int]] = defaultdict(list)
    for i in pool:
        for name in {d.name for d in tags[i].definitions}:
            defined[name].append(i)
    edges: dict[tuple[int, int], float] = defaultdict(float)
    in_pool = set(pool)
    for a in pool:
        for name in index.identifiers(a):
            owners = defined.get(name)
            if not owners:
                continue
            weight = 1.0 / len(owners) ** 0.5
            if name in mentioned:
                weight *= MENTIONED_NAME_FACTOR
            elif name.startswith("_"):
                weight *= PRIVATE_NAME_FACTOR
            for b in owners:
                if b != a:
                    edges[(a, b)] += weight
        for module in tags[a].imports:
            for b in resolve_import(index, a, module):
                if b != a and b in in_pool:
                    edges[(a, b)] += IMPORT_WEIGHT
    return edges


def pagerank(n: int, edges: Mapping[tuple[int, int], float], personal: np.ndarray) -> np.ndarray:
    """Power iteration on the column-stochastic matrix; dangling mass goes back to ``personal``."""
    if n == 0:
        return np.zeros(0)
    p = personal / personal.sum() if personal.sum() > 0 else np.full(n, 1.0 / n)
    if not edges:
        return p
    src = np.array([a for a, _ in edges])
    dst = np.array([b for _, b in edges])
    w = np.array(list(edges.values()), dtype=np.float64)
    out_sum = np.bincount(src, weights=w, minlength=n)
    m = csr_matrix((w / out_sum[src], (dst, src)), shape=(n, n))
    dangling = out_sum == 0
    r = p.copy()
    for _ in range(ITERATIONS):
        r = DAMPING * (m @ r + r[dangling].sum() * p) + (1 - DAMPING) * p
    out: np.ndarray = r / r.sum()
    return out
