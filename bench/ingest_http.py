"""Ingest benchmark (b) and (c): reports/s over HTTP, and ``/v1/route`` latency with and without ingest."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from tierwise.bench._server import ROOT, Server, fast_env, hashing_classifier, percentile
from tierwise.bench.ingest_traffic import Ingest
from tierwise.service.classify.train import load_corpus
from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.segments import SegmentExporter
from tierwise.service.telemetry.store import TelemetryPaths

ROUTE_P99_RATIO_TARGET = 1.2


def seed_decisions(server: Server, n: int) -> list[dict[str, Any]]:
    """Route each test-split prompt once over HTTP, then clone the logged decisions with new ids
    straight into the journal (the same SQLite file the server writes). Returns outcome bodies."""
    prompts = load_corpus(ROOT / "data" / "corpus", split="test")
    templates = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for row in tqdm(prompts, desc="route seed prompts", unit="req", leave=False, mininterval=1.0):
            r = http.post("/v1/route", json={"prompt": row["prompt"], "files": row.get("files", []),
                                              "tools": row.get("tools", [])})
            r.raise_for_status()
            templates.append(r.json()["decision_id"])
    journal = Journal(connect(TelemetryPaths(server.home / "telemetry").journal))
    try:
        marks = ",".join("?" for _ in templates)
        base = journal.fetch_all(f"SELECT * FROM decisions WHERE decision_id IN ({marks})", templates)
        assert len(base) == len(templates)
        clones = []
        for i in range(n):
            d = dict(base[i % len(base)])
            d["decision_id"] = uuid.uuid4().hex
            d["ts"] = time.time()
            clones.append(d)
        for k in range(0, n, 5_000):
            journal.insert_many("decisions", clones[k:k + 5_000])
    finally:
        journal.close()
    bodies = []
    for i, d in enumerate(clones):
        resolved = i % 3 != 0
        body: dict[str, Any] = {"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"],
                                "resolved": resolved, "cost_usd": round(0.0005 * (i % 97), 6),
                                "input_tokens": 1_000 + i, "output_tokens": 100 + i % 500,
                                "latency_ms": float(500 + i % 1_000)}
        if not resolved:
            body["failure"] = "tests_failed"
        bodies.append(body)
    return bodies


def route_latencies(url: str, bodies: list[dict[str, Any]], n: int, desc: str) -> tuple[list[float], list[float]]:
    """Sequential /v1/route on one keep-alive connection: milliseconds per request as the client
    sees it, and the router's own time for it (the response's ``latency_ms``: encode and decide),
    so a slowdown can be placed inside the router or around it (HTTP, journal, scheduling)."""
    client, router = [], []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(3):  # warm the connection
            http.post("/v1/route", json=bodies[i % len(bodies)])
        for i in tqdm(range(n), desc=desc, unit="req", leave=False, mininterval=1.0):
            t0 = time.perf_counter()
            r = http.post("/v1/route", json=bodies[i % len(bodies)])
            client.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            router.append(float(r.json()["latency_ms"]))
    return client, router


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "min": min(ms), "max": max(ms), "mean": sum(ms) / len(ms)}


def export_lag(home: Path) -> int:
    """Attempts rows committed to the journal but not yet in a Parquet segment."""
    paths = TelemetryPaths(home / "telemetry")
    conn = connect(paths.journal)
    try:
        top = conn.execute("SELECT coalesce(max(rowid), 0) FROM attempts").fetchone()[0]
        return int(top) - SegmentExporter(conn, paths.segments).watermark("attempts")
    finally:
        conn.close()


def route_under_ingest(url: str, bodies: list[dict[str, Any]], route_bodies: list[dict[str, Any]], rate: float,
                       args: argparse.Namespace, path: str = "/v1/outcomes") -> dict[str, Any]:
    """Sequential /v1/route in alternating blocks without and with an ingest offered at ``rate``
    reports/s (0: as fast as the server answers), so drift in the machine's other load hits
    both sides alike. The p99 ratio is the cost ingest imposes on routing. With ``path``
    ``/healthz`` the same clients send that instead: what any HTTP traffic at that rate costs."""
    ing = Ingest(url, bodies, args.clients, args.http_seconds + 600, args.client_nice, rate, path)
    ing.active.clear()
    ing.start()
    base: list[float] = []
    loaded: list[float] = []
    base_router: list[float] = []
    loaded_router: list[float] = []
    per_block = max(10, args.route_requests // args.route_blocks)
    still_running = True
    label = (f"{rate:.0f}/s" if rate else "max") + (" healthz" if path == "/healthz" else "")
    for block in range(2 * args.route_blocks):
        with_ingest = block % 2 == 1
        if with_ingest:
            ing.active.set()
            time.sleep(0.5)  # let the ingest reach steady state
            t0, ok0 = time.perf_counter(), ing.ok
        else:
            ing.active.clear()
            time.sleep(0.5)  # let in-flight reports drain
        desc = f"route block {block + 1}/{2 * args.route_blocks} ({'ingest ' + label if with_ingest else 'no ingest'})"
        ms, router_ms = route_latencies(url, route_bodies, per_block, desc)
        if with_ingest:
            ing.active_s += time.perf_counter() - t0
            ing.active_ok += ing.ok - ok0
            still_running = still_running and ing.alive()
            loaded += ms
            loaded_router += router_ms
        else:
            base += ms
            base_router += router_ms
    ing.stop.set()
    ing.active.set()
    ing.join()
    no, under = summary(base), summary(loaded)
    return {"offered_rows_s": rate or None, "achieved_rows_s": ing.active_ok / max(ing.active_s, 1e-9),
            "ingest_ran_throughout": still_running, "failures": len(ing.failed), "blocks": args.route_blocks,
            "no_ingest_ms": no, "under_ingest_ms": under, "p99_ratio": under["p99"] / no["p99"],
            "router_no_ingest_ms": summary(base_router), "router_under_ingest_ms": summary(loaded_router),
            "p50_ratio": under["p50"] / no["p50"]}


def bench_http(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env: dict[str, str] = {}
    if args.embedder == "hashing":
        env = fast_env(hashing_classifier(work / "classifier.hashing.json"))
    server = Server(work / "http-home", workers=args.workers, env=env)
    out: dict[str, Any] = {"workers": args.workers, "clients": args.clients, "embedder": args.embedder}
    try:
        if args.workers > 1 and args.embedder == "minilm":  # the registry is on: see Server.init_registry
            server.init_registry()
        print(f"starting tierwise serve --workers {args.workers} ({args.embedder}) ...", flush=True)
        server.start(timeout_s=300)
        server.wait_workers_healthy()
        out["startup_s"] = server.startup_s
        # The second stream only has to outlast the route measurement; decisions are cheap to seed.
        bodies = seed_decisions(server, args.http_reports + args.under_load_reports)
        first, second = bodies[: args.http_reports], bodies[args.http_reports:]
        prompts = load_corpus(ROOT / "data" / "corpus", split="test")
        route_bodies = [{"prompt": r["prompt"], "files": r.get("files", []), "tools": r.get("tools", [])}
                        for r in prompts]

        # (b) sustained ingest alone.
        ing = Ingest(server.url, first, args.clients, args.http_seconds, args.client_nice).start()
        with tqdm(total=len(first), desc=f"HTTP ingest, {args.clients} clients", unit="row", leave=False,
                  mininterval=1.0) as bar:
            while ing.alive():
                time.sleep(0.2)
                bar.n = ing.ok
                bar.refresh()
        wall = ing.join()
        out["http_rows"] = ing.ok
        out["http_seconds"] = wall
        out["http_rows_s"] = ing.ok / wall
        failed = ing.failed
        out["http_failures"] = len(failed)
        out["http_failure_sample"] = failed[:3]
        out["export_lag_rows_after_ingest"] = export_lag(server.home)
        time.sleep(2 * 1.0 + 1)  # let the 1 s background export catch up before the next phase
        out["export_lag_rows_after_3s"] = export_lag(server.home)

        # (c) route latency in alternating blocks, once per offered ingest rate.
        rates = [float(r) for r in args.ingest_rates.split(",")]
        share = len(second) // len(rates)
        out["route_under_ingest"] = [
            route_under_ingest(server.url, second[k * share:(k + 1) * share], route_bodies, rate, args)
            for k, rate in enumerate(rates)]
        headline = out["route_under_ingest"][0]
        out["route_p99_ratio"] = headline["p99_ratio"]
        if rates[0] > 0:  # the control: the same request rate, but GET /healthz (no ingest work)
            out["route_under_healthz"] = route_under_ingest(server.url, second[:share], route_bodies, rates[0],
                                                            args, path="/healthz")
        out["server_rss_mb"] = sum(server.rss_bytes().values()) / 2**20
    finally:
        server.stop()
    return out
