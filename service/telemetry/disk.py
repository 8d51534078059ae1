"""How much disk telemetry takes, for the ``/metrics`` gauges: an operator sees retention and
compaction work (or not) before the disk fills. Measured by ``stat`` only, so a scrape is cheap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierwise.service.telemetry.schema import TABLES
from tierwise.service.telemetry.segments import segment_ranges


@dataclass(frozen=True)
class DiskUsage:
    journal_bytes: int  # journal.sqlite, its WAL and its shared-memory index
    segments_bytes: int
    segment_files: int


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # no WAL right after a TRUNCATE checkpoint; a segment merged away
        return 0


def measure(journal: Path, segments: Path) -> DiskUsage:
    files = [p for table in TABLES for _, _, p in segment_ranges(segments / table)]
    return DiskUsage(
        journal_bytes=sum(_size(journal.with_name(journal.name + suffix)) for suffix in ("", "-wal", "-shm")),
        segments_bytes=sum(_size(p) for p in files),
        segment_files=len(files),
    )
