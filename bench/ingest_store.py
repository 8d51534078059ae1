"""Ingest benchmark (a): ``attempts`` rows/s straight into the journal, then the Parquet export."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.segments import SegmentExporter
from tierwise.service.telemetry.store import TelemetryPaths

STORE_TARGET_ROWS_S = 50_000


def attempt_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Realistic attempts rows: one attempt-0 outcome per decision, with a stored response."""
    rows = []
    for i in range(start, start + n):
        resolved = i % 3 != 0
        decision_id = uuid.uuid4().hex  # replaced per run by new_id(kind)
        response: dict[str, Any] = {"decision_id": decision_id, "attempt": 0, "tier": "small", "resolved": resolved,
                    "failure": None if resolved else "tests_failed", "schema_valid": None, "schema_errors": [],
                    "overridden_to": None, "next": {"action": "done" if resolved else "human"}}
        rows.append({
            "decision_id": decision_id, "attempt": 0, "ts": time.time(), "tier": "small",
            "model": "claude-haiku-4-5", "resolved": int(resolved), "claimed_resolved": int(resolved),
            "cost_usd": 0.0005 * (i % 97), "input_tokens": 1_000 + i % 5_000, "output_tokens": 100 + i % 500,
            "latency_ms": float(500 + i % 1_000), "failure": None if resolved else "tests_failed",
            "overridden_to": None, "schema_valid": None, "next_action": response["next"]["action"],
            "next_tier": None, "request_hash": uuid.uuid4().hex * 2, "response": json.dumps(response),
        })
    return rows


def new_id(kind: str) -> str:
    """A decision id: ``time-ordered`` is what the service issues (nanosecond clock, then 64 random
    bits), which keeps B-tree inserts at the right edge; ``uuid4`` is random, for comparison."""
    if kind == "uuid4":
        return uuid.uuid4().hex
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def bench_store(work: Path, rows_total: int, batch_sizes: list[int], key_kinds: list[str]) -> dict[str, Any]:
    """(a): insert_many into a fresh journal per (id kind, batch size), then export it all to Parquet."""
    out: dict[str, Any] = {"rows": rows_total, "runs": []}
    template = attempt_rows(10_000)
    for kind in key_kinds:
        for batch in batch_sizes:
            paths = TelemetryPaths(work / f"store-{kind}-{batch}" / "telemetry")
            journal = Journal(connect(paths.journal))
            journal.migrate()
            exporter = SegmentExporter(connect(paths.journal), paths.segments)
            exporter.ensure_layout()
            done, insert_s = 0, 0.0
            with tqdm(total=rows_total, desc=f"store insert_many {kind} batch={batch}", unit="row", leave=False,
                      mininterval=1.0) as bar:
                while done < rows_total:
                    n = min(batch, rows_total - done)
                    # Built outside the clock: we measure the store, not dict construction.
                    rows = [dict(template[(done + k) % len(template)], decision_id=new_id(kind)) for k in range(n)]
                    t0 = time.perf_counter()
                    journal.insert_many("attempts", rows)
                    insert_s += time.perf_counter() - t0
                    done += n
                    bar.update(n)
            t0 = time.perf_counter()
            exported = exporter.export_once()["attempts"]
            export_s = time.perf_counter() - t0
            assert exported == rows_total, f"exported {exported} of {rows_total}"
            out["runs"].append({"ids": kind, "batch": batch, "insert_s": insert_s,
                                "insert_rows_s": rows_total / insert_s, "export_s": export_s,
                                "export_rows_s": rows_total / export_s})
            journal.close()
            exporter.conn.close()
    # Judged on random ids, the slower case: the service's time-ordered ids only make it faster.
    judged = [r for r in out["runs"] if r["ids"] == "uuid4"] or out["runs"]
    out["best_insert_rows_s"] = max(r["insert_rows_s"] for r in judged)
    out["export_rows_s"] = sum(r["export_rows_s"] for r in out["runs"]) / len(out["runs"])
    return out
