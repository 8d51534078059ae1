"""The Chat Completions request as tierwise reads it, and what the router sees of it.

Lenient where OpenAI is open (unknown parameters are forwarded untouched, so a client using a
newer parameter keeps working), strict where tierwise acts on a field: a wrong type there is a
422 that names the field. The task text is the conversation's user messages, the tools are the
names of the request's function tools, and ``response_format`` says whether JSON is expected.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tierwise.service.api.schemas import MAX_TOOLS, ClientId
from tierwise.service.classify import FailureKind, Harness
from tierwise.service.classify.task import Task
from tierwise.service.errors import InvalidInput
from tierwise.service.settings import PROMPT_CHARS_CEILING
from tierwise.service.textnorm import clean, is_blank

MAX_MESSAGES = 10_000
MAX_MODEL_CHARS = 256
MAX_PARTS = 1_000  # content parts of one message
MAX_NAME_CHARS = 64  # OpenAI's bound on a response_format name

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
_OPEN = ConfigDict(extra="allow")


class Message(BaseModel):
    model_config = _OPEN
    role: Role
    # A string, or a list of content parts (``{"type": "text", "text": ...}``, images…).
    content: Annotated[str, StringConstraints(max_length=PROMPT_CHARS_CEILING)] | Annotated[
        list[dict[str, Any]], Field(max_length=MAX_PARTS)] | None = None


class FunctionDef(BaseModel):
    model_config = _OPEN
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ToolDef(BaseModel):
    model_config = _OPEN
    type: Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)] = "function"
    function: FunctionDef | None = None


class JsonSchemaFormat(BaseModel):
    model_config = _OPEN
    name: Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")


class ResponseFormat(BaseModel):
    model_config = _OPEN
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class TierwiseMeta(BaseModel):
    """The keys of ``metadata`` that tierwise reads; others are the client's own and ignored.

    OpenAI's ``metadata`` holds strings, so ``resolved`` is ``"true"`` or ``"false"``."""

    model_config = ConfigDict(extra="ignore")
    harness: Harness | None = None
    task_id: ClientId | None = None
    resolved: Literal["true", "false"] | bool | None = None
    failure: FailureKind | None = None


class ChatRequest(BaseModel):
    model_config = _OPEN
    model: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_CHARS)]
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[ToolDef] | None = Field(None, max_length=MAX_TOOLS)
    response_format: ResponseFormat | None = None
    metadata: TierwiseMeta | None = None

    def text_of(self, roles: tuple[str, ...]) -> str:
        return "\n\n".join(t for m in self.messages if m.role in roles and (t := message_text(m)))

    def opening(self) -> tuple[str, ...]:
        """What every call of one conversation repeats: its instructions up to the first user message."""
        out: list[str] = []
        for m in self.messages:
            out.append(f"{m.role}:{message_text(m)}")
            if m.role == "user":
                break
        return tuple(out)

    def json_schema(self) -> dict[str, Any] | None:
        rf = self.response_format
        return rf.json_schema.schema_ if rf is not None and rf.json_schema is not None else None

    def expects_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    def tool_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.function.name for t in self.tools or () if t.function is not None))

    def resolution(self) -> bool | None:
        value = self.metadata.resolved if self.metadata else None
        return value if value is None or isinstance(value, bool) else value == "true"


def message_text(m: Message) -> str:
    if isinstance(m.content, str):
        return m.content
    parts = m.content or []
    return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def to_task(req: ChatRequest, max_chars: int) -> Task:
    """The task is what the user asked: its user messages (an agent's long system prompt says who
    the agent is, not what this task is), cut to the route's prompt limit rather than refused."""
    prompt = clean(req.text_of(("user",)))[:max_chars]
    if is_blank(prompt):
        raise InvalidInput("messages hold no user text to route on", field="messages")
    return Task(prompt=prompt, expected_output="json" if req.expects_json() else None, tools=req.tool_names())


def check_request(req: ChatRequest) -> None:
    """What pydantic cannot see: a ``response_format`` schema must be a schema to validate against."""
    schema = req.json_schema()
    if schema is None:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(f"not a valid JSON Schema: {exc.message}",
                           field="response_format.json_schema.schema") from exc
