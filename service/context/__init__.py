"""Tiered context packing (issue 18): the files and signatures a tier's model should see.

Pure of FastAPI, DuckDB and MLflow, like ``classify``: the API route and the ``tierwise pack``
CLI both hand it candidate files as text, and it never reads a path from disk itself (only
``repo.py``, used by the CLI alone, reads a local git checkout).
"""
