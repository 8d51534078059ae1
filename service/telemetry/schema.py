"""Column definitions shared by the SQLite journal and the Parquet segments.

One list per table keeps the two in step: a column added here is added to both by a migration.
"""

from __future__ import annotations

import pyarrow as pa

Column = tuple[str, str, pa.DataType]

DECISIONS: list[Column] = [
    ("decision_id", "TEXT NOT NULL PRIMARY KEY", pa.string()),
    ("ts", "REAL NOT NULL", pa.float64()),
    ("policy_version", "TEXT NOT NULL", pa.string()),
    ("harness", "TEXT NOT NULL", pa.string()),
    ("task_id", "TEXT", pa.string()),
    ("prompt_preview", "TEXT", pa.string()),
    ("prompt_chars", "INTEGER", pa.int64()),
    ("prompt_tokens", "INTEGER", pa.int64()),
    ("n_files", "INTEGER", pa.int64()),
    ("tools", "TEXT", pa.string()),
    ("expected_output", "TEXT", pa.string()),
    ("diff_lines", "INTEGER", pa.int64()),
    ("repo_files", "INTEGER", pa.int64()),
    ("modules_touched", "INTEGER", pa.int64()),
    ("languages", "TEXT", pa.string()),
    ("features", "TEXT", pa.string()),
    ("profile", "TEXT NOT NULL", pa.string()),
    ("profile_scores", "TEXT NOT NULL", pa.string()),
    ("complexity", "REAL", pa.float64()),
    ("tier_scores", "TEXT", pa.string()),
    ("eligible", "TEXT", pa.string()),
    ("tier", "TEXT NOT NULL", pa.string()),
    ("tier_rank", "INTEGER NOT NULL", pa.int64()),
    ("ladder_size", "INTEGER NOT NULL", pa.int64()),
    ("greedy_tier", "TEXT", pa.string()),
    ("model", "TEXT NOT NULL", pa.string()),
    ("temperature", "REAL", pa.float64()),
    ("explored", "INTEGER NOT NULL", pa.bool_()),
    ("propensity", "REAL NOT NULL", pa.float64()),
    ("escalation_chain", "TEXT", pa.string()),
    ("reasons", "TEXT", pa.string()),
    ("latency_ms", "REAL", pa.float64()),
    ("shadow_version", "TEXT", pa.string()),
    ("shadow_tier", "TEXT", pa.string()),
]

ATTEMPTS: list[Column] = [
    ("decision_id", "TEXT NOT NULL", pa.string()),
    ("attempt", "INTEGER NOT NULL", pa.int64()),
    ("ts", "REAL NOT NULL", pa.float64()),
    ("tier", "TEXT NOT NULL", pa.string()),
    ("model", "TEXT", pa.string()),
    ("resolved", "INTEGER NOT NULL", pa.bool_()),
    ("claimed_resolved", "INTEGER NOT NULL", pa.bool_()),
    ("cost_usd", "REAL NOT NULL", pa.float64()),
    ("input_tokens", "INTEGER", pa.int64()),
    ("output_tokens", "INTEGER", pa.int64()),
    ("latency_ms", "REAL", pa.float64()),
    ("failure", "TEXT", pa.string()),
    ("overridden_to", "TEXT", pa.string()),
    ("schema_valid", "INTEGER", pa.bool_()),
    ("next_action", "TEXT NOT NULL", pa.string()),
    ("next_tier", "TEXT", pa.string()),
    ("request_hash", "TEXT NOT NULL", pa.string()),
    ("response", "TEXT NOT NULL", pa.string()),
]

ESCALATIONS: list[Column] = [
    ("decision_id", "TEXT NOT NULL", pa.string()),
    ("from_attempt", "INTEGER NOT NULL", pa.int64()),
    ("from_tier", "TEXT NOT NULL", pa.string()),
    ("to_tier", "TEXT NOT NULL", pa.string()),
    ("cause", "TEXT NOT NULL", pa.string()),
    ("ts", "REAL NOT NULL", pa.float64()),
]

QUEUE: list[Column] = [
    ("item_id", "INTEGER PRIMARY KEY AUTOINCREMENT", pa.int64()),
    ("decision_id", "TEXT NOT NULL UNIQUE", pa.string()),
    ("ts", "REAL NOT NULL", pa.float64()),
    ("kind", "TEXT NOT NULL", pa.string()),
    ("script", "TEXT", pa.string()),
    ("profile", "TEXT NOT NULL", pa.string()),
    ("tiers_tried", "TEXT NOT NULL", pa.string()),
    ("failure_kinds", "TEXT NOT NULL", pa.string()),
    ("policy_version", "TEXT NOT NULL", pa.string()),
    ("task_id", "TEXT", pa.string()),
    ("prompt_preview", "TEXT", pa.string()),
]

QUEUE_RESOLUTIONS: list[Column] = [
    ("item_id", "INTEGER NOT NULL PRIMARY KEY", pa.int64()),
    ("ts", "REAL NOT NULL", pa.float64()),
    ("resolved_by", "TEXT NOT NULL", pa.string()),
    ("note", "TEXT", pa.string()),
]

TABLES: dict[str, list[Column]] = {
    "decisions": DECISIONS,
    "attempts": ATTEMPTS,
    "escalations": ESCALATIONS,
    "queue": QUEUE,
    "queue_resolutions": QUEUE_RESOLUTIONS,
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, _, typ in TABLES[table]])


def column_names(table: str) -> list[str]:
    return [name for name, _, _ in TABLES[table]]
