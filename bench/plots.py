"""Benchmark plots (matplotlib, Agg backend: files only, no display)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType


def pyplot() -> ModuleType:
    """pyplot on the Agg backend (files only), chosen when a plot is drawn, not at import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def cost_vs_resolution(doc: dict[str, Any], path: Path, detector: str | None = None) -> Path | None:
    """Every approach as a point (mean across folds, with ±1 std whiskers) in cost × resolution."""
    if doc.get("status") != "ok":
        return None
    det = detector or doc["config"]["default_detector"]
    rows = doc["results"][det]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for name, r in rows.items():
        x, y = r["cost_per_10k"]["mean"], r["resolution_rate"]["mean"] * 100
        if not (_finite(x) and _finite(y)):
            continue
        xe, ye = r["cost_per_10k"]["std"], r["resolution_rate"]["std"] * 100
        marker = "s" if name.startswith("monolithic") else "*" if name.startswith("tierwise") else "o"
        size = 14 if marker == "*" else 7
        ax.errorbar(x, y, xerr=xe if _finite(xe) else None, yerr=ye if _finite(ye) else None, fmt=marker,
                    markersize=size, capsize=3, label=name)
    # The tierwise operating curve (threshold-push sweep), per fold.
    pts = []
    for fold in doc.get("folds", []):
        for push, s in fold.get("sweep", {}).items():
            pts.append((float(push), s["cost_per_10k"], s["resolution_rate"] * 100))
    if pts:
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], marker="x", color="grey", alpha=0.6,
                   label="tierwise threshold sweep (per fold)")
    ax.set_xlabel("cost per 10k tasks (USD, recorded)")
    ax.set_ylabel("resolution rate (%)")
    ax.set_title(f"SWE-bench Verified, held-out folds ({det})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def weekly_curves(doc: dict[str, Any], path: Path) -> Path | None:
    """Week-by-week cost per resolved, resolution rate, cost per 10k and token efficiency."""
    if doc.get("status") != "ok":
        return None
    weekly = doc["results"]["weekly_mean"]
    drift = doc["results"]["drift_week"]
    panels = (("cost_per_resolved", "cost per resolved task (USD)"),
              ("cost_per_resolved_vs_oracle", "cost per resolved / reference's\n(recovery yardstick)"),
              ("resolution_rate", "resolution rate"),
              ("token_efficiency_ratio", "token efficiency vs monolithic frontier"))
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for ax, (key, label) in zip(axes.flat, panels, strict=True):
        for name, series in weekly.items():
            ys = series[key]
            ax.plot(range(len(ys)), ys, marker="o", label=name)
        ax.axvline(drift - 0.5, color="red", linestyle="--", alpha=0.6)
        if key == "cost_per_resolved_vs_oracle":  # each arm's pre-drift baseline, and the 2-week window
            recovery = doc["results"].get("recovery", {})
            for line, name in zip(ax.get_lines(), weekly, strict=False):
                base = recovery.get(name, {}).get("mean_curve", {}).get("baseline_ratio")
                if base is not None and math.isfinite(base):
                    ax.axhline(base, color=line.get_color(), linestyle=":", alpha=0.8)
            ax.axvspan(drift - 0.5, drift + 2.5, color="red", alpha=0.06)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("simulated week (dashed line: the drift)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{doc['scenario']}: week by week (drift at week {drift})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def route_under_load(doc: dict[str, Any], path: Path) -> Path | None:
    """Route p50 and p99 without and with concurrent traffic, one pair per measurement (each
    outcome rate, and the /healthz control), with the p99 ratio over each pair."""
    h = doc.get("http", {})
    runs = [(("ingest " + (f"{m['offered_rows_s']:.0f}/s" if m["offered_rows_s"] else "max")), m)
            for m in h.get("route_under_ingest", [])]
    if "route_under_healthz" in h:
        c = h["route_under_healthz"]
        runs.append((f"control: {c['offered_rows_s']:.0f}/s GET /healthz", c))
    if not runs:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    width = 0.2
    for i, (_label, m) in enumerate(runs):
        a, b = m["no_ingest_ms"], m["under_ingest_ms"]
        for j, (stat, shade) in enumerate((("p50", 0.45), ("p99", 0.9))):
            ax.bar(i - 1.5 * width + 2 * j * width, a[stat], width, color=(0.2, 0.4, 0.8, shade),
                   label=f"{stat}, no traffic" if i == 0 else None)
            ax.bar(i - 0.5 * width + 2 * j * width, b[stat], width, color=(0.85, 0.35, 0.1, shade),
                   label=f"{stat}, under traffic" if i == 0 else None)
        ax.annotate(f"p99 x{m['p99_ratio']:.2f}", (i + width, b["p99"]), ha="center", va="bottom", fontsize=9)
    target = doc.get("targets", {}).get("route_p99_ratio")
    ax.set_xticks(range(len(runs)), [label for label, _ in runs])
    ax.set_ylabel("/v1/route latency (ms), sequential client")
    ax.set_title(f"Route latency under concurrent traffic (target: p99 ratio <= {target})" if target
                 else "Route latency under concurrent traffic")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
