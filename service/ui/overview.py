"""What the overview page shows: which versions serve, what they cost, what drifted.

Each part degrades on its own: a registry that cannot be reached, or a warehouse with no
telemetry yet, turns into a message on the page, and the rest of the page still renders.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tierwise.service.errors import RegistryUnavailable
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.telemetry.pg_store import PgTelemetryStore
from tierwise.service.telemetry.store import TelemetryStore

if TYPE_CHECKING:
    import pandas as pd

    from tierwise.service.policy.registry import PolicyRegistry

log = logging.getLogger(__name__)
T = TypeVar("T")

# The KPI columns the page shows, in order, with how each is printed.
KPI_COLUMNS: dict[str, str] = {
    "decisions": "int", "episodes": "int", "cost_per_resolved": "usd", "resolution_rate": "pct",
    "escalation_rate": "pct", "override_rate": "pct", "human_queue_rate": "pct", "ttr_p50_ms": "ms",
    "ttr_p95_ms": "ms",
}
DAYS = 30


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: tuple[str, ...]
    created: float  # epoch seconds
    run_id: str | None
    run_url: str | None
    description: str


@dataclass
class RegistryView:
    rows: list[VersionRow] = field(default_factory=list)
    champion: str | None = None
    challenger: str | None = None
    error: str | None = None


@dataclass
class RetuneView:
    run_id: str | None = None
    run_url: str | None = None
    started: float | None = None
    run_status: str | None = None  # MLflow's: FINISHED, FAILED, RUNNING
    outcome: str | None = None  # tierwise's: promoted, challenger
    policy_version: str | None = None
    drift_flagged: bool | None = None
    drifted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def run_url(base: str | None, experiment_id: str, run_id: str) -> str | None:
    """A link into the MLflow UI at ``base`` (``TIERWISE_MLFLOW_UI_URL``), or None without one."""
    if not base:
        return None
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def registry_view(registry: PolicyRegistry, mlflow_ui: str | None, limit: int = 20) -> RegistryView:
    from tierwise.service.policy.registry import CHALLENGER, CHAMPION

    # The registry's own readers (alias, versions) read "unreachable" as "absent"; a page must not
    # show a registry that is down as an empty one, so it is asked once without that shield.
    registry.client.search_registered_models(max_results=1)
    view = RegistryView(champion=registry.alias(CHAMPION), challenger=registry.alias(CHALLENGER))
    experiments: dict[str, str] = {}
    for v in reversed(registry.versions()[-limit:]):
        number = str(v.version)
        aliases = tuple(a for a, n in ((CHAMPION, view.champion), (CHALLENGER, view.challenger)) if n == number)
        url = None
        if v.run_id and mlflow_ui:
            if v.run_id not in experiments:
                experiments[v.run_id] = str(registry.client.get_run(v.run_id).info.experiment_id)
            url = run_url(mlflow_ui, experiments[v.run_id], v.run_id)
        view.rows.append(VersionRow(number, aliases, v.creation_timestamp / 1000.0, v.run_id, url,
                                    v.description or ""))
    return view


def last_retune(registry: PolicyRegistry, mlflow_ui: str | None) -> RetuneView:
    """The newest run of the retune experiment, with its drift report."""
    from tierwise.service.policy.retunes import latest_retune_run

    found = latest_retune_run(registry)
    if found is None:
        return RetuneView(error="no retune has run yet (`tierwise retune`)")
    experiment_id, run = found
    flagged = run.data.metrics.get("drift_flagged")
    view = RetuneView(run_id=run.info.run_id, run_url=run_url(mlflow_ui, experiment_id, run.info.run_id),
                      started=run.info.start_time / 1000.0, run_status=run.info.status,
                      outcome=run.data.tags.get("status"), policy_version=run.data.tags.get("policy_version"),
                      drift_flagged=None if flagged is None else bool(flagged))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = registry.client.download_artifacts(run.info.run_id, "drift/drift_report.json", tmp)
            report = json.loads(Path(local).read_text())
        view.drifted = [str(x) for x in report.get("drifted", [])]
        view.notes = [str(x) for x in report.get("notes", [])]
        view.drift_flagged = bool(report.get("flagged", view.drift_flagged))
    except Exception as exc:  # a run that failed before it logged the report, or a missing artefact
        view.notes.append(f"no drift report in this run ({type(exc).__name__})")
    return view


def guarded(read: Callable[[], T], failed: Callable[[str], T], what: str) -> T:
    """``read()``, or ``failed(message)`` when the registry is off or cannot be read: one part of
    the page says so, and the rest still renders."""
    try:
        return read()
    except RegistryUnavailable as exc:
        return failed(exc.message)
    except Exception as exc:  # MLflow's client raises its own and the database driver's types
        log.warning("console: %s unavailable: %s: %s", what, type(exc).__name__, exc)
        return failed(f"{what} unavailable: {type(exc).__name__}: {exc}")


@dataclass
class Kpis:
    by_version: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _records(df: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict("records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        value = clean.pop(key)
        # A day arrives as a timestamp at midnight: show the date alone.
        clean["key"] = value.date().isoformat() if value is not None and hasattr(value, "date") else str(value)
        out.append(clean)
    return out


def kpis(store: TelemetryStore | PgTelemetryStore | None, today: date | None = None) -> Kpis:
    """KPIs by policy version (all time) and by day (the last ``DAYS`` days), from DuckDB over the
    Parquet segments; the service's own exporter runs first, so the numbers are current."""
    if store is None:
        return Kpis(error="this server runs without telemetry: there are no KPIs to show")
    since = (today or date.today()) - timedelta(days=DAYS - 1)
    wh = store.warehouse(refresh=True)
    try:
        by_version, by_day = wh.kpis(by="version"), wh.kpis(by="day", since=since)
    finally:
        wh.close()
    if by_version.empty:
        return Kpis(error="no decisions recorded yet: KPIs appear after the first routed task")
    return Kpis(_records(by_version, "policy_version"), _records(by_day, "day"))


def serving(holder: PolicyHolder) -> dict[str, Any]:
    active = holder.active
    challenger = holder.challenger
    return {"version": active.policy.version, "source": active.source, "loaded_at": active.loaded_at,
            "description": active.policy.description,
            "challenger": challenger.version if challenger is not None else None}
