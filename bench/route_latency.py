"""Route latency benchmark (issue 15): /v1/route against /healthz of the same real server, one run.

For each server configuration (``--workers``, default 1 and 2 processes; ``--embedder``, default
the service's default), it starts ``tierwise serve`` on a fresh home and measures, on keep-alive
connections from 127.0.0.1, sequentially and with 8 and 32 concurrent clients:
- /healthz, then /v1/route with short prompts (the corpus test split, 20–300 words, sent with
  their files, tools and repo facts), ~500-token and ~4k-token prompts;
- p50/p95/p99 client-side and server-side (the response's ``latency_ms``: scoring + decide), and
  the ratio of each route percentile to /healthz's from the same run, which takes the HTTP stack
  and the machine's load out of the comparison;
- throughput (routes/s at 8 and 32 clients), start-up time (process start to the first healthy
  /healthz, the table/encoder already built), RSS summed over the process group, and which stage
  decided (``stage``: static or encoder).
Every request's prompt is unique (a numbered suffix), so the score cache never answers: this is
the cost of scoring, not of the cache. Then the path's quality on the OOD set (accuracy,
macro-F1, ECE) from the same scorer the server builds.

Issue 15's targets (default serve, 8 clients, prompts <= 500 tokens): server-side p99 <= 5 ms,
client p50 <= 2x /healthz p50, client p99 <= 50 ms, >= 500 routes/s. The machine is shared: the
load average is recorded at start and end; judge the ratios, re-run when it is quiet.
Writes bench/results/route_latency.{json,md}.
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

from tierwise.bench._server import Server, cpus, loadavg, percentile, write_result
from tierwise.service.classify.train import load_corpus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "route_latency.json"
CLIENTS = (1, 8, 32)
# Prompt sizes: name -> characters (about four a token; None: as written).
SIZES: dict[str, int | None] = {"short": None, "500tok": 2_000, "4ktok": 16_000}
TARGETS = {"server_p99_ms": 5.0, "p50_x_healthz": 2.0, "client_p99_ms": 50.0, "routes_per_s": 500.0}


def route_bodies(chars: int | None) -> list[dict[str, Any]]:
    """Test-split requests; with ``chars``, each prompt is grown with the following rows' prompts
    to that length (real text, not repetition) and cut there."""
    rows = load_corpus(ROOT / "data" / "corpus", split="test")
    out = []
    for i, row in enumerate(rows):
        prompt = str(row["prompt"])
        j = i
        while chars is not None and len(prompt) < chars:
            j = (j + 1) % len(rows)
            prompt += "\n\n" + str(rows[j]["prompt"])
        body: dict[str, Any] = {"prompt": prompt[:chars] if chars else prompt, "files": row.get("files", []),
                                "tools": row.get("tools", []), "harness": "ci", "task_id": str(row["id"])}
        repo = row.get("repo") or {}
        body["repo"] = {k: repo[k] for k in ("files", "modules_touched", "languages") if k in repo}
        for key in ("diff_lines", "expected_output"):
            if row.get(key) is not None:
                body[key] = row[key]
        out.append(body)
    return out


class Sink:
    """What the clients of one run collect: client ms, server ms, stages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: list[float] = []
        self.server: list[float] = []
        self.stages: dict[str, int] = {}


def one_client(url: str, path: str, bodies: list[dict[str, Any]] | None, n: int, k: int, sink: Sink) -> None:
    """``n`` requests on one keep-alive connection; every route prompt is unique (``k``, ``i``)."""
    client, server, stages = [], [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        http.get("/healthz")  # open the connection
        for i in range(n):
            t0 = time.perf_counter()
            if bodies is None:
                r = http.get(path)
            else:
                body = dict(bodies[(k * 7 + i) % len(bodies)])
                body["prompt"] = f"{body['prompt']}\n(ref {k}-{i}-{time.monotonic_ns()})"
                r = http.post(path, json=body)
            client.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            if bodies is not None:
                doc = r.json()
                server.append(float(doc["latency_ms"]))
                stages.append(str(doc.get("stage", "encoder")))
    with sink.lock:
        sink.client += client
        sink.server += server
        for s in stages:
            sink.stages[s] = sink.stages.get(s, 0) + 1


def pct(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q), 3) for q in (50, 95, 99)} | {"max": round(max(values), 3)}


def run(url: str, path: str, bodies: list[dict[str, Any]] | None, n: int, clients: int) -> dict[str, Any]:
    per_client = max(1, n // clients)
    sink = Sink()
    errors: list[str] = []

    def work(k: int) -> None:
        try:
            one_client(url, path, bodies, per_client, k, sink)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    out: dict[str, Any] = {"n": len(sink.client), "clients": clients, "client_ms": pct(sink.client),
                           "rps": round(len(sink.client) / wall, 1)}
    if bodies is not None:
        out["server_ms"] = pct(sink.server)
        out["stages"] = sink.stages
    return out


def measure(workers: int, embedder: str, n: int, prompts: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tierwise-route-") as tmp:
        server = Server(Path(tmp) / "home", workers=workers, env={"TIERWISE_EMBEDDER": embedder})
        try:
            if workers > 1:  # several workers racing to create the registry: see Server.init_registry
                server.init_registry()
            print(f"starting tierwise serve --workers {workers} (embedder {embedder}) ...", flush=True)
            server.start(timeout_s=600)
            startup_s = server.startup_s
            if workers > 1:
                server.wait_workers_healthy()
            for b in prompts["short"][:20]:  # warm every code path once before measuring
                httpx.post(server.url + "/v1/route", json=b, timeout=60).raise_for_status()
            runs: dict[str, Any] = {}
            for clients in CLIENTS:
                hz = run(server.url, "/healthz", None, n, clients)
                runs[f"healthz_x{clients}"] = hz
                for size, bodies in prompts.items():
                    rt = run(server.url, "/v1/route", bodies, n if size != "4ktok" else n // 2, clients)
                    rt["p50_x_healthz"] = round(rt["client_ms"]["p50"] / hz["client_ms"]["p50"], 2)
                    rt["p99_x_healthz"] = round(rt["client_ms"]["p99"] / hz["client_ms"]["p99"], 2)
                    runs[f"route_{size}_x{clients}"] = rt
                    print(f"  {clients:>2} clients {size:>6}: client p50 {rt['client_ms']['p50']:.2f} "
                          f"p99 {rt['client_ms']['p99']:.2f} ms, server p99 {rt['server_ms']['p99']:.2f} ms, "
                          f"{rt['rps']:.0f}/s (healthz p50 {hz['client_ms']['p50']:.2f})", flush=True)
            rss = server.rss_bytes()
        finally:
            server.stop()
    return {"workers": workers, "embedder": embedder, "startup_s": round(startup_s or float("nan"), 2),
            "rss_mb_total": round(sum(rss.values()) / 2**20, 1),
            "rss_mb_by_process": [round(v / 2**20, 1) for v in rss.values()], "runs": runs}


def quality(embedder: str) -> dict[str, Any]:
    """The OOD figures of the scorer the server builds for ``embedder`` (same code, in process)."""
    from tierwise.bench.classifier_eval import load_ood
    from tierwise.service.classify.evaluate import evaluate
    from tierwise.service.components import load_classifier
    from tierwise.service.settings import load_settings

    scorer = load_classifier(load_settings(embedder=embedder, score_cache_size=0))
    tasks, labels, _ = load_ood()
    rep = evaluate(scorer, tasks, labels, "ood")
    stages = [s.stage for s in scorer.score_many(tasks)]
    return {**rep.to_dict(), "encoder_share": round(stages.count("encoder") / len(stages), 4)}


def verdict(cfg: dict[str, Any]) -> dict[str, Any]:
    """Issue 15's targets at 8 clients, prompts <= 500 tokens (the worse of short and 500tok)."""
    rs = [cfg["runs"][f"route_{s}_x8"] for s in ("short", "500tok")]
    got = {"server_p99_ms": max(r["server_ms"]["p99"] for r in rs),
           "p50_x_healthz": max(r["p50_x_healthz"] for r in rs),
           "client_p99_ms": max(r["client_ms"]["p99"] for r in rs),
           "routes_per_s": min(r["rps"] for r in rs)}
    ok = {k: (v >= TARGETS[k] if k == "routes_per_s" else v <= TARGETS[k]) for k, v in got.items()}
    return {"measured": got, "pass": ok}


def render(res: dict[str, Any]) -> str:
    lines = [f"# /v1/route latency ({res['when']})", "",
             f"{res['machine']['cpus']} CPUs, load average at start {res['machine']['loadavg_start']}, at end "
             f"{res['machine']['loadavg_end']} (a shared machine: judge the ratios to /healthz).", ""]
    q = res["quality"]
    lines += [f"Quality of the path used ({res['embedder']}, OOD set, {q['n']} tasks): accuracy {q['accuracy']:.3f}, "
              f"macro-F1 {q['macro_f1']:.3f}, ECE {q['ece']:.3f}; the encoder decided {q['encoder_share']:.1%}.", ""]
    for cfg in res["configs"]:
        lines += [f"## {cfg['workers']} worker(s): start-up {cfg['startup_s']} s, RSS {cfg['rss_mb_total']} MB "
                  f"({', '.join(str(v) for v in cfg['rss_mb_by_process'])})", "",
                  "| endpoint | prompts | clients | client p50 | p95 | p99 | server p50 | p95 | p99 | req/s | "
                  "p50 × healthz | p99 × healthz | encoder share |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in cfg["runs"].items():
            c = r["client_ms"]
            if name.startswith("healthz"):
                lines.append(f"| /healthz | | {r['clients']} | {c['p50']:.2f} | {c['p95']:.2f} | {c['p99']:.2f} "
                             f"| | | | {r['rps']:.0f} | | | |")
                continue
            s, st = r["server_ms"], r["stages"]
            enc = st.get("encoder", 0) / max(1, sum(st.values()))
            lines.append(f"| /v1/route | {name.split('_')[1]} | {r['clients']} | {c['p50']:.2f} | {c['p95']:.2f} | "
                         f"{c['p99']:.2f} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {r['rps']:.0f} | "
                         f"{r['p50_x_healthz']:.1f} | {r['p99_x_healthz']:.1f} | {enc:.1%} |")
        v = cfg["verdict"]
        lines += ["", "Targets (8 clients, prompts ≤ 500 tokens): " + "; ".join(
            f"{k} {v['measured'][k]} vs {TARGETS[k]} {'PASS' if v['pass'][k] else 'FAIL'}" for k in TARGETS), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tierwise.service.settings import load_settings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1_000, help="requests per measurement (4k prompts: half)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server configurations to measure")
    p.add_argument("--embedder", default=load_settings().embedder,
                   choices=["minilm", "minilm-int8", "static", "two-stage"])
    p.add_argument("--quick", action="store_true", help="200 requests per measurement")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.requests = 200
    load_start = loadavg()
    prompts = {name: route_bodies(chars) for name, chars in SIZES.items()}
    configs = [measure(w, args.embedder, args.requests, prompts) for w in args.workers]
    for cfg in configs:
        cfg["verdict"] = verdict(cfg)
    res: dict[str, Any] = {
        "bench": "route_latency", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": cpus(), "platform": platform.platform(),
                    "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in loadavg()]},
        "embedder": args.embedder, "requests": args.requests, "targets": TARGETS,
        "prompt_chars": {k: v for k, v in SIZES.items()}, "configs": configs,
        "quality": quality(args.embedder),
    }
    md = render(res)
    print(md)
    write_result(res, args.out)
    args.out.with_suffix(".md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
