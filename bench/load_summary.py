"""Turn the load bench's raw samples into the figures the issue asks for, and judge them.

Classification is the contract in one place: normal traffic must get 200 (anything else is an
error); a hostile probe is handled when its status class is one it expects (any 4xx for most),
an error when it gets a 5xx or a connection error, and otherwise a misbehaviour (say a 68 KB
language name routed with 200) that is reported by probe but does not fail the run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from tierwise.bench._server import percentile

NORMAL = ("route", "outcome")
RSS_LIMIT_BYTES = 1 << 30
P99_RATIO_LIMIT = 2.0


@dataclass(frozen=True)
class Sample:
    """One request as the client saw it. ``status`` is None when no HTTP answer came back;
    ``error`` then says why ("connect", "timeout", "reset", "held", "closed")."""

    group: str          # "route", "outcome" or "probe"
    name: str           # endpoint or probe name
    ms: float
    status: int | None
    error: str | None = None
    expect: frozenset[str] = frozenset()
    t: float = 0.0      # seconds since the run started


def classify(s: Sample) -> str:
    """'ok', 'error' or 'unexpected' (hostile probes only)."""
    if s.group in NORMAL:
        return "ok" if s.status == 200 else "error"
    if s.status is None:
        # The server closing a never-finished body is its defence, not a failure; a slow body the
        # server let us hold to the end is a misbehaviour; anything else is a connection error.
        if s.error in s.expect:
            return "ok"
        return "unexpected" if s.error == "held" else "error"
    if s.status >= 500:
        return "error"
    return "ok" if f"{s.status // 100}xx" in s.expect else "unexpected"


def _latency(samples: list[Sample]) -> dict[str, Any]:
    ms = [s.ms for s in samples if s.status == 200]
    return {"count": len(samples), "ok": len(ms), "p50_ms": round(percentile(ms, 50), 2),
            "p99_ms": round(percentile(ms, 99), 2)}


def summarise(samples: list[Sample], duration_s: float) -> dict[str, Any]:
    by_group: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_group[s.group].append(s)
    errors: Counter[str] = Counter()
    error_examples: list[str] = []
    for s in samples:
        if classify(s) != "error":
            continue
        kind = "connection" if s.status is None else ("5xx" if s.status >= 500 else "unexpected_status")
        errors[f"{s.group}:{kind}"] += 1
        if len(error_examples) < 10:
            error_examples.append(f"{s.group} {s.name}: {s.status or s.error}")
    probes: dict[str, dict[str, Any]] = {}
    for s in by_group.get("probe", []):
        p = probes.setdefault(s.name, {"count": 0, "statuses": Counter(), "ok": 0, "unexpected": 0, "error": 0,
                                       "expect": sorted(s.expect)})
        p["count"] += 1
        p["statuses"][str(s.status) if s.status is not None else s.error or "none"] += 1
        p[classify(s)] += 1
    for name, p in probes.items():
        p["statuses"] = dict(sorted(p["statuses"].items()))
        p["p50_ms"] = round(percentile([s.ms for s in by_group["probe"] if s.name == name], 50), 1)
    routes = by_group.get("route", [])
    return {
        "duration_s": round(duration_s, 1),
        "route": _latency(routes),
        "outcome": _latency(by_group.get("outcome", [])),
        "routes_per_s": round(len(routes) / duration_s, 1) if duration_s > 0 else 0.0,
        "requests": {g: len(v) for g, v in sorted(by_group.items())},
        "errors": sum(errors.values()),
        "errors_by_kind": dict(sorted(errors.items())),
        "error_examples": error_examples,
        "probes": dict(sorted(probes.items())),
        "misbehaving_probes": sorted(n for n, p in probes.items() if p["unexpected"] or p["error"]),
    }


def verdicts(steady: dict[str, Any], hostile: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's done-when: 0 errors steady; with hostile requests, peak RSS < 1 GB and route p99
    within 2x of the steady run's."""
    out: dict[str, Any] = {"steady_zero_errors": steady["errors"] == 0}
    if hostile is not None:
        ratio = hostile["route"]["p99_ms"] / steady["route"]["p99_ms"] if steady["route"]["p99_ms"] > 0 else None
        out["hostile_peak_rss_under_1gb"] = hostile.get("peak_rss_bytes", 0) < RSS_LIMIT_BYTES
        out["hostile_route_p99_ratio"] = round(ratio, 2) if ratio is not None else None
        out["hostile_route_p99_within_2x"] = ratio is not None and ratio <= P99_RATIO_LIMIT
        out["hostile_zero_errors"] = hostile["errors"] == 0
    out["met"] = all(v for k, v in out.items() if isinstance(v, bool))
    return out


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def markdown(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        "# make bench-load",
        "",
        f"{result['rate_routes_per_s']} routes/s offered for {result['duration_s']} s per run, "
        f"{result['users']} users, one `tierwise serve` ({result['embedder']}, {result['workers']} worker) on "
        f"127.0.0.1; {result['cpus']} CPUs shared with the load generator and other work "
        f"(load average at start {result['loadavg_start']}).",
        "",
        "| run | routes | route p50 / p99 ms | router's own p50 / p99 ms | outcomes | outcome p50 / p99 ms | "
        "probes | errors | peak RSS MB | home MB start → end (journal+WAL, segments) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        d0, d1, own = r["disk_start"], r["disk_end"], r.get("route_server_ms", {})
        lines.append(
            f"| {name} | {r['route']['count']} ({r['routes_per_s']}/s) | {r['route']['p50_ms']} / "
            f"{r['route']['p99_ms']} | {own.get('p50', '-')} / {own.get('p99', '-')} | "
            f"{r['outcome']['count']} | {r['outcome']['p50_ms']} / {r['outcome']['p99_ms']} | "
            f"{r['requests'].get('probe', 0)} | {r['errors']} | {_mb(r.get('peak_rss_bytes'))} | "
            f"{_mb(d0['total'])} → {_mb(d1['total'])} ({_mb(d1['journal'])}, {_mb(d1['segments'])}) |")
    hostile = runs.get("hostile")
    if hostile and hostile["probes"]:
        lines += ["", "Hostile probes (expected status classes; 5xx or a connection error is an error):", "",
                  "| probe | sent | expect | statuses | p50 ms | verdict |", "|---|---|---|---|---|---|"]
        for name, p in hostile["probes"].items():
            verdict = "error" if p["error"] else ("misbehaves" if p["unexpected"] else "handled")
            statuses = ", ".join(f"{k}×{v}" for k, v in p["statuses"].items())
            lines.append(f"| {name} | {p['count']} | {'/'.join(p['expect'])} | {statuses} | {p['p50_ms']} | "
                         f"{verdict} |")
    v = result["verdicts"]
    lines += ["", "Done-when: " + ", ".join(f"{k} = {v[k]}" for k in v), ""]
    return "\n".join(lines)
