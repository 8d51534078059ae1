"""Everything about a set of candidate files that does not depend on the task, built once.

The index holds the path tables (for mentions and import resolution), a cheap definition index
(which files define which names, by one regular expression, used only to look up names the
task mentions: tree-sitter parses only the files that make the candidate pool), and the BM25
index. It is keyed by a digest of the paths and contents, so a repeat call on the same files
reuses it (``IndexCache``).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tierwise.service.context.lexical import Lexical
from tierwise.service.context.model import SourceFile
from tierwise.service.context.text import IDENTIFIER

# Python files (most candidates, in practice) get the simpler pattern: half the cost.
_PY_DEFINES = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)", re.M)
_DEFINES = re.compile(
    r"(?m)^[ \t]*(?:export\s+)?(?:default\s+)?(?:async\s+)?"
    r"(?:(?:public|private|protected|static|abstract|final)\s+)*"
    r"(?:def|class|function\*?|func(?:\s*\([^)\n]*\))?|interface|type|enum|record|struct)\s+([A-Za-z_]\w*)")
TAIL_DEPTH = 4


def stem(path: str) -> str:
    base, dot, ext = path.rpartition(".")
    return base if dot and "/" not in ext else path


def tails(path: str) -> list[str]:
    """``a/b/c.py`` → ``c``, ``b/c``, ``a/b/c``; a package's ``__init__``/``index`` also names its folder."""
    parts = stem(path).split("/")
    if parts[-1] in ("__init__", "index", "mod") and len(parts) > 1:
        parts = parts[:-1]
    return ["/".join(parts[-k:]) for k in range(1, min(len(parts), TAIL_DEPTH) + 1)]


def digest(files: Sequence[SourceFile]) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for f in files:
        h.update(f.path.encode("utf-8", "surrogatepass") + b"\0")
        h.update(hashlib.blake2b(f.content.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    return h.digest()


@dataclass
class RepoIndex:
    files: list[SourceFile]
    suffixes: dict[str, list[int]]
    dirs: dict[str, list[int]]
    definers: dict[str, list[int]]
    lexical: Lexical
    key: bytes = b""
    _identifiers: dict[int, frozenset[str]] = field(default_factory=dict)
    # File vectors by embedder name: a file's text does not change within an index.
    vectors: dict[tuple[str, int], Any] = field(default_factory=dict)

    def identifiers(self, i: int) -> frozenset[str]:
        """The names file ``i`` uses (for the reference graph), found once per index."""
        found = self._identifiers.get(i)
        if found is None:
            found = self._identifiers[i] = frozenset(IDENTIFIER.findall(self.files[i].content))
        return found

    @classmethod
    def build(cls, files: Sequence[SourceFile], key: bytes = b"") -> RepoIndex:
        suffixes: dict[str, list[int]] = defaultdict(list)
        dirs: dict[str, list[int]] = defaultdict(list)
        definers: dict[str, list[int]] = defaultdict(list)
        for i, f in enumerate(files):
            for t in tails(f.path):
                suffixes[t].append(i)
            folder = posixpath.dirname(f.path)
            if folder:
                parts = folder.split("/")
                for k in range(1, min(len(parts), TAIL_DEPTH) + 1):
                    dirs["/".join(parts[-k:])].append(i)
            pattern = _PY_DEFINES if f.path.endswith((".py", ".pyi")) else _DEFINES
            for name in set(pattern.findall(f.content)):
                definers[name].append(i)
        return cls(list(files), dict(suffixes), dict(dirs), dict(definers), Lexical(files), key)


class IndexCache:
    """The last few indexes by content digest; a hit skips tokenising and indexing."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[bytes, RepoIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, files: Sequence[SourceFile]) -> RepoIndex:
        key = digest(files)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        built = RepoIndex.build(files, key)
        with self._lock:
            self._items[key] = built
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return built
