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
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tierwise.bench._server import ROOT, cpus, loadavg, write_result
from tierwise.bench.ingest_http import (
    ROUTE_P99_RATIO_TARGET,
    bench_http,
)
from tierwise.bench.ingest_store import STORE_TARGET_ROWS_S, bench_store

RESULTS = ROOT / "bench" / "results" / "ingest.json"


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
