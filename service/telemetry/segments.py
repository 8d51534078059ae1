"""Immutable Parquet segments, exported from the journal by rowid watermark.

A segment is named ``<lo>-<hi>.parquet`` after the rowid range it holds; it is written to a
temporary name, fsynced, then renamed, so a reader sees all of it or none of it. The watermark
is derived from the file names, so there is no second piece of state to keep consistent.
Every exporter holds an exclusive ``flock`` while it works, so processes never export twice.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tierwise.service.locks import file_lock
from tierwise.service.telemetry.schema import TABLES, arrow_schema, column_names

_NAME = re.compile(r"^(\d{12})-(\d{12})\.parquet$")
BATCH_ROWS = 250_000


def segment_name(lo: int, hi: int) -> str:
    return f"{lo:012d}-{hi:012d}.parquet"


def segment_ranges(table_dir: Path) -> list[tuple[int, int, Path]]:
    out = []
    for p in table_dir.glob("*.parquet"):
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def _write_atomic(table: pa.Table, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def ensure_layout(root: Path) -> None:
    """Each table gets an empty genesis segment so DuckDB views have a schema from day one."""
    with file_lock(root / ".lock"):
        for table in TABLES:
            d = root / table
            d.mkdir(parents=True, exist_ok=True)
            genesis = d / f"{0:012d}-{0:012d}.parquet"
            if not genesis.exists():
                _write_atomic(arrow_schema(table).empty_table(), genesis)
        _repair(root)


def _repair(root: Path) -> None:
    """Drop leftovers of an interrupted write: temp files, and any segment whose range a
    larger segment already covers (so a future merge step can never double-count)."""
    for table in TABLES:
        d = root / table
        for tmp in d.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        ranges = segment_ranges(d)
        for lo, hi, path in ranges:
            if hi == 0:
                continue
            if any((a, b) != (lo, hi) and a <= lo and hi <= b for a, b, _ in ranges):
                path.unlink(missing_ok=True)


def write_segment(table: str, columns: list[list[object]], dest: Path) -> None:
    """One segment of ``table`` from its columns' values (in ``TABLES`` order), written atomically."""
    schema = arrow_schema(table)
    arrays = [_column(values, schema.field(i).type) for i, values in enumerate(columns)]
    _write_atomic(pa.Table.from_arrays(arrays, schema=schema), dest)


class SegmentExporter:
    """Copies committed journal rows into segments; safe to call from any process, any time."""

    def __init__(self, conn: sqlite3.Connection, root: Path) -> None:
        self.conn = conn
        self.root = root

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def ensure_layout(self) -> None:
        ensure_layout(self.root)

    def watermark(self, table: str) -> int:
        ranges = segment_ranges(self.table_dir(table))
        return max((hi for _, hi, _ in ranges), default=0)

    def watermarks(self) -> dict[str, int]:
        return {table: self.watermark(table) for table in TABLES}

    def export_once(self) -> dict[str, int]:
        """Export everything committed so far; returns rows written per table."""
        with self.locked():
            return self.export_locked()

    def locked(self) -> AbstractContextManager[None]:
        """The exporters' lock: while held, no process moves a watermark."""
        return file_lock(self.root / ".lock")

    def export_locked(self) -> dict[str, int]:
        return {table: self._export_table(table) for table in TABLES}

    def _export_table(self, table: str) -> int:
        cols = column_names(table)
        wm = self.watermark(table)
        total = 0
        while True:
            cur = self.conn.execute(
                f"SELECT rowid, {', '.join(cols)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (wm, BATCH_ROWS))
            rows = cur.fetchall()
            if not rows:
                return total
            lo, hi = rows[0][0], rows[-1][0]
            write_segment(table, [[r[i + 1] for r in rows] for i in range(len(cols))],
                          self.table_dir(table) / segment_name(lo, hi))
            total += len(rows)
            wm = hi


def _column(values: list[object], typ: pa.DataType) -> pa.Array:
    """SQLite stores booleans as 0/1; everything else maps onto the Arrow type as is."""
    if pa.types.is_boolean(typ):
        return pa.array([None if v is None else bool(v) for v in values], type=typ)
    return pa.array(values, type=typ)
