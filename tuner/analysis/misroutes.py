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

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tierwise.tuner.analysis.load import Telemetry, as_bool, as_text, parse_json
from tierwise.tuner.ope import ips_weights, snips

OUTCOMES: tuple[str, ...] = ("resolved", "overridden", "escalated→resolved", "queued", "failed", "pending")

FAILED_OUTCOMES = frozenset({"overridden", "escalated→resolved", "queued", "failed"})


def episode_outcome(row: Mapping[str, Any]) -> str:
    """One of OUTCOMES for an episodes-view row (see the module docstring)."""
    if not as_bool(row.get("has_outcome")):
        return "pending"
    if as_bool(row.get("first_resolved")):
        return "resolved"
    if as_bool(row.get("first_overridden")):
        return "overridden"
    if as_bool(row.get("resolved")):
        return "escalated→resolved"
    if as_bool(row.get("queued")):
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
            eligible = [str(t) for t in parse_json(d.get("eligible"), [])]
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
                    "profile": profile, "tier": tier, "tier_rank": rank, "explored": as_bool(d.get("explored")),
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


def _fmt_scores(raw: Any) -> str:
    scores = parse_json(raw, {})
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
        reasons = parse_json(dec.get("reasons"), [])
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
            what = "resolved" if as_bool(a["resolved"]) else f"failed ({as_text(a['failure']) or 'no kind'})"
            if as_text(a.get("overridden_to")):
                what += f", overridden to {a['overridden_to']}"
            lines.append(f"  attempt {a['attempt']} on {a['tier']}: {what}, ${float(a['cost_usd']):.4f}")
    return "\n".join(lines)


def queue_signatures(queue: pd.DataFrame) -> pd.DataFrame:
    """Failure signatures of queued tasks: tiers tried → failure kinds, counted per profile.

    Items a deterministic script took over (``kind`` other than ``human``) keep a ``[script]`` prefix."""
    cols = ["kind", "profile", "tiers_tried", "failure_kinds", "signature", "n", "open"]
    if queue.empty:
        return pd.DataFrame(columns=cols)
    q = pd.DataFrame({
        "kind": queue["kind"].astype(str) if "kind" in queue.columns else "human",
        "profile": queue["profile"].astype(str),
        "tiers_tried": [" → ".join(parse_json(x, [])) for x in queue["tiers_tried"]],
        "failure_kinds": [", ".join(parse_json(x, [])) or "(override only)" for x in queue["failure_kinds"]],
        "open": queue["resolved_by"].isna() if "resolved_by" in queue.columns else True,
    })
    q["signature"] = q["tiers_tried"] + " : " + q["failure_kinds"]
    q.loc[q["kind"] != "human", "signature"] = "[" + q["kind"] + "] " + q["signature"]
    out = q.groupby(["kind", "profile", "tiers_tried", "failure_kinds", "signature"], as_index=False).agg(
        n=("signature", "size"), open=("open", "sum"))
    out["open"] = out["open"].astype(int)
    return out.sort_values(["n", "profile"], ascending=[False, True]).reset_index(drop=True)[cols]
