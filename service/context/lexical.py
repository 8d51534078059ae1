"""Lexical relevance of each file to the task: BM25 (``bm25s``) over the file's path and sub-words.

Why sub-words of unique tokens: splitting every token of a 5,000-file repository in Python costs
seconds; a file's distinct tokens are far fewer, each is split once (memoised), and its count is
kept by repeating the pieces, so BM25 still sees term frequencies.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from tierwise.service.context.model import SourceFile
from tierwise.service.context.text import words

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# A repeated token counts at most this often: BM25 saturates anyway, and lists stay short.
MAX_TF = 8


@lru_cache(maxsize=500_000)
def _pieces(token: str) -> tuple[str, ...]:
    return tuple(words(token))


def document(f: SourceFile) -> list[str]:
    out: list[str] = []
    for piece in _pieces(f.path.replace("/", " ").replace(".", " ")):
        out += [piece] * 3  # the path names the file's subject: weigh it like a few mentions
    for token, n in Counter(_TOKEN.findall(f.content)).items():
        pieces = _pieces(token)
        if pieces:
            out += list(pieces) * min(n, MAX_TF)
    return out


class Lexical:
    """A BM25 index over a fixed list of files; ``scores(task)`` has one entry per file."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        import bm25s

        self._n = len(files)
        self._bm25 = bm25s.BM25()
        docs = [document(f) for f in files]
        if any(docs):
            self._bm25.index(docs, show_progress=False)
            self._vocab: dict[str, int] = dict(self._bm25.vocab_dict)
        else:
            self._vocab = {}

    def scores(self, task: str) -> np.ndarray:
        query = [w for w in dict.fromkeys(words(task)) if w in self._vocab]
        if not query or self._n == 0:
            return np.zeros(self._n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(query), dtype=np.float32)
