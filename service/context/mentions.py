"""What the task names outright: file paths, dotted module paths, stack-trace frames and symbols.

Agentless's lesson on SWE-bench is that localisation is most of the battle, and the cheapest
localisation is a task that already says where: ``File "django/db/models/query.py", line 12``,
``sympy.physics.units``, or ``QuerySet.bulk_create``. A path match outranks a symbol match,
which outranks everything lexical.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_PATHISH = re.compile(r"[A-Za-z0-9_./\\-]+\.[A-Za-z]{1,5}\b")
_DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
_SYMBOL = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{2,}\b")
# At most this many distinct names are looked up: a task that pastes a whole log stays cheap.
MAX_NAMES = 200
PATH_SCORE, MODULE_SCORE, SYMBOL_SCORE = 4.0, 2.0, 1.0


def _is_symbolish(name: str) -> bool:
    """Code-shaped names only (``bulk_create``, ``QuerySet``, ``_eval``), not English words."""
    return "_" in name or (any(c.isupper() for c in name[1:]) and any(c.islower() for c in name))


def mention_scores(task: str, paths: Sequence[str], suffixes: Mapping[str, list[int]],
                   definers: Mapping[str, list[int]]) -> dict[int, float]:
    """Score per file index. ``suffixes`` maps a path tail without extension (``db/models/query``)
    to the files it names; ``definers`` maps a symbol to the files that define it."""
    out: dict[int, float] = {}

    def add(idx: list[int], score: float) -> None:
        if not idx or len(idx) > 20:  # a name defined in twenty files locates nothing
            return
        for i in idx:
            out[i] = out.get(i, 0.0) + score / len(idx) ** 0.5

    seen: set[str] = set()
    for raw in _PATHISH.findall(task)[:MAX_NAMES]:
        tail = raw.replace("\\", "/").lstrip("./")
        stem = tail.rsplit(".", 1)[0]
        parts = stem.split("/")
        for k in range(min(len(parts), 4), 0, -1):  # the longest tail that names a file wins
            hit = suffixes.get("/".join(parts[-k:]))
            if hit:
                add(hit, PATH_SCORE)
                seen.add(stem)
                break
    for dotted in _DOTTED.findall(task)[:MAX_NAMES]:
        parts = dotted.split(".")
        for k in range(min(len(parts), 4), 1, -1):
            hit = suffixes.get("/".join(parts[:k][-4:]))
            if hit:
                add(hit, MODULE_SCORE)
                break
        for name in parts[1:]:
            if _is_symbolish(name) or name[:1].isupper():
                add(definers.get(name, []), SYMBOL_SCORE)
    names = [n for n in dict.fromkeys(_SYMBOL.findall(task)) if _is_symbolish(n)][:MAX_NAMES]
    for name in names:
        add(definers.get(name, []), SYMBOL_SCORE)
    return out
