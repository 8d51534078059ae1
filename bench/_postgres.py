"""A throwaway PostgreSQL cluster on a free loopback port, for the tests and ``make bench-scale``.

Why a real cluster and not a mock: the guarantees under test (idempotency by primary key,
row locks, advisory locks, commit visibility) are the database's own. ``initdb`` and
``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user on a data
directory it owns. The cluster trusts loopback connections and is deleted on ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tierwise.bench._server import HOST, free_port

PG_BIN = Path(os.environ.get("TIERWISE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    """``start()`` runs initdb and pg_ctl; ``url`` is a libpq URL for database ``tierwise``."""

    def __init__(self, max_connections: int = 200) -> None:
        self.port = free_port()
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="tierwise-pg-"))
        self.data = self.root / "data"
        self.started = False

    @property
    def url(self) -> str:
        return self.database_url("tierwise")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{name}"

    def _run(self, cmd: list[str], timeout: float = 120.0) -> None:
        out = subprocess.run(_as_owner(cmd), capture_output=True, timeout=timeout, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {out.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> Cluster:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync"])
        # In the config file (not ``-o``), so a later ``pg_ctl start`` comes back on the same port.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '{HOST}'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                       f"max_connections = {self.max_connections}\n")
        self.started = True
        self.pg_ctl("start")
        self.create_database("tierwise")
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.database_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def pg_ctl(self, action: str) -> None:
        """``start``, ``stop`` or ``restart`` (fast shutdown), waiting until it is done."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-m", "fast",
                   "-w", "-t", "60", action])

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.pg_ctl("stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.root / "pg.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
