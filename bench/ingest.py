"""Outcome ingest benchmark: rows/s into the store, over HTTP, and what ingest does to routing.

(a) Straight into the store: ``Journal.insert_many`` of ``attempts`` rows in batches (one
    transaction per batch, the journal's default durability), then the Parquet export of
    everything written (``SegmentExporter.export_once``).
(b) Over HTTP: ``--clients`` concurrent clients POST ``/v1/outcomes`` (attempt 0, one per
    decision) to a real ``tierwise serve --workers 2``. The decisions are routed once per corpus
    prompt over HTTP, then cloned with fresh ids straight into the server's journal, so the
    stream is not limited by how fast we can route.
(c) ``/v1/route`` latency on the same server, sequential, in alternating blocks without and with
    an ingest like (b) running; the p99 ratio is the cost ingest imposes on routing.

The store runs use two kinds of decision id: ``uuid4`` (random, what the service issues today)
and ``time-ordered`` (UUIDv7-like), to show what id order costs the primary-key index.

Targets: (a) >= 50k rows/s; (c) route p99 under ingest <= 1.2x the p99 without.
Writes bench/results/ingest.json. ``python bench/ingest.py --help`` for the knobs.
"""

from __future__ import annotations

import argparse
import json
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/ingest.py``
    sys.path.insert(0, str(ROOT))

from bench._server import Server, cpus, fast_env, hashing_classifier, loadavg, percentile, write_result  # noqa: E402
from service.classify.train import load_corpus  # noqa: E402
from service.telemetry.journal import Journal, connect  # noqa: E402
from service.telemetry.segments import SegmentExporter  # noqa: E402
from service.telemetry.store import TelemetryPaths  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ingest.json"
STORE_TARGET_ROWS_S = 50_000
ROUTE_P99_RATIO_TARGET = 1.2


def attempt_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Realistic attempts rows: one attempt-0 outcome per decision, with a stored response."""
    rows = []
    for i in range(start, start + n):
        resolved = i % 3 != 0
        decision_id = uuid.uuid4().hex  # random, as the service's ids are: the primary key index sees real churn
        response = {"decision_id": decision_id, "attempt": 0, "tier": "small", "resolved": resolved,
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
    """A decision id: ``uuid4`` is what the service issues today (random); ``time-ordered`` is a
    UUIDv7-like id (nanosecond clock, then 64 random bits), which keeps B-tree inserts at the right edge."""
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
    today = [r for r in out["runs"] if r["ids"] == "uuid4"] or out["runs"]
    out["best_insert_rows_s"] = max(r["insert_rows_s"] for r in today)  # the target is judged on today's ids
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


def route_latencies(url: str, bodies: list[dict[str, Any]], n: int, desc: str) -> list[float]:
    """Sequential /v1/route on one keep-alive connection; milliseconds per request."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(3):  # warm the connection
            http.post("/v1/route", json=bodies[i % len(bodies)])
        for i in tqdm(range(n), desc=desc, unit="req", leave=False, mininterval=1.0):
            t0 = time.perf_counter()
            r = http.post("/v1/route", json=bodies[i % len(bodies)])
            out.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
    return out


class Ingest:
    """``clients`` threads POSTing outcomes until the bodies run out or ``stop`` is set; they
    send only while ``active`` is set, so the route measurement can alternate with and without."""

    def __init__(self, url: str, bodies: list[dict[str, Any]], clients: int, max_s: float) -> None:
        self.url, self.bodies, self.clients, self.max_s = url, bodies, clients, max_s
        self.todo: queue.Queue[int] = queue.Queue()
        for i in range(len(bodies)):
            self.todo.put(i)
        self.ok = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.active = threading.Event()
        self.active.set()
        self.active_s = 0.0
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(clients)]
        self.t0 = self.t1 = 0.0

    def _work(self) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set() and time.monotonic() < deadline:
                if not self.active.wait(timeout=0.2):
                    continue
                try:
                    i = self.todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = http.post("/v1/outcomes", json=self.bodies[i])
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failed.append(repr(exc))
                    continue
                with self.lock:
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"{r.status_code} {r.text[:200]}")

    def start(self) -> Ingest:
        self.t0 = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def join(self) -> float:
        for t in self.threads:
            t.join(timeout=self.max_s + 60)
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
        ing = Ingest(server.url, first, args.clients, args.http_seconds).start()
        with tqdm(total=len(first), desc=f"HTTP ingest, {args.clients} clients", unit="row", leave=False,
                  mininterval=1.0) as bar:
            while any(t.is_alive() for t in ing.threads):
                time.sleep(0.2)
                bar.n = ing.ok
                bar.refresh()
        wall = ing.join()
        out["http_rows"] = ing.ok
        out["http_seconds"] = wall
        out["http_rows_s"] = ing.ok / wall
        out["http_failures"] = len(ing.failed)
        out["http_failure_sample"] = ing.failed[:3]
        out["export_lag_rows_after_ingest"] = export_lag(server.home)
        time.sleep(2 * 1.0 + 1)  # let the 1 s background export catch up before the next phase
        out["export_lag_rows_after_3s"] = export_lag(server.home)

        # (c) route latency in alternating blocks, without and with ingest, so drift in the
        # machine's other load hits both sides alike.
        ing = Ingest(server.url, second, args.clients, args.http_seconds + 600)
        ing.active.clear()
        ing.start()
        base: list[float] = []
        loaded: list[float] = []
        per_block = max(10, args.route_requests // args.route_blocks)
        still_running = True
        for block in range(2 * args.route_blocks):
            with_ingest = block % 2 == 1
            if with_ingest:
                ing.active.set()
                time.sleep(0.5)  # let the ingest reach steady state
                t0 = time.perf_counter()
            else:
                ing.active.clear()
                time.sleep(0.5)  # let in-flight reports drain
            ms = route_latencies(server.url, route_bodies, per_block,
                                 f"route block {block + 1}/{2 * args.route_blocks}"
                                 f" ({'under ingest' if with_ingest else 'no ingest'})")
            if with_ingest:
                ing.active_s += time.perf_counter() - t0
                still_running = still_running and any(t.is_alive() for t in ing.threads)
                loaded += ms
            else:
                base += ms
        ing.stop.set()
        ing.active.set()
        ing.join()
        out["route_blocks"] = args.route_blocks
        out["route_no_ingest_ms"] = summary(base)
        out["route_under_ingest_ms"] = summary(loaded)
        out["route_under_ingest_ingest_rows_s"] = ing.ok / max(ing.active_s, 1e-9)
        out["route_under_ingest_ingest_ran_throughout"] = still_running
        out["route_p99_ratio"] = out["route_under_ingest_ms"]["p99"] / out["route_no_ingest_ms"]["p99"]
        out["route_p50_ratio"] = out["route_under_ingest_ms"]["p50"] / out["route_no_ingest_ms"]["p50"]
        out["server_rss_mb"] = sum(server.rss_bytes().values()) / 2**20
    finally:
        server.stop()
    return out


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
    a, b = h["route_no_ingest_ms"], h["route_under_ingest_ms"]
    lines.append(f"{'route p50 / p99, no ingest (ms)':<52}{a['p50']:>6.1f} / {a['p99']:<5.1f}")
    lines.append(f"{'route p50 / p99, under ingest (ms)':<52}{b['p50']:>6.1f} / {b['p99']:<5.1f}")
    lines.append(f"{'route p99 ratio under ingest':<52}{h['route_p99_ratio']:>13.2f}x  {'<= 1.2x':>10}")
    lines.append(f"{'ingest rate while routing':<52}{h['route_under_ingest_ingest_rows_s']:>10,.0f} r/s")
    lines.append(f"{'server RSS, all processes (MB)':<52}{h['server_rss_mb']:>14,.0f}")
    lines.append("-" * 78)
    verdict = [("store >= 50k rows/s (best batch, uuid4 ids)", s["best_insert_rows_s"] >= STORE_TARGET_ROWS_S),
               ("route p99 <= 1.2x under ingest", h["route_p99_ratio"] <= ROUTE_P99_RATIO_TARGET)]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
