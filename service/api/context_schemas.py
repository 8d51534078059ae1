"""Request and response bodies of ``POST /v1/context`` (issue 18).

Static ceilings bound the parse (``CONTEXT_*_CEILING`` in settings); the settings' lower bounds
(``TIERWISE_CONTEXT_MAX_*``) are checked in the route. File content is taken verbatim (it is
code: no cleaning), and refused when binary; paths are refused when they could lead a client out
of its checkout (``service/context/paths.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tierwise.service.api.schemas import _STRICT, Cleaned, Integral
from tierwise.service.context.model import DropReason, Mode, Strategy
from tierwise.service.context.paths import MAX_PATH_CHARS, is_binary, path_problem
from tierwise.service.settings import CONTEXT_FILE_CHARS_CEILING, CONTEXT_FILES_CEILING, PROMPT_CHARS_CEILING

MAX_COMMITS = 200
MAX_COMMIT_FILES = 1_000
MAX_MESSAGE_CHARS = 20_000
MAX_BUDGET = 10_000_000


def _path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(f"path {problem}")
    return value


def _text(value: str) -> str:
    if is_binary(value):
        raise ValueError("content is binary (it contains a NUL character)")
    return value


RepoPath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(_path)]
Content = Annotated[str, StringConstraints(max_length=CONTEXT_FILE_CHARS_CEILING), AfterValidator(_text)]
Task = Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_CHARS_CEILING), Cleaned]


class FileIn(BaseModel):
    model_config = _STRICT
    path: RepoPath
    content: Content


class CommitIn(BaseModel):
    model_config = _STRICT
    sha: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS), Cleaned] = ""
    files: list[RepoPath] = Field(default_factory=list, max_length=MAX_COMMIT_FILES)


class ContextIn(BaseModel):
    """Exactly one of ``decision_id`` and ``tier`` says whose budget to fill."""

    model_config = _STRICT
    decision_id: str | None = Field(None, min_length=1, max_length=64)
    tier: str | None = Field(None, min_length=1, max_length=64)
    task: Task
    files: list[FileIn] = Field(max_length=CONTEXT_FILES_CEILING)
    commits: list[CommitIn] = Field(default_factory=list, max_length=MAX_COMMITS)
    max_tokens: Annotated[int, Field(ge=1, le=MAX_BUDGET), Integral] | None = None


class IncludedOut(BaseModel):
    path: str
    mode: Mode
    tokens: int


class DroppedOut(BaseModel):
    path: str
    reason: DropReason


class ContextOut(BaseModel):
    """The packed text and what went into it. ``tokens`` never exceeds ``budget`` as counted by
    ``counter``; the packer aims ``margin`` (a fraction) below the budget for the target model's
    own tokenizer."""

    model_config = ConfigDict(extra="allow")
    context: str
    tokens: int
    budget: int
    tier: str
    strategy: Strategy
    counter: str
    margin: float
    included: list[IncludedOut]
    dropped: list[DroppedOut]
