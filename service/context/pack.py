"""Fit the ranked files into a tier's budget: whole files, signatures, or one-line summaries.

``focused`` (the cheapest tier): the top files in full (their signatures when a file is too big),
then only the signatures of what those files import. A small model gets little, on purpose, and
all of it close to the task. ``map`` (larger tiers): more files in full, up to ``full_share`` of
the budget, then a repository map of signatures ordered by graph centrality (``map_share`` of
what is left), then one-line summaries of further ranked files.

The budget is counted with ``TokenCounter`` and kept ``margin`` below the tier's number, since the
counter stands in for the target model's tokenizer. The finished context is counted once more and
trimmed from the end if needed, so ``tokens <= budget`` holds for the counter whatever the text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tierwise.service.classify.embed import Embedder
from tierwise.service.context.graph import resolve_import
from tierwise.service.context.index import IndexCache, RepoIndex
from tierwise.service.context.model import Commit, Dropped, Included, Mode, Packed, SourceFile, Strategy
from tierwise.service.context.rank import Ranking, Weights, rank
from tierwise.service.context.render import render
from tierwise.service.context.tags import FileTags, TagCache
from tierwise.service.context.tokens import TokenCounter, WordPieceCounter

# A file of more than this many characters per remaining token will not fit (code runs at 2-4
# characters per WordPiece token), so it is not counted at all: a cost bound, never a budget one
# (what is packed is always counted).
MAX_CHARS_PER_TOKEN = 8
# ``map`` tries this many of the best files in full before it turns to the repository map.
MAX_FULL_TRIES = 60
# Results of this many recent requests are kept (each holds one context text).
RESULT_CACHE = 16
# Below this many tokens left, nothing useful fits.
MIN_SECTION_TOKENS = 8


@dataclass(frozen=True)
class PackOptions:
    margin: float = 0.10
    full_share: float = 0.6
    # ``map``: share of what is left after the full files that the signature map may take; the
    # rest goes to one-line summaries of further ranked files (many files, a line each).
    map_share: float = 0.6
    focus_top: int = 5
    weights: Weights = field(default_factory=Weights)


@dataclass
class _Fill:
    limit: int
    counter: TokenCounter
    sections: list[tuple[int, Mode, str, int]] = field(default_factory=list)
    used: int = 0
    done: set[int] = field(default_factory=set)

    def room(self) -> int:
        return self.limit - self.used

    def add(self, i: int, f: SourceFile, tags: FileTags | None, modes: Iterable[Mode], cap: int | None = None) -> bool:
        if i in self.done:
            return False
        ceiling = min(self.limit if cap is None else cap, self.limit)
        for mode in modes:
            if mode == "full" and len(f.content) > MAX_CHARS_PER_TOKEN * max(ceiling - self.used, 0):
                continue
            text = render(f.path, f.content, tags, mode)
            if text is None:
                continue
            n = self.counter.count(text) + (1 if self.sections else 0)  # the joining newline
            if self.used + n <= ceiling:
                self.sections.append((i, mode, text, n))
                self.used += n
                self.done.add(i)
                return True
        return False


class Packer:
    """Holds the caches (indexes, tags, token counts) that make a repeat call cheap; thread-safe."""

    def __init__(self, counter: TokenCounter | None = None, embedder: Embedder | None = None,
                 options: PackOptions | None = None) -> None:
        self.counter = counter or WordPieceCounter()
        self.embedder = embedder
        self.options = options or PackOptions()
        self.tags = TagCache()
        self.indexes = IndexCache()
        self._results: OrderedDict[tuple[object, ...], Packed] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, files: Sequence[SourceFile]) -> RepoIndex:
        return self.indexes.get(files)

    def rank(self, task: str, files: Sequence[SourceFile], commits: Sequence[Commit] = ()) -> tuple[RepoIndex, Ranking]:
        idx = self.index(files)
        return idx, rank(idx, task, commits, self.tags, self.embedder, self.options.weights)

    def pack(self, task: str, files: Sequence[SourceFile], budget: int, strategy: Strategy,
             commits: Sequence[Commit] = (), skipped: Sequence[Dropped] = ()) -> Packed:
        """A repeat of the same request (files, task, commits, budget) is answered from a small
        cache of results: agents re-ask, and the answer is deterministic."""
        idx = self.index(files)
        key = (idx.key, task, tuple(commits), budget, strategy, tuple(skipped))
        with self._lock:
            hit = self._results.get(key)
        if hit is not None:
            return hit
        ranking = rank(idx, task, commits, self.tags, self.embedder, self.options.weights)
        packed = self.fill(idx, ranking, budget, strategy, skipped)
        with self._lock:
            self._results[key] = packed
            while len(self._results) > RESULT_CACHE:
                self._results.popitem(last=False)
        return packed

    def _tags(self, idx: RepoIndex, ranking: Ranking, i: int) -> FileTags:
        if i not in ranking.tags:
            ranking.tags[i] = self.tags.tags(idx.files[i].path, idx.files[i].content)
        return ranking.tags[i]

    def fill(self, idx: RepoIndex, ranking: Ranking, budget: int, strategy: Strategy,
             skipped: Sequence[Dropped] = ()) -> Packed:
        o = self.options
        fill = _Fill(int(budget * (1.0 - o.margin)), self.counter)
        relevant = [i for i in ranking.order if i in ranking.relevant]
        files = idx.files
        if strategy == "focused":
            for i in relevant[:o.focus_top]:
                fill.add(i, files[i], self._tags(idx, ranking, i), ("full", "signatures", "summary"))
            for i in [s[0] for s in fill.sections]:
                for module in self._tags(idx, ranking, i).imports:
                    for b in resolve_import(idx, i, module):
                        fill.add(b, files[b], self._tags(idx, ranking, b), ("signatures",))
        else:
            full_cap = int(fill.limit * o.full_share)
            for i in relevant[:MAX_FULL_TRIES]:
                if fill.room() < MIN_SECTION_TOKENS or full_cap - fill.used < MIN_SECTION_TOKENS:
                    break
                fill.add(i, files[i], self._tags(idx, ranking, i), ("full",), cap=full_cap)
            map_cap = fill.used + int(fill.room() * o.map_share)
            by_centrality = sorted(ranking.centrality, key=lambda i: (-ranking.centrality[i], i))
            for i in by_centrality:
                if map_cap - fill.used < MIN_SECTION_TOKENS:
                    break
                fill.add(i, files[i], ranking.tags.get(i), ("signatures",), cap=map_cap)
            for i in relevant:
                if fill.room() < MIN_SECTION_TOKENS:
                    break
                fill.add(i, files[i], ranking.tags.get(i), ("summary",))
        return self._finish(fill, idx, ranking, budget, skipped)

    def _finish(self, fill: _Fill, idx: RepoIndex, ranking: Ranking, budget: int,
                skipped: Sequence[Dropped]) -> Packed:
        sections = list(fill.sections)
        context = "\n".join(s[2] for s in sections)
        total = self.counter.count(context)
        while sections and total > fill.limit:  # never trusted blindly: the sum is re-counted
            sections.pop()
            context = "\n".join(s[2] for s in sections)
            total = self.counter.count(context)
        kept = {s[0] for s in sections}
        included = [Included(idx.files[i].path, mode, n - (1 if k else 0))
                    for k, (i, mode, _, n) in enumerate(sections)]
        dropped = [Dropped(idx.files[i].path, "budget" if i in ranking.relevant else "not_relevant")
                   for i in ranking.order if i not in kept]
        return Packed(context=context, tokens=total, budget=budget, included=included,
                      dropped=[*skipped, *dropped])
