"""The analysis figures; kept apart so every computation is testable without matplotlib."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from tierwise.tuner.analysis.drift_windows import Windows
from tierwise.tuner.analysis.kpis import KPI_COLUMNS
from tierwise.tuner.analysis.load import version_key
from tierwise.tuner.analysis.misroutes import OUTCOMES
from tierwise.tuner.drift import DriftReport

_KPI_TITLES = {
    "cost_per_resolved": "cost per resolved task (USD)",
    "resolution_rate": "resolution rate",
    "escalation_rate": "escalation rate",
    "override_rate": "override rate",
}


def plot_kpis(kpis: pd.DataFrame, promos: pd.DataFrame, min_episodes: int = 3) -> Figure:
    """2×2 KPIs over time, one line per policy version, a dashed line where each champion went live."""
    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    fig.suptitle("KPIs over time by policy version (dashed: champion promoted)")
    shown = kpis[kpis["episodes"] >= min_episodes] if not kpis.empty else kpis
    versions = sorted(shown["policy_version"].unique(), key=version_key) if not shown.empty else []
    colors = {v: f"C{i % 10}" for i, v in enumerate(versions)}
    for ax, col in zip(axes, KPI_COLUMNS, strict=True):
        ax.set_title(_KPI_TITLES[col])
        if shown.empty:
            no_data(ax, "no episodes with outcomes in this window")
            continue
        for v in versions:
            part = shown[shown["policy_version"] == v]
            ax.plot(part["at"], part[col], marker="o", ms=4, color=colors[v], label=f"v{v}")
        for _, p in promos.iterrows():
            if pd.isna(p["promoted_at"]):
                continue
            ax.axvline(p["promoted_at"], color=colors.get(str(p["version"]), "grey"), ls="--", lw=1.2)
            ax.annotate(f"v{p['version']} champion", (p["promoted_at"], 1.0), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=8, color="dimgrey")
        if col != "cost_per_resolved":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    if versions:
        axes[0].legend(title="policy version", fontsize=8)
    fig.supxlabel(f"time (UTC; buckets with ≥ {min_episodes} episodes)")
    return fig


def no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_misroute_matrix(matrix: pd.DataFrame) -> Figure:
    """Left: outcome counts per profile/tier (heatmap). Right: under- and over-routed excess cost."""
    fig = Figure(figsize=(13, max(3.5, 0.45 * len(matrix) + 1.8)), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    fig.suptitle("Misroute matrix: profile × routed tier × first-attempt outcome")
    if matrix.empty:
        no_data(ax, "no routed decisions")
        no_data(ax2, "no misroutes")
        return fig
    labels = [f"{p} / {t}" for p, t in matrix.index]
    values = matrix[list(OUTCOMES)].to_numpy(dtype=float)
    share = values / np.maximum(values.sum(axis=1, keepdims=True), 1.0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(OUTCOMES)), OUTCOMES, rotation=25, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylabel("profile / routed tier")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j]:
                ax.text(j, i, f"{int(values[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_title("count (shade = share of the row)", fontsize=10)
    y = np.arange(len(labels))
    ax2.barh(y - 0.2, matrix["under_cost_usd"].astype(float), height=0.4, color="C3",
             label="under-routed (failed cheap attempt)")
    ax2.barh(y + 0.2, matrix["over_cost_usd"].astype(float), height=0.4, color="C0",
             label="over-routed (vs cheaper tier)")
    for i, (u, uc, o, oc) in enumerate(zip(matrix["under"], matrix["under_cost_usd"], matrix["over"],
                                           matrix["over_cost_usd"], strict=True)):
        if u:
            ax2.text(float(uc), i - 0.2, f" {int(u)} (${float(uc):.2f})", va="center", fontsize=7)
        if o:
            ax2.text(float(oc), i + 0.2, f" {int(o)} (${float(oc):.2f})", va="center", fontsize=7)
    ax2.set_yticks(y, labels)
    ax2.invert_yaxis()
    ax2.margins(x=0.25)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax2.set_xlabel("excess cost, USD (labels: decisions and cost)")
    ax2.set_title("what the misroutes cost", fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    ax2.grid(axis="x", alpha=0.3)
    return fig


def plot_queue_signatures(sigs: pd.DataFrame, top: int = 12) -> Figure:
    """Horizontal bars: the most common failure signatures, stacked by profile."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title("Human-queue failure signatures (tiers tried : failure kinds), by profile")
    if sigs.empty:
        no_data(ax, "no tasks reached the human queue in this window")
        return fig
    table = sigs.pivot_table(index="signature", columns="profile", values="n", aggfunc="sum", fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index[:top]].iloc[::-1]
    left = np.zeros(len(table))
    for i, profile in enumerate(table.columns):
        vals = table[profile].to_numpy(dtype=float)
        ax.barh(range(len(table)), vals, left=left, color=f"C{i}", label=str(profile))
        left += vals
    ax.set_yticks(range(len(table)), [str(s) for s in table.index], fontsize=8)
    ax.set_xlabel("queued tasks")
    ax.legend(title="profile", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_calibration(cal: pd.DataFrame, ladder: Sequence[str] | None = None) -> Figure:
    """One panel per tier, one reliability curve per policy version; points sized by count."""
    tiers = [t for t in (ladder or []) if t in set(cal["tier"])] if not cal.empty else []
    tiers += sorted(set(cal["tier"]) - set(tiers)) if not cal.empty else []
    fig = Figure(figsize=(4.2 * max(1, len(tiers)), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(tiers)), sharey=True))
    fig.suptitle("Calibration: predicted success of the routed tier vs observed first-attempt success")
    if not tiers:
        no_data(axes[0], "no decisions with outcomes")
        return fig
    versions = sorted(set(cal["policy_version"]), key=version_key)
    for ax, tier in zip(axes, tiers, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        for i, v in enumerate(versions):
            part = cal[(cal["tier"] == tier) & (cal["policy_version"] == v)]
            if part.empty:
                continue
            label = (f"{'v' + v if v != 'all' else 'all'}: n={int(part['tier_n'].iloc[0])}, "
                     f"Brier {float(part['brier'].iloc[0]):.3f}")
            ax.scatter(part["predicted"], part["observed"], s=15 + 60 * np.sqrt(part["n"].astype(float) / 10),
                       alpha=0.6, color=f"C{i}")
            ax.plot(part["predicted"], part["observed"], color=f"C{i}", lw=1.2, label=label)
        ax.set_title(tier, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("predicted (tier score)")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed first-attempt success")
    return fig


def plot_drift(windows: Windows, report: DriftReport, ladder: Sequence[str] | None = None) -> Figure:
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[2, 2, 2])
    fig.suptitle(f"Drift: training window vs recent window — {windows.how}", fontsize=10)
    if windows.train.empty or windows.recent.empty:
        for ax in (ax1, ax2, ax3):
            no_data(ax, "one window is empty")
        return fig
    mix = pd.DataFrame({
        f"train (n={len(windows.train)})": windows.train["profile"].value_counts(normalize=True),
        f"recent (n={len(windows.recent)})": windows.recent["profile"].value_counts(normalize=True),
    }).fillna(0.0)
    x = np.arange(len(mix))
    for i, col in enumerate(mix.columns):
        ax1.bar(x + (i - 0.5) * 0.4, mix[col], width=0.4, label=col, color=f"C{i}")
    ax1.set_xticks(x, [str(i) for i in mix.index])
    ax1.set_title("profile mix", fontsize=10)
    ax1.legend(fontsize=8)
    names = list(report.features)
    vals = [report.features[n] for n in names]
    colors = ["C3" if n in report.drifted else "C0" for n in names]
    ax2.barh(range(len(names)), [0.0 if math.isnan(v) else v for v in vals], color=colors)
    ax2.set_yticks(range(len(names)), names, fontsize=8)
    ax2.axvline(0.1, color="orange", ls=":", lw=1, label="0.1 watch")
    ax2.axvline(report.threshold, color="red", ls="--", lw=1, label=f"{report.threshold:g} act")
    ax2.set_title("PSI per feature (red: drifted)", fontsize=10)
    ax2.legend(fontsize=8)
    tiers = [t for t in (ladder or []) if t in report.tier_success]
    tiers += [t for t in report.tier_success if t not in tiers]
    xt = np.arange(len(tiers))
    for i, key in enumerate(("train_rate", "recent_rate")):
        ax3.bar(xt + (i - 0.5) * 0.4, [report.tier_success[t][key] for t in tiers], width=0.4,
                color=f"C{i}", label=key.replace("_rate", ""))
    ax3.set_xticks(xt, tiers)
    ax3.set_ylim(0, 1.05)
    ax3.set_title("first-attempt success by routed tier", fontsize=10)
    ax3.legend(fontsize=8)
    return fig


def plot_what_if(summary: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    fig.suptitle(title, fontsize=10)
    if summary.empty:
        no_data(ax1, "no decisions with outcomes to evaluate")
        no_data(ax2, "")
        return fig
    names = [p if i == 0 else f"{p}\nmatch {m:.0%}, ESS {e:.0f}"
             for i, (p, m, e) in enumerate(zip(summary["policy"], summary["match_rate"], summary["ess"], strict=True))]
    y = np.arange(len(names))
    for ax, val, lo, hi, label in ((ax1, "resolution_rate", "resolution_low", "resolution_high", "resolution rate"),
                                   (ax2, "cost_per_resolved", "cpr_low", "cpr_high", "cost per resolved (USD)")):
        v = summary[val].to_numpy(dtype=float)
        low = summary[lo].to_numpy(dtype=float)
        high = summary[hi].to_numpy(dtype=float)
        err = np.vstack([np.where(np.isnan(low), 0.0, np.clip(v - low, 0, None)),
                         np.where(np.isnan(high), 0.0, np.clip(high - v, 0, None))])
        ax.barh(y, v, xerr=err, color=[f"C{i}" for i in range(len(names))], alpha=0.85, capsize=4)
        for i, value in enumerate(v):
            if not math.isnan(value):
                ax.text(0, i, f" {value:.3f}", va="center", fontsize=9, color="white", fontweight="bold")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label + " — off-policy rows: DR estimate, 95% bootstrap CI")
        ax.grid(axis="x", alpha=0.3)
    ax1.set_xlim(0, 1.05)
    return fig
