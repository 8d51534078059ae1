"""Start and stop a real ``tierwise serve`` subprocess, for the crash test and the benchmarks.

The server runs in its own process group (``start_new_session``), so ``kill9()`` takes the
uvicorn supervisor and every worker down at once, as an OOM kill or a power cut would.
Traffic only ever goes to 127.0.0.1. Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tierwise_bin() -> str:
    """The ``tierwise`` script next to the running interpreter (the venv), else ``python -m``."""
    candidate = Path(sys.executable).with_name("tierwise")
    return str(candidate) if candidate.exists() else ""


def hashing_classifier(path: Path) -> Path:
    """Train the classifier on the hashing embedder (fast, no torch) and write it as JSON, once."""
    if path.exists():
        return path
    from tierwise.service.classify.embed import HashingEmbedder
    from tierwise.service.classify.train import load_corpus, train

    artifact = train(load_corpus(ROOT / "data" / "corpus", split="train"), HashingEmbedder())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(artifact, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return path


def fast_env(classifier_file: Path) -> dict[str, str]:
    """Environment for a quick server: hashing embedder, bootstrap policy file, no MLflow."""
    return {
        "TIERWISE_USE_REGISTRY": "false",
        "TIERWISE_EMBEDDER": "hashing",
        "TIERWISE_CLASSIFIER_FILE": str(classifier_file),
    }


class Server:
    """One ``tierwise serve`` process group on 127.0.0.1:<port> with its home directory."""

    def __init__(self, home: Path, *, port: int | None = None, workers: int = 1,
                 env: dict[str, str] | None = None, log_name: str = "server.log") -> None:
        self.home = home
        self.port = port or free_port()
        self.workers = workers
        self.extra_env = dict(env or {})
        self.log_path = home / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TIERWISE_HOME": str(self.home), "MLFLOW_DISABLE_TELEMETRY": "true",
                    "TOKENIZERS_PARALLELISM": "false", "TIERWISE_LOG_LEVEL": "warning"})
        env.update(self.extra_env)
        return env

    def _cmd(self, *args: str) -> list[str]:
        exe = tierwise_bin()
        return [exe, *args] if exe else [sys.executable, "-m", "tierwise.service.cli", *args]

    def init_registry(self, timeout_s: float = 300.0) -> None:
        """Create the MLflow registry under the home once, before several workers start.

        Works around a start-up race: each worker migrates a fresh MLflow SQLite database at the
        same time and one can fail ("Online migration expected to match one row ... in
        'alembic_version'"), which stops the whole server. ``tierwise policy list`` migrates the
        database and registers the bootstrap policy, as an operator would before the first start.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(self._cmd("policy", "list"), cwd=str(ROOT), env=self._env(), capture_output=True,
                             timeout=timeout_s, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"tierwise policy list failed: {out.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout_s: float = 120.0) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self._env()
        cmd = self._cmd("serve", "--host", HOST, "--port", str(self.port), "--workers", str(self.workers))
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        try:
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout_s: float) -> float:
        """Poll /healthz until 200; returns seconds from process start to the first healthy answer."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode} before it was healthy; "
                                       f"log tail:\n{self.log_tail()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        self.startup_s = time.monotonic() - self.started_at
                        return self.startup_s
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"server not healthy after {timeout_s:.0f}s; log tail:\n{self.log_tail()}")

    def wait_workers_healthy(self, probes: int = 40, timeout_s: float = 60.0) -> None:
        """With several workers, one healthy answer does not mean all are up: probe on fresh
        connections (the kernel spreads them across the workers) until enough succeed in a row."""
        deadline = time.monotonic() + timeout_s
        ok = 0
        while ok < probes and time.monotonic() < deadline:
            try:
                with httpx.Client(base_url=self.url, timeout=5.0) as http:
                    ok = ok + 1 if http.get("/healthz").status_code == 200 else 0
            except httpx.HTTPError:
                ok = 0
                time.sleep(0.05)
        if ok < probes:
            raise TimeoutError(f"workers not all healthy after {timeout_s:.0f}s; log tail:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The supervisor and its descendants (the uvicorn workers), from /proc."""
        if self.proc is None:
            return []
        parent: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            parent[int(stat.parent.name)] = int(fields[1])
        out, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
            out += frontier
        return out

    def rss_bytes(self) -> dict[int, int]:
        """VmRSS per process of the group (supervisor and workers)."""
        out: dict[int, int] = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) * 1024
            except OSError:
                continue
        return out

    def kill9(self) -> None:
        """SIGKILL the whole process group, then reap the supervisor."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._wait_group_gone(self.proc.pid, 30.0)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the group (uvicorn shuts down cleanly), SIGKILL if it does not go in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers, if any
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        self._wait_group_gone(self.proc.pid, 10.0)

    @staticmethod
    def _wait_group_gone(pgid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def loadavg() -> list[float]:
    """Other processes on the machine skew every figure; benchmarks record how busy it was."""
    return list(os.getloadavg())


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def write_result(res: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
