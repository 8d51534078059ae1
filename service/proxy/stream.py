"""Relaying an upstream SSE stream: what to forward, when to stop early, what it used.

The stream stops early, with a clean end for the client (a last chunk with ``finish_reason`` and
``[DONE]``), when the expected JSON's top-level value closes (``jsonend.py``) or when the
tier's output budget is spent; the caller then closes the upstream response, which cancels the
generation upstream. Usage comes from the upstream's usage chunk (the proxy always asks for one);
a stream stopped before it arrives is estimated from characters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tierwise.service.proxy.jsonend import JsonEnd
from tierwise.service.proxy.upstream import refusal

# A rough, model-agnostic ratio, used only where the upstream reports no usage.
CHARS_PER_TOKEN = 4
DONE = b"data: [DONE]\n\n"
# What a chunk of the wrong shape raises on its way through ``Relay.event``: the upstream's fault.
MALFORMED = (ValueError, TypeError, AttributeError)
StopReason = Literal["json_end", "budget"]
FINISH: dict[StopReason, str] = {"json_end": "stop", "budget": "length"}


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


@dataclass
class Relay:
    """Watches the chunks of one streamed attempt."""

    expects_json: bool
    budget_tokens: int
    client_wants_usage: bool
    text: list[str] = field(default_factory=list)
    chars: int = 0
    usage: dict[str, Any] | None = None
    refused: str | None = None
    tool_calls: bool = False
    stopped: StopReason | None = None
    last: dict[str, Any] = field(default_factory=dict)
    _end: JsonEnd = field(default_factory=JsonEnd)

    def event(self, line: str) -> bytes | None:
        """The bytes to forward for one SSE line (None: nothing), updating what was seen."""
        if not line.startswith("data:"):
            return (line + "\n\n").encode() if line.startswith(":") else None  # keep-alive comments
        payload = line[5:].strip()
        if payload == "[DONE]":
            return None  # the caller sends its own, once
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            raise ValueError("a stream chunk that is not a JSON object")
        self.last = chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return sse(chunk) if self.client_wants_usage or not chunk.get("usage") else None
        choice = choices[0]
        self.refused = self.refused or refusal(choice)
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            end = self._end.feed(content) if self.expects_json else None
            if end is not None:
                delta["content"] = content = content[:end]
                self.stopped = "json_end"
            self.text.append(content)
            self.chars += len(content)
        for call in delta.get("tool_calls") or []:
            self.tool_calls = True
            self.chars += len(str((call.get("function") or {}).get("arguments") or ""))
        if self.stopped is None and estimate_tokens(self.chars) >= self.budget_tokens:
            self.stopped = "budget"
        return sse(chunk)

    def closing(self) -> bytes:
        """The last chunk of an early stop: the reason the client sees (``[DONE]`` follows)."""
        assert self.stopped is not None
        chunk: dict[str, Any] = {k: self.last.get(k) for k in ("id", "object", "created", "model") if k in self.last}
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": FINISH[self.stopped]}]
        return sse(chunk)

    def output(self) -> str:
        return "".join(self.text)
