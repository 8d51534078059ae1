"""Telemetry faults degrade visibly and lose nothing.

Each fault is real: the journal's own SQLite connections refuse writes (``PRAGMA query_only``), a
subprocess runs under a file-size limit (``RLIMIT_FSIZE``: the kernel refuses to grow any file),
the journal file is deleted under a running store, and an unprivileged user reads a home it
cannot write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MECHANICAL

from tierwise.service.telemetry.store import TelemetryStore
from tierwise.service.telemetry.warehouse import in_memory

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"


def _metric(client: Any, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _outcome(decision: dict[str, Any]) -> dict[str, Any]:
    return {"decision_id": decision["decision_id"], "attempt": 0, "tier": decision["tier"], "resolved": True,
            "cost_usd": 0.01}


def _read_only(store: Any, on: bool) -> None:
    """Make both of the store's journal connections refuse (or take again) every write."""
    for journal in (store.journal, store.route_journal):
        journal.conn.execute(f"PRAGMA query_only={'ON' if on else 'OFF'}")


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_unwritable_journal_routes_refuses_outcomes_and_reports_degraded(make_client: Callable[..., Any]) -> None:
    client = make_client()
    store = client.app.state.parts.store
    logged = client.post("/v1/route", json={"prompt": MECHANICAL}).json()
    assert client.get("/healthz").json() == {"status": "ok", "causes": [],
                                             "policy_version": client.get("/healthz").json()["policy_version"],
                                             "dependencies": {"journal": "ok", "segments": "ok", "registry": "off"}}
    store.export_now()
    assert _metric(client, "tierwise_telemetry_segment_files") >= 6  # 5 genesis files + the decision's
    assert _metric(client, "tierwise_telemetry_journal_bytes") > 0
    assert _metric(client, "tierwise_telemetry_segments_bytes") > 0

    _read_only(store, True)
    try:
        routed = client.post("/v1/route", json={"prompt": MECHANICAL})
        assert routed.status_code == 200, routed.text  # the agent still gets its decision
        assert routed.json()["tier"]
        assert _metric(client, "tierwise_decisions_dropped_total") == 1.0

        refused = client.post("/v1/outcomes", json=_outcome(logged))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "telemetry_unavailable"
        assert "Traceback" not in refused.text
        assert store.journal.attempts(logged["decision_id"]) == []  # nothing acknowledged, nothing half-written

        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["causes"] == ["telemetry: journal write failed: attempt to write a readonly database"]
    finally:
        _read_only(store, False)

    # The background thread's probe write clears the fault with no traffic at all.
    _wait_for(lambda: client.get("/healthz").json()["status"] == "ok", "health to recover")
    assert client.get("/healthz").json()["causes"] == []
    retried = client.post("/v1/outcomes", json=_outcome(logged))  # the client's retry lands
    assert retried.status_code == 200, retried.text
    assert [a["attempt"] for a in store.journal.attempts(logged["decision_id"])] == [0]


def test_server_without_telemetry_answers_503(make_client: Callable[..., Any]) -> None:
    import dataclasses

    client = make_client()
    parts = client.app.state.parts
    client.app.state.parts = dataclasses.replace(parts, store=None, recorder=None)
    try:
        for response in (client.post("/v1/outcomes", json={"decision_id": "x", "attempt": 0, "tier": "small",
                                                            "resolved": True, "cost_usd": 0.0}),
                         client.get("/v1/queue")):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "telemetry_unavailable"
            assert "retry-after" in response.headers
    finally:
        client.app.state.parts = parts


_FSIZE_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    from fastapi.testclient import TestClient
    from tierwise.service.api.app import create_app
    from tierwise.service.settings import load_settings

    settings = load_settings(home=sys.argv[1], embedder="hashing", classifier_file=sys.argv[2],
                             use_registry=False, seed=1, export_interval_s=0.1)
    out = {}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        store = client.app.state.parts.store
        first = client.post("/v1/route", json={"prompt": "rename foo to bar in utils.py"}).json()
        store.exporter.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL is empty: any write grows it
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # the kernel now refuses to grow any file
        try:
            routed = client.post("/v1/route", json={"prompt": "rename foo to bar in utils.py"})
            outcome = client.post("/v1/outcomes", json={"decision_id": first["decision_id"], "attempt": 0,
                                                        "tier": first["tier"], "resolved": True, "cost_usd": 0.01})
            out["route"] = routed.status_code
            out["outcome"] = [outcome.status_code, outcome.headers.get("retry-after"), outcome.json()["error"]["code"]]
            out["health"] = client.get("/healthz").json()
            out["dropped"] = [l for l in client.get("/metrics").text.splitlines()
                              if l.startswith("tierwise_decisions_dropped_total ")]
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        deadline = time.monotonic() + 10
        while client.get("/healthz").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        out["health_after"] = client.get("/healthz").json()["status"]
        retried = client.post("/v1/outcomes", json={"decision_id": first["decision_id"], "attempt": 0,
                                                    "tier": first["tier"], "resolved": True, "cost_usd": 0.01})
        out["retried"] = retried.status_code
    print("RESULT " + json.dumps(out))
""")


def test_file_size_limit_is_a_visible_recoverable_fault(tmp_path: Path, hashing_classifier_file: Path) -> None:
    """A real ``EFBIG`` from the kernel, in a subprocess so the limit cannot touch pytest's own files."""
    run = subprocess.run([str(PY), "-c", _FSIZE_SCRIPT, str(tmp_path / "home"), str(hashing_classifier_file)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    result = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert result is not None, run.stderr[-3000:]
    out = json.loads(result.removeprefix("RESULT "))
    assert out["route"] == 200
    assert out["outcome"][0] == 503 and int(out["outcome"][1]) > 0 and out["outcome"][2] == "telemetry_unavailable"
    assert out["health"]["status"] == "degraded"
    assert out["health"]["causes"][0].startswith("telemetry: journal write failed: "), out["health"]
    assert out["dropped"] == ["tierwise_decisions_dropped_total 1.0"]
    assert out["health_after"] == "ok"
    assert out["retried"] == 200
    assert "answered but not logged" in run.stderr  # the drop is logged as a warning


def _decision(i: int, ts: float | None = None) -> dict[str, Any]:
    return {"decision_id": f"d{i:06d}", "ts": time.time() if ts is None else ts, "policy_version": "1",
            "harness": "ci", "profile": "mechanical", "profile_scores": "{}", "tier": "small", "tier_rank": 0,
            "ladder_size": 3, "model": "m", "explored": 0, "propensity": 1.0}


def _exported_ids(root: Path) -> list[str]:
    wh = in_memory(root / "segments")
    try:
        return sorted(r[0] for r in wh.con.execute("SELECT decision_id FROM decisions").fetchall())
    finally:
        wh.close()


def test_journal_deleted_while_serving_then_restarted_keeps_exporting(tmp_path: Path) -> None:
    root = tmp_path / "telemetry"
    store = TelemetryStore.open(root)
    store.journal.insert_many("decisions", [_decision(i) for i in range(3)])
    assert store.export_now()["decisions"] == 3
    for suffix in ("", "-wal", "-shm"):
        (root / f"journal.sqlite{suffix}").unlink(missing_ok=True)  # someone deletes it under the service
    store.journal.insert("decisions", _decision(3))  # written to the deleted file; exported on close
    store.close()

    restarted = TelemetryStore.open(root)
    try:
        restarted.journal.insert("decisions", _decision(4))
        restarted.route_journal.insert("decisions", _decision(5))
        restarted.export_now()
    finally:
        restarted.close()
    assert _exported_ids(root) == [f"d{i:06d}" for i in range(6)]


@pytest.fixture
def world_readable_home() -> Iterator[Path]:
    """A home outside pytest's private tmp folder (mode 700), so another user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="tierwise-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


_READ_SCRIPT = textwrap.dedent("""
    import contextlib, io, os, sys
    from pathlib import Path
    from tierwise.service import cli
    from tierwise.service.telemetry.store import open_warehouse
    from tierwise.service.telemetry.warehouse import in_memory

    home = Path(sys.argv[1])
    warm = in_memory(home / "telemetry" / "segments")  # loads every lazy import while still allowed to
    warm.kpis(by="version").to_string()
    warm.close()
    cli._parser()  # imports the tuner and bench subcommands: the checkout may be private to root
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)  # nobody, for real: the kernel now refuses every write into the home
    try:
        (home / "telemetry" / "probe").write_text("x")
        print("WROTE")
    except PermissionError:
        print("READ-ONLY")
    wh = open_warehouse(home)
    print("DECISIONS", wh.con.execute("SELECT count(*) FROM decisions").fetchone()[0])
    wh.close()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["stats"])
    print("STATS", code, buf.getvalue().replace(chr(10), " | "))
""")


def test_read_only_analyst_reads_the_warehouse(world_readable_home: Path) -> None:
    """The reader drops to ``nobody`` (root ignores file modes, and the interpreter lives under
    root's private home, so ``runuser`` cannot start it): it can read the home but not write it."""
    if os.geteuid() != 0:
        pytest.skip("run as root to drop to an unprivileged user (as non-root, chmod alone would do)")
    store = TelemetryStore.open(world_readable_home / "telemetry")
    try:
        store.journal.insert_many("decisions", [_decision(i) for i in range(4)])
        store.export_now()
        store.journal.insert("decisions", _decision(4))  # committed, not exported yet: the reader cannot export it
    finally:
        store.journal.close()
        store.route_journal.close()
        store.exporter.conn.close()
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(world_readable_home)], check=True)
    env = {**os.environ, "HOME": "/tmp", "TIERWISE_HOME": str(world_readable_home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    read = subprocess.run([str(PY), "-c", _READ_SCRIPT, str(world_readable_home)],
                          capture_output=True, text=True, timeout=180, env=env, cwd="/tmp")
    assert read.returncode == 0, read.stderr[-3000:]
    lines = read.stdout.strip().splitlines()
    assert lines[0] == "READ-ONLY", "the reader could write the home: the test would prove nothing"
    assert lines[1] == "DECISIONS 4"
    assert lines[2].startswith("STATS 0 ") and "decisions" in lines[2], read.stdout
