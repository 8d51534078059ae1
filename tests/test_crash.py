"""Crash safety, end to end: an acknowledged outcome survives ``kill -9`` of the whole server.

A real ``tierwise serve --workers 2`` takes concurrent outcome reports while another process
reads KPIs through DuckDB; the process group is SIGKILLed mid-stream; a new server starts on the
same home. Every report that got a 2xx must then be in the journal and in the DuckDB views
exactly once, with the response it was acknowledged with, and a resent report must get that same
response again (idempotency outlives the crash). The unacknowledged rest is then resent, as an
agent would, and must land exactly once too.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tierwise.bench._server import Server, fast_env, hashing_classifier
from tierwise.service.classify.train import load_corpus
from tierwise.service.telemetry.store import open_warehouse

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

N_DECISIONS = 2_100   # one attempt-0 outcome per decision: the outcome stream is this long
KILL_AFTER_ACKS = 1_000
SENDERS = 8
MIN_KPI_READS = 10
LOAD_DEADLINE_S = 45.0
HTTP_TIMEOUT_S = 15.0

# The KPI reader: its own process, as a notebook or the tuner would be. It logs one line per read.
READER = textwrap.dedent("""
    import json, sys, time, traceback
    from pathlib import Path
    from tierwise.service.telemetry.store import open_warehouse

    home, log, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    url, segments = (sys.argv[5], Path(sys.argv[6])) if len(sys.argv) > 6 else (None, None)
    deadline = time.monotonic() + float(sys.argv[4])
    with open(log, "a", buffering=1) as out:
        for _ in range(2000):
            if stop.exists() or time.monotonic() > deadline:
                break
            try:
                wh = open_warehouse(home, journal_url=url, segments=segments)
                try:
                    kpis = wh.kpis()
                    decisions = int(kpis["decisions"].sum()) if len(kpis) else 0
                finally:
                    wh.close()
                out.write(json.dumps({"ok": True, "t": time.time(), "decisions": decisions}) + "\\n")
            except Exception:
                out.write(json.dumps({"ok": False, "t": time.time(), "error": traceback.format_exc()}) + "\\n")
            time.sleep(0.02)
""")


def _reads(log: Path) -> list[dict[str, Any]]:
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            continue
    return out


def _post_all(url: str, path: str, bodies: list[dict[str, Any]], clients: int = 16) -> list[httpx.Response]:
    """POST every body with a few concurrent clients; returns the responses in order."""
    out: list[httpx.Response | None] = [None] * len(bodies)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(bodies)):
        todo.put(i)
    errors: list[str] = []

    def work() -> None:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as http:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    out[i] = http.post(path, json=bodies[i])
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert all(r is not None for r in out), f"POST {path} did not finish"
    return [r for r in out if r is not None]


def _route_body(i: int, row: dict[str, Any]) -> dict[str, Any]:
    body = {"prompt": row["prompt"], "files": row.get("files", []), "tools": row.get("tools", []),
            "harness": "ci", "task_id": f"crash-{i}"}
    if row.get("expected_output"):
        body["expected_output"] = row["expected_output"]
    return body


def _report(i: int, decision: dict[str, Any]) -> dict[str, Any]:
    resolved = i % 3 != 0
    body: dict[str, Any] = {"decision_id": decision["decision_id"], "attempt": 0, "tier": decision["tier"],
                            "resolved": resolved, "cost_usd": round(0.0005 * (i % 97), 6),
                            "input_tokens": 1_000 + i, "output_tokens": 100 + i % 500,
                            "latency_ms": float(500 + i % 1_000)}
    if not resolved:
        body["failure"] = "tests_failed" if i % 2 else "timeout"
    return body


class _Row(tuple[Any, ...]):
    """A PostgreSQL row readable by index and by column name, as ``sqlite3.Row`` is."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        return super().__getitem__(self.names.index(key) if isinstance(key, str) else key)

    def keys(self) -> tuple[str, ...]:
        return self.names


def _pg_rows(cursor: Any) -> Any:
    names = tuple(c.name for c in cursor.description or ())

    def make(values: Any) -> _Row:
        row = _Row(values)
        row.names = names
        return row

    return make


@dataclass(frozen=True)
class Journal:
    """Which journal the server under test writes: the SQLite default, or PostgreSQL."""

    url: str | None = None
    segments: Path | None = None

    def env(self) -> dict[str, str]:
        if self.url is None:
            return {}
        return {"TIERWISE_JOURNAL_URL": self.url, "TIERWISE_SEGMENTS_URL": str(self.segments)}

    def reader_args(self) -> list[str]:
        return [] if self.url is None else [self.url, str(self.segments)]

    def connect(self, home: Path) -> Any:
        """A read connection whose rows read by name and index on either engine."""
        if self.url is not None:
            return psycopg.connect(self.url, row_factory=_pg_rows)
        conn = sqlite3.connect(f"file:{home / 'telemetry' / 'journal.sqlite'}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def warehouse(self, home: Path) -> Any:
        return open_warehouse(home, journal_url=self.url, segments=self.segments)


def _check_journal(journal: Journal, home: Path, expected: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every expected (decision_id → acknowledged response) is stored exactly once, unchanged."""
    conn = journal.connect(home)
    try:
        dup = conn.execute("SELECT decision_id, attempt, count(*) n FROM attempts GROUP BY 1, 2 "
                           "HAVING count(*) > 1").fetchall()
        assert not dup, f"duplicated outcomes in the journal: {[tuple(r) for r in dup[:5]]}"
        rows = {r["decision_id"]: dict(r) for r in conn.execute("SELECT * FROM attempts WHERE attempt = 0")}
        n_attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        # Every routed decision was acknowledged (200) before the kill, so every one must be there.
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == N_DECISIONS
        assert n_attempts == len(rows), "only attempt 0 was ever reported"
        missing = [d for d in expected if d not in rows]
        assert not missing, f"{len(missing)} acknowledged outcomes lost, e.g. {missing[:3]}"
        for decision_id, response in expected.items():
            stored = json.loads(rows[decision_id]["response"])
            assert stored == _strip(response), f"stored response differs from the ack for {decision_id}"
        # One transaction per report: its escalation or queue row is there iff the attempt is.
        esc = {r[0]: r[1] for r in conn.execute("SELECT decision_id, count(*) FROM escalations GROUP BY 1")}
        q = {r[0]: r[1] for r in conn.execute("SELECT decision_id, count(*) FROM queue GROUP BY 1")}
        for decision_id, row in rows.items():
            assert esc.get(decision_id, 0) == (1 if row["next_action"] == "escalate" else 0), decision_id
            assert q.get(decision_id, 0) == (1 if row["next_action"] in ("human", "script") else 0), decision_id
        return rows
    finally:
        conn.close()


def _check_warehouse(journal: Journal, home: Path, expected_ids: set[str], total: int) -> None:
    wh = journal.warehouse(home)
    try:
        dup = wh.df("SELECT decision_id, attempt, count(*) AS n FROM attempts GROUP BY ALL HAVING count(*) > 1")
        assert dup.empty, f"duplicated outcomes in the DuckDB views:\n{dup.head()}"
        ids = set(wh.df("SELECT decision_id FROM attempts")["decision_id"])
        assert expected_ids <= ids, f"{len(expected_ids - ids)} acknowledged outcomes missing from DuckDB"
        assert len(ids) == total
        dup_dec = wh.df("SELECT decision_id FROM decisions GROUP BY 1 HAVING count(*) > 1")
        assert dup_dec.empty, "duplicated decisions in the DuckDB views"
        assert int(wh.df("SELECT count(*) AS n FROM decisions")["n"][0]) == N_DECISIONS
        kpis = wh.kpis()
        assert int(kpis["episodes"].sum()) == total
    finally:
        wh.close()


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "duplicate"}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_acknowledged_outcomes_survive_kill9(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    journal = Journal()
    if engine == "postgresql":  # the cluster starts only for this case
        journal = Journal(request.getfixturevalue("pg_url"), tmp_path / "shared" / "segments")
    clf = hashing_classifier(tmp_path / "classifier.hashing.json")
    env = {**fast_env(clf), **journal.env()}
    prompts = load_corpus(ROOT / "data" / "corpus", split="test")
    reader: subprocess.Popen[bytes] | None = None
    server = Server(home, workers=2, env=env, log_name="server-1.log")
    restarted = Server(home, workers=2, env=env, log_name="server-2.log")
    try:
        server.start()
        server.wait_workers_healthy()
        routed = _post_all(server.url, "/v1/route", [_route_body(i, prompts[i % len(prompts)])
                                                      for i in range(N_DECISIONS)])
        assert all(r.status_code == 200 for r in routed), next(r.text for r in routed if r.status_code != 200)
        decisions = [r.json() for r in routed]
        t_routed = time.monotonic()
        reports = [_report(i, d) for i, d in enumerate(decisions)]

        # A KPI reader in its own process, started before the load; wait for its first read.
        read_log, stop_file = tmp_path / "reads.jsonl", tmp_path / "reader.stop"
        reader_err = tmp_path / "reader.err"
        with reader_err.open("wb") as err:
            reader = subprocess.Popen([sys.executable, "-c", READER, str(home), str(read_log), str(stop_file),
                                       "120", *journal.reader_args()], cwd=str(ROOT),
                                      env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
                                      stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while not _reads(read_log) and time.monotonic() < deadline and reader.poll() is None:
            time.sleep(0.05)
        assert _reads(read_log), f"the KPI reader never read: {reader_err.read_text()[-2000:]}"

        # The outcome stream: SENDERS threads, each with its own connection.
        todo: queue.Queue[int] = queue.Queue()
        for i in range(len(reports)):
            todo.put(i)
        acked: dict[int, dict[str, Any]] = {}
        rejected: dict[int, str] = {}
        in_flight_lost: set[int] = set()
        lock = threading.Lock()
        stop = threading.Event()
        slow_down = threading.Event()
        load_start = time.time()

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as http:
                while not stop.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        r = http.post("/v1/outcomes", json=reports[i])
                    except httpx.HTTPError:  # the server died under this request
                        with lock:
                            in_flight_lost.add(i)
                        return
                    with lock:
                        if 200 <= r.status_code < 300:
                            acked[i] = r.json()
                        else:
                            rejected[i] = f"{r.status_code} {r.text[:200]}"
                    if slow_down.is_set():  # keep the stream alive until the reader has read enough
                        time.sleep(0.1)

        senders = [threading.Thread(target=send, daemon=True) for _ in range(SENDERS)]
        for t in senders:
            t.start()

        def reads_during_load() -> int:
            return sum(1 for r in _reads(read_log) if r["ok"] and r["t"] >= load_start)

        killed_at = None
        load_deadline = time.monotonic() + LOAD_DEADLINE_S
        while time.monotonic() < load_deadline:
            with lock:
                n_acked = len(acked)
            if n_acked >= KILL_AFTER_ACKS:
                if reads_during_load() >= MIN_KPI_READS:
                    server.kill9()  # with reports in flight
                    killed_at = time.time()
                    break
                slow_down.set()
            if not any(t.is_alive() for t in senders):
                break
            time.sleep(0.01)
        else:
            server.kill9()
            killed_at = time.time()
        stop.set()
        for t in senders:
            t.join(timeout=HTTP_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in senders), "a sender hung after the kill"
        assert killed_at is not None, "the stream ended before the kill; it must be killed mid-stream"
        assert not rejected, f"reports rejected before the crash: {list(rejected.values())[:3]}"
        assert len(acked) >= KILL_AFTER_ACKS
        assert len(acked) < len(reports), "every report was acknowledged before the kill"
        n_reads_load = sum(1 for r in _reads(read_log) if r["ok"] and load_start <= r["t"] <= killed_at)
        assert n_reads_load >= MIN_KPI_READS, f"only {n_reads_load} KPI reads during the load"

        # Restart on the same home. Nothing else writes before the checks.
        t_killed = time.monotonic()
        restarted.start()
        restarted.wait_workers_healthy()
        acked_by_id = {reports[i]["decision_id"]: resp for i, resp in acked.items()}
        _check_journal(journal, home, acked_by_id)

        # Idempotency survives the crash: resending an acknowledged report gets the same response.
        sample = sorted(acked)[:: max(1, len(acked) // 60)]
        with httpx.Client(base_url=restarted.url, timeout=HTTP_TIMEOUT_S) as http:
            for i in sample:
                r = http.post("/v1/outcomes", json=reports[i])
                assert r.status_code == 200, r.text
                again = r.json()
                assert again.get("duplicate") is True, again
                assert _strip(again) == acked[i]
            # A conflicting report on an acknowledged attempt is still refused.
            i = sample[0]
            conflict = dict(reports[i], cost_usd=reports[i]["cost_usd"] + 1.0)
            assert http.post("/v1/outcomes", json=conflict).status_code == 409

        t_checked = time.monotonic()
        # The agents resend what was never acknowledged (in flight at the kill, or never sent).
        pending = [i for i in range(len(reports)) if i not in acked]
        assert pending
        resent = _post_all(restarted.url, "/v1/outcomes", [reports[i] for i in pending])
        bad = [f"{r.status_code} {r.text[:300]}" for r in resent if r.status_code != 200]
        assert not bad, bad[:3]
        late = {i: r.json() for i, r in zip(pending, resent, strict=True)}
        # A report that was in flight may have been committed before the kill: then it is a duplicate.
        assert all(late[i].get("duplicate") is not True for i in pending if i not in in_flight_lost)

        stop_file.touch()
        reader.wait(timeout=60)
        reads = _reads(read_log)
        errors = [r["error"] for r in reads if not r["ok"]]
        assert not errors, f"KPI reads failed:\n{errors[0]}"
        assert reader.returncode == 0, reader_err.read_text()[-2000:]

        every = {reports[i]["decision_id"]: _strip(resp) for i, resp in {**acked, **late}.items()}
        assert len(every) == N_DECISIONS
        _check_journal(journal, home, every)
        _check_warehouse(journal, home, set(every), N_DECISIONS)
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait(timeout=10)
        server.stop()
        restarted.stop()
    print(f"\ncrash test ({engine}): {len(acked)} acked before the kill, {len(in_flight_lost)} lost in flight, "
          f"{n_reads_load} KPI reads during the load; routed at {t_routed - started:.1f}s, killed at "
          f"{t_killed - started:.1f}s, checked at {t_checked - started:.1f}s, "
          f"done at {time.monotonic() - started:.1f}s")
