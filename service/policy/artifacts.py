"""Policy artefacts located relative to the artifact root, never by the absolute path MLflow stored.

MLflow records absolute locations: each experiment's ``artifact_location``, each run's
``artifact_uri`` and each model version's ``source``. A home that is moved or restored elsewhere
would then read its policies from a path that is gone, and a copied home would write new runs
into the original's artefacts. So a version records its folder relative to the root in a tag
(``ARTIFACT_TAG``), resolved against the current settings; and for the home's own SQLite
registry, the locations of tierwise's experiments are rebased onto the current root on open.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

ARTIFACT_TAG = "tierwise.artifact_path"
# tierwise's own experiments (bootstrap, retune); a location is rebased only for these.
EXPERIMENT_PREFIX = "tierwise-"


def local_path(uri: str) -> Path | None:
    """The filesystem path of a ``file:`` URI or a plain path; None for a remote store."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def relative_to_root(uri: str, root: Path) -> str | None:
    """``uri`` as a path relative to ``root``, or None when it is not a local path under it."""
    path = local_path(uri)
    if path is None:
        return None
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def rebase_local_store(db: Path, root: Path) -> int:
    """Point tierwise's experiments (and their runs' and versions' locations) at ``root``.

    Each such experiment was created at ``<root>/<name>``; one found elsewhere comes from a home
    that was moved or copied. Returns how many experiments were rebased. MLflow has no API to
    move an experiment, so this updates its SQLite tables, in one transaction."""
    if not db.exists() or db.stat().st_size == 0:
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        with con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"experiments", "runs", "model_versions"} <= tables:
                return 0
            rows = con.execute("SELECT experiment_id, name, artifact_location FROM experiments "
                               "WHERE substr(name, 1, ?) = ?", (len(EXPERIMENT_PREFIX), EXPERIMENT_PREFIX)).fetchall()
            version_columns = {r[1] for r in con.execute("PRAGMA table_info(model_versions)")}
            moved = 0
            for exp_id, name, old in rows:
                new = (root / name).as_uri()
                if not old or old == new or local_path(old) is None:
                    continue
                con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (new, exp_id))
                _replace_prefix(con, "runs", "artifact_uri", old, new, "experiment_id = ?", (exp_id,))
                for column in sorted({"source", "storage_location"} & version_columns):
                    _replace_prefix(con, "model_versions", column, old, new, "1 = 1", ())
                log.warning("policy registry: experiment %s moved from %s to %s (the home was moved or copied)",
                            name, old, new)
                moved += 1
            return moved
    finally:
        con.close()


def _replace_prefix(con: sqlite3.Connection, table: str, column: str, old: str, new: str, where: str,
                    args: tuple[object, ...]) -> None:
    prefix = old.rstrip("/") + "/"
    con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # table and column names are constants
                f"WHERE {where} AND substr({column}, 1, ?) = ?",
                (new.rstrip("/") + "/", len(prefix) + 1, *args, len(prefix), prefix))
