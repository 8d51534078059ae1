"""The task as the router sees it at route time: what a harness knows before any model runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RepoInfo:
    files: int | None = None
    modules_touched: int | None = None
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    prompt: str
    files: tuple[str, ...] = ()
    repo: RepoInfo = field(default_factory=RepoInfo)
    diff_lines: int | None = None
    expected_output: str | None = None
    tools: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Task:
        """Build from a corpus row or a request body; unknown keys are ignored on purpose."""
        repo = row.get("repo") or {}
        return cls(
            prompt=str(row.get("prompt", "")),
            files=tuple(_strs(row.get("files") or ())),
            repo=RepoInfo(
                files=repo.get("files"),
                modules_touched=repo.get("modules_touched"),
                languages=tuple(_strs(repo.get("languages") or ())),
            ),
            diff_lines=row.get("diff_lines"),
            expected_output=row.get("expected_output"),
            tools=tuple(_strs(row.get("tools") or ())),
        )


def _strs(values: Sequence[Any]) -> list[str]:
    return [str(v) for v in values]
