"""The tuner's dataset: one row per logged decision that has an outcome, as numpy arrays.

Each row carries what the service's decision code needs to replay it (the success features, the
tools and token counts behind eligibility, harness and profile), what the logging policy did
(first tier, greedy tier, explored, propensity, escalation chain, version), and what happened
on each attempt. Labels are per (decision, tier tried): an attempt is a success only if it
resolved, was not overridden (an override is a failure of the routed tier) and was not
followed by an escalation (an escalation reveals that the lower tier failed).

Everything is read with one DuckDB query over the telemetry views; JSON columns are unpacked in
SQL, and the few distinct tool lists / chains are parsed once each, so 1M rows load in seconds.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.classify.success import SUCCESS_FEATURES
from tierwise.service.policy.decide import tools_matrix

MAX_ATTEMPTS = 3
FEATURE_KEYS: tuple[str, ...] = SUCCESS_FEATURES[len(PROFILES) + 1:]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
ObjArray = NDArray[np.object_]


def _attempt_cols() -> str:
    parts = []
    for k in range(MAX_ATTEMPTS):
        parts += [
            f"any_value(tier) FILTER (WHERE attempt = {k}) AS t{k}",
            f"any_value(CAST(resolved AS INTEGER)) FILTER (WHERE attempt = {k}) AS r{k}",
            f"any_value(CAST(overridden_to IS NOT NULL AS INTEGER)) FILTER (WHERE attempt = {k}) AS o{k}",
            f"any_value(cost_usd) FILTER (WHERE attempt = {k}) AS c{k}",
        ]
    return ",\n".join(parts)


def dataset_sql() -> str:
    profile_cols = ", ".join(
        f"CAST(json_extract(d.profile_scores, '$.{p}') AS DOUBLE) AS p_{p}" for p in PROFILES)
    feature_cols = ", ".join(f"CAST(json_extract(d.features, '$.{f}') AS DOUBLE) AS {f}" for f in FEATURE_KEYS)
    return f"""
WITH a AS (
    SELECT decision_id, count(*) AS n_attempts, bool_or(resolved) AS resolved, sum(cost_usd) AS cost_usd,
           {_attempt_cols()}
    FROM attempts GROUP BY decision_id
)
SELECT d.decision_id, coalesce(d.task_id, d.prompt_preview, d.decision_id) AS task_key,
       d.ts, d.harness, d.profile, d.policy_version, d.tier, d.greedy_tier,
       CAST(d.explored AS BOOLEAN) AS explored, d.propensity, d.prompt_tokens, d.n_files, d.tools,
       d.escalation_chain, d.shadow_version, d.shadow_tier, d.complexity, {profile_cols}, {feature_cols},
       a.n_attempts, a.resolved, a.cost_usd,
       {", ".join(f"a.t{k}, a.r{k}, a.o{k}, a.c{k}" for k in range(MAX_ATTEMPTS))}
FROM decisions d JOIN a USING (decision_id)
ORDER BY d.ts, d.decision_id
"""


@dataclass(frozen=True)
class LoggedData:
    """Column arrays, one entry per decision with at least one reported attempt."""

    decision_id: ObjArray
    task_key: ObjArray  # task_id, else the prompt's first characters: what makes two decisions one task
    ts: FloatArray
    harness: ObjArray
    profile: ObjArray
    harness_idx: IntArray  # index into HARNESSES
    profile_idx: IntArray  # index into PROFILES
    policy_version: ObjArray
    x: FloatArray  # [n, len(SUCCESS_FEATURES)]
    needs: BoolArray  # [n, len(TOOL_COLUMNS)]
    prompt_tokens: IntArray
    n_files: IntArray
    tier: ObjArray  # first tier, as logged
    greedy_tier: ObjArray
    explored: BoolArray
    propensity: FloatArray
    chain: ObjArray  # [n, 2] logged escalation chain, "" padded
    shadow_version: ObjArray  # None where not shadowed
    shadow_tier: ObjArray
    n_attempts: IntArray
    att_tier: ObjArray  # [n, MAX_ATTEMPTS], "" where no attempt
    att_resolved: BoolArray  # [n, MAX_ATTEMPTS]
    att_overridden: BoolArray  # [n, MAX_ATTEMPTS]
    resolved: BoolArray  # the episode resolved (any attempt)
    cost: FloatArray  # the episode's total cost

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def subset(self, mask: BoolArray | IntArray) -> LoggedData:
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @property
    def attempt_labels(self) -> BoolArray:
        """[n, MAX_ATTEMPTS] success of each attempt (False where there was none).

        Resolved, not overridden, and not followed by another attempt: an escalation reveals
        that the lower tier failed, and an override is a failure of the routed tier."""
        k = np.arange(MAX_ATTEMPTS)[None, :]
        followed = (k + 1) < self.n_attempts[:, None]
        out: BoolArray = self.att_resolved & ~self.att_overridden & ~followed & (k < self.n_attempts[:, None])
        return out


@dataclass(frozen=True)
class TrainingRows:
    """One row per (decision, tier tried): features, tier, label and inverse-propensity weight."""

    x: FloatArray
    tier: ObjArray
    label: BoolArray
    weight: FloatArray
    attempt: IntArray


def training_rows(data: LoggedData, max_weight: float = 100.0) -> TrainingRows:
    """Explode decisions into attempts. Every attempt of a decision inherits the weight
    1 / propensity of its first tier: the later tiers were reached by following that choice's
    deterministic chain, so that is the probability the logging policy gave the whole path."""
    labels = data.attempt_labels
    has = np.arange(MAX_ATTEMPTS)[None, :] < data.n_attempts[:, None]
    rows, att = np.nonzero(has)
    w = np.minimum(1.0 / np.maximum(data.propensity, 1e-9), max_weight)
    return TrainingRows(x=data.x[rows], tier=data.att_tier[rows, att], label=labels[rows, att],
                        weight=w[rows], attempt=att.astype(np.int64))


def _strings(col: pa.ChunkedArray) -> ObjArray:
    """A string column as an object array, via dictionary encoding (few distinct values are
    converted to Python once; nulls become None)."""
    enc = col.combine_chunks().dictionary_encode() if len(col) else pa.array([], pa.string()).dictionary_encode()
    values = np.array([*enc.dictionary.to_pylist(), None], dtype=object)
    idx = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
    out: ObjArray = values[idx]
    return out


def _numbers(col: pa.ChunkedArray, dtype: type, fill: Any) -> NDArray[Any]:
    return np.asarray(col.fill_null(fill).to_numpy(zero_copy_only=False), dtype=dtype) if len(col) \
        else np.zeros(0, dtype=dtype)


def _lists(col: pa.ChunkedArray) -> tuple[IntArray, list[list[str]]]:
    """JSON lists as (code per row, parsed list per code): each distinct text is parsed once."""
    enc = col.fill_null("[]").combine_chunks().dictionary_encode() if len(col) \
        else pa.array([], pa.string()).dictionary_encode()
    parsed = [list(json.loads(v or "[]")) for v in enc.dictionary.to_pylist()]
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), parsed


def table_to_data(tbl: pa.Table) -> LoggedData:
    n = tbl.num_rows
    c = tbl.column
    x = np.column_stack([_numbers(c(f"p_{p}"), np.float64, 0.0) for p in PROFILES]
                        + [_numbers(c("complexity"), np.float64, 0.0)]
                        + [_numbers(c(f), np.float64, 0.0) for f in FEATURE_KEYS])
    tool_codes, tool_lists = _lists(c("tools"))
    needs = tools_matrix(tool_lists)[tool_codes]
    chain_codes, chains = _lists(c("escalation_chain"))
    chain_table = np.array([[*ch[:2], *([""] * (2 - len(ch[:2])))] for ch in chains] or [["", ""]], dtype=object)
    chain = chain_table[chain_codes]
    harness, profile = _strings(c("harness")), _strings(c("profile"))
    h_index = {h: i for i, h in enumerate(HARNESSES)}
    p_index = {p: i for i, p in enumerate(PROFILES)}
    tier = _strings(c("tier"))
    greedy = _strings(c("greedy_tier"))
    greedy = np.where(pd.isna(greedy), tier, greedy) if n else greedy
    att_tier = np.column_stack([_strings(c(f"t{k}")) for k in range(MAX_ATTEMPTS)]) if n \
        else np.zeros((0, MAX_ATTEMPTS), dtype=object)
    att_tier = np.where(pd.isna(att_tier), "", att_tier).astype(object)
    att_res = np.column_stack([_numbers(c(f"r{k}"), np.int64, 0) == 1 for k in range(MAX_ATTEMPTS)])
    att_ovr = np.column_stack([_numbers(c(f"o{k}"), np.int64, 0) == 1 for k in range(MAX_ATTEMPTS)])
    return LoggedData(
        decision_id=_numbers(c("decision_id"), object, ""),
        task_key=_numbers(c("task_key"), object, ""),
        ts=_numbers(c("ts"), np.float64, 0.0),
        harness=harness, profile=profile,
        harness_idx=pd.Series(harness, dtype=object).map(h_index).fillna(-1).to_numpy(np.int64),
        profile_idx=pd.Series(profile, dtype=object).map(p_index).fillna(-1).to_numpy(np.int64),
        policy_version=_strings(c("policy_version")).astype(str).astype(object),
        x=x.reshape(n, len(SUCCESS_FEATURES)), needs=needs,
        prompt_tokens=_numbers(c("prompt_tokens"), np.int64, 0),
        n_files=_numbers(c("n_files"), np.int64, 0),
        tier=tier, greedy_tier=greedy,
        explored=_numbers(c("explored"), bool, False),
        propensity=_numbers(c("propensity"), np.float64, 1.0),
        chain=chain,
        shadow_version=_strings(c("shadow_version")),
        shadow_tier=_strings(c("shadow_tier")),
        n_attempts=_numbers(c("n_attempts"), np.int64, 0),
        att_tier=att_tier, att_resolved=att_res.reshape(n, MAX_ATTEMPTS),
        att_overridden=att_ovr.reshape(n, MAX_ATTEMPTS),
        resolved=_numbers(c("resolved"), bool, False),
        cost=_numbers(c("cost_usd"), np.float64, 0.0),
    )


def load_logged(home: Path, *, journal_url: str | None = None, segments: Path | None = None
                ) -> tuple[LoggedData, int]:
    """(decisions with outcomes, count of all logged decisions) from the telemetry under ``home``
    (or, with ``journal_url``, from the shared PostgreSQL journal and ``segments``)."""
    from tierwise.service.telemetry.store import open_warehouse

    try:
        wh = open_warehouse(home, journal_url=journal_url, segments=segments)
    except FileNotFoundError:
        return empty_data(), 0
    try:
        total = int(wh.df("SELECT count(*) AS n FROM decisions")["n"].iloc[0])
        tbl = wh.con.sql(dataset_sql()).to_arrow_table()
    finally:
        wh.close()
    return table_to_data(tbl), total


def empty_data() -> LoggedData:
    z = np.zeros(0)
    return LoggedData(
        decision_id=z.astype(object), task_key=z.astype(object),
        ts=z, harness=z.astype(object), profile=z.astype(object),
        harness_idx=z.astype(np.int64), profile_idx=z.astype(np.int64), policy_version=z.astype(object),
        x=np.zeros((0, len(SUCCESS_FEATURES))), needs=tools_matrix([]), prompt_tokens=z.astype(np.int64),
        n_files=z.astype(np.int64), tier=z.astype(object), greedy_tier=z.astype(object), explored=z.astype(bool),
        propensity=z, chain=np.zeros((0, 2), dtype=object), shadow_version=z.astype(object),
        shadow_tier=z.astype(object), n_attempts=z.astype(np.int64),
        att_tier=np.zeros((0, MAX_ATTEMPTS), dtype=object), att_resolved=np.zeros((0, MAX_ATTEMPTS), dtype=bool),
        att_overridden=np.zeros((0, MAX_ATTEMPTS), dtype=bool), resolved=z.astype(bool), cost=z)


@dataclass(frozen=True)
class Split:
    train: BoolArray
    holdout: BoolArray
    kind: str  # "time" or "hash"
    cutoff: float | None


def split_holdout(data: LoggedData, *, holdout_days: float, now: float, min_fraction: float = 0.2,
                  hash_fraction: float = 0.3) -> Split:
    """The last ``holdout_days`` are held out; if that window holds fewer than ``min_fraction`` of
    the rows (or leaves fewer than that to train on, e.g. simulated traffic that all happened
    just now), a hash of the task holds out about ``hash_fraction`` instead.

    Hashing the task, not the decision id (which embeds the clock), gives the same split for the
    same traffic on every run, so a retune is reproducible; and a task logged several times
    lands on one side only, so the holdout never grades a task the tuner trained on. When a few
    tasks dominate the log and the task split comes out lopsided, decision ids decide."""
    n = len(data)
    cutoff = now - holdout_days * 86400.0
    hold = data.ts >= cutoff
    frac = float(hold.mean()) if n else 0.0
    if min_fraction <= frac <= 1.0 - min_fraction:
        return Split(~hold, hold, "time", cutoff)
    for keys in (data.task_key, data.decision_id):
        buckets = np.fromiter((zlib.crc32(str(k).encode()) % 1000 for k in keys), dtype=np.int64, count=n)
        hold = buckets < round(hash_fraction * 1000)
        if n and abs(float(hold.mean()) - hash_fraction) <= hash_fraction / 3:
            break
    return Split(~hold, hold, "hash", None)


def drift_frame(data: LoggedData) -> pd.DataFrame:
    """What tierwise.tuner.drift compares: the success features, harness, profile, first tier and its label."""
    out: dict[str, Any] = {name: data.x[:, i] for i, name in enumerate(SUCCESS_FEATURES)}
    out.update(harness=data.harness, profile=data.profile, tier=data.tier,
               resolved=data.attempt_labels[:, 0].astype(np.float64) if len(data) else np.zeros(0))
    return pd.DataFrame(out)
