"""The active policy, swapped atomically, with every version seen kept for late outcomes.

A request takes one reference to the policy at its start and uses it to the end, so a swap
mid-request cannot mix two versions; the reference assignment is atomic under the GIL, and
the lock only orders writers.

The holder also carries why the policy it serves may not be the one it should (the registry is
unreachable, lost or re-created, so a cached policy is served): ``/healthz`` reports those causes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tierwise.service.policy.model import RoutingPolicy


@dataclass(frozen=True)
class Active:
    policy: RoutingPolicy
    loaded_at: float
    source: str


class PolicyHolder:
    def __init__(self, policy: RoutingPolicy, source: str) -> None:
        self._lock = threading.Lock()
        self._active = Active(policy, time.time(), source)
        self._seen: dict[str, RoutingPolicy] = {policy.version: policy}
        self._challenger: RoutingPolicy | None = None
        self._causes: dict[str, str] = {}

    @property
    def active(self) -> Active:
        return self._active

    @property
    def policy(self) -> RoutingPolicy:
        return self._active.policy

    @property
    def challenger(self) -> RoutingPolicy | None:
        return self._challenger

    def swap(self, policy: RoutingPolicy, source: str) -> bool:
        """Install ``policy`` unless it is already active; returns whether anything changed."""
        with self._lock:
            self._seen[policy.version] = policy
            if policy.version == self._active.policy.version and policy == self._active.policy:
                return False
            self._active = Active(policy, time.time(), source)
            return True

    def set_challenger(self, policy: RoutingPolicy | None) -> None:
        with self._lock:
            if policy is not None:
                self._seen[policy.version] = policy
            self._challenger = policy

    def set_cause(self, component: str, cause: str | None) -> bool:
        """Set (or clear, with None) the degraded cause of ``component``; returns whether it changed,
        so a caller logs a transition once rather than on every poll."""
        with self._lock:
            if self._causes.get(component) == cause:
                return False
            if cause is None:
                del self._causes[component]
            else:
                self._causes[component] = cause
            return True

    def health_causes(self) -> list[str]:
        """Plain-text causes for ``/healthz``, e.g. ``registry: unavailable, serving cached policy v3``."""
        return sorted(self._causes.values())

    def version(self, version: str) -> RoutingPolicy:
        """The policy that made a decision, or the active one if that version is gone."""
        return self._seen.get(version, self._active.policy)
