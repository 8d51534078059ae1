"""One decision per task, not per call: the proxy's memory of which decision a task is on.

An agent makes many calls for one task. A call names its task by ``X-Tierwise-Task-Id`` (or
``metadata.task_id``); without one, the task is the conversation, keyed by its opening messages,
which every later call of the conversation repeats. Keys are per API key, so two tenants never
share a task.

This map is a per-process cache (bounded, idle entries expire). The journal stays the truth for
which attempt a decision is on: ``core.Proxy`` re-reads it before it records an attempt, and
before the next call after a report to ``/v1/outcomes`` reached this worker; a steady call of a
known task reads nothing. What lives only here is the usage of calls
whose attempt is still open; it is written with the attempt when the attempt closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from tierwise.service.policy.model import Tier


@dataclass
class Usage:
    """What an attempt's calls used so far; ``cost_usd`` is usage × the tier's list prices."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    calls: int = 0

    def add(self, tier: Tier, input_tokens: int, output_tokens: int, latency_ms: float) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += (input_tokens * tier.input_usd_per_mtok + output_tokens * tier.output_usd_per_mtok) / 1e6
        self.latency_ms += latency_ms
        self.calls += 1


@dataclass
class Step:
    """The attempt a task is on, and the plan its calls are capped by."""

    attempt: int
    tier: str
    model: str
    temperature: float
    max_output_tokens: int


@dataclass
class Session:
    decision_id: str
    policy_version: str
    profile: str
    step: Step
    # Usage per attempt number. An attempt's entry is frozen once the attempt is recorded, so a
    # repeated ``/v1/outcomes`` report merges the same numbers and stays idempotent.
    usage: dict[int, Usage] = field(default_factory=dict)
    closed: bool = False
    # The tier a ``tierwise/<tier>`` call forced on this task, once applied.
    forced: str | None = None
    # Set when ``/v1/outcomes`` reports on this decision: the next call re-reads the journal.
    stale: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def usage_of(self, attempt: int) -> Usage:
        return self.usage.setdefault(attempt, Usage())


def task_key(key_id: str | None, task_id: str | None, opening: tuple[str, ...]) -> str:
    """The task's key: its id when the client gives one, else a digest of the opening messages."""
    h = hashlib.sha256((key_id or "").encode())
    if task_id is not None:
        h.update(b"\x00task\x00" + task_id.encode())
    else:
        for text in opening:
            h.update(b"\x00msg\x00" + text.encode())
    return h.hexdigest()


class Sessions:
    def __init__(self, capacity: int, ttl_s: float) -> None:
        self.capacity, self.ttl_s = capacity, ttl_s
        self._by_key: OrderedDict[str, tuple[float, Session]] = OrderedDict()
        self._by_decision: dict[str, Session] = {}

    def get(self, key: str) -> Session | None:
        hit = self._by_key.get(key)
        if hit is None:
            return None
        seen, session = hit
        if time.monotonic() - seen > self.ttl_s:
            self._drop(key)
            return None
        self._by_key[key] = (time.monotonic(), session)
        self._by_key.move_to_end(key)
        return session

    def put(self, key: str, session: Session) -> None:
        if key in self._by_key:
            self._drop(key)
        self._by_key[key] = (time.monotonic(), session)
        self._by_key.move_to_end(key)
        self._by_decision[session.decision_id] = session
        while len(self._by_key) > self.capacity:
            self._drop(next(iter(self._by_key)))

    def by_decision(self, decision_id: str) -> Session | None:
        return self._by_decision.get(decision_id)

    def _drop(self, key: str) -> None:
        _, session = self._by_key.pop(key)
        self._by_decision.pop(session.decision_id, None)

    def __len__(self) -> int:
        return len(self._by_key)

