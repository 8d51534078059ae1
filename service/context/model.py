"""The vocabulary and the value types of context packing, declared once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

# How much of a file goes into the context: all of it, its definitions' signature lines, or
# one line naming it and what it defines.
Mode = Literal["full", "signatures", "summary"]
MODES: tuple[Mode, ...] = get_args(Mode)

# Why a candidate file is not in the context.
DropReason = Literal["budget", "not_relevant", "binary", "too_large"]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)

# How a tier's budget is spent. ``focused`` (the cheapest tier): the top files in full and only
# the signatures of what they import. ``map``: more files in full, then a repository map of
# signatures ranked by graph centrality, then one-line summaries.
Strategy = Literal["focused", "map"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


@dataclass(frozen=True)
class SourceFile:
    path: str
    content: str


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Included:
    path: str
    mode: Mode
    tokens: int


@dataclass(frozen=True)
class Dropped:
    path: str
    reason: DropReason


@dataclass(frozen=True)
class Packed:
    context: str
    tokens: int
    budget: int
    included: list[Included] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
