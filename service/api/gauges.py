"""Gauges measured when Prometheus scrapes: the open human queue, a degraded ``/healthz``, and
whether the newest retune flagged drift, so alert rules need nothing but ``/metrics``.

The drift flag lives in MLflow (the tuner logs it with each retune run). Reading it costs a
registry query, so it is refreshed at most every ``DRIFT_TTL_S`` and a failed read keeps the
last value: a slow or unreachable registry never slows or breaks a scrape.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tierwise.service.api.metrics import Metrics
from tierwise.service.components import Components
from tierwise.service.settings import Settings

if TYPE_CHECKING:
    from tierwise.service.policy.registry import PolicyRegistry

log = logging.getLogger(__name__)

DRIFT_TTL_S = 60.0
NO_RETUNE = -1.0
_OPEN_HUMAN = ("SELECT count(*) AS n FROM queue q LEFT JOIN queue_resolutions r USING (item_id) "
               "WHERE r.item_id IS NULL AND q.kind = 'human'")


def health_report(parts: Components) -> tuple[list[str], dict[str, str]]:
    """Why the service is degraded (``/healthz``; empty when it is not), and each dependency's
    state: ``ok``, ``off`` or its first problem."""
    causes: list[str] = []  # any component appends a plain-text cause
    deps = {"journal": "off", "segments": "off",
            "registry": "ok" if parts.settings.use_registry else "off"}
    if parts.store is not None:
        journal = parts.store.health.causes()
        segments = segments_problem(parts.settings.segments_dir)
        deps["journal"], deps["segments"] = (journal[0] if journal else "ok"), segments or "ok"
        causes += journal + ([segments] if segments else [])
    registry = parts.holder.health_causes()
    deps["registry"] = "; ".join(c for c in registry if c.startswith("registry")) or deps["registry"]
    causes += registry
    return causes, deps


def health_causes(parts: Components) -> list[str]:
    return health_report(parts)[0]


def segments_problem(root: Path) -> str | None:
    """The segment store must be a directory this host can write (a shared volume may be gone)."""
    if not root.is_dir():
        return f"segments: {root} is not a directory"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"segments: {root} is not writable"
    return None


class ScrapeGauges:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._drift = NO_RETUNE
        self._drift_at = float("-inf")
        self._registry: PolicyRegistry | None = None

    def refresh(self, m: Metrics, parts: Components) -> None:
        if parts.store is not None:
            row = parts.store.journal.fetch_one(_OPEN_HUMAN)
            m.queue_open.set(int(row["n"]) if row else 0)
        m.health_degraded.set(1 if health_causes(parts) else 0)
        m.drift_flagged.set(self._drift_flag())

    def _drift_flag(self) -> float:
        if not self.settings.use_registry:
            return NO_RETUNE
        with self._lock:
            if time.monotonic() - self._drift_at < DRIFT_TTL_S:
                return self._drift
            self._drift_at = time.monotonic()
            try:
                from tierwise.service.policy.registry import make_registry
                from tierwise.service.policy.retunes import latest_retune_run

                if self._registry is None:
                    self._registry = make_registry(self.settings)
                found = latest_retune_run(self._registry)
                flagged = found[1].data.metrics.get("drift_flagged") if found else None
                self._drift = NO_RETUNE if flagged is None else float(bool(flagged))
            except Exception as exc:  # MLflow down or slow: keep the last value, say why in the log
                log.warning("drift gauge: cannot read the newest retune run: %s: %s", type(exc).__name__, exc)
            return self._drift
