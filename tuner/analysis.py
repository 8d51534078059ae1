"""Misroute analysis: the computations behind ``notebooks/misroutes.ipynb``.

The notebook only loads, calls and shows; everything that decides what counts as a misroute, what
it cost and how a challenger would have done lives here, where it is typed and unit-tested.

Definitions (also printed in the notebook):

- **outcome** of an episode, judged on its *first* attempt: ``resolved``, ``overridden`` (a human
  forced another tier), ``escalated→resolved`` (failed, a later tier resolved it), ``queued`` (ended
  in the human queue or a script), ``failed`` (failed, nothing else happened), ``pending`` (no
  outcome reported yet).
- **under-routed**: routed to a tier below the top of its ladder, and the first attempt did not
  resolve (failed, escalated, overridden or queued). Excess cost: what the failed first attempt cost.
- **over-routed**: routed above the cheapest tier although the logs show a cheaper eligible tier doing
  as well on that profile (its success rate within ``tolerance`` of the routed tier's), measured on
  first attempts re-weighted by 1/propensity (SNIPS, so greedy choices do not bias it; exploration is
  what makes it possible) or, for the cheaper tier only, on escalation attempts (a lower bound).
  Excess cost: the first attempt's cost minus the mean first-attempt cost of that cheaper tier on the
  profile.
- Both rates must rest on enough data (an effective sample size >= ``min_n``); where exploration is
  too thin the decision is marked "not assessable" rather than "ok-by-default" in its evidence column.
- Explored decisions (the router picked a random tier on purpose) are evidence, not misroutes: they
  are labelled but left out of the matrix and the top list.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.telemetry.warehouse import Warehouse, kpi_select
from tierwise.tuner.drift import DriftReport, drift_report
from tierwise.tuner.ope import estimate_policy, ips_weights, snips
from tierwise.tuner.replay import replay_tier

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTCOMES: tuple[str, ...] = ("resolved", "overridden", "escalated→resolved", "queued", "failed", "pending")
FAILED_OUTCOMES = frozenset({"overridden", "escalated→resolved", "queued", "failed"})
KPI_COLUMNS: tuple[str, ...] = ("cost_per_resolved", "resolution_rate", "escalation_rate", "override_rate")
DRIFT_NUMERIC: tuple[str, ...] = (
    "complexity", "prompt_tokens", "n_files", "diff_lines", "modules_touched", "repo_files",
)
DRIFT_CATEGORICAL: tuple[str, ...] = ("profile", "expected_output", "harness")
_FREQS: tuple[tuple[str, float], ...] = (
    ("1s", 1), ("5s", 5), ("10s", 10), ("30s", 30), ("1min", 60), ("5min", 300), ("15min", 900),
    ("1h", 3600), ("6h", 21600), ("1D", 86400), ("7D", 604800),
)
_FAR = 1e15  # an epoch second far beyond any real timestamp: the open end of a window


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Telemetry:
    """One window of telemetry, as DataFrames; every table is restricted to the window's decisions."""

    decisions: pd.DataFrame
    attempts: pd.DataFrame
    escalations: pd.DataFrame
    queue: pd.DataFrame
    episodes: pd.DataFrame
    lo: float
    hi: float

    def describe(self) -> str:
        if self.decisions.empty:
            return "no decisions in this window"
        ts = to_utc(self.decisions["ts"])
        versions = ", ".join(sorted(map(str, self.decisions["policy_version"].unique()), key=_version_key))
        with_outcome = int(self.episodes["has_outcome"].sum()) if not self.episodes.empty else 0
        return (f"{len(self.decisions)} decisions ({with_outcome} with outcomes), {len(self.attempts)} attempts, "
                f"{len(self.queue)} queued; {ts.min():%Y-%m-%d %H:%M:%S} → {ts.max():%Y-%m-%d %H:%M:%S} UTC; "
                f"policy versions: {versions}")


def resolve_home(value: str | os.PathLike[str] | None) -> Path:
    """The tierwise home: the parameter, else ``$TIERWISE_HOME``, else ``./var``.

    A relative path is tried against the working directory and then the repository root, because
    Jupyter runs the kernel in ``notebooks/`` while ``make serve`` writes ``./var`` at the root.
    """
    raw = Path(value if value is not None else os.environ.get("TIERWISE_HOME", "var"))
    if raw.is_absolute():
        return raw
    for base in (Path.cwd(), REPO_ROOT):
        if (base / raw / "telemetry").exists():
            return (base / raw).resolve()
    return (REPO_ROOT / raw).resolve()


def _as_date(value: date | str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def window_bounds(start: date | str | None, end: date | str | None) -> tuple[float, float]:
    """Epoch seconds [lo, hi) for UTC dates ``start`` .. ``end`` inclusive; None leaves that side open."""
    s, e = _as_date(start), _as_date(end)
    if s is not None and e is not None and e < s:
        raise ValueError(f"END_DATE {e} is before START_DATE {s}")
    lo = -_FAR if s is None else datetime(s.year, s.month, s.day, tzinfo=UTC).timestamp()
    hi = _FAR if e is None else (datetime(e.year, e.month, e.day, tzinfo=UTC) + timedelta(days=1)).timestamp()
    return lo, hi


def load_telemetry(wh: Warehouse, start: date | str | None = None, end: date | str | None = None) -> Telemetry:
    """Decisions made in the window, and the attempts, escalations, queue items and episodes they own."""
    lo, hi = window_bounds(start, end)
    in_window = "decision_id IN (SELECT decision_id FROM decisions WHERE ts >= ? AND ts < ?)"
    p = [lo, hi]
    return Telemetry(
        decisions=wh.df("SELECT * FROM decisions WHERE ts >= ? AND ts < ? ORDER BY ts", p),
        attempts=wh.df(f"SELECT * FROM attempts WHERE {in_window} ORDER BY ts, attempt", p),
        escalations=wh.df(f"SELECT * FROM escalations WHERE {in_window} ORDER BY ts", p),
        queue=wh.df("SELECT q.*, r.resolved_by, r.ts AS resolved_ts FROM queue q "
                    f"LEFT JOIN queue_resolutions r USING (item_id) WHERE q.{in_window} ORDER BY q.ts", p),
        episodes=wh.df("SELECT * FROM episodes WHERE ts >= ? AND ts < ? ORDER BY ts", p),
        lo=lo, hi=hi,
    )


def kpi_table(wh: Warehouse, tel: Telemetry, by: str = "policy_version") -> pd.DataFrame:
    """The service's own KPI definitions (``kpi_select``) over the window's episodes."""
    source = "(SELECT * FROM episodes WHERE ts >= ? AND ts < ?)"
    return wh.df(kpi_select(by, source=source) + " ORDER BY 1", [tel.lo, tel.hi, tel.lo, tel.hi])


def to_utc(ts: Any) -> Any:
    """Epoch seconds (scalar or Series) as timezone-aware UTC timestamps."""
    return pd.to_datetime(ts, unit="s", utc=True)


def _version_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def _loads(raw: Any, default: Any) -> Any:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return default
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return default
    return raw


def _text(x: Any) -> str:
    return "" if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else str(x)


def _bool(x: Any) -> bool:
    return bool(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) and x is not pd.NA else False


# ---------------------------------------------------------------------------------------------
# Policy versions and promotions
# ---------------------------------------------------------------------------------------------

class RegistryLike(Protocol):
    """The part of ``tierwise.service.policy.registry.PolicyRegistry`` this module reads."""

    def versions(self) -> list[Any]: ...
    def alias(self, alias: str) -> str | None: ...
    def history(self) -> list[str]: ...
    def load(self, version: str) -> RoutingPolicy: ...


def open_registry(home: Path) -> RegistryLike | None:
    """The MLflow policy registry of ``home``, or None when there is none (never creates one).

    A registry that is there but cannot be read is an error, not None: a notebook that silently
    drops the promotions would misread every KPI by version."""
    from tierwise.service.settings import load_settings

    settings = load_settings(home=home)
    if not settings.registry_uri and not (home / "mlflow" / "mlflow.db").exists():
        return None
    from tierwise.service.policy.registry import make_registry

    reg = make_registry(settings)
    return reg if reg.versions() else None


def promotions(registry: RegistryLike | None, decisions: pd.DataFrame) -> pd.DataFrame:
    """When each champion went live: one row per version, oldest first.

    With a registry, the champion sequence is its ``history()`` plus the current ``champion`` alias;
    the registry does not record when an alias moved, so ``promoted_at`` is the first decision that
    version served (when it served any), else its registration time. Versions that served traffic but
    are missing from the sequence (a rollback pops history) are added from telemetry. Without a
    registry, every policy version's first decision is its promotion.
    """
    first: dict[str, float] = {}
    if not decisions.empty:
        first = {str(k): float(v) for k, v in decisions.groupby("policy_version")["ts"].min().items()}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    if registry is not None:
        try:
            created = {str(v.version): float(v.creation_timestamp) / 1000.0 for v in registry.versions()}
            sequence = [*registry.history(), registry.alias("champion")]
        except Exception:  # registry unreadable: fall back to telemetry below
            created, sequence = {}, []
        for version in (str(v) for v in sequence if v is not None):
            if version in seen:
                continue
            seen.add(version)
            served = first.get(version)
            registered = created.get(version)
            at = served if served is not None else registered
            if at is None:
                continue
            rows.append({"version": version, "promoted_at": at, "registered_at": registered,
                         "first_served": served, "source": "registry"})
    for version, served in first.items():
        if version not in seen:
            rows.append({"version": version, "promoted_at": served, "registered_at": None,
                         "first_served": served, "source": "telemetry (first decision)"})
    out = pd.DataFrame(rows, columns=["version", "promoted_at", "registered_at", "first_served", "source"])
    for col in ("promoted_at", "registered_at", "first_served"):
        out[col] = to_utc(pd.to_numeric(out[col], errors="coerce"))
    return out.sort_values("promoted_at", kind="stable").reset_index(drop=True)


def policy_from_home(home: Path) -> RoutingPolicy:
    """The last policy the service served (its on-disk cache), else the bootstrap policy file."""
    from tierwise.service.paths import default_policy_file

    cache = home / "policy" / "last_good.json"
    path = cache if cache.exists() else default_policy_file()
    return parse_policy(path.read_text())


def shifted_policy(policy: RoutingPolicy, delta: float) -> RoutingPolicy:
    """``policy`` with every threshold moved by ``delta`` (clipped to [0, 1]): an illustrative candidate.

    A negative delta lets cheaper tiers clear their threshold more often.
    """
    data = json.loads(policy.canonical_json())
    data["thresholds"] = {h: {p: min(1.0, max(0.0, float(t) + delta)) for p, t in row.items()}
                          for h, row in data["thresholds"].items()}
    data["description"] = f"illustrative: policy {policy.version} with thresholds {delta:+.2f}"
    return parse_policy(data, version=f"{policy.version}{delta:+.2f}-illustrative")


@dataclass(frozen=True)
class Contenders:
    champion: RoutingPolicy
    challenger: RoutingPolicy
    challenger_is_real: bool
    note: str

    @property
    def challenger_label(self) -> str:
        if self.challenger_is_real:
            return f"challenger v{self.challenger.version}"
        return f"ILLUSTRATIVE candidate ({self.challenger.version})"


def contenders(registry: RegistryLike | None, home: Path, shift: float = -0.05) -> Contenders:
    """Champion and challenger: from the registry aliases; else an illustrative threshold shift."""
    champion: RoutingPolicy | None = None
    notes: list[str] = []
    if registry is not None:
        try:
            version = registry.alias("champion")
            if version is not None:
                champion = registry.load(version)
            challenger_version = registry.alias("challenger")
            if champion is not None and challenger_version is not None:
                return Contenders(champion, registry.load(challenger_version), True,
                                  f"champion v{champion.version} vs challenger v{challenger_version} "
                                  "(registry aliases)")
            notes.append("the registry has no 'challenger' alias")
        except Exception as exc:  # an unreadable version must not stop the analysis
            notes.append(f"could not load a policy from the registry ({type(exc).__name__}: {exc})")
    else:
        notes.append("no policy registry under this home")
    if champion is None:
        champion = policy_from_home(home)
        notes.append(f"champion = the last served policy on disk (version {champion.version})")
    candidate = shifted_policy(champion, shift)
    notes.append(f"comparing against an ILLUSTRATIVE candidate: the champion with every threshold {shift:+.2f}; "
                 "it is not a policy anyone proposed")
    return Contenders(champion, candidate, False, "; ".join(notes))


# ---------------------------------------------------------------------------------------------
# KPIs over time
# ---------------------------------------------------------------------------------------------

def pick_freq(ts: pd.Series, max_buckets: int = 30) -> str:
    """The finest pandas frequency that cuts the span of ``ts`` (epoch seconds) into <= max_buckets."""
    if ts.empty:
        return "1D"
    span = float(ts.max() - ts.min())
    for freq, seconds in _FREQS:
        if span / seconds <= max_buckets:
            return freq
    return _FREQS[-1][0]


def kpis_over_time(episodes: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Per time bucket and policy version: episodes, resolution, cost per resolved, escalation, override.

    Same definitions as the ``kpi_by_*`` views: rates over episodes with an outcome, cost per
    resolved = total cost / resolved episodes. ``at`` is the mean time of the version's episodes in
    the bucket (where its point is drawn, so a bucket that straddles a promotion plots each version
    on its own side of the promotion line).
    """
    cols = ["bucket", "at", "policy_version", "episodes", *KPI_COLUMNS]
    e = episodes[episodes["has_outcome"].astype(bool)] if not episodes.empty else episodes
    if e.empty:
        return pd.DataFrame(columns=cols)
    freq = freq or pick_freq(e["ts"])
    frame = pd.DataFrame({
        "bucket": to_utc(e["ts"]).dt.floor(freq),
        "ts": e["ts"].astype(float),
        "policy_version": e["policy_version"].astype(str),
        "resolved": e["resolved"].astype(float),
        "cost": e["cost_usd"].astype(float),
        "escalated": e["escalated"].astype(float),
        "overridden": e["overridden"].astype(float),
    })
    g = frame.groupby(["bucket", "policy_version"], sort=True)
    out = pd.DataFrame({
        "at": to_utc(g["ts"].mean()),
        "episodes": g.size(),
        "cost_per_resolved": g["cost"].sum() / g["resolved"].sum().replace(0.0, np.nan),
        "resolution_rate": g["resolved"].mean(),
        "escalation_rate": g["escalated"].mean(),
        "override_rate": g["overridden"].mean(),
    }).reset_index()
    return out[cols]


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
    versions = sorted(shown["policy_version"].unique(), key=_version_key) if not shown.empty else []
    colors = {v: f"C{i % 10}" for i, v in enumerate(versions)}
    for ax, col in zip(axes, KPI_COLUMNS, strict=True):
        ax.set_title(_KPI_TITLES[col])
        if shown.empty:
            _no_data(ax, "no episodes with outcomes in this window")
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


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------
# Misroutes
# ---------------------------------------------------------------------------------------------

def episode_outcome(row: Mapping[str, Any]) -> str:
    """One of OUTCOMES for an episodes-view row (see the module docstring)."""
    if not _bool(row.get("has_outcome")):
        return "pending"
    if _bool(row.get("first_resolved")):
        return "resolved"
    if _bool(row.get("first_overridden")):
        return "overridden"
    if _bool(row.get("resolved")):
        return "escalated→resolved"
    if _bool(row.get("queued")):
        return "queued"
    return "failed"


def _first_attempts(decisions: pd.DataFrame, episodes: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per decision with an outcome: profile, tier, propensity, first success and cost."""
    if decisions.empty or attempts.empty:
        return pd.DataFrame(columns=["decision_id", "profile", "tier", "propensity", "explored", "success", "cost"])
    a0 = attempts[attempts["attempt"] == 0][["decision_id", "resolved", "cost_usd"]]
    d = decisions[["decision_id", "profile", "tier", "propensity", "explored"]].merge(a0, on="decision_id")
    return d.rename(columns={"resolved": "success", "cost_usd": "cost"}).assign(
        success=lambda f: f["success"].astype(float), cost=lambda f: f["cost"].astype(float))


def tier_evidence(decisions: pd.DataFrame, episodes: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """What the logs say about each tier on each profile.

    ``first_success`` is the SNIPS estimate of "route every task of this profile to this tier"
    from first attempts (each weighted 1/propensity), so a tier the policy only picks on easy tasks is
    not flattered; ``n_first`` / ``n_explored`` say how many rows it rests on. ``escalated_success`` is
    the plain success rate of attempts that reached the tier by escalation (harder tasks: a lower bound).
    """
    cols = ["profile", "tier", "n_first", "n_explored", "first_success", "first_ess", "first_cost", "n_escalated",
            "escalated_success"]
    f = _first_attempts(decisions, episodes, attempts)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for profile, group in f.groupby("profile"):
        for tier in sorted(group["tier"].unique()):
            w = ips_weights(group["tier"].to_numpy(), group["propensity"].to_numpy(dtype=float),
                            np.full(len(group), tier, dtype=object))
            mask = group["tier"] == tier
            w_sq = float(w @ w)
            rows[(str(profile), str(tier))] = {
                "n_first": int(mask.sum()), "n_explored": int((mask & group["explored"].astype(bool)).sum()),
                "first_success": snips(group["success"].to_numpy(dtype=float), w),
                "first_ess": float(w.sum()) ** 2 / w_sq if w_sq > 0 else 0.0,
                "first_cost": float(group.loc[mask, "cost"].mean()),
            }
    if not attempts.empty and not decisions.empty:
        later = attempts[attempts["attempt"] > 0].merge(decisions[["decision_id", "profile"]], on="decision_id")
        for (profile, tier), group in later.groupby(["profile", "tier"]):
            entry = rows.setdefault((str(profile), str(tier)), {"n_first": 0, "n_explored": 0, "first_ess": 0.0,
                                                                "first_success": np.nan, "first_cost": np.nan})
            entry["n_escalated"] = len(group)
            entry["escalated_success"] = float(group["resolved"].astype(float).mean())
    out = pd.DataFrame([{"profile": p, "tier": t, **v} for (p, t), v in rows.items()], columns=cols)
    out["n_escalated"] = out["n_escalated"].fillna(0).astype(int)
    return out.sort_values(["profile", "tier"]).reset_index(drop=True)


def _evidence_rate(ev: Mapping[tuple[str, str], Mapping[str, Any]], profile: str, tier: str,
                   min_n: int, *, escalations: bool) -> tuple[float, str] | None:
    """A tier's success rate on a profile: the IPS first-attempt estimate when its effective sample
    size is >= min_n, else (only if ``escalations``) the escalation success rate over >= min_n attempts.

    Escalation attempts see the tasks a cheaper tier failed, so their rate is a lower bound: fine as
    evidence *for* a cheaper tier (conservative), never used for the routed tier (it would flatter
    the cheaper one).
    """
    e = ev.get((profile, tier))
    if e is None:
        return None
    if float(e.get("first_ess", 0.0)) >= min_n and not math.isnan(float(e["first_success"])):
        return float(e["first_success"]), "first attempts, IPS"
    n_esc = e.get("n_escalated", 0)
    if escalations and not pd.isna(n_esc) and int(n_esc) >= min_n:
        return float(e["escalated_success"]), "escalations, a lower bound"
    return None


def label_misroutes(tel: Telemetry, ladder: Sequence[str] | None = None, *, tolerance: float = 0.05,
                    min_n: int = 10, evidence: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per decision: outcome, misroute kind (under / over / ok), cheaper tier, excess cost.

    ``ladder`` orders tiers cheapest first; by default each decision's own ``tier_rank`` is used.
    """
    cols = ["decision_id", "ts", "policy_version", "profile", "tier", "tier_rank", "explored", "outcome",
            "kind", "cheaper_tier", "evidence", "cost_usd", "first_cost_usd", "excess_cost_usd"]
    if tel.decisions.empty:
        return pd.DataFrame(columns=cols)
    ev_frame = evidence if evidence is not None else tier_evidence(tel.decisions, tel.episodes, tel.attempts)
    ev = {(str(r["profile"]), str(r["tier"])): r for r in ev_frame.to_dict("records")}
    eps = tel.episodes.set_index("decision_id") if not tel.episodes.empty else pd.DataFrame()
    first_cost: dict[str, float] = {}
    if not tel.attempts.empty:
        a0 = tel.attempts[tel.attempts["attempt"] == 0]
        first_cost = dict(zip(a0["decision_id"], a0["cost_usd"].astype(float), strict=True))
    rank_of = {t: i for i, t in enumerate(ladder)} if ladder is not None else None
    out: list[dict[str, Any]] = []
    for d in tel.decisions.to_dict("records"):
        did = str(d["decision_id"])
        ep: dict[str, Any] = eps.loc[did].to_dict() if did in eps.index else {"has_outcome": False}
        outcome = episode_outcome(ep)
        profile, tier = str(d["profile"]), str(d["tier"])
        rank = rank_of[tier] if rank_of is not None and tier in rank_of else int(d["tier_rank"])
        top = (len(rank_of) if rank_of is not None else int(d["ladder_size"])) - 1
        fc = first_cost.get(did, float("nan"))
        kind, cheaper, why, excess = "ok", None, "", 0.0
        if outcome in FAILED_OUTCOMES and rank < top:
            kind, why, excess = "under", "first attempt did not resolve on a non-top tier", fc
        elif outcome != "pending" and rank > 0:
            routed = _evidence_rate(ev, profile, tier, min_n, escalations=False)
            if routed is None:
                why = f"over-routing not assessable: too little exploration of {tier} on {profile}"
            eligible = [str(t) for t in _loads(d.get("eligible"), [])]
            # ``eligible`` is in ladder order, so the tiers before the routed one are the cheaper ones.
            below = eligible[: eligible.index(tier)] if tier in eligible else []
            if routed is not None:
                for t in below:  # cheapest first
                    alt = _evidence_rate(ev, profile, t, min_n, escalations=True)
                    if alt is not None and alt[0] >= routed[0] - tolerance:
                        kind, cheaper = "over", t
                        why = (f"{t} succeeds {alt[0]:.0%} on {profile} ({alt[1]}) vs {tier} {routed[0]:.0%} "
                               f"({routed[1]})")
                        alt_cost = float(ev[(profile, t)].get("first_cost", float("nan")))
                        excess = max(0.0, fc - alt_cost) if not math.isnan(alt_cost) else float("nan")
                        break
        out.append({"decision_id": did, "ts": float(d["ts"]), "policy_version": str(d["policy_version"]),
                    "profile": profile, "tier": tier, "tier_rank": rank, "explored": _bool(d.get("explored")),
                    "outcome": outcome, "kind": kind, "cheaper_tier": cheaper, "evidence": why,
                    "cost_usd": float(ep.get("cost_usd", 0.0) or 0.0), "first_cost_usd": fc,
                    "excess_cost_usd": excess})
    return pd.DataFrame(out, columns=cols)


def misroute_matrix(labels: pd.DataFrame, include_explored: bool = False) -> pd.DataFrame:
    """Counts per (profile, routed tier) × outcome, plus under / over counts and their excess cost."""
    lab = labels if include_explored or labels.empty else labels[~labels["explored"].astype(bool)]
    cols = [*OUTCOMES, "under", "over", "decisions", "under_cost_usd", "over_cost_usd"]
    if lab.empty:
        return pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=["profile", "tier"]))
    counts = pd.crosstab([lab["profile"], lab["tier_rank"], lab["tier"]], lab["outcome"])
    counts = counts.reindex(columns=list(OUTCOMES), fill_value=0)
    g = lab.groupby(["profile", "tier_rank", "tier"])
    counts["under"] = g["kind"].apply(lambda k: int((k == "under").sum()))
    counts["over"] = g["kind"].apply(lambda k: int((k == "over").sum()))
    counts["decisions"] = g.size()
    excess = lab.assign(u=lab["excess_cost_usd"].where(lab["kind"] == "under", 0.0).fillna(0.0),
                        o=lab["excess_cost_usd"].where(lab["kind"] == "over", 0.0).fillna(0.0))
    ge = excess.groupby(["profile", "tier_rank", "tier"])
    counts["under_cost_usd"] = ge["u"].sum()
    counts["over_cost_usd"] = ge["o"].sum()
    counts = counts.reset_index(level="tier_rank", drop=True)
    counts.columns.name = None
    return counts[cols]


def misroute_summary(labels: pd.DataFrame) -> str:
    lab = labels[~labels["explored"].astype(bool)] if not labels.empty else labels
    done = lab[lab["outcome"] != "pending"] if not lab.empty else lab
    if done.empty:
        return "no routed decisions with outcomes in this window"
    parts = []
    for kind, word in (("under", "under-routed"), ("over", "over-routed")):
        k = done[done["kind"] == kind]
        parts.append(f"{word}: {len(k)} of {len(done)} ({len(k) / len(done):.1%}), "
                     f"excess cost ${k['excess_cost_usd'].fillna(0).sum():.2f}")
    total = float(done["cost_usd"].sum())
    text = "; ".join(parts) + f"; total spend ${total:.2f} (explored decisions excluded)"
    blind = done[done["evidence"].str.startswith("over-routing not assessable")]
    if not blind.empty:
        pairs = ", ".join(sorted({f"{p}/{t}" for p, t in zip(blind["profile"], blind["tier"], strict=True)}))
        text += (f". {len(blind)} decision(s) above the cheapest tier could not be checked for over-routing "
                 f"(too little exploration: {pairs})")
    return text


def plot_misroute_matrix(matrix: pd.DataFrame) -> Figure:
    """Left: outcome counts per profile/tier (heatmap). Right: under- and over-routed excess cost."""
    fig = Figure(figsize=(13, max(3.5, 0.45 * len(matrix) + 1.8)), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    fig.suptitle("Misroute matrix: profile × routed tier × first-attempt outcome")
    if matrix.empty:
        _no_data(ax, "no routed decisions")
        _no_data(ax2, "no misroutes")
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


def _fmt_scores(raw: Any) -> str:
    scores = _loads(raw, {})
    if not isinstance(scores, dict):
        return ""
    return ", ".join(f"{k} {float(v):.2f}" for k, v in sorted(scores.items(), key=lambda kv: -float(kv[1])))


def top_misroutes(labels: pd.DataFrame, decisions: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The costliest misroutes (explored decisions left out) with the signals behind each decision."""
    cols = ["decision_id", "task_id", "kind", "profile", "tier", "outcome", "excess_cost_usd", "cheaper_tier",
            "evidence", "profile_scores", "tier_scores", "complexity", "reasons", "prompt_preview"]
    if labels.empty:
        return pd.DataFrame(columns=cols)
    bad = labels[(labels["kind"] != "ok") & ~labels["explored"].astype(bool)]
    bad = bad.sort_values(["excess_cost_usd", "ts"], ascending=[False, True], na_position="last").head(n)
    d = decisions.set_index("decision_id")
    rows = []
    for r in bad.to_dict("records"):
        dec = d.loc[r["decision_id"]]
        reasons = _loads(dec.get("reasons"), [])
        rows.append({
            "decision_id": r["decision_id"], "task_id": dec.get("task_id"), "kind": r["kind"],
            "profile": r["profile"], "tier": r["tier"], "outcome": r["outcome"],
            "excess_cost_usd": r["excess_cost_usd"], "cheaper_tier": r["cheaper_tier"], "evidence": r["evidence"],
            "profile_scores": _fmt_scores(dec.get("profile_scores")),
            "tier_scores": _fmt_scores(dec.get("tier_scores")),
            "complexity": dec.get("complexity"),
            "reasons": " | ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons),
            "prompt_preview": dec.get("prompt_preview"),
        })
    return pd.DataFrame(rows, columns=cols).reset_index(drop=True)


def explain(row: Mapping[str, Any], attempts: pd.DataFrame | None = None) -> str:
    """A few lines on one misrouted decision: what the router saw, why it chose, what happened."""
    lines = [f"[{row['kind']}-routed] {row.get('task_id') or row['decision_id']}: {row['profile']} → {row['tier']}, "
             f"outcome {row['outcome']}, excess ${float(row['excess_cost_usd'] or 0):.4f}",
             f"  prompt: {str(row.get('prompt_preview') or '')[:160]!r}",
             f"  profile scores: {row['profile_scores']}",
             f"  tier scores:    {row['tier_scores']}"]
    if row.get("evidence"):
        lines.append(f"  evidence:       {row['evidence']}")
    lines += [f"  reason: {r}" for r in str(row.get("reasons") or "").split(" | ") if r]
    if attempts is not None and not attempts.empty:
        mine = attempts[attempts["decision_id"] == row["decision_id"]].sort_values("attempt")
        for a in mine.to_dict("records"):
            what = "resolved" if _bool(a["resolved"]) else f"failed ({_text(a['failure']) or 'no kind'})"
            if _text(a.get("overridden_to")):
                what += f", overridden to {a['overridden_to']}"
            lines.append(f"  attempt {a['attempt']} on {a['tier']}: {what}, ${float(a['cost_usd']):.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Human queue
# ---------------------------------------------------------------------------------------------

def queue_signatures(queue: pd.DataFrame) -> pd.DataFrame:
    """Failure signatures of queued tasks: tiers tried → failure kinds, counted per profile.

    Items a deterministic script took over (``kind`` other than ``human``) keep a ``[script]`` prefix."""
    cols = ["kind", "profile", "tiers_tried", "failure_kinds", "signature", "n", "open"]
    if queue.empty:
        return pd.DataFrame(columns=cols)
    q = pd.DataFrame({
        "kind": queue["kind"].astype(str) if "kind" in queue.columns else "human",
        "profile": queue["profile"].astype(str),
        "tiers_tried": [" → ".join(_loads(x, [])) for x in queue["tiers_tried"]],
        "failure_kinds": [", ".join(_loads(x, [])) or "(override only)" for x in queue["failure_kinds"]],
        "open": queue["resolved_by"].isna() if "resolved_by" in queue.columns else True,
    })
    q["signature"] = q["tiers_tried"] + " : " + q["failure_kinds"]
    q.loc[q["kind"] != "human", "signature"] = "[" + q["kind"] + "] " + q["signature"]
    out = q.groupby(["kind", "profile", "tiers_tried", "failure_kinds", "signature"], as_index=False).agg(
        n=("signature", "size"), open=("open", "sum"))
    out["open"] = out["open"].astype(int)
    return out.sort_values(["n", "profile"], ascending=[False, True]).reset_index(drop=True)[cols]


def plot_queue_signatures(sigs: pd.DataFrame, top: int = 12) -> Figure:
    """Horizontal bars: the most common failure signatures, stacked by profile."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title("Human-queue failure signatures (tiers tried : failure kinds), by profile")
    if sigs.empty:
        _no_data(ax, "no tasks reached the human queue in this window")
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


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

def calibration_table(decisions: pd.DataFrame, episodes: pd.DataFrame, bins: int = 10,
                      by_version: bool = True) -> pd.DataFrame:
    """Predicted success of the routed tier (its logged tier score) vs the first attempt's outcome.

    One row per (policy version, tier, probability bin), bins of equal width on [0, 1]; ``brier`` and
    ``tier_n`` are the Brier score and row count of that version's tier. Versions are kept apart by
    default because each scores with its own priors or learned model; ``by_version=False`` pools them
    (``policy_version`` is then "all").
    """
    cols = ["policy_version", "tier", "bin", "predicted", "observed", "n", "brier", "tier_n"]
    if decisions.empty or episodes.empty:
        return pd.DataFrame(columns=cols)
    ep = episodes[episodes["has_outcome"].astype(bool)][["decision_id", "first_resolved"]]
    d = decisions[["decision_id", "policy_version", "tier", "tier_scores"]].merge(ep, on="decision_id")
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(predicted=[float(_loads(s, {}).get(t, np.nan)) for s, t in zip(d["tier_scores"], d["tier"],
                                                                                   strict=True)],
                 observed=d["first_resolved"].astype(float),
                 policy_version=d["policy_version"].astype(str) if by_version else "all",
                 ).dropna(subset=["predicted"])
    d["bin"] = np.minimum((d["predicted"] * bins).astype(int), bins - 1)
    d["sq"] = (d["predicted"] - d["observed"]) ** 2
    keys = ["policy_version", "tier"]
    per = d.groupby(keys).agg(brier=("sq", "mean"), tier_n=("sq", "size")).reset_index()
    out = d.groupby([*keys, "bin"], as_index=False).agg(predicted=("predicted", "mean"),
                                                        observed=("observed", "mean"), n=("observed", "size"))
    out = out.merge(per, on=keys)
    out = out.sort_values(["tier", "policy_version", "bin"], key=lambda c: c.map(_version_key)
                          if c.name == "policy_version" else c).reset_index(drop=True)
    return out[cols]


def plot_calibration(cal: pd.DataFrame, ladder: Sequence[str] | None = None) -> Figure:
    """One panel per tier, one reliability curve per policy version; points sized by count."""
    tiers = [t for t in (ladder or []) if t in set(cal["tier"])] if not cal.empty else []
    tiers += sorted(set(cal["tier"]) - set(tiers)) if not cal.empty else []
    fig = Figure(figsize=(4.2 * max(1, len(tiers)), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(tiers)), sharey=True))
    fig.suptitle("Calibration: predicted success of the routed tier vs observed first-attempt success")
    if not tiers:
        _no_data(axes[0], "no decisions with outcomes")
        return fig
    versions = sorted(set(cal["policy_version"]), key=_version_key)
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


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Windows:
    train: pd.DataFrame
    recent: pd.DataFrame
    split_at: pd.Timestamp | None
    how: str


def drift_frame(decisions: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """Decisions with the first attempt's outcome (NaN while pending), ready for ``drift_report``."""
    if decisions.empty:
        return decisions.assign(first_resolved=pd.Series(dtype=float))
    if episodes.empty:
        return decisions.assign(first_resolved=np.nan)
    ep = episodes[["decision_id", "has_outcome", "first_resolved"]]
    out = decisions.merge(ep, on="decision_id", how="left")
    out["first_resolved"] = out["first_resolved"].astype(float).where(out["has_outcome"].astype(bool))
    return out.drop(columns=["has_outcome"])


def split_windows(frame: pd.DataFrame, promos: pd.DataFrame, split_at: str | datetime | None = None) -> Windows:
    """Training window vs recent window.

    ``split_at`` if given; else the latest promotion inside the data (the champion was tuned on what
    came before it and serves what came after); else the median decision time.
    """
    if frame.empty:
        return Windows(frame, frame, None, "no data")
    ts = to_utc(frame["ts"])
    if split_at is not None:
        at = pd.Timestamp(split_at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        how = f"given split {at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        inside = promos[(promos["promoted_at"] > ts.min()) & (promos["promoted_at"] <= ts.max())] \
            if not promos.empty else promos
        if not inside.empty:
            last = inside.iloc[-1]
            at = last["promoted_at"]
            how = f"before vs after v{last['version']} became champion ({at:%Y-%m-%d %H:%M:%S} UTC)"
        else:
            at = ts.quantile(0.5)
            how = f"first vs second half of the window (split {at:%Y-%m-%d %H:%M:%S} UTC, no promotion inside)"
    mask = (ts < at).to_numpy()
    return Windows(frame[mask], frame[~mask], at, how)


def drift(windows: Windows, *, threshold: float = 0.2, min_rows: int = 30) -> DriftReport:
    """``tierwise.tuner.drift.drift_report`` on the notebook's features, with per-tier first-attempt success."""
    return drift_report(windows.train, windows.recent, numeric=list(DRIFT_NUMERIC),
                        categorical=list(DRIFT_CATEGORICAL), tier_col="tier", resolved_col="first_resolved",
                        threshold=threshold, min_rows=min_rows)


def plot_drift(windows: Windows, report: DriftReport, ladder: Sequence[str] | None = None) -> Figure:
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[2, 2, 2])
    fig.suptitle(f"Drift: training window vs recent window — {windows.how}", fontsize=10)
    if windows.train.empty or windows.recent.empty:
        for ax in (ax1, ax2, ax3):
            _no_data(ax, "one window is empty")
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


# ---------------------------------------------------------------------------------------------
# What-if (off-policy)
# ---------------------------------------------------------------------------------------------

def replay_targets(decisions: pd.DataFrame, episodes: pd.DataFrame,
                   policies: Mapping[str, RoutingPolicy]) -> pd.DataFrame:
    """For each decision with an outcome: the logged tier, propensity, episode outcome, and the tier
    each policy would pick (``tierwise.tuner.replay.replay_tier``: the service's own decision code, no exploration)."""
    base = ["decision_id", "profile", "logged", "propensity", "resolved", "cost_usd"]
    if decisions.empty or episodes.empty:
        return pd.DataFrame(columns=[*base, *policies])
    ep = episodes[episodes["has_outcome"].astype(bool)][["decision_id", "resolved", "cost_usd"]]
    d = decisions.merge(ep, on="decision_id")
    out = pd.DataFrame({"decision_id": d["decision_id"], "profile": d["profile"], "logged": d["tier"],
                        "propensity": d["propensity"].astype(float), "resolved": d["resolved"].astype(float),
                        "cost_usd": d["cost_usd"].astype(float)})
    rows = d.to_dict("records")
    for name, policy in policies.items():
        out[name] = [replay_tier(policy, r) for r in rows]
    return out


def what_if(targets: pd.DataFrame, labels: Mapping[str, str], *, n_boot: int = 200,
            seed: int = 0) -> pd.DataFrame:
    """Off-policy estimates (``tierwise.tuner.ope.estimate_policy``) of each policy column of ``targets``,
    next to what the logs actually show. Outcomes are per episode (escalations included)."""
    cols = ["policy", "resolution_rate", "resolution_low", "resolution_high", "cost_per_task",
            "cost_per_resolved", "cpr_low", "cpr_high", "resolution_snips", "cost_per_resolved_snips",
            "match_rate", "ess", "n", "dropped"]
    if targets.empty:
        return pd.DataFrame(columns=cols)
    rows: list[dict[str, Any]] = []
    keep = targets.dropna(subset=list(labels))
    dropped = len(targets) - len(keep)
    if keep.empty:
        return pd.DataFrame(columns=cols)
    r, c = keep["resolved"].to_numpy(dtype=float), keep["cost_usd"].to_numpy(dtype=float)
    rows.append({"policy": "logged (what happened)", "resolution_rate": float(r.mean()),
                 "cost_per_task": float(c.mean()), "cost_per_resolved": float(c.sum() / max(r.sum(), 1e-12)),
                 "match_rate": 1.0, "ess": float(len(keep)), "n": len(keep), "dropped": dropped})
    for col, label in labels.items():
        est = estimate_policy(keep["logged"].to_numpy(dtype=object), keep["propensity"].to_numpy(dtype=float),
                              keep[col].to_numpy(dtype=object), r, c, n_boot=n_boot, seed=seed)
        rows.append({"policy": label, "resolution_rate": est.resolution_dr.value,
                     "resolution_low": est.resolution_dr.low, "resolution_high": est.resolution_dr.high,
                     "cost_per_task": est.cost_dr.value, "cost_per_resolved": est.cost_per_resolved_dr.value,
                     "cpr_low": est.cost_per_resolved_dr.low, "cpr_high": est.cost_per_resolved_dr.high,
                     "resolution_snips": est.resolution_snips.value,
                     "cost_per_resolved_snips": est.cost_per_resolved_snips.value,
                     "match_rate": est.match_rate, "ess": est.ess, "n": est.n, "dropped": dropped})
    return pd.DataFrame(rows, columns=cols)


def disagreements(targets: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Where two policies pick different tiers: counts per profile and (a tier → b tier)."""
    if targets.empty:
        return pd.DataFrame(columns=["profile", a, b, "n"])
    diff = targets[targets[a] != targets[b]]
    return (diff.groupby(["profile", a, b], dropna=False).size().rename("n").reset_index()
            .sort_values("n", ascending=False).reset_index(drop=True))


def plot_what_if(summary: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    fig.suptitle(title, fontsize=10)
    if summary.empty:
        _no_data(ax1, "no decisions with outcomes to evaluate")
        _no_data(ax2, "")
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
