"""DuckDB, the query layer: views over the Parquet segments, and the KPI views.

The same numbered migrations build the views in the ``tierwise.duckdb`` catalog (for people
with the ``duckdb`` CLI) and in the in-memory connections the tuner and notebooks use. The
in-memory path is the default for programs because it takes no file lock at all.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from tierwise.service.classify import FAILURE_KINDS
from tierwise.service.locks import file_lock
from tierwise.service.telemetry.schema import TABLES

_EPISODES_TEMPLATE = """
CREATE OR REPLACE VIEW episodes AS
WITH a AS (
    SELECT decision_id,
           count(*)                                  AS n_attempts,
           bool_or(resolved)                         AS resolved,
           sum(cost_usd)                             AS cost_usd,
           sum(input_tokens)                         AS input_tokens,
           sum(output_tokens)                        AS output_tokens,
           sum(latency_ms)                           AS latency_ms,
           bool_or(overridden_to IS NOT NULL)        AS overridden,
           arg_min(resolved, attempt)                AS first_resolved,
           arg_min(overridden_to IS NOT NULL, attempt) AS first_overridden,
           arg_max(failure, attempt)                 AS last_failure,
           max(ts)                                   AS last_ts
    FROM attempts GROUP BY decision_id
)
SELECT d.decision_id, d.ts, CAST(to_timestamp(d.ts) AT TIME ZONE 'UTC' AS DATE) AS day,
       d.policy_version, d.harness, d.profile, d.tier AS first_tier, d.model AS first_model,
       d.tier_rank, d.ladder_size, d.explored, d.propensity, d.complexity, d.task_id,
       a.decision_id IS NOT NULL AS has_outcome,
       coalesce(a.n_attempts, 0) AS n_attempts,
       coalesce(a.resolved, false) AS resolved,
       coalesce(a.cost_usd, 0.0) AS cost_usd,
       a.input_tokens, a.output_tokens,
       coalesce(a.n_attempts, 0) > 1 AS escalated,
       coalesce(a.overridden, false) AS overridden,
       a.first_resolved, a.first_overridden, a.last_failure,
       CASE WHEN a.resolved THEN a.latency_ms END AS ttr_ms,
       q.decision_id IS NOT NULL AS queued{extra}
FROM decisions d
LEFT JOIN a USING (decision_id)
LEFT JOIN queue q USING (decision_id)
"""

_EPISODES_V1 = _EPISODES_TEMPLATE.format(extra="")
# v2: ``queued`` is any queue item (human or script); ``human_queued`` only the human queue, which
# is what the human-queue rate counts (a task a deterministic script took over needs no person).
_EPISODES = _EPISODES_TEMPLATE.format(extra=",\n       coalesce(q.kind = 'human', false) AS human_queued")

_KPI = """
WITH f AS (
    SELECT e.{key} AS k,
{failure_counts}
    FROM attempts t JOIN {source} e USING (decision_id) GROUP BY 1
)
SELECT e.{key} AS {key},
       count(*)                                          AS decisions,
       count(*) FILTER (WHERE has_outcome)               AS episodes,
       avg(CAST(resolved AS INT)) FILTER (WHERE has_outcome)  AS resolution_rate,
       sum(cost_usd) / nullif(count(*) FILTER (WHERE resolved), 0) AS cost_per_resolved,
       avg(cost_usd) FILTER (WHERE has_outcome)          AS cost_per_task,
       avg(CAST(escalated AS INT)) FILTER (WHERE has_outcome)  AS escalation_rate,
       avg(CAST(overridden AS INT)) FILTER (WHERE has_outcome) AS override_rate,
       avg(CAST((NOT first_resolved OR first_overridden) AS INT))
           FILTER (WHERE has_outcome AND tier_rank < ladder_size - 1) AS false_positive_rate,
       avg(n_attempts) FILTER (WHERE has_outcome)        AS mean_attempts,
       quantile_cont(ttr_ms, 0.5)  FILTER (WHERE resolved) AS ttr_p50_ms,
       quantile_cont(ttr_ms, 0.95) FILTER (WHERE resolved) AS ttr_p95_ms,
       avg(CAST({human} AS INT)) FILTER (WHERE has_outcome) AS human_queue_rate,
       avg(CAST(explored AS INT))                        AS exploration_rate,
{failure_columns}
FROM {source} e LEFT JOIN f ON f.k = e.{key}
GROUP BY e.{key}
"""


# One ``failures_<kind>`` column per failure kind, generated from the vocabulary.
_FAILURE_COUNTS = ",\n".join(f"           count(*) FILTER (WHERE t.failure = '{k}') AS failures_{k}"
                             for k in FAILURE_KINDS)
_FAILURE_COLUMNS = ",\n".join(f"       coalesce(any_value(f.failures_{k}), 0) AS failures_{k}" for k in FAILURE_KINDS)


def kpi_select(key: str, source: str = "episodes", *, human: str = "human_queued") -> str:
    """The KPI query grouped by ``key`` over ``source`` (a view or a parenthesised subquery that
    appears twice, so a parameterised source takes its parameters twice)."""
    return _KPI.format(key=key, source=source, human=human, failure_counts=_FAILURE_COUNTS,
                       failure_columns=_FAILURE_COLUMNS)


def _base_views(root: Path) -> list[str]:
    return [
        f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM read_parquet('{(root / t).resolve()}/*.parquet')"
        for t in TABLES
    ]


def migrations(root: Path) -> list[list[str]]:
    """Numbered view migrations; the list index + 1 is the version."""
    return [
        [*_base_views(root), _EPISODES_V1,
         "CREATE OR REPLACE VIEW kpi_by_version AS " + kpi_select("policy_version", human="queued"),
         "CREATE OR REPLACE VIEW kpi_by_day AS " + kpi_select("day", human="queued")],
        # 2: the human-queue rate leaves out script take-overs; failure counts are 0, not NULL.
        [_EPISODES,
         "CREATE OR REPLACE VIEW kpi_by_version AS " + kpi_select("policy_version"),
         "CREATE OR REPLACE VIEW kpi_by_day AS " + kpi_select("day")],
    ]


class Warehouse:
    """Read-side of telemetry. The DuckDB connection is injected; views are its migrations."""

    def __init__(self, con: duckdb.DuckDBPyConnection, segments_root: Path) -> None:
        self.con = con
        self.root = segments_root

    def migrate(self) -> int:
        self.con.execute("CREATE TABLE IF NOT EXISTS tierwise_schema (version INTEGER NOT NULL)")
        row = self.con.execute("SELECT max(version) FROM tierwise_schema").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        steps = migrations(self.root)
        for number, statements in enumerate(steps, start=1):
            if number > current:
                for sql in statements:
                    self.con.execute(sql)
                self.con.execute("INSERT INTO tierwise_schema VALUES (?)", [number])
        return len(steps)

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def kpis(self, by: Literal["version", "day"] = "version", since: date | None = None) -> pd.DataFrame:
        if since is None:
            return self.df(f"SELECT * FROM kpi_by_{by} ORDER BY 1")
        # Re-aggregate over the window rather than filter the view, so rates cover the window only.
        key = "policy_version" if by == "version" else "day"
        sql = kpi_select(key, source="(SELECT * FROM episodes WHERE day >= ?)")
        return self.df(sql + " ORDER BY 1", [since, since])

    def close(self) -> None:
        self.con.close()


def in_memory(segments_root: Path) -> Warehouse:
    wh = Warehouse(duckdb.connect(":memory:"), segments_root)
    wh.migrate()
    return wh


def build_catalog(catalog: Path, segments_root: Path) -> None:
    """Create or migrate the on-disk catalog for CLI users; held open only for the migration."""
    with file_lock(catalog.with_suffix(".lock")):
        con = duckdb.connect(str(catalog))
        try:
            Warehouse(con, segments_root).migrate()
        finally:
            con.close()
