"""``make bench-scale``: outcome ingest over HTTP and route p99, SQLite default vs PostgreSQL.

Three set-ups measured in the same run, on the same machine, with the same load generator:

1. ``sqlite``: one host, the embedded SQLite journal (the single-machine default);
2. ``pg-1``: one host on a throwaway PostgreSQL cluster (``bench/_postgres.py``);
3. ``pg-2``: two hosts (two ``tierwise serve`` processes, own homes) on that cluster, reports
   split between them.

Each set-up routes ``--decisions`` tasks over HTTP, then sends one outcome per decision with
``--clients`` concurrent keep-alive clients (reports/s = acknowledged reports / wall time), then
times ``--route-requests`` sequential routes (p50/p99). Figures are ratios against ``sqlite``
from this run; the issue asks for ``pg-2`` ingest >= 0.8x ``sqlite``.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from tierwise.bench._postgres import Cluster
from tierwise.bench._server import ROOT, Server, cpus, fast_env, hashing_classifier, loadavg, percentile, write_result
from tierwise.service.classify.train import load_corpus

OUT = ROOT / "bench" / "results" / "scale.md"
TARGET = 0.8


def _route_bodies(n: int) -> list[dict[str, Any]]:
    prompts = load_corpus(ROOT / "data" / "corpus", split="test")
    return [{"prompt": prompts[i % len(prompts)]["prompt"], "harness": "ci", "task_id": f"scale-{i}"}
            for i in range(n)]


def _fan_out(urls: list[str], path: str, bodies: list[dict[str, Any]], clients: int, desc: str
             ) -> tuple[list[dict[str, Any]], float]:
    """POST every body, ``clients`` threads spread over ``urls``; returns (responses, seconds)."""
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(bodies)):
        todo.put(i)
    out: list[dict[str, Any] | None] = [None] * len(bodies)
    errors: list[str] = []
    bar = tqdm(total=len(bodies), desc=desc, unit="req", leave=False, mininterval=1.0)

    def work(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                r = http.post(path, json=bodies[i])
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                out[i] = r.json()
                bar.update(1)

    threads = [threading.Thread(target=work, args=(urls[k % len(urls)],)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    bar.close()
    if errors:
        raise RuntimeError(f"{desc}: {errors[0]}")
    return [r for r in out if r is not None], elapsed


def _route_p(url: str, bodies: list[dict[str, Any]], n: int) -> dict[str, float]:
    ms = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in tqdm(range(n), desc="route latency", unit="req", leave=False, mininterval=1.0):
            t0 = time.perf_counter()
            http.post("/v1/route", json=bodies[i % len(bodies)]).raise_for_status()
            ms.append((time.perf_counter() - t0) * 1000)
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99)}


def measure(servers: list[Server], args: argparse.Namespace) -> dict[str, Any]:
    urls = [s.url for s in servers]
    routed, _ = _fan_out(urls, "/v1/route", _route_bodies(args.decisions), args.clients, "route seed")
    reports = [{"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"], "resolved": i % 3 != 0,
                "cost_usd": round(0.0005 * (i % 97), 6), **({} if i % 3 else {"failure": "tests_failed"})}
               for i, d in enumerate(routed)]
    _, seconds = _fan_out(urls, "/v1/outcomes", reports, args.clients, "outcomes")
    latency = _route_p(urls[0], _route_bodies(50), args.route_requests)
    return {"hosts": len(servers), "reports": len(reports), "ingest_rows_s": len(reports) / seconds,
            "route_ms": latency}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    clf = hashing_classifier(work / "classifier.hashing.json")
    env = {**fast_env(clf), "TIERWISE_WORKERS": str(args.workers)}
    results: dict[str, Any] = {}
    with Server(work / "sqlite", env=env, workers=args.workers).start() as server:
        results["sqlite"] = measure([server], args)
    with Cluster() as cluster:
        for name, n_hosts in (("pg-1", 1), ("pg-2", 2)):
            url = cluster.create_database(name.replace("-", "_"))
            pg_env = {**env, "TIERWISE_JOURNAL_URL": url, "TIERWISE_SEGMENTS_URL": str(work / name / "segments")}
            servers = [Server(work / name / f"host-{k}", env=pg_env, workers=args.workers) for k in range(n_hosts)]
            try:
                for s in servers:
                    s.start()
                results[name] = measure(servers, args)
            finally:
                for s in servers:
                    s.stop()
    base = results["sqlite"]
    for r in results.values():
        r["ingest_ratio"] = r["ingest_rows_s"] / base["ingest_rows_s"]
        r["route_p99_ratio"] = r["route_ms"]["p99"] / base["route_ms"]["p99"]
    return {"results": results, "cpus": cpus(), "loadavg": loadavg(), "args": vars(args)}


def report(res: dict[str, Any]) -> str:
    lines = ["# Scale-out bench: SQLite default vs PostgreSQL, one and two hosts", "",
             f"`make bench-scale` on {res['cpus']} CPUs, load average {res['loadavg'][0]:.1f} at the end; "
             f"{res['args']['decisions']} reports, {res['args']['clients']} clients, "
             f"{res['args']['workers']} worker(s) per host.", "",
             "| set-up | hosts | ingest rows/s | x sqlite | route p50 ms | route p99 ms | p99 x sqlite |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res["results"].items():
        lines.append(f"| {name} | {r['hosts']} | {r['ingest_rows_s']:.0f} | {r['ingest_ratio']:.2f} | "
                     f"{r['route_ms']['p50']:.2f} | {r['route_ms']['p99']:.2f} | {r['route_p99_ratio']:.2f} |")
    ok = res["results"]["pg-2"]["ingest_ratio"] >= TARGET
    lines += ["", f"Target: pg-2 ingest >= {TARGET}x sqlite: {'met' if ok else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decisions", type=int, default=2000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--route-requests", type=int, default=400)
    p.add_argument("--work", default=str(ROOT / "var" / "bench-scale"))
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    res = run(args)
    text = report(res)
    print(text)
    Path(args.out).write_text(text)
    write_result(res, Path(args.out).with_suffix(".json"))


if __name__ == "__main__":
    main()
