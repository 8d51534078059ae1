"""Load bench (``make bench-load``): a steady stream of agents, then the same with hostile requests.

Each run starts its own ``tierwise serve`` (real MiniLM encoder, fresh temporary home, a free
port on 127.0.0.1) and drives it with locust in library mode for ``--duration`` seconds:
- **steady**: ``--rate`` agents each route a task once a second (corpus and evaluation prompts
  with their files, tools and repo facts) and report every attempt, following ``next`` through
  escalations (40% of attempts fail, with a failure kind);
- **hostile**: the same, plus a client sending the hardening issue's requests in turn at about
  2% of the traffic (huge lists and strings, an over-limit chunked body, deep JSON, id 2^63,
  zero-width, NUL and ANSI prompts, ordinary tool names) and bursts of slow bodies that never
  complete (at most 50 held at once).
Reported per run: client-side p50/p99 of routes and outcomes, request counts, errors (any
non-200 on agent traffic; a 5xx or connection error on a probe), per-probe statuses, the
server process tree's peak VmRSS (sampled every 0.5 s) and the home's disk use at start and end.
Done-when (issue 13): 0 errors steady; with hostile requests peak RSS < 1 GB and route p99
within 2x of steady. Writes bench/results/load.{json,md}.

The load generator shares the machine with the server: figures are for this box, as loaded.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
from locust import constant_throughput
from locust.env import Environment

from tierwise.bench import load_users
from tierwise.bench._server import ROOT, Server, cpus, loadavg, percentile, write_result
from tierwise.bench.load_auth import admin_auth
from tierwise.bench.load_requests import route_bodies
from tierwise.bench.load_summary import markdown, summarise, verdicts

RESULTS = ROOT / "bench" / "results"
HOSTILE_USERS = 2
HOSTILE_RATE = 1.0  # probes/s per hostile user: ~2% of the agents' ~100 requests/s at 40 routes/s


def home_disk(home: Path) -> dict[str, int]:
    """Bytes under the home: the journal (with its WAL and shared memory), the Parquet segments,
    everything."""
    def size(paths: Any) -> int:
        return sum(p.stat().st_size for p in paths if p.is_file())

    tele = home / "telemetry"
    return {"journal": size(tele.glob("journal.sqlite*")), "segments": size((tele / "segments").rglob("*")),
            "total": size(home.rglob("*"))}


def warm_up(server: Server, auth: dict[str, str], n: int = 20) -> None:
    """A few sequential routes before the clock starts (first encode, caches); a refusal here means
    the bench itself is wrong (say an auth change), so it stops with the server's answer."""
    import httpx  # after locust's monkey-patching, which the top-level imports have done

    bodies = route_bodies()
    with httpx.Client(base_url=server.url, timeout=60, headers=auth) as http:
        for i in range(n):
            r = http.post("/v1/route", json=bodies[i * 7 % len(bodies)])
            if r.status_code != 200:
                raise RuntimeError(f"warm-up route got {r.status_code}: {r.text[:300]}")


def run_once(name: str, hostile: bool, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server = Server(work / name / "home", workers=args.workers, env={"TIERWISE_EMBEDDER": args.embedder})
    auth = admin_auth(server)
    if args.workers > 1:
        server.init_registry()
    server.start(timeout_s=300)
    try:
        warm_up(server, auth)
        state = load_users.LoadState(port=server.port, auth=auth, seed=args.seed,
                                     hold_s=args.hold)
        load_users.STATE = state
        load_users.AgentUser.wait_time = constant_throughput(1.0)
        load_users.HostileUser.wait_time = constant_throughput(HOSTILE_RATE)
        load_users.HostileUser.fixed_count = HOSTILE_USERS
        classes: list[Any] = [load_users.AgentUser] + ([load_users.HostileUser] if hostile else [])
        users = args.rate + (HOSTILE_USERS if hostile else 0)
        disk_start = home_disk(server.home)
        rss: list[tuple[float, int]] = []

        def sample_rss() -> None:
            while True:
                rss.append((round(time.monotonic() - state.t0, 1), sum(server.rss_bytes().values())))
                gevent.sleep(0.5)

        env = Environment(user_classes=classes, host=server.url)
        runner = env.create_local_runner()
        cpu0 = time.process_time()
        state.t0 = time.monotonic()
        watchers = [gevent.spawn(sample_rss), gevent.spawn(progress, name, state, rss)]
        runner.start(users, spawn_rate=max(10.0, users / 2))
        gevent.sleep(args.duration)
        runner.quit()
        duration = time.monotonic() - state.t0
        client_cpu_s = time.process_time() - cpu0
        state.background.join(timeout=state.hold_s + 5)  # slow bodies still held
        state.background.kill()
        gevent.killall(watchers)
        disk_end = home_disk(server.home)
        out = summarise(state.samples, duration)
        out["route_server_ms"] = {"p50": round(percentile(state.server_route_ms, 50), 2),
                                  "p99": round(percentile(state.server_route_ms, 99), 2)}
        out.update(peak_rss_bytes=max((b for _, b in rss), default=0), rss_samples=len(rss),
                   rss_mb_every_5s=[round(b / 1e6) for t, b in rss[::10]], disk_start=disk_start,
                   disk_end=disk_end, client_cpu_s=round(client_cpu_s, 1),
                   slow_body_skipped_at_cap=state.slow_skipped, auth=bool(auth),
                   startup_s=round(server.startup_s or 0, 2), loadavg_end=loadavg())
        out["task_exceptions"] = [f"{e['count']}x {e['msg']}" for e in runner.exceptions.values()]
        if out["errors"] or out["task_exceptions"]:
            out["server_log_tail"] = server.log_tail(30)
        return out
    finally:
        server.stop()


def progress(name: str, state: load_users.LoadState, rss: list[tuple[float, int]]) -> None:
    """One line every 10 s, so a long run shows it is alive and how it is going."""
    while True:
        gevent.sleep(10)
        routes = [s.ms for s in state.samples if s.group == "route" and s.status == 200]
        n = {g: sum(1 for s in state.samples if s.group == g) for g in ("route", "outcome", "probe")}
        bad = sum(1 for s in state.samples if s.group != "probe" and s.status != 200)
        print(f"[{name}] {time.monotonic() - state.t0:5.0f}s routes {n['route']} (p50 {percentile(routes, 50):.1f} "
              f"p99 {percentile(routes, 99):.1f} ms) outcomes {n['outcome']} probes {n['probe']} agent errors {bad} "
              f"rss {(rss[-1][1] if rss else 0) / 1e6:.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--quick", action="store_true", help="10 s per run, for development")
    ap.add_argument("--rate", type=int, default=20,
                    help="routes/s offered (default 20: what this shared 2-core box sustained): agents, each routing "
                         "once a second")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--embedder", default="minilm-int8")
    ap.add_argument("--runs", default="steady,hostile", help="comma-separated: steady, hostile")
    ap.add_argument("--hold", type=float, default=15.0,
                    help="seconds a slow body is held open unless the server answers first (default 15: longer "
                         "than a sane body timeout, so a server that has one shows its 408)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 10.0
    result: dict[str, Any] = {
        "bench": "load", "rate_routes_per_s": args.rate, "duration_s": args.duration, "users": args.rate,
        "hostile_users": HOSTILE_USERS, "hostile_rate_per_user": HOSTILE_RATE, "workers": args.workers,
        "embedder": args.embedder, "cpus": cpus(), "loadavg_start": [round(x, 2) for x in loadavg()],
        "python": platform.python_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="tierwise-load-") as tmp:
        for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
            if name not in ("steady", "hostile"):
                ap.error(f"unknown run {name!r}")
            print(f"[{name}] starting server and {args.rate} agents for {args.duration:.0f} s", flush=True)
            result["runs"][name] = run_once(name, name == "hostile", args, Path(tmp))
            print_run(name, result["runs"][name])
    runs = result["runs"]
    result["verdicts"] = verdicts(runs["steady"], runs.get("hostile")) if "steady" in runs else {}
    write_result(result, args.out)
    md = args.out.with_suffix(".md")
    md.write_text(markdown(result))
    print(f"wrote {md}\n" + "; ".join(f"{k} = {v}" for k, v in result["verdicts"].items()))
    return 0


def print_run(name: str, r: dict[str, Any]) -> None:
    print(f"[{name}] routes {r['route']['count']} ({r['routes_per_s']}/s) p50 {r['route']['p50_ms']} "
          f"p99 {r['route']['p99_ms']} ms; outcomes {r['outcome']['count']} p50 {r['outcome']['p50_ms']} "
          f"p99 {r['outcome']['p99_ms']} ms (router's own route time p50 {r['route_server_ms']['p50']} "
          f"p99 {r['route_server_ms']['p99']} ms); probes {r['requests'].get('probe', 0)}; errors {r['errors']} "
          f"{r['errors_by_kind']}; peak RSS {r['peak_rss_bytes'] / 1e6:.0f} MB; home "
          f"{r['disk_start']['total'] / 1e6:.1f} -> {r['disk_end']['total'] / 1e6:.1f} MB", flush=True)
    if r["misbehaving_probes"]:
        print(f"[{name}] probes not handled: {', '.join(r['misbehaving_probes'])}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
