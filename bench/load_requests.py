"""What the load bench sends: realistic route bodies, outcome reports, and the hostile probes.

Kept free of locust (which monkey-patches the process on import), so the smoke test can check
every builder's shape without starting gevent. Large hostile bodies are built once and reused:
the bench must spend its CPU on sending, not on serialising the same 7 MB again, or the client
would steal the 2-core box from the server it measures.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tierwise.service.classify import FAILURE_KINDS

ROOT = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}

# Sizes of the hostile bodies (the hardening issue's figures).
MANY_FILES = 1_000_000           # `files` with 1M empty paths: ~3 MB, under the current body limit
LANG_COUNT, LANG_BYTES = 100, 68 * 1024  # repo.languages: 100 strings of 68 KB each (~6.8 MB)
CHUNKED_BYTES = 8 * 1024 * 1024  # above every body limit the server has derived from its defaults (6.9, 3.6 MB)
CHUNK = 64 * 1024
NESTING = 100_000                # deep-nested JSON: far past any recursive parser's stack
BIG_ID = 2**63                   # one past SQLite's largest INTEGER


# ---------------------------------------------------------------- normal traffic

def _route_body(req: dict[str, Any], task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": req["prompt"], "harness": req.get("harness", "ci"), "task_id": task_id}
    for key in ("files", "tools"):
        if req.get(key):
            body[key] = list(req[key])
    repo = {k: v for k, v in (req.get("repo") or {}).items() if k in ("files", "modules_touched", "languages")}
    if repo:
        body["repo"] = repo
    for key in ("diff_lines", "expected_output"):
        if req.get(key) is not None:
            body[key] = req[key]
    return body


@cache
def route_bodies() -> tuple[dict[str, Any], ...]:
    """Every corpus and evaluation task as a /v1/route body: varied prompts, files, tools, repos
    and harnesses, the mix an agent fleet sends. Eval rows carry their request under ``request``."""
    out = []
    for path in sorted((ROOT / "data" / "corpus").glob("*.jsonl")) + sorted((ROOT / "data" / "eval").glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            row = json.loads(line)
            req = row.get("request", row)
            if isinstance(req.get("prompt"), str) and req["prompt"].strip():
                out.append(_route_body(req, f"load-{path.stem}-{row.get('id', n)}"))
    return tuple(out)


def outcome_body(decision_id: str, attempt: int, tier: str, rng: random.Random,
                 p_resolved: float = 0.6) -> dict[str, Any]:
    """One attempt's report. 40% failures with a random kind, so escalations and the human queue
    get traffic too, not only the cheap ``done`` path."""
    resolved = rng.random() < p_resolved
    body: dict[str, Any] = {
        "decision_id": decision_id, "attempt": attempt, "tier": tier, "resolved": resolved,
        "cost_usd": round(rng.uniform(0.001, 0.5), 6), "input_tokens": rng.randint(500, 60_000),
        "output_tokens": rng.randint(50, 8_000), "latency_ms": round(rng.uniform(500, 120_000), 1),
    }
    if not resolved:
        body["failure"] = rng.choice(FAILURE_KINDS)
    return body


# ---------------------------------------------------------------- hostile probes

@dataclass(frozen=True)
class Probe:
    """One hostile HTTP request and the statuses that count as handled.

    ``expect`` holds status classes ("2xx", "4xx"); a 5xx or a connection error is always an error,
    any other mismatch is a misbehaviour reported per probe. ``body`` is bytes, or a factory for a
    fresh chunk iterator (sent chunked, with no Content-Length)."""

    name: str
    method: str
    path: str
    body: bytes | Callable[[], Iterator[bytes]]
    expect: frozenset[str] = frozenset({"4xx"})
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))

    @property
    def chunked(self) -> bool:
        return callable(self.body)


@dataclass(frozen=True)
class SlowBody:
    """A request whose body never completes: headers announce ``content_length`` bytes, ``sent``
    of them go out, then the connection is held until the server answers or ``hold_s`` passes."""

    name: str
    head: bytes
    partial: bytes
    content_length: int
    hold_s: float
    expect: frozenset[str] = frozenset({"4xx", "closed"})


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@cache
def many_files() -> bytes:
    return _dumps({"prompt": "fix the failing import in the loader", "files": [""] * MANY_FILES})


@cache
def huge_languages() -> bytes:
    return _dumps({"prompt": "port the build to the new toolchain",
                   "repo": {"languages": ["x" * LANG_BYTES] * LANG_COUNT}})


def chunked_chunks(total: int = CHUNKED_BYTES, chunk: int = CHUNK) -> Iterator[bytes]:
    """A syntactically valid route body of ``total`` bytes, streamed: the prompt is the bulk."""
    head, tail = b'{"prompt":"', b'"}'
    yield head
    left = total - len(head) - len(tail)
    block = b"a" * chunk
    while left > 0:
        yield block[:min(chunk, left)]
        left -= chunk
    yield tail


@cache
def deep_nested() -> bytes:
    return b'{"prompt":"fix it","repo":' + b"[" * NESTING + b"]" * NESTING + b"}"


def _route(name: str, body: dict[str, Any] | bytes, expect: frozenset[str] = frozenset({"4xx"})) -> Probe:
    return Probe(name, "POST", "/v1/route", body if isinstance(body, bytes) else _dumps(body), expect)


def hostile_probes() -> list[Probe]:
    """The hardening issue's requests, one of each. ``tools_bash`` is the control: an ordinary
    harness's tool names must still route (a name is never refused). NUL and ANSI escapes may be
    refused or routed with the text cleaned; either is handled."""
    return [
        _route("files_1m", many_files()),
        Probe("chunked_over_limit", "POST", "/v1/route", chunked_chunks),
        _route("languages_100x68k", huge_languages()),
        Probe("queue_id_2p63", "POST", f"/v1/queue/{BIG_ID}/resolve",
              _dumps({"resolved_by": "load-bench", "note": "id past int64"})),
        _route("prompt_zero_width", {"prompt": "\u200b" * 200}),
        _route("prompt_nul_ansi", {"prompt": "fix the parser\x00\x1b[31m crash\x1b[0m\x1b]0;title\x07 in lexer.py",
                                   "files": ["src/lexer.py"]}, frozenset({"2xx", "4xx"})),
        _route("deep_nested_json", deep_nested()),
        _route("tools_bash", {"prompt": "run the test suite and fix the flaky date test in tests/test_dates.py",
                              "tools": ["bash", "Bash", "str_replace_editor", "submit"]}, frozenset({"2xx"})),
    ]


def slow_body(host: str, port: int, hold_s: float, auth: dict[str, str] | None = None) -> SlowBody:
    """Announce a 64 KB route body and send 1 KB of it (a slowloris client)."""
    length = 64 * 1024
    lines = ["POST /v1/route HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (auth or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return SlowBody("slow_body", head, b'{"prompt":"' + b"a" * 1013, length, hold_s)


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "none"
