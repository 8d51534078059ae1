"""Hot reload: poll the registry's aliases and swap the holder's policy when the champion moves.

A poll that finds the registry unreachable, or lost the history the cached policy came from
(``registry.lineage_problem``), keeps the policy it serves and names the cause in the holder's
health causes, which ``/healthz`` reports; the cause is logged once when it appears and once
when it clears, not on every poll.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from tierwise.service.policy.cache import read_cache, write_cache
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.registry import CHALLENGER, CHAMPION, PolicyRegistry, lineage_problem, make_registry
from tierwise.service.settings import Settings

if TYPE_CHECKING:
    from tierwise.service.api.metrics import Metrics

log = logging.getLogger(__name__)


class PolicyPoller:
    """Polls the champion (and challenger) alias and swaps the holder's policy when it moves."""

    def __init__(self, settings: Settings, holder: PolicyHolder, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: set[str] = set()
        self._registry: PolicyRegistry | None = None

    def poll_once(self) -> bool:
        """One poll; returns whether the active policy changed. Never raises: a registry that is
        unreachable or lost its history leaves the policy as it is and says so in the holder's
        health causes (``/healthz``)."""
        try:
            if self._registry is None:
                self._registry = make_registry(self.settings)
            reg = self._registry
            lost = lineage_problem(reg, read_cache(self.settings))
            if lost is not None:
                self._degraded(f"registry: {lost}, serving {self._serving()}")
                return False
            version = reg.alias(CHAMPION)
            changed = False
            if version is not None and version != self.holder.policy.version and version not in self._refused:
                changed = self._install(reg, version)
            if self.settings.shadow:
                self._shadow(reg)
            if self.holder.set_cause("registry", None):
                log.warning("policy registry is back; serving policy %s", self.holder.policy.version)
            return changed
        except Exception as exc:
            self._degraded(f"registry: unavailable ({type(exc).__name__}), serving {self._serving()}")
            log.debug("policy poll failed", exc_info=True)
            return False

    def _serving(self) -> str:
        active = self.holder.active
        version = active.policy.version
        label = f"v{version}" if version.isdigit() else version
        return f"cached policy {label}" if active.source.startswith("cache:") else f"policy {label}"

    def _degraded(self, cause: str) -> None:
        if self.holder.set_cause("registry", cause):  # logged once per change, not every poll
            log.error("%s", cause)

    def _install(self, reg: PolicyRegistry, version: str) -> bool:
        try:
            policy = reg.load(version)
        except Exception as exc:
            self._refused.add(version)
            if self.metrics:
                self.metrics.policy_refused.inc()
            log.error("refused policy version %s: %s; still serving %s", version, exc, self.holder.policy.version)
            return False
        old = self.holder.policy.version
        if self.holder.swap(policy, f"registry:{self.settings.policy_name}@{CHAMPION}"):
            write_cache(self.settings, policy, reg.identity())
            if self.metrics:
                self.metrics.policy_swaps.inc()
                self.metrics.policy_info.labels(old).set(0)
                self.metrics.policy_info.labels(policy.version).set(1)
            log.info("hot-reloaded policy %s -> %s", old, policy.version)
            return True
        return False

    def _shadow(self, reg: PolicyRegistry) -> None:
        version = reg.alias(CHALLENGER)
        current = self.holder.challenger
        if version is None:
            self.holder.set_challenger(None)
        elif (current is None or current.version != version) and version not in self._refused:
            try:
                self.holder.set_challenger(reg.load(version))
            except Exception as exc:
                self._refused.add(version)
                log.error("refused challenger %s: %s", version, exc)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.settings.poll_seconds):
                self.poll_once()

        self.poll_once()  # at once, so /healthz tells a degraded start from the first request on
        self._thread = threading.Thread(target=loop, name="tierwise-policy-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
