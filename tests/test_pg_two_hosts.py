"""Two router hosts, one PostgreSQL journal: real ``tierwise serve`` processes, each with its own
``TIERWISE_HOME``, sharing ``TIERWISE_JOURNAL_URL`` and ``TIERWISE_SEGMENTS_URL``.

A task routed on A reports its outcome to B; the same report sent to both is stored once and a
conflicting one gets 409; ``kill -9`` of A in the middle of a load loses no acknowledged outcome;
both hosts export to the shared segments and every row lands there exactly once.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tierwise.bench._server import Server, fast_env
from tierwise.service.telemetry.store import open_warehouse

pytestmark = pytest.mark.slow

N_LOAD = 600
KILL_AFTER_ACKS = 200


@pytest.fixture
def hosts(tmp_path: Path, pg_url: str, hashing_classifier_file: Path) -> Iterator[tuple[Server, Server, Path]]:
    clf = hashing_classifier_file
    segments = tmp_path / "shared" / "segments"
    env = {**fast_env(clf), "TIERWISE_JOURNAL_URL": pg_url, "TIERWISE_SEGMENTS_URL": str(segments),
           "TIERWISE_EXPORT_INTERVAL_S": "0.2"}
    a = Server(tmp_path / "home-a", env=env, log_name="a.log")
    b = Server(tmp_path / "home-b", env=env, log_name="b.log")
    try:
        a.start()
        b.start()
        yield a, b, segments
    finally:
        a.stop()
        b.stop()


def _route(http: httpx.Client, i: int) -> dict[str, Any]:
    r = http.post("/v1/route", json={"prompt": f"rename the helper get_usr_{i} to get_user_{i} in utils.py",
                                     "harness": "ci", "task_id": f"two-hosts-{i}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _report(d: dict[str, Any], i: int) -> dict[str, Any]:
    return {"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"], "resolved": i % 3 != 0,
            "cost_usd": round(0.001 * (i % 50), 6), **({} if i % 3 else {"failure": "timeout"})}


def test_route_on_a_report_on_b_duplicate_and_conflict(hosts: tuple[Server, Server, Path], pg_url: str) -> None:
    a, b, _ = hosts
    with httpx.Client(base_url=a.url, timeout=30) as ha, httpx.Client(base_url=b.url, timeout=30) as hb:
        d = _route(ha, 0)
        report = _report(d, 1)
        on_b = hb.post("/v1/outcomes", json=report)
        assert on_b.status_code == 200, on_b.text
        on_a = ha.post("/v1/outcomes", json=report)  # the agent's retry went to the other host
        assert on_a.status_code == 200 and on_a.json()["duplicate"] is True
        assert {k: v for k, v in on_a.json().items() if k != "duplicate"} == on_b.json()
        clash = ha.post("/v1/outcomes", json=dict(report, cost_usd=9.0))
        assert clash.status_code == 409, clash.text
        assert clash.json()["error"]["field"] == "attempt"
        unknown = hb.post("/v1/outcomes", json=dict(report, decision_id="f" * 32))
        assert unknown.status_code == 404
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (1,)


def test_kill9_of_a_mid_load_loses_no_acknowledged_outcome(hosts: tuple[Server, Server, Path], pg_url: str,
                                                            tmp_path: Path) -> None:
    a, b, segments = hosts
    with httpx.Client(base_url=a.url, timeout=30) as ha, httpx.Client(base_url=b.url, timeout=30) as hb:
        decisions = [_route(ha if i % 2 else hb, i) for i in range(N_LOAD)]
    reports = [_report(d, i) for i, d in enumerate(decisions)]
    todo: queue.Queue[int] = queue.Queue()
    for i in range(N_LOAD):
        todo.put(i)
    acked: dict[int, dict[str, Any]] = {}
    rejected: list[str] = []
    lock = threading.Lock()

    def send(url: str) -> None:
        with httpx.Client(base_url=url, timeout=15) as http:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = http.post("/v1/outcomes", json=reports[i])
                except httpx.HTTPError:  # host A died under this request: the agent resends later
                    return
                with lock:
                    if r.status_code == 200:
                        acked[i] = r.json()
                    else:
                        rejected.append(f"{r.status_code} {r.text[:200]}")

    senders = [threading.Thread(target=send, args=(a.url,), daemon=True) for _ in range(4)]
    senders += [threading.Thread(target=send, args=(b.url,), daemon=True) for _ in range(2)]
    for t in senders:
        t.start()
    deadline = time.monotonic() + 120
    while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
        time.sleep(0.01)
    a.kill9()
    for t in senders:
        t.join(60)
    assert not rejected, rejected[:3]
    assert KILL_AFTER_ACKS <= len(acked) < N_LOAD, len(acked)

    with psycopg.connect(pg_url) as conn:
        stored = {r[0]: r[1] for r in conn.execute("SELECT decision_id, response FROM attempts")}
    lost = [i for i in acked if reports[i]["decision_id"] not in stored]
    assert not lost, f"{len(lost)} acknowledged outcomes lost"
    for i, resp in acked.items():
        assert json.loads(stored[reports[i]["decision_id"]]) == {k: v for k, v in resp.items() if k != "duplicate"}

    # The agents resend everything unacknowledged to B; each lands once (or is a duplicate).
    with httpx.Client(base_url=b.url, timeout=30) as hb:
        for i in range(N_LOAD):
            if i not in acked:
                r = hb.post("/v1/outcomes", json=reports[i])
                assert r.status_code == 200, r.text
    wh = open_warehouse(tmp_path / "analyst", journal_url=pg_url, segments=segments)
    try:
        dup = wh.df("SELECT decision_id FROM attempts GROUP BY 1 HAVING count(*) > 1")
        n_attempts = int(wh.df("SELECT count(*) AS n FROM attempts")["n"][0])
        n_decisions = int(wh.df("SELECT count(DISTINCT decision_id) AS n FROM decisions")["n"][0])
        n_rows = int(wh.df("SELECT count(*) AS n FROM decisions")["n"][0])
    finally:
        wh.close()
    assert dup.empty, "an outcome was exported twice"
    assert n_attempts == N_LOAD
    assert n_decisions == n_rows == N_LOAD


def test_shared_registry_both_hosts_hot_reload_and_retune_reads_both(tmp_path: Path, pg_cluster: Any, pg_url: str,
                                                                     hashing_classifier_file: Path) -> None:
    """MLflow's backend store on PostgreSQL, artefacts on the shared location: a version
    promoted once is served by both hosts (each polls the same alias), and a retune reads the
    telemetry both hosts wrote."""
    from tierwise.service.policy.registry import make_registry
    from tierwise.service.settings import load_settings
    from tierwise.service.urls import sqlalchemy_url

    registry_url = pg_cluster.create_database(f"mlflow_{os.getpid()}")
    shared = tmp_path / "shared"
    clf = hashing_classifier_file
    env = {"TIERWISE_EMBEDDER": "hashing", "TIERWISE_CLASSIFIER_FILE": str(clf), "TIERWISE_USE_REGISTRY": "true",
           "TIERWISE_REGISTRY_URI": registry_url, "TIERWISE_ARTIFACT_ROOT": str(shared / "artifacts"),
           "TIERWISE_POLL_SECONDS": "0.5", "TIERWISE_JOURNAL_URL": pg_url,
           "TIERWISE_SEGMENTS_URL": str(shared / "segments")}
    a = Server(tmp_path / "home-a", env=env, log_name="a.log")
    b = Server(tmp_path / "home-b", env=env, log_name="b.log")
    try:
        a.init_registry()  # MLflow's schema and the bootstrap version, once, as deploy.md says
        a.start()
        b.start()
        with httpx.Client(base_url=a.url, timeout=30) as ha, httpx.Client(base_url=b.url, timeout=30) as hb:
            before = {ha.get("/v1/policy").json()["version"], hb.get("/v1/policy").json()["version"]}
            assert before == {"1"}, before
            for i in range(40):
                d = _route(ha if i % 2 else hb, i)
                (hb if i % 2 else ha).post("/v1/outcomes", json=_report(d, i)).raise_for_status()
            assert hb.get("/healthz").json()["dependencies"]["registry"] == "ok"

            # A retune on a third machine: its own home, the shared journal and segments.
            # ... with its Optuna study on RDB storage, as several tuning machines would share it.
            optuna_url = pg_cluster.create_database(f"optuna_{os.getpid()}")
            out = subprocess.run([*a._cmd("retune", "--dry-run", "--json", "--min-decisions", "10", "--trials", "3",
                                         "--no-progress", "--storage", optuna_url)],
                                 env={**a._env(), "TIERWISE_HOME": str(tmp_path / "tuner")}, capture_output=True,
                                 text=True, timeout=600, check=False)
            assert out.returncode == 0, out.stderr[-3000:]
            assert json.loads(out.stdout)["n_decisions"] == 40  # both hosts' outcomes
            import optuna

            study = optuna.load_study(study_name="tierwise-retune", storage=sqlalchemy_url(optuna_url))
            assert len(study.trials) == 3

            settings = load_settings(home=tmp_path / "ops", registry_uri=registry_url,
                                     artifact_root=shared / "artifacts")
            reg = make_registry(settings)
            policy = json.loads(reg.raw("1"))
            client = reg.client
            run = client.create_run(reg.experiment_id("tierwise-test"))
            version = reg.publish(json.dumps(policy), run.info.run_id, description="test publish")
            reg.promote(version)
            deadline = time.monotonic() + 60
            served: set[str] = set()
            while time.monotonic() < deadline:
                served = {ha.get("/v1/policy").json()["version"], hb.get("/v1/policy").json()["version"]}
                if served == {version}:
                    break
                time.sleep(0.2)
            assert served == {version}, served
    finally:
        a.stop()
        b.stop()
