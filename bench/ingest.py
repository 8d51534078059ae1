"""Outcome ingest benchmark: rows/s into the store, over HTTP, and what ingest does to routing.

(a) Straight into the store: ``Journal.insert_many`` of ``attempts`` rows in batches (one
    transaction per batch, the journal's default durability), then the Parquet export of
    everything written (``SegmentExporter.export_once``).
(b) Over HTTP: ``--clients`` concurrent clients POST ``/v1/outcomes`` (attempt 0, one per
    decision) to a real ``tierwise serve --workers 2``. The decisions are routed once per corpus
    prompt over HTTP, then cloned with fresh ids straight into the server's journal, so the
    stream is not limited by how fast we can route.
(c) ``/v1/route`` latency on the same server, sequential, in alternating blocks without and with
    an ingest like (b) running; the p99 ratio is the cost ingest imposes on routing. It is
    measured at each ``--ingest-rates`` figure. The judged one is 200 reports/s offered: this
    2-worker server routes about 60 tasks/s at most on 2 cores and a task reports 1.3 attempts
    on average, so 200/s is over twice the outcome rate its own routes can produce. ``0`` (as
    fast as the server answers) is the stress figure: then outcome handling and the load
    generator, which shares the 2 cores, take all the CPU there is.

The load generator runs in its own process, so its threads do not share the timing thread's GIL.

The store runs use two kinds of decision id: ``time-ordered`` (UUIDv7-like: what the service
issues, ``tierwise.service.routing.new_decision_id``) and ``uuid4`` (random), to show what id order costs
the primary-key index.

A control run sends the judged rate as ``GET /healthz`` instead of reports: the ratio it gives is
what any HTTP traffic at that rate costs routing on this box (the load generator included), and
the ingest ratio divided by it is what the ingest work itself adds.

Targets: (a) >= 50k rows/s; (c) route p99 under ingest <= 1.2x the p99 without.
Writes bench/results/ingest.json and ingest_route.png. ``python -m tierwise.bench.ingest --help`` for the knobs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from tierwise.bench._server import Server, cpus, fast_env, hashing_classifier, loadavg, percentile, write_result
from tierwise.service.classify.train import load_corpus
from tierwise.service.telemetry.journal import Journal, connect
from tierwise.service.telemetry.segments import SegmentExporter
from tierwise.service.telemetry.store import TelemetryPaths

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results" / "ingest.json"
STORE_TARGET_ROWS_S = 50_000
ROUTE_P99_RATIO_TARGET = 1.2


def attempt_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Realistic attempts rows: one attempt-0 outcome per decision, with a stored response."""
    rows = []
    for i in range(start, start + n):
        resolved = i % 3 != 0
        decision_id = uuid.uuid4().hex  # replaced per run by new_id(kind)
        response: dict[str, Any] = {"decision_id": decision_id, "attempt": 0, "tier": "small", "resolved": resolved,
                    "failure": None if resolved else "tests_failed", "schema_valid": None, "schema_errors": [],
                    "overridden_to": None, "next": {"action": "done" if resolved else "human"}}
        rows.append({
            "decision_id": decision_id, "attempt": 0, "ts": time.time(), "tier": "small",
            "model": "claude-haiku-4-5", "resolved": int(resolved), "claimed_resolved": int(resolved),
            "cost_usd": 0.0005 * (i % 97), "input_tokens": 1_000 + i % 5_000, "output_tokens": 100 + i % 500,
            "latency_ms": float(500 + i % 1_000), "failure": None if resolved else "tests_failed",
            "overridden_to": None, "schema_valid": None, "next_action": response["next"]["action"],
            "next_tier": None, "request_hash": uuid.uuid4().hex * 2, "response": json.dumps(response),
        })
    return rows


def new_id(kind: str) -> str:
    """A decision id: ``time-ordered`` is what the service issues (nanosecond clock, then 64 random
    bits), which keeps B-tree inserts at the right edge; ``uuid4`` is random, for comparison."""
    if kind == "uuid4":
        return uuid.uuid4().hex
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def bench_store(work: Path, rows_total: int, batch_sizes: list[int], key_kinds: list[str]) -> dict[str, Any]:
    """(a): insert_many into a fresh journal per (id kind, batch size), then export it all to Parquet."""
    out: dict[str, Any] = {"rows": rows_total, "runs": []}
    template = attempt_rows(10_000)
    for kind in key_kinds:
        for batch in batch_sizes:
            paths = TelemetryPaths(work / f"store-{kind}-{batch}" / "telemetry")
            journal = Journal(connect(paths.journal))
            journal.migrate()
            exporter = SegmentExporter(connect(paths.journal), paths.segments)
            exporter.ensure_layout()
            done, insert_s = 0, 0.0
            with tqdm(total=rows_total, desc=f"store insert_many {kind} batch={batch}", unit="row", leave=False,
                      mininterval=1.0) as bar:
                while done < rows_total:
                    n = min(batch, rows_total - done)
                    # Built outside the clock: we measure the store, not dict construction.
                    rows = [dict(template[(done + k) % len(template)], decision_id=new_id(kind)) for k in range(n)]
                    t0 = time.perf_counter()
                    journal.insert_many("attempts", rows)
                    insert_s += time.perf_counter() - t0
                    done += n
                    bar.update(n)
            t0 = time.perf_counter()
            exported = exporter.export_once()["attempts"]
            export_s = time.perf_counter() - t0
            assert exported == rows_total, f"exported {exported} of {rows_total}"
            out["runs"].append({"ids": kind, "batch": batch, "insert_s": insert_s,
                                "insert_rows_s": rows_total / insert_s, "export_s": export_s,
                                "export_rows_s": rows_total / export_s})
            journal.close()
            exporter.conn.close()
    # Judged on random ids, the slower case: the service's time-ordered ids only make it faster.
    judged = [r for r in out["runs"] if r["ids"] == "uuid4"] or out["runs"]
    out["best_insert_rows_s"] = max(r["insert_rows_s"] for r in judged)
    out["export_rows_s"] = sum(r["export_rows_s"] for r in out["runs"]) / len(out["runs"])
    return out


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


def _ingest_worker(url: str, bodies: list[dict[str, Any]], clients: int, max_s: float, nice: int, rate: float,
                   path: str, active: Any, stop: Any, ok: Any, failed: Any, samples: Any) -> None:
    """The load generator's body, in its own process: ``clients`` threads POST outcomes until the
    bodies run out, ``stop`` is set or ``max_s`` passes; they send only while ``active`` is set.
    ``rate`` > 0 paces the total to that many reports/s (open loop: each thread keeps its own
    schedule, and a late thread sends at once to catch up); 0 sends as fast as the server answers.
    ``path`` ``/healthz`` sends GETs instead (the control: HTTP traffic that does no ingest work)."""
    if nice:
        os.nice(nice)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(bodies)):
        todo.put(i)
    gap = clients / rate if rate > 0 else 0.0

    def work(k: int) -> None:
        deadline = time.monotonic() + max_s
        due = time.monotonic() + gap * k / clients
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set() and time.monotonic() < deadline:
                if not active.is_set():
                    active.wait(timeout=0.2)
                    due = time.monotonic() + gap * k / clients
                    continue
                if gap:
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    due = max(due + gap, time.monotonic() - 10 * gap)
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = http.get(path) if path == "/healthz" else http.post(path, json=bodies[i])
                    problem = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                with (failed if problem else ok).get_lock():
                    (failed if problem else ok).value += 1
                if problem and samples.qsize() < 3:
                    samples.put(problem)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Ingest:
    """The outcome load generator, run in a separate process (at ``nice``) so that its threads
    share neither the GIL nor the scheduler priority of the thread that times ``/v1/route``;
    on a 2-core box that is the difference between measuring the server and measuring ourselves."""

    def __init__(self, url: str, bodies: list[dict[str, Any]], clients: int, max_s: float, nice: int = 0,
                 rate: float = 0.0, path: str = "/v1/outcomes") -> None:
        ctx = mp.get_context("spawn")
        self.active, self.stop = ctx.Event(), ctx.Event()
        self.active.set()
        self._ok, self._failed = ctx.Value("l", 0), ctx.Value("l", 0)
        self._samples: Any = ctx.Queue()
        self.max_s = max_s
        self.active_s = 0.0
        self.active_ok = 0  # reports acknowledged while a route block was being timed
        self.proc = ctx.Process(target=_ingest_worker, daemon=True,
                                args=(url, bodies, clients, max_s, nice, rate, path, self.active, self.stop, self._ok,
                                      self._failed, self._samples))
        self.t0 = self.t1 = 0.0

    @property
    def ok(self) -> int:
        return int(self._ok.value)

    @property
    def failed(self) -> list[str]:
        out = []
        while not self._samples.empty():
            out.append(self._samples.get())
        return out + ["..."] * max(0, int(self._failed.value) - len(out))

    def alive(self) -> bool:
        return self.proc.is_alive()

    def start(self) -> Ingest:
        self.proc.start()
        self.t0 = time.perf_counter()
        return self

    def join(self) -> float:
        self.proc.join(timeout=self.max_s + 60)
        self.t1 = time.perf_counter()
        return self.t1 - self.t0


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


def export_lag(home: Path) -> int:
    """Attempts rows committed to the journal but not yet in a Parquet segment."""
    paths = TelemetryPaths(home / "telemetry")
    conn = connect(paths.journal)
    try:
        top = conn.execute("SELECT coalesce(max(rowid), 0) FROM attempts").fetchone()[0]
        return int(top) - SegmentExporter(conn, paths.segments).watermark("attempts")
    finally:
        conn.close()


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "min": min(ms), "max": max(ms), "mean": sum(ms) / len(ms)}


def render(res: dict[str, Any]) -> str:
    s, h = res["store"], res["http"]
    lines = ["", "tierwise outcome ingest", "=" * 78,
             f"{'measure':<52}{'value':>14}  {'target':>10}", "-" * 78]
    for b in s["runs"]:
        lines.append(f"{'store insert_many, ' + b['ids'] + ' ids, batch ' + str(b['batch']):<52}"
                     f"{b['insert_rows_s']:>10,.0f} r/s  {'>= 50,000' if b['ids'] == 'uuid4' else '':>10}")
    lines.append(f"{'store Parquet export (mean of the runs)':<52}{s['export_rows_s']:>10,.0f} r/s")
    label = f"HTTP /v1/outcomes, {h['clients']} clients, {h['workers']} workers ({h['embedder']})"
    lines.append(f"{label:<52}{h['http_rows_s']:>10,.0f} r/s")
    lines.append(f"{'HTTP failures':<52}{h['http_failures']:>14}")
    lines.append(f"{'export lag right after ingest / 3 s later (rows)':<52}"
                 f"{h['export_lag_rows_after_ingest']:>7} / {h['export_lag_rows_after_3s']:<4}")
    for m in h["route_under_ingest"]:
        offered = f"{m['offered_rows_s']:,.0f}/s offered" if m["offered_rows_s"] else "as fast as served"
        a, b = m["no_ingest_ms"], m["under_ingest_ms"]
        lines.append(f"{'ingest ' + offered + ': achieved':<52}{m['achieved_rows_s']:>10,.0f} r/s")
        lines.append(f"{'  route p50 / p99, no ingest (ms)':<52}{a['p50']:>6.1f} / {a['p99']:<5.1f}")
        lines.append(f"{'  route p50 / p99, under ingest (ms)':<52}{b['p50']:>6.1f} / {b['p99']:<5.1f}")
        target = "<= 1.2x" if m is h["route_under_ingest"][0] else ""
        ra, rb = m["router_no_ingest_ms"], m["router_under_ingest_ms"]
        lines.append(f"{'  router alone (encode, decide): p99 (ms)':<52}{ra['p99']:>6.1f} / {rb['p99']:<5.1f}")
        lines.append(f"{'  route p99 ratio under ingest':<52}{m['p99_ratio']:>13.2f}x  {target:>10}")
    if "route_under_healthz" in h:
        c, m = h["route_under_healthz"], h["route_under_ingest"][0]
        lines.append(f"{'control: same rate of GET /healthz, no ingest work':<52}{c['achieved_rows_s']:>10,.0f} r/s")
        lines.append(f"{'  route p50 / p99, no traffic (ms)':<52}{c['no_ingest_ms']['p50']:>6.1f} / "
                     f"{c['no_ingest_ms']['p99']:<5.1f}")
        lines.append(f"{'  route p50 / p99, under /healthz (ms)':<52}{c['under_ingest_ms']['p50']:>6.1f} / "
                     f"{c['under_ingest_ms']['p99']:<5.1f}")
        lines.append(f"{'  route p99 ratio under /healthz (HTTP alone)':<52}{c['p99_ratio']:>13.2f}x")
        lines.append(f"{'  ingest ratio / control ratio (ingest work alone)':<52}"
                     f"{m['p99_ratio'] / c['p99_ratio']:>13.2f}x")
    lines.append(f"{'server RSS, all processes (MB)':<52}{h['server_rss_mb']:>14,.0f}")
    lines.append("-" * 78)
    verdict = [("store >= 50k rows/s (best batch, uuid4 ids)", s["best_insert_rows_s"] >= STORE_TARGET_ROWS_S),
               (f"route p99 <= 1.2x under ingest at {h['route_under_ingest'][0]['offered_rows_s'] or 'max'} r/s",
                h["route_p99_ratio"] <= ROUTE_P99_RATIO_TARGET)]
    lines += [f"{name:<52}{'PASS' if ok else 'FAIL':>14}" for name, ok in verdict]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=300_000, help="rows per store run")
    p.add_argument("--batches", default="100,1000,10000", help="insert_many batch sizes")
    p.add_argument("--ids", default="uuid4,time-ordered", help="decision id kinds for the store runs")
    p.add_argument("--http-reports", type=int, default=6_000, help="outcomes in the HTTP ingest run")
    p.add_argument("--http-seconds", type=float, default=120.0, help="upper bound on each HTTP ingest run")
    p.add_argument("--under-load-reports", type=int, default=30_000,
                   help="outcomes available to the ingest that runs during the route measurement")
    p.add_argument("--route-requests", type=int, default=600, help="route requests on each side")
    p.add_argument("--route-blocks", type=int, default=6, help="alternating blocks on each side")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ingest-rates", default="200,0",
                   help="reports/s offered during the route measurements, one measurement each (0: as fast "
                        "as the server answers); the first is the one judged against the target")
    p.add_argument("--client-nice", type=int, default=0,
                   help="renice the outcome load generator's process (0: same priority as the server)")
    p.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm",
                   help="the server's embedder (minilm is what production routes with)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    load_at_start = loadavg()
    if args.quick:
        args.rows, args.http_reports, args.route_requests, args.under_load_reports = 50_000, 800, 100, 5_000
    with tempfile.TemporaryDirectory(prefix="tierwise-ingest-") as tmp:
        work = Path(tmp)
        store = bench_store(work, args.rows, [int(b) for b in args.batches.split(",")], args.ids.split(","))
        http = bench_http(work, args)
    res = {"bench": "ingest", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"python": platform.python_version(), "cpus": cpus(), "platform": platform.platform(),
                       "loadavg_1_5_15_at_start": load_at_start,
                       "loadavg_1_5_15_at_end": loadavg()},
           "targets": {"store_rows_s": STORE_TARGET_ROWS_S, "route_p99_ratio": ROUTE_P99_RATIO_TARGET},
           "store": store, "http": http}
    print(render(res))
    write_result(res, args.out)
    from tierwise.bench.plots import route_under_load

    png = route_under_load(res, args.out.with_name(args.out.stem + "_route.png"))
    if png is not None:
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
