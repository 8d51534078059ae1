"""The journal as the source of online statistics, refreshed on the route path.

The view is rebuilt from the last ``window`` first attempts of the policy version being served
(a newly promoted version already learned what came before; its own predictions are what the
residuals must be measured against). Refreshes are triggered by traffic, every
``refresh_decisions`` routes, or after ``refresh_s`` seconds, so a sequential stream sees the same
views run after run. One thread refreshes at a time; the others keep the current view.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.online.stats import AdaptConfig, OnlineView, OutcomeRow, build_view
from tierwise.service.settings import Settings
from tierwise.service.telemetry.journal import Journal

log = logging.getLogger(__name__)

# First attempts read per refresh: a few weeks of one busy profile, a few ms to read and fold.
WINDOW = 3000

# First attempts only: an escalated attempt sees tasks that already failed lower down, which the
# tier's prediction does not account for. An override is a failure of the routed tier.
_SQL = """
SELECT d.profile, a.tier, a.model, d.tier_scores, d.policy_version,
       CASE WHEN a.resolved = 1 AND a.overridden_to IS NULL THEN 1 ELSE 0 END AS ok
FROM attempts a JOIN decisions d ON d.decision_id = a.decision_id
WHERE a.attempt = 0
ORDER BY a.rowid DESC LIMIT ?
"""


def load_rows(journal: Journal, window: int, version: str | None) -> list[OutcomeRow]:
    """First attempts, oldest first; ``version`` keeps only that policy version's decisions."""
    out: list[OutcomeRow] = []
    for r in reversed(journal.fetch_all(_SQL, (window,))):
        if version is not None and r["policy_version"] != version:
            continue
        scores = json.loads(r["tier_scores"] or "{}")
        if r["tier"] not in scores:
            continue
        out.append(OutcomeRow(r["profile"], r["tier"], r["model"] or "", float(scores[r["tier"]]), bool(r["ok"])))
    return out


class OnlineSource:
    def __init__(self, journal: Journal, cfg: AdaptConfig, *, window: int = WINDOW, refresh_decisions: int = 10,
                 refresh_s: float = 5.0) -> None:
        self.journal, self.cfg, self.window = journal, cfg, window
        self.refresh_decisions, self.refresh_s = refresh_decisions, refresh_s
        self._view = OnlineView()
        self._version: str | None = None
        self._since = 0
        self._at = 0.0
        self._lock = threading.Lock()

    @property
    def current(self) -> OnlineView:
        return self._view

    def compute(self, version: str) -> OnlineView:
        """A fresh view from the journal, leaving the routing view and its refresh clock alone
        (``/metrics`` reads this, so a scrape cannot change what a decision sees)."""
        try:
            return build_view(load_rows(self.journal, self.window, version), self.cfg)
        except TelemetryUnavailable as exc:
            log.warning("online statistics not refreshed: %s", exc.message)
            return self._view

    def refresh(self, version: str) -> OnlineView:
        """Rebuild the routing view now; on a journal error keep the last one."""
        self._view = self.compute(version)
        self._version, self._since, self._at = version, 0, time.monotonic()
        return self._view

    def view(self, version: str) -> OnlineView:
        """The view for a decision under ``version``, refreshed when due."""
        self._since += 1
        due = (version != self._version or self._since >= self.refresh_decisions
               or time.monotonic() - self._at >= self.refresh_s)
        if due and self._lock.acquire(blocking=False):
            try:
                return self.refresh(version)
            finally:
                self._lock.release()
        return self._view


def flagged_now(settings: Settings, version: str) -> list[tuple[str, str]]:
    """The (profile, tier) pairs the online detector flags for ``version`` right now, read from
    the journal (``tierwise retune --if-drift`` retunes when this or the drift report flags).
    An absent journal flags nothing."""
    from tierwise.service.telemetry.journal import connect
    from tierwise.service.telemetry.store import TelemetryPaths

    path = TelemetryPaths(settings.telemetry_dir).journal
    if not path.exists():
        return []
    journal = Journal(connect(path))
    try:
        cfg = AdaptConfig(half_life=settings.adapt_half_life, boost_outcomes=settings.adapt_boost_outcomes)
        return sorted(build_view(load_rows(journal, WINDOW, version), cfg).drifting)
    finally:
        journal.close()
