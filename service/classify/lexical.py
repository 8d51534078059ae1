"""The lexical expert: TF-IDF over word unigrams and bigrams of the whole prompt.

The encoder reads only the first 64 word pieces, and a linear model over a sentence embedding
blurs the verbs that decide a profile ("rename", "investigate", "port every call site"). Word
n-grams over the whole text carry them, and held out writer by writer they generalise better
than the embedding alone; the two together beat either (see ``train.py``).

The transform is written here in numpy so the service needs no fitted scikit-learn object; the
training side fits scikit-learn's ``TfidfVectorizer`` with this module's ``analyze``, and a test
holds the two transforms equal.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np

from tierwise.service.classify.embed import MAX_EMBED_CHARS

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def analyze(text: str) -> list[str]:
    """Lower-cased word tokens of two or more characters, then every adjacent pair."""
    words = _TOKEN.findall(text[:MAX_EMBED_CHARS].lower())
    return words + [f"{a} {b}" for a, b in pairwise(words)]


class Tfidf:
    """sublinear TF × IDF, L2-normalised, over a fixed vocabulary."""

    def __init__(self, vocabulary: Mapping[str, int], idf: Sequence[float]) -> None:
        self.vocabulary = dict(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, values) of the text's non-zero TF-IDF entries."""
        counts = Counter(t for t in analyze(text) if t in self.vocabulary)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        idx = np.fromiter((self.vocabulary[t] for t in counts), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(counts))
        val = tf * self.idf[idx]
        return idx, val / float(np.linalg.norm(val))

    def dense(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.idf)))
        for i, text in enumerate(texts):
            idx, val = self.sparse(text)
            out[i, idx] = val
        return out
