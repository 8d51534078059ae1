"""``make retune``: learn a new routing policy from telemetry, judge it off-policy, publish it.

Steps: load decisions with outcomes (``tierwise.tuner.dataset``); hold out the last N days (or a hash
split when the window is degenerate); fit per-tier calibrated success models with
inverse-propensity weights (``tierwise.tuner.success_fit``); search thresholds, and the escalation ladder
when there are more than 3 tiers, with Optuna on the training slice (``tierwise.tuner.search``); estimate
champion and candidate on the holdout with SNIPS/DR and bootstrap intervals (``tierwise.tuner.ope``);
log one MLflow run; register the candidate as a new policy version; move ``champion`` only if
the candidate is cheaper per resolved task by ``margin`` and its resolution interval does not
say it is below the floor; otherwise it becomes the ``challenger``. A publishing retune holds the
home's retune lock throughout (``tierwise.tuner.exclusive``), and judges the candidate again if
the champion moved (a person promoted) while it searched.

Every candidate choice is made by ``tierwise.service.policy.decide``'s own vectorised functions.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tierwise.service.errors import RetuneFailed, TelemetryTooThin
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.policy.registry import CHALLENGER, CHAMPION, PolicyRegistry, make_registry
from tierwise.service.settings import Settings
from tierwise.tuner.counterfactual import tier_codes
from tierwise.tuner.dataset import LoggedData, drift_frame, load_logged, split_holdout, training_rows
from tierwise.tuner.drift import DriftReport, drift_report
from tierwise.tuner.exclusive import fail_stale_runs, owner_tags, retune_lock
from tierwise.tuner.ope import estimate_policy
from tierwise.tuner.search import Evaluator, StudyResult, TrialRecord, headline, run_study, with_params
from tierwise.tuner.success_fit import SuccessFit, fit_success_models, prior_means

log = logging.getLogger(__name__)

EXPERIMENT = "tierwise-retune"
FLOOR_SLACK = 0.005  # default floor: champion's estimated resolution minus 0.5 pp
N_BOOT = 200

Status = Literal["promoted", "challenger", "dry_run", "no_drift"]


@dataclass(frozen=True)
class RetuneResult:
    status: Status
    version: str | None
    run_id: str | None
    champion_version: str
    champion: dict[str, float]
    candidate: dict[str, float]
    n_decisions: int
    n_train: int
    n_holdout: int
    drift_flagged: bool
    split: str = "time"
    floor: float = float("nan")
    reason: str = ""
    best_params: dict[str, Any] = field(default_factory=dict)
    shadow: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def promotion_gate(champion_cpr: float, candidate_cpr: float, candidate_resolution_high: float, *,
                   floor: float, margin: float, champion_cpr_dr: float | None = None,
                   candidate_cpr_dr: float | None = None) -> GateDecision:
    """Promote only if the candidate's cost per resolved beats the champion's by ``margin`` and
    the upper end of its resolution interval is not below ``floor`` (i.e. the data do not say it
    resolves less than the floor).

    When the doubly robust estimates are given, they must show the same margin. SNIPS and DR
    fail differently (SNIPS on a few heavily weighted rows, DR on a poor outcome model); a gain
    that only one of them sees is, on small logs, usually noise. On the SWE-bench folds, every
    promotion that DR did not support lost money on fresh tasks."""
    values = [champion_cpr, candidate_cpr, candidate_resolution_high, floor]
    if not all(math.isfinite(v) for v in values):
        return GateDecision(False, "an estimate is undefined (too few matching rows in the holdout)")
    target = champion_cpr * (1.0 - margin)
    if candidate_cpr > target:
        return GateDecision(False, f"cost per resolved {candidate_cpr:.5f} does not beat the champion's "
                                   f"{champion_cpr:.5f} by {margin:.1%} (needs <= {target:.5f})")
    if champion_cpr_dr is not None and candidate_cpr_dr is not None:
        if not (math.isfinite(champion_cpr_dr) and math.isfinite(candidate_cpr_dr)):
            return GateDecision(False, "the doubly robust estimate is undefined")
        target_dr = champion_cpr_dr * (1.0 - margin)
        if candidate_cpr_dr > target_dr:
            return GateDecision(False, f"SNIPS sees a gain but the doubly robust cost per resolved "
                                       f"{candidate_cpr_dr:.5f} does not beat the champion's {champion_cpr_dr:.5f} "
                                       f"by {margin:.1%} (needs <= {target_dr:.5f})")
    if candidate_resolution_high < floor:
        return GateDecision(False, f"resolution interval upper bound {candidate_resolution_high:.4f} is below "
                                   f"the floor {floor:.4f}")
    return GateDecision(True, f"cost per resolved {candidate_cpr:.5f} <= {target:.5f} (doubly robust "
                              f"{candidate_cpr_dr if candidate_cpr_dr is not None else float('nan'):.5f}) and "
                              f"resolution interval reaches the floor {floor:.4f}")


def _champion(reg: PolicyRegistry | None, settings: Settings, dry_run: bool) -> RoutingPolicy:
    bootstrap = settings.policy_file or default_policy_file()
    if reg is None:
        return parse_policy(bootstrap.read_text(), scripts=settings.scripts)
    version = reg.alias(CHAMPION)
    if version is None:
        if dry_run:  # publishing nothing includes not registering the bootstrap version
            return parse_policy(bootstrap.read_text(), version="bootstrap", scripts=settings.scripts)
        version = reg.ensure_bootstrap(bootstrap)
    return reg.load(version)


def _drift(train: LoggedData, holdout: LoggedData) -> DriftReport:
    num = ["complexity", "log_prompt_tokens", "log_files", "log_diff_lines", "n_tools",
           "p_mechanical", "p_local", "p_repository", "p_agentic"]
    return drift_report(drift_frame(train), drift_frame(holdout), numeric=num, categorical=["profile", "harness"])


def shadow_section(data: LoggedData, ladder: list[str]) -> dict[str, float]:
    """Agreement of the shadowed challenger with the champion's greedy tier, and its SNIPS
    estimate on the rows it shadowed (first tier only: the shadow logs no chain)."""
    rows = np.asarray(pd.notna(data.shadow_version) & pd.notna(data.shadow_tier), dtype=bool)
    if not rows.any():
        return {}
    d = data.subset(rows)
    logged, target = tier_codes(d.tier, ladder), tier_codes(d.shadow_tier, ladder)
    est = estimate_policy(logged, d.propensity, target, d.resolved.astype(np.float64), d.cost, n_boot=0)
    return {"shadow_rows": float(len(d)), "shadow_agreement": float(np.mean(d.shadow_tier == d.greedy_tier)),
            "shadow_resolution_snips": est.resolution_snips.value,
            "shadow_cost_per_resolved_snips": est.cost_per_resolved_snips.value,
            "shadow_match_rate": est.match_rate}


def _plot(trials: list[TrialRecord], champion: dict[str, float], floor: float, best: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ok = [t for t in trials if t.feasible and math.isfinite(t.cost_per_resolved)]
    bad = [t for t in trials if not t.feasible and math.isfinite(t.cost_per_resolved)]
    ax.scatter([t.resolution for t in bad], [t.cost_per_resolved for t in bad], c="#bbbbbb", s=16,
               label="below floor")
    ax.scatter([t.resolution for t in ok], [t.cost_per_resolved for t in ok], c="#1f77b4", s=16, label="feasible")
    b = [t for t in trials if t.number == best]
    if b:
        ax.scatter([b[0].resolution], [b[0].cost_per_resolved], c="#d62728", s=60, marker="*", label="candidate")
    if trials:
        ax.scatter([trials[0].resolution], [trials[0].cost_per_resolved], facecolors="none", edgecolors="k",
                   s=60, label="trial 0 (champion thresholds)")
    ax.axvline(floor, ls="--", c="k", lw=0.8, label="resolution floor")
    ax.set_xlabel("estimated resolution rate (SNIPS, training slice)")
    ax.set_ylabel("estimated cost per resolved task (USD)")
    ax.set_title("retune trials: cost vs resolution")
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def regate(reg: PolicyRegistry, champion: RoutingPolicy, gate: GateDecision, ev_hold: Evaluator,
           cand: dict[str, float], *, floor: float | None, margin: float, seed: int) -> GateDecision:
    """The gate again, at promotion time, if the champion is no longer the one the candidate was
    judged against (someone promoted meanwhile): a candidate must beat the policy it replaces."""
    current = reg.alias(CHAMPION)
    if current is None or current == champion.version:
        return gate
    now_champion = reg.load(current)
    moved = f"the champion moved from {champion.version} to {current} during the retune"
    if now_champion.ladder != champion.ladder:
        return GateDecision(False, f"{moved}, with another ladder; not promoted (retune again)")
    champ = headline(ev_hold.estimate(now_champion, n_boot=N_BOOT, seed=seed))
    again = promotion_gate(champ["cost_per_resolved"], cand["cost_per_resolved"], cand["resolution_high"],
                           floor=floor if floor is not None else champ["resolution"] - FLOOR_SLACK, margin=margin,
                           champion_cpr_dr=champ["cost_per_resolved_dr"],
                           candidate_cpr_dr=cand["cost_per_resolved_dr"])
    return GateDecision(again.promote, f"{moved}; judged against {current}: {again.reason}")


def run_retune(settings: Settings, *, dry_run: bool = False, if_drift: bool = False, trials: int = 60,
               holdout_days: float = 2.0, min_decisions: int = 1000, seed: int = 0, margin: float = 0.03,
               floor: float | None = None, window: int | None = None, progress: bool = True,
               now: float | None = None, wait_s: float = 0.0, storage: str | None = None) -> RetuneResult:
    """Retune from the telemetry under ``settings.home``; see the module docstring. Unless it is a
    dry run, it holds the home's retune lock, waiting up to ``wait_s`` seconds for another retune
    (then ``RetuneBusy``)."""
    if dry_run:
        return _retune(settings, dry_run=True, if_drift=if_drift, trials=trials, holdout_days=holdout_days,
                       min_decisions=min_decisions, seed=seed, margin=margin, floor=floor, window=window,
                       progress=progress, now=now, storage=storage)
    with retune_lock(settings, wait_s):
        return _retune(settings, dry_run=False, if_drift=if_drift, trials=trials, holdout_days=holdout_days,
                       min_decisions=min_decisions, seed=seed, margin=margin, floor=floor, window=window,
                       progress=progress, now=now, storage=storage)


def _online_flags(settings: Settings, reg: PolicyRegistry | None) -> list[tuple[str, str]]:
    """What the service's online change detector flags for the served version (journal-derived)."""
    from tierwise.service.online.source import flagged_now

    version = (reg.alias(CHAMPION) if reg else None) or "bootstrap"
    return flagged_now(settings, version)


def _retune(settings: Settings, *, dry_run: bool, if_drift: bool, trials: int, holdout_days: float,
            min_decisions: int, seed: int, margin: float, floor: float | None, window: int | None,
            progress: bool, now: float | None, storage: str | None = None) -> RetuneResult:
    """The retune itself (the lock is the caller's).

    ``window`` keeps only the most recent N decisions with outcomes: after a model swap the old
    traffic describes a world that is gone, and diluting the new evidence with it is what kept
    post-drift candidates from clearing the gate."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    now = time.time() if now is None else now
    data, total = load_logged(settings.home, journal_url=settings.journal_url, segments=settings.segments_url)
    if window is not None and len(data) > window:
        data = data.subset(np.sort(np.argsort(data.ts, kind="stable")[-window:]))
    timings["load_s"] = time.perf_counter() - t0
    if len(data) < min_decisions:
        raise TelemetryTooThin(f"only {len(data)} of {total} logged decisions have outcomes; retune needs at "
                               f"least {min_decisions} (--min-decisions)", field="min_decisions")
    split = split_holdout(data, holdout_days=holdout_days, now=now)
    train, holdout = data.subset(split.train), data.subset(split.holdout)
    drift = _drift(train, holdout)

    reg = make_registry(settings) if settings.use_registry else None
    if reg is not None and not dry_run:
        fail_stale_runs(reg, EXPERIMENT, lock_held=reg.local)
    if if_drift and not drift.flagged and not _online_flags(settings, reg):  # touch nothing, not even the
        # registry's bootstrap
        return RetuneResult(status="no_drift", version=None, run_id=None,
                            champion_version=(reg.alias(CHAMPION) if reg else None) or "bootstrap",
                            champion={}, candidate={}, n_decisions=len(data), n_train=len(train),
                            n_holdout=len(holdout), drift_flagged=False, split=split.kind,
                            reason="drift report did not flag; nothing retuned", timings=timings)
    champion = _champion(reg, settings, dry_run)
    common = dict(champion_version=champion.version, n_decisions=len(data), n_train=len(train),
                  n_holdout=len(holdout), drift_flagged=drift.flagged, split=split.kind)

    # 1. Success models, inverse-propensity weighted, on the training slice only.
    t = time.perf_counter()
    rows = training_rows(train)
    fit: SuccessFit = fit_success_models(rows, champion.ladder, seed=seed,
                                         prior_mean=prior_means(champion.success_priors, champion.ladder))
    template = champion.model_copy(update={
        "success_model": fit.spec,
        "description": f"Retuned from policy {champion.version}: learned per-tier success models and "
                       f"thresholds from {len(train)} logged decisions (tierwise retune)."})
    timings["fit_s"] = time.perf_counter() - t

    # 2. Search on the training slice; the floor there is the champion's own estimate minus slack.
    t = time.perf_counter()
    ev_train = Evaluator.build(train, champion.ladder)
    champ_train = ev_train.estimate(champion)
    train_floor = floor if floor is not None else champ_train.resolution_snips.value - FLOOR_SLACK
    study: StudyResult = run_study(template, ev_train, trials=trials, floor=train_floor, seed=seed,
                                   progress=progress, storage=storage)
    candidate = with_params(template, study.best_params, study.harnesses, study.profiles)
    candidate = parse_policy(json.loads(candidate.canonical_json()), version="candidate",
                             scripts=settings.scripts)  # full validation
    timings["search_s"] = time.perf_counter() - t

    # 3. Champion vs candidate on the holdout, with bootstrap intervals.
    t = time.perf_counter()
    ev_hold = Evaluator.build(holdout, champion.ladder)
    champ_est = ev_hold.estimate(champion, n_boot=N_BOOT, seed=seed)
    cand_est = ev_hold.estimate(candidate, n_boot=N_BOOT, seed=seed)
    champ, cand = headline(champ_est), headline(cand_est)
    gate_floor = floor if floor is not None else champ["resolution"] - FLOOR_SLACK
    gate = promotion_gate(champ["cost_per_resolved"], cand["cost_per_resolved"], cand["resolution_high"],
                          floor=gate_floor, margin=margin, champion_cpr_dr=champ["cost_per_resolved_dr"],
                          candidate_cpr_dr=cand["cost_per_resolved_dr"])
    shadow = shadow_section(data, champion.ladder)
    timings["evaluate_s"] = time.perf_counter() - t

    params: dict[str, Any] = {
        "trials": trials, "seed": seed, "margin": margin, "floor_arg": floor, "floor": round(gate_floor, 6),
        "train_floor": round(train_floor, 6), "holdout_days": holdout_days, "window": window, "split": split.kind,
        "split_cutoff": split.cutoff, "min_decisions": min_decisions, "champion_version": champion.version,
        "n_logged_decisions": total, "n_decisions": len(data), "n_train": len(train), "n_holdout": len(holdout),
        "n_training_attempts": int(rows.tier.shape[0]),
        "data_from": float(data.ts.min()), "data_to": float(data.ts.max()),
        "holdout_from": float(holdout.ts.min()) if len(holdout) else None,
        "best_trial": study.best_number, "searched_harnesses": ",".join(study.harnesses),
        "searched_profiles": ",".join(study.profiles),
    }
    base = dict(common, champion=champ, candidate=cand, floor=gate_floor, best_params=study.best_params,
                shadow=shadow, timings=timings)
    if dry_run:
        timings["total_s"] = time.perf_counter() - t0
        return RetuneResult(status="dry_run", version=None, run_id=None, reason=gate.reason,
                            **base)  # type: ignore[arg-type]
    if reg is None:
        raise RetuneFailed("retune publishes to the policy registry; TIERWISE_USE_REGISTRY is false "
                           "(use --dry-run)", field="use_registry")

    # 4. MLflow: one run, the policy version, and the alias.
    t = time.perf_counter()
    client = reg.client
    run = client.create_run(reg.experiment_id(EXPERIMENT), run_name=f"retune-{int(now)}", tags=owner_tags())
    run_id = run.info.run_id
    try:
        for key, value in params.items():
            client.log_param(run_id, key, "" if value is None else value)
        metrics = {f"champion_{k}": v for k, v in champ_est.to_dict().items()}
        metrics.update({f"candidate_{k}": v for k, v in cand_est.to_dict().items()})
        metrics.update({f"champion_train_{k}": v for k, v in champ_train.to_dict().items()
                        if not k.endswith(("_low", "_high"))})
        metrics.update(shadow)
        metrics.update({"drift_flagged": float(drift.flagged),
                        **{f"time_{k}": v for k, v in timings.items()}})
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()
                                          if v is not None and math.isfinite(float(v))])
        client.log_dict(run_id, drift.to_dict(), "drift/drift_report.json")
        client.log_text(run_id, drift.to_markdown(), "drift/drift_report.md")
        client.log_dict(run_id, {"champion": champ_est.to_dict(), "candidate": cand_est.to_dict(),
                                 "gate": asdict(gate), "floor": gate_floor, "shadow": shadow,
                                 "best_params": study.best_params, "success_fit": fit.to_dict()},
                        "estimates.json")
        client.log_dict(run_id, {"trials": [asdict(r) for r in study.trials]}, "trials.json")
        _log_png(client, run_id, _plot(study.trials, champ, train_floor, study.best_number))
        model_file = json.dumps(fit.spec.model_dump(mode="json"), indent=2).encode()
        gate = regate(reg, champion, gate, ev_hold, cand, floor=floor, margin=margin, seed=seed)
        version = reg.publish(candidate.canonical_json(), run_id, files={"success_model.json": model_file},
                              description=f"retune run {run_id}: {gate.reason}")
        if gate.promote:
            reg.promote(version)
            status: Status = "promoted"
        else:
            reg.set_alias(CHALLENGER, version)
            status = "challenger"
        client.set_tag(run_id, "policy_version", version)
        client.set_tag(run_id, "status", status)
        client.log_metric(run_id, "promoted", float(gate.promote))
        timings["publish_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t0
        client.set_terminated(run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    log.info("retune: %s version %s (%s)", status, version, gate.reason)
    return RetuneResult(status=status, version=version, run_id=run_id, reason=gate.reason,
                        **base)  # type: ignore[arg-type]


def _log_png(client: Any, run_id: str, png: bytes) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cost_vs_resolution.png"
        path.write_bytes(png)
        client.log_artifact(run_id, str(path), artifact_path="plots")
