"""The PostgreSQL journal (``TIERWISE_JOURNAL_URL``) on a real throwaway cluster: the same API
behaviour as the SQLite default, with idempotency and sequencing enforced by the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import AGENTIC, MECHANICAL

from tierwise.service.errors import ConfigError
from tierwise.service.settings import load_settings
from tierwise.service.telemetry.pg_migrations import MIGRATIONS
from tierwise.service.telemetry.store import open_warehouse


@pytest.fixture
def pg_client(make_client: Callable[..., Any], pg_url: str, tmp_path: Path) -> Any:
    return make_client(journal_url=pg_url, segments_url=tmp_path / "shared" / "segments")


def _route(client: Any, prompt: str = MECHANICAL) -> dict[str, Any]:
    r = client.post("/v1/route", json={"prompt": prompt, "harness": "ci"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _fail(decision: dict[str, Any], attempt: int, tier: str, cost: float = 0.01) -> dict[str, Any]:
    return {"decision_id": decision["decision_id"], "attempt": attempt, "tier": tier, "resolved": False,
            "failure": "tests_failed", "cost_usd": cost}


def test_migrations_are_numbered_and_idempotent(pg_client: Any, pg_url: str, make_settings: Any) -> None:
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM tierwise_schema ORDER BY 1")]
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'attempts'").fetchall())
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert types["cost_usd"] == "double precision"  # not float4: costs keep their digits
    from tierwise.service.telemetry.pg_journal import PgJournal, make_pool

    pool = make_pool(pg_url, max_size=2)
    try:
        assert PgJournal(pool).migrate() == len(MIGRATIONS)  # a second host finds nothing to do
    finally:
        pool.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM tierwise_schema").fetchone() == (len(MIGRATIONS),)


def test_route_and_report_round_trip_with_duplicate_and_conflict(pg_client: Any, pg_url: str) -> None:
    d = _route(pg_client)
    report = {"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"], "resolved": True, "cost_usd": 0.02}
    first = pg_client.post("/v1/outcomes", json=report)
    assert first.status_code == 200, first.text
    assert first.json()["next"]["action"] == "done"
    again = pg_client.post("/v1/outcomes", json=report)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    clash = pg_client.post("/v1/outcomes", json=dict(report, cost_usd=0.03))
    assert clash.status_code == 409, clash.text
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (1,)
        assert conn.execute("SELECT cost_usd FROM attempts").fetchone() == (0.02,)


def test_escalation_to_human_queue_and_resolve(pg_client: Any, pg_url: str) -> None:
    d = _route(pg_client, AGENTIC)
    tier, attempt, nxt = d["tier"], 0, None
    while True:
        r = pg_client.post("/v1/outcomes", json=_fail(d, attempt, tier))
        assert r.status_code == 200, r.text
        nxt = r.json()["next"]
        if nxt["action"] != "escalate":
            break
        tier, attempt = nxt["tier"], nxt["attempt"]
    assert nxt["action"] == "human"
    item_id = nxt["queue_item_id"]
    assert isinstance(item_id, int)
    queue = pg_client.get("/v1/queue").json()
    assert [i["item_id"] for i in queue["items"]] == [item_id]
    done = pg_client.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "dev"})
    assert done.status_code == 200, done.text
    assert pg_client.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "dev"}).status_code == 409
    with psycopg.connect(pg_url) as conn:
        n_esc = conn.execute("SELECT count(*) FROM escalations WHERE decision_id = %s",
                             (d["decision_id"],)).fetchone()
    assert n_esc == (attempt,)


def test_racing_reports_store_one_attempt(pg_client: Any, pg_url: str) -> None:
    """Many threads send the attempt-0 report of one decision, half with other values: one row,
    every answer is the stored one (duplicate) or a 409, never a second row or a 500."""
    d = _route(pg_client)
    good = {"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"], "resolved": False,
            "failure": "timeout", "cost_usd": 0.01}
    bodies = [dict(good, cost_usd=0.01 + (i % 2) * 0.5) for i in range(16)]
    codes: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def send(body: dict[str, Any]) -> None:
        barrier.wait()
        codes.append(pg_client.post("/v1/outcomes", json=body).status_code)

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(set(codes)) == [200, 409], codes
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM escalations").fetchone()[0] <= 1  # type: ignore[index]


def test_exports_reach_duckdb_on_the_shared_location(pg_client: Any, pg_url: str, tmp_path: Path) -> None:
    ids = []
    for _ in range(5):
        d = _route(pg_client)
        ids.append(d["decision_id"])
        r = pg_client.post("/v1/outcomes", json={"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"],
                                                 "resolved": True, "cost_usd": 0.01})
        assert r.status_code == 200
    wh = open_warehouse(tmp_path / "elsewhere", journal_url=pg_url, segments=tmp_path / "shared" / "segments")
    try:
        got = set(wh.df("SELECT decision_id FROM episodes WHERE has_outcome")["decision_id"])
        kpis = wh.kpis()
    finally:
        wh.close()
    assert got == set(ids)
    assert int(kpis["episodes"].sum()) == 5


def test_bad_journal_url_names_the_key_and_hides_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(home=tmp_path, journal_url="mysql://admin:hunter2@db/tierwise")
    assert "TIERWISE_JOURNAL_URL" in err.value.message
    assert "mysql://admin:***@db/tierwise" in err.value.message
    assert "hunter2" not in err.value.message


def test_unreachable_journal_keeps_routing_and_answers_outcomes_503(make_client: Callable[..., Any],
                                                                     pg_cluster: Any, tmp_path: Path) -> None:
    """The server stops under a running host: routes still answer, outcomes get 503 with
    ``Retry-After`` (nothing is dropped silently), /healthz names the journal; when the server
    is back, the background probe clears health and the resent outcome is stored."""
    from tierwise.bench._postgres import Cluster

    own = Cluster().start()  # its own cluster: stopping it must not disturb the session's
    try:
        client = make_client(journal_url=own.url, segments_url=tmp_path / "segments", export_interval_s=0.1)
        d = _route(client)
        assert client.get("/healthz").json()["dependencies"] == {"journal": "ok", "segments": "ok", "registry": "off"}
        own.pg_ctl("stop")
        routed = client.post("/v1/route", json={"prompt": MECHANICAL, "harness": "ci"})
        assert routed.status_code == 200, routed.text
        report = {"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"], "resolved": True,
                  "cost_usd": 0.01}
        down = client.post("/v1/outcomes", json=report)
        assert down.status_code == 503, down.text
        assert down.headers["Retry-After"].isdigit()
        assert down.json()["error"]["code"] == "telemetry_unavailable"
        assert "hunter" not in down.text
        health = client.get("/healthz").json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["journal"].startswith("telemetry: journal")
        own.pg_ctl("start")
        deadline = time.monotonic() + 30
        while client.get("/healthz").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/healthz").json()["status"] == "ok"
        again = client.post("/v1/outcomes", json=report)
        assert again.status_code == 200, again.text
        assert again.json().get("duplicate") is None
    finally:
        own.stop()
