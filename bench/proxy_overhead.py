"""Proxy overhead (issue 16): what ``/v1/chat/completions`` through tierwise adds over calling the
same OpenAI-compatible upstream directly, measured in one run with 8 concurrent clients.

Three processes on 127.0.0.1: the fake upstream (``bench/fake_upstream.py``, answers at once),
``tierwise serve`` (static MiniLM stage, bootstrap policy, forwarding to that upstream), and this
client (asyncio + httpx, keep-alive). Modes, each ``--requests`` calls per client after a warm-up:
- ``direct``: the upstream itself, the baseline;
- ``healthz``: tierwise's cheapest route, its HTTP stack's floor on this machine;
- ``passthrough``: through tierwise with a model id it does not route (auth, parsing, forwarding);
- ``routed_task``: ``model: "tierwise"`` with one task id per client, so calls reuse the task's
  decision (the proxy's steady state: one route per task, a journal read per call);
- ``routed_new``: a new task every call (classify, decide and journal a decision each time);
- ``route``: ``POST /v1/route`` alone, the route decision the issue's target excludes;
- ``stream_direct`` / ``stream_routed_task``: time to the first content chunk of a stream.
The figures are ratios and differences against ``direct`` from the same run, so the machine's
load (shared, two cores) cancels out as far as it can; re-run when the box is quiet.
Writes bench/results/proxy_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tierwise.bench._server import HOST, ROOT, Server, free_port

CLIENTS = 8
PROMPT = "rename the helper get_usr to get_user in utils.py and reformat the file with black"
MODEL = "gpt-5-mini-2025-08-07"  # the bootstrap policy's small tier: the upstream answers any id
RESULTS = ROOT / "bench" / "results"

Call = Callable[[httpx.AsyncClient, int, int], Awaitable[None]]


def _chat(model: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream, **extra}


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    r = await http.post(url, json=body, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:300]}")


async def _get(http: httpx.AsyncClient, url: str) -> None:
    r = await http.get(url)
    if r.status_code != 200:
        raise RuntimeError(f"{url} answered {r.status_code}")


async def _first_chunk(http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    async with http.stream("POST", url, json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url} answered {r.status_code}")
        async for line in r.aiter_lines():
            if '"content":"' in line.replace(" ", "") and '"content":""' not in line.replace(" ", ""):
                return


async def _run(call: Call, requests: int, warmup: int, clients: int) -> list[float]:
    """Per-call latencies (ms) of ``clients`` concurrent clients, each on its own connection."""
    times: list[float] = []

    async def client(c: int) -> None:
        async with httpx.AsyncClient(timeout=30.0) as http:
            for i in range(warmup):
                await call(http, c, -1 - i)
            for i in range(requests):
                t0 = time.perf_counter()
                await call(http, c, i)
                times.append((time.perf_counter() - t0) * 1000.0)

    await asyncio.gather(*(client(c) for c in range(clients)))
    return times


def _summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": float(a.size), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean())}


def modes(upstream: str, tw: str) -> dict[str, Call]:
    chat = tw + "/v1/chat/completions"
    run_id = f"{time.time_ns():x}"
    return {
        "direct": lambda h, c, i: _post(h, upstream + "/chat/completions", _chat(MODEL)),
        "healthz": lambda h, c, i: _get(h, tw + "/healthz"),
        "passthrough": lambda h, c, i: _post(h, chat, _chat(MODEL)),
        "routed_task": lambda h, c, i: _post(h, chat, _chat("tierwise"),
                                             {"X-Tierwise-Task-Id": f"bench-{run_id}-{c}"}),
        "routed_new": lambda h, c, i: _post(h, chat, _chat("tierwise"),
                                            {"X-Tierwise-Task-Id": f"bench-{run_id}-{c}-{i}"}),
        "route": lambda h, c, i: _post(h, tw + "/v1/route", {"prompt": f"{PROMPT} #{run_id}-{c}-{i}"}),
        "stream_direct": lambda h, c, i: _first_chunk(h, upstream + "/chat/completions", _chat(MODEL, stream=True),
                                                      {}),
        "stream_routed_task": lambda h, c, i: _first_chunk(h, chat, _chat("tierwise", stream=True),
                                                           {"X-Tierwise-Task-Id": f"bench-s-{run_id}-{c}"}),
    }


def _report(results: dict[str, dict[str, float]], load: tuple[float, float], clients: int) -> str:
    d, s = results["direct"], results["stream_direct"]
    lines = ["# Proxy overhead (`make bench-proxy`)", "",
             f"{clients} concurrent clients, keep-alive, loopback; load average {load[0]:.1f} at start, "
             f"{load[1]:.1f} at end (2 shared cores).", "",
             "| mode | p50 ms | p99 ms | p50 added vs direct | p99 added vs direct | p50 ratio |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        base = s if name.startswith("stream") else d
        lines.append(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p50_ms'] - base['p50_ms']:+.2f} | "
                     f"{r['p99_ms'] - base['p99_ms']:+.2f} | {r['p50_ms'] / base['p50_ms']:.2f} |")
    new_beyond = results["routed_new"]["p50_ms"] - d["p50_ms"] - results["route"]["p50_ms"]
    lines += ["", f"- routed call on a known task adds {results['routed_task']['p50_ms'] - d['p50_ms']:.2f} ms p50 "
              "(target: <= 2 ms beyond the route decision, which a known task does not repeat)",
              f"- a new task's call adds {new_beyond:.2f} ms p50 beyond a /v1/route call's p50 "
              f"({results['route']['p50_ms']:.2f} ms)",
              f"- beyond tierwise's own HTTP floor (/healthz p50 {results['healthz']['p50_ms']:.2f} ms): "
              f"pass-through {results['passthrough']['p50_ms'] - results['healthz']['p50_ms']:+.2f} ms, known task "
              f"{results['routed_task']['p50_ms'] - results['healthz']['p50_ms']:+.2f} ms (both include the second "
              "hop to the upstream)",
              "- stream rows: time to the first content chunk"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="calls per client per mode")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args(argv)
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tierwise.bench.fake_upstream", "--port", str(port)],
                                cwd=str(ROOT), stdin=subprocess.DEVNULL)
    base = f"http://{HOST}:{port}/v1"
    load0 = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="tierwise-bench-proxy-") as tmp:
            server = Server(Path(tmp) / "home", env={
                "TIERWISE_USE_REGISTRY": "false", "TIERWISE_EMBEDDER": "static",
                "TIERWISE_UPSTREAM_BASE_URL": base, "TIERWISE_SEED": "0"}).start()
            try:
                results = {name: _summary(asyncio.run(_run(call, args.requests, args.warmup, args.clients)))
                           for name, call in modes(base, server.url).items()}
            finally:
                server.stop()
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    report = _report(results, (load0, os.getloadavg()[0]), args.clients)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "proxy_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "proxy_overhead.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
