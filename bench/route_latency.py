"""Route latency benchmark: /v1/route against /healthz of the same real server, in one run.

Starts one ``tierwise serve`` with the real MiniLM embedder (int8 by default; --embedder minilm for
fp32) on a fresh home and
measures, on keep-alive connections from 127.0.0.1:
- /healthz and /v1/route, sequentially (one client), then with ``--concurrency`` clients;
- the ratio of each route percentile to the /healthz one, so the HTTP stack and the machine's
  noise are visible next to the cost of routing itself;
- server RSS (VmRSS summed over the supervisor and its workers) and start-up time (process
  start to the first healthy /healthz).
Prompts are the test split of data/corpus, sent with their files, tools and repo facts.

Target: route p99 <= 25 ms (sequential). Writes bench/results/route_latency.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from tierwise.bench._server import Server, cpus, loadavg, percentile, write_result
from tierwise.service.classify.train import load_corpus

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results" / "route_latency.json"
P99_TARGET_MS = 25.0


def route_bodies() -> list[dict[str, Any]]:
    out = []
    for row in load_corpus(ROOT / "data" / "corpus", split="test"):
        body: dict[str, Any] = {"prompt": row["prompt"], "files": row.get("files", []),
                                "tools": row.get("tools", []), "harness": "ci", "task_id": str(row["id"])}
        repo = row.get("repo") or {}
        body["repo"] = {k: repo[k] for k in ("files", "modules_touched", "languages") if k in repo}
        for key in ("diff_lines", "expected_output"):
            if row.get(key) is not None:
                body[key] = row[key]
        out.append(body)
    return out


def one_client(url: str, method: str, path: str, bodies: list[dict[str, Any]], n: int, offset: int = 0,
               bar: tqdm | None = None, server_ms: list[float] | None = None) -> list[float]:
    """``n`` requests on one keep-alive connection; client-side milliseconds per request."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(3):  # open and warm the connection
            http.request(method, path, json=bodies[i % len(bodies)] if method == "POST" else None)
        for i in range(n):
            body = bodies[(offset + i) % len(bodies)] if method == "POST" else None
            t0 = time.perf_counter()
            r = http.request(method, path, json=body)
            out.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
            if server_ms is not None:
                server_ms.append(float(r.json()["latency_ms"]))
            if bar is not None:
                bar.update(1)
    return out


def run(url: str, method: str, path: str, bodies: list[dict[str, Any]], n: int, clients: int,
        desc: str, server_ms: list[float] | None = None) -> dict[str, Any]:
    per_client = max(1, n // clients)
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    with tqdm(total=per_client * clients, desc=desc, unit="req", leave=False, mininterval=1.0) as bar:
        def work(k: int) -> None:
            try:
                results[k] = one_client(url, method, path, bodies, per_client, offset=k * 7, bar=bar,
                                        server_ms=server_ms)
            except Exception as exc:
                errors.append(repr(exc))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    ms = [x for r in results for x in r]
    return {"n": len(ms), "clients": clients, "p50": percentile(ms, 50), "p90": percentile(ms, 90),
            "p99": percentile(ms, 99), "min": min(ms), "max": max(ms), "mean": sum(ms) / len(ms), "rps": len(ms) / wall}


def render(res: dict[str, Any]) -> str:
    lines = ["", f"tierwise /v1/route latency (embedder {res['embedder']}, {res['workers']} worker(s), "
             f"{res['prompts']} test-split prompts)", "=" * 96,
             f"{'endpoint':<24}{'clients':>8}{'n':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
             f"{'req/s':>8}{'p50 x':>7}{'p99 x':>7}", "-" * 96]
    for mode in ("sequential", "concurrent"):
        hz = res[mode]["healthz"]
        for name in ("healthz", "route"):
            m = res[mode][name]
            lines.append(f"{'/' + name if name == 'healthz' else '/v1/route':<24}{m['clients']:>8}{m['n']:>7}"
                         f"{m['p50']:>9.2f}{m['p90']:>9.2f}{m['p99']:>9.2f}{m['max']:>9.2f}{m['rps']:>8.0f}"
                         f"{m['p50'] / hz['p50']:>7.1f}{m['p99'] / hz['p99']:>7.1f}")
    lines.append("-" * 96)
    sm = res["server_side_route_ms"]
    lines.append(f"server-side latency_ms (scoring + decide), sequential: p50 {sm['p50']:.2f}, p99 {sm['p99']:.2f}")
    lines.append(f"start-up (process start -> first healthy /healthz): {res['startup_s']:.1f} s")
    lines.append(f"server RSS after the run: {res['rss_mb_total']:.0f} MB in {len(res['rss_mb_by_pid'])} "
                 f"processes ({', '.join(f'{v:.0f}' for v in res['rss_mb_by_pid'].values())} MB)")
    seq = res["sequential"]["route"]["p99"]
    lines.append(f"route p99 (sequential) {seq:.2f} ms vs target {P99_TARGET_MS:.0f} ms: "
                 f"{'PASS' if seq <= P99_TARGET_MS else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1_000, help="requests per measurement")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="tierwise serve --workers (the default is 1)")
    p.add_argument("--embedder", default="minilm-int8", choices=["minilm", "minilm-int8"],
                   help="minilm-int8 (the service default: int8 ONNX) or the fp32 torch minilm")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    load_at_start = loadavg()
    if args.quick:
        args.requests = 200
    bodies = route_bodies()
    with tempfile.TemporaryDirectory(prefix="tierwise-route-") as tmp:
        # The real thing: MiniLM, the registry, the default policy; only the home is fresh.
        server = Server(Path(tmp) / "home", workers=args.workers, env={"TIERWISE_EMBEDDER": args.embedder})
        try:
            if args.workers > 1:  # several workers racing to create the registry: see Server.init_registry
                server.init_registry()
            print(f"starting tierwise serve --workers {args.workers} (MiniLM) ...", flush=True)
            server.start(timeout_s=300)
            startup_s = server.startup_s
            if args.workers > 1:
                server.wait_workers_healthy()
            for b in bodies[:10]:  # warm every code path once before measuring
                httpx.post(server.url + "/v1/route", json=b, timeout=60).raise_for_status()
            server_ms: list[float] = []
            res: dict[str, Any] = {"sequential": {}, "concurrent": {}}
            for mode, clients in (("sequential", 1), ("concurrent", args.concurrency)):
                res[mode]["healthz"] = run(server.url, "GET", "/healthz", bodies, args.requests, clients,
                                           f"/healthz x{clients}")
                res[mode]["route"] = run(server.url, "POST", "/v1/route", bodies, args.requests, clients,
                                         f"/v1/route x{clients}",
                                         server_ms=server_ms if mode == "sequential" else None)
            rss = server.rss_bytes()
        finally:
            server.stop()
    res.update({
        "bench": "route_latency", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": cpus(), "platform": platform.platform(),
                       "loadavg_1_5_15_at_start": load_at_start,
                       "loadavg_1_5_15_at_end": loadavg()},
        "embedder": args.embedder, "workers": args.workers, "prompts": len(bodies), "target_p99_ms": P99_TARGET_MS,
        "startup_s": startup_s, "rss_mb_by_pid": {str(k): v / 2**20 for k, v in rss.items()},
        "rss_mb_total": sum(rss.values()) / 2**20,
        "server_side_route_ms": {"p50": percentile(server_ms, 50), "p99": percentile(server_ms, 99)},
    })
    for mode in ("sequential", "concurrent"):
        hz, rt = res[mode]["healthz"], res[mode]["route"]
        res[mode]["ratio_to_healthz"] = {q: rt[q] / hz[q] for q in ("p50", "p90", "p99")}
    res["pass"] = res["sequential"]["route"]["p99"] <= P99_TARGET_MS
    print(render(res))
    write_result(res, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
