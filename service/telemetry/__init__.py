"""Telemetry: a durable journal for the online path, Parquet segments and DuckDB for analysis.

Shape (see README "Telemetry"): every service process writes to one SQLite journal in WAL mode
(many writers, readers never blocked, a committed row survives ``kill -9``). An exporter copies
committed rows, by rowid watermark, into immutable Parquet segments written then atomically
renamed. DuckDB is the query layer: views over the segments, in ``tierwise.duckdb`` for the
``duckdb`` CLI and in memory for the tuner and notebooks, so no reader ever takes a file lock
the service needs.
"""
