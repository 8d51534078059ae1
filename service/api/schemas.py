"""Request bodies of the v1 contract. Bounds that depend on settings are checked in the routes.

Models are strict (no ``true`` → 1, ``1.0`` → 1 or ``"3"`` → 3 coercion: a wrong type is a 422
naming the field) and refuse NaN and infinities, which would otherwise poison the KPIs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tierwise.service.classify import ExpectedOutput, FailureKind
from tierwise.service.classify import Harness as HarnessName

# Any harness's tool name (``Bash``, ``str_replace_editor``, ``mcp__github__create_issue``…):
# printable, no spaces at the ends, bounded. Unknown names are kept and reported, never refused.
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                            pattern=r"^[^\p{C}\s](?:[^\p{C}]*[^\p{C}\s])?$")]
MAX_TOOLS = 256


_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RepoIn(BaseModel):
    model_config = _STRICT
    files: int | None = Field(None, ge=0, le=100_000_000)
    modules_touched: int | None = Field(None, ge=0, le=1_000_000)
    languages: list[str] = Field(default_factory=list, max_length=100)


class RouteIn(BaseModel):
    model_config = _STRICT
    prompt: str = Field(min_length=1)
    files: list[str] = Field(default_factory=list)
    repo: RepoIn = Field(default_factory=RepoIn)
    diff_lines: int | None = Field(None, ge=0, le=100_000_000)
    expected_output: ExpectedOutput | None = None
    tools: list[ToolName] = Field(default_factory=list, max_length=MAX_TOOLS)
    harness: HarnessName = "ci"
    task_id: str | None = Field(None, max_length=200)


class OutcomeIn(BaseModel):
    model_config = _STRICT
    decision_id: str = Field(min_length=1, max_length=64)
    attempt: int = Field(ge=0, le=2)
    tier: str = Field(min_length=1, max_length=64)
    resolved: bool
    cost_usd: float = Field(ge=0, le=1_000_000)
    input_tokens: int | None = Field(None, ge=0)
    output_tokens: int | None = Field(None, ge=0)
    latency_ms: float | None = Field(None, ge=0)
    failure: FailureKind | None = None
    overridden_to: str | None = Field(None, max_length=64)
    output: Any = None


class QueueResolveIn(BaseModel):
    model_config = _STRICT
    resolved_by: str = Field(min_length=1, max_length=200)
    note: str | None = Field(None, max_length=10_000)
