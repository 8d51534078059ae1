"""Telemetry as the analyst sees it: one window of decisions, episodes, attempts and queue, read-only."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tierwise.service.telemetry.warehouse import Warehouse, kpi_select

REPO_ROOT = Path(__file__).resolve().parents[2]

_FAR = 1e15  # an epoch second far beyond any real timestamp: the open end of a window


@dataclass(frozen=True)
class Telemetry:
    """One window of telemetry, as DataFrames; every table is restricted to the window's decisions."""

    decisions: pd.DataFrame
    attempts: pd.DataFrame
    escalations: pd.DataFrame
    queue: pd.DataFrame
    episodes: pd.DataFrame
    lo: float
    hi: float

    def describe(self) -> str:
        if self.decisions.empty:
            return "no decisions in this window"
        ts = to_utc(self.decisions["ts"])
        versions = ", ".join(sorted(map(str, self.decisions["policy_version"].unique()), key=version_key))
        with_outcome = int(self.episodes["has_outcome"].sum()) if not self.episodes.empty else 0
        return (f"{len(self.decisions)} decisions ({with_outcome} with outcomes), {len(self.attempts)} attempts, "
                f"{len(self.queue)} queued; {ts.min():%Y-%m-%d %H:%M:%S} → {ts.max():%Y-%m-%d %H:%M:%S} UTC; "
                f"policy versions: {versions}")


def open_telemetry(home: Path) -> Warehouse:
    """The warehouse of ``home``; where the journal is the shared PostgreSQL one
    (``TIERWISE_JOURNAL_URL``), its segments on the shared location (``TIERWISE_SEGMENTS_URL``)."""
    from tierwise.service.settings import load_settings
    from tierwise.service.telemetry.store import open_warehouse

    settings = load_settings(home=home)
    return open_warehouse(home, journal_url=settings.journal_url, segments=settings.segments_url)


def resolve_home(value: str | os.PathLike[str] | None) -> Path:
    """The tierwise home: the parameter, else ``$TIERWISE_HOME``, else ``./var``.

    A relative path is tried against the working directory and then the repository root, because
    Jupyter runs the kernel in ``notebooks/`` while ``make serve`` writes ``./var`` at the root.
    """
    raw = Path(value if value is not None else os.environ.get("TIERWISE_HOME", "var"))
    if raw.is_absolute():
        return raw
    for base in (Path.cwd(), REPO_ROOT):
        if (base / raw / "telemetry").exists():
            return (base / raw).resolve()
    return (REPO_ROOT / raw).resolve()


def _as_date(value: date | str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def window_bounds(start: date | str | None, end: date | str | None) -> tuple[float, float]:
    """Epoch seconds [lo, hi) for UTC dates ``start`` .. ``end`` inclusive; None leaves that side open."""
    s, e = _as_date(start), _as_date(end)
    if s is not None and e is not None and e < s:
        raise ValueError(f"END_DATE {e} is before START_DATE {s}")
    lo = -_FAR if s is None else datetime(s.year, s.month, s.day, tzinfo=UTC).timestamp()
    hi = _FAR if e is None else (datetime(e.year, e.month, e.day, tzinfo=UTC) + timedelta(days=1)).timestamp()
    return lo, hi


def load_telemetry(wh: Warehouse, start: date | str | None = None, end: date | str | None = None) -> Telemetry:
    """Decisions made in the window, and the attempts, escalations, queue items and episodes they own."""
    lo, hi = window_bounds(start, end)
    in_window = "decision_id IN (SELECT decision_id FROM decisions WHERE ts >= ? AND ts < ?)"
    p = [lo, hi]
    return Telemetry(
        decisions=wh.df("SELECT * FROM decisions WHERE ts >= ? AND ts < ? ORDER BY ts", p),
        attempts=wh.df(f"SELECT * FROM attempts WHERE {in_window} ORDER BY ts, attempt", p),
        escalations=wh.df(f"SELECT * FROM escalations WHERE {in_window} ORDER BY ts", p),
        queue=wh.df("SELECT q.*, r.resolved_by, r.ts AS resolved_ts FROM queue q "
                    f"LEFT JOIN queue_resolutions r USING (item_id) WHERE q.{in_window} ORDER BY q.ts", p),
        episodes=wh.df("SELECT * FROM episodes WHERE ts >= ? AND ts < ? ORDER BY ts", p),
        lo=lo, hi=hi,
    )


def kpi_table(wh: Warehouse, tel: Telemetry, by: str = "policy_version") -> pd.DataFrame:
    """The service's own KPI definitions (``kpi_select``) over the window's episodes."""
    source = "(SELECT * FROM episodes WHERE ts >= ? AND ts < ?)"
    return wh.df(kpi_select(by, source=source) + " ORDER BY 1", [tel.lo, tel.hi, tel.lo, tel.hi])


def to_utc(ts: Any) -> Any:
    """Epoch seconds (scalar or Series) as timezone-aware UTC timestamps."""
    return pd.to_datetime(ts, unit="s", utc=True)


def version_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def parse_json(raw: Any, default: Any) -> Any:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return default
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return default
    return raw


def as_text(x: Any) -> str:
    return "" if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else str(x)


def as_bool(x: Any) -> bool:
    return bool(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) and x is not pd.NA else False
