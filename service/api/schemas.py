"""Request bodies of the v1 contract.

Models are strict (no ``true`` → 1, ``1.5`` → 1 or ``"3"`` → 3 coercion: a wrong type is a 422
naming the field). An integral number written as ``3.0`` is an integer, as JSON Schema (and so
``/openapi.json``) says it is; schemathesis holds us to that. NaN and infinities are refused: they would
poison the KPIs.

Every list and string has a static maximum, so a request's cost is bounded before any handler
runs: pydantic checks a list's length before its items, so a million-item ``files`` is one
``too_long`` error, not a million. Bounds that depend on settings (``TIERWISE_MAX_PROMPT_CHARS``,
``TIERWISE_MAX_FILES``) are checked in the routes; the settings cannot exceed these ceilings.
Free text is cleaned (``service/textnorm.py``) as it is validated, so nothing downstream stores
or echoes control characters or terminal escapes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from tierwise.service.classify import ExpectedOutput, FailureKind
from tierwise.service.classify import Harness as HarnessName
from tierwise.service.settings import FILES_CEILING, PROMPT_CHARS_CEILING
from tierwise.service.textnorm import clean

# Any harness's tool name (``Bash``, ``str_replace_editor``, ``mcp__github__create_issue``…):
# no control characters, no spaces at the ends, bounded. The pattern uses explicit ranges, not
# ``\p{C}``: pydantic's Rust regex and the Python regex clients generate from must agree on it.
# Unknown names are kept and reported, never refused.
_CTRL = r"\x00-\x1f\x7f-\x9f"
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                            pattern=rf"^[^{_CTRL}\s](?:[^{_CTRL}]*[^{_CTRL}\s])?$")]
MAX_TOOLS = 256
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_LANGUAGES = 100
MAX_LANGUAGE_CHARS = 64
MAX_ID_CHARS = 200
MAX_NOTE_CHARS = 10_000
MAX_TOKENS = 10**12
MAX_LATENCY_MS = 10**10  # ~115 days


# Cleaned once it is known to fit: control characters and terminal escapes never reach storage.
Cleaned = AfterValidator(clean)
Prompt = Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_CHARS_CEILING), Cleaned]
FilePath = Annotated[str, StringConstraints(max_length=MAX_PATH_CHARS), Cleaned]
Language = Annotated[str, StringConstraints(max_length=MAX_LANGUAGE_CHARS), Cleaned]
ClientId = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS), Cleaned]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS), Cleaned]
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS), Cleaned]


def _integral(value: Any) -> Any:
    """``3.0`` → 3; anything else is left for the strict int check to accept or refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Placed after a field's bounds, so the bounds stay in the JSON schema as minimum/maximum.
Integral = BeforeValidator(_integral)

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RepoIn(BaseModel):
    model_config = _STRICT
    files: Annotated[int, Field(ge=0, le=100_000_000), Integral] | None = None
    modules_touched: Annotated[int, Field(ge=0, le=1_000_000), Integral] | None = None
    languages: list[Language] = Field(default_factory=list, max_length=MAX_LANGUAGES)


class RouteIn(BaseModel):
    model_config = _STRICT
    prompt: Prompt
    files: list[FilePath] = Field(default_factory=list, max_length=FILES_CEILING)
    repo: RepoIn = Field(default_factory=RepoIn)
    diff_lines: Annotated[int, Field(ge=0, le=100_000_000), Integral] | None = None
    expected_output: ExpectedOutput | None = None
    tools: list[ToolName] = Field(default_factory=list, max_length=MAX_TOOLS)
    harness: HarnessName = "ci"
    task_id: ClientId | None = None


class OutcomeIn(BaseModel):
    model_config = _STRICT
    decision_id: str = Field(min_length=1, max_length=64)
    attempt: Annotated[int, Field(ge=0, le=2), Integral]
    tier: str = Field(min_length=1, max_length=64)
    resolved: bool
    cost_usd: float = Field(ge=0, le=1_000_000)
    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS), Integral] | None = None
    output_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS), Integral] | None = None
    latency_ms: float | None = Field(None, ge=0, le=MAX_LATENCY_MS)
    failure: FailureKind | None = None
    overridden_to: str | None = Field(None, max_length=64)
    output: Any = None


class QueueResolveIn(BaseModel):
    model_config = _STRICT
    resolved_by: Name
    note: Note | None = None
