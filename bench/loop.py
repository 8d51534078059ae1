"""The bench loop: drive recorded or simulated tasks through the real HTTP service.

For each task: ``POST /v1/route``, ask the benchmark's ``oracle`` what the chosen tier's attempt
did, ``POST /v1/outcomes`` with what the agent's harness *detected*, and follow ``next``
(escalate to the next tier, or stop at done / human / script). Nothing here decides a tier:
every routing and escalation choice is the service's, so the benchmark measures the code
that ships.

Truth and report are kept apart on purpose. The oracle returns both the true outcome of an
attempt and the outcome the harness reports (an imperfect failure detector may miss a failure
or flag a success); the service only ever sees the report, and the episode is scored on truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tierwise.bench.routing_metrics import Episode
from tierwise.service.client import TierwiseClient
from tierwise.service.errors import TelemetryTooThin
from tierwise.service.jsonsafe import jsonable
from tierwise.service.outcomes import AttemptFacts
from tierwise.service.settings import load_settings
from tierwise.tuner.retune import run_retune


@dataclass(frozen=True)
class ReplayTask:
    """One task as an agent would send it, plus what the scorer needs (never sent to the router)."""

    task_id: str
    request: dict[str, Any]  # the /v1/route body (prompt, files, repo, tools, harness, ...)
    complex: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AttemptResult(AttemptFacts):
    """One attempt: the truth (``resolved``) and what the agent's harness reports."""

    reported_resolved: bool


# oracle(task, tier, model, attempt_no) -> the attempt's result.
Oracle = Callable[[ReplayTask, str, str, int], AttemptResult]


@dataclass(frozen=True)
class Trace:
    """An episode plus the details a report wants beyond ``Episode`` (tokens, tiers, versions)."""

    episode: Episode
    tiers: tuple[str, ...]
    final_action: str
    policy_version: str
    explored: bool
    input_tokens: int
    output_tokens: int
    route_ms: float  # wall time of the route + report calls, client side


def run_task(client: TierwiseClient, task: ReplayTask, oracle: Oracle, *, harness: str | None = None) -> Trace:
    """One task end to end through the service; returns its scored trace."""
    body = dict(task.request)
    if harness is not None:
        body["harness"] = harness
    body.setdefault("task_id", task.task_id)
    t0 = time.perf_counter()
    decision = client.route(**body)
    tier, model, attempt = decision.tier, decision.model, 0
    tiers: list[str] = []
    cost = latency = 0.0
    tokens_in = tokens_out = 0
    resolved, action = False, "done"
    while True:
        tiers.append(tier)
        res = oracle(task, tier, model, attempt)
        cost += res.cost_usd
        latency += res.latency_ms or 0.0
        tokens_in += res.input_tokens or 0
        tokens_out += res.output_tokens or 0
        failure = None if res.reported_resolved else (res.failure or "tests_failed")
        nxt = client.report(decision.decision_id, attempt, tier, resolved=res.reported_resolved,
                            cost_usd=res.cost_usd, input_tokens=res.input_tokens,
                            output_tokens=res.output_tokens, latency_ms=res.latency_ms,
                            failure=failure if res.overridden_to is None else res.failure,
                            overridden_to=res.overridden_to, output=res.output)
        action = nxt.action
        if action == "escalate":
            if nxt.tier is None or nxt.attempt is None or nxt.model is None:
                raise RuntimeError(f"service said escalate without a tier: {nxt.raw}")
            tier, model, attempt = nxt.tier, nxt.model, nxt.attempt
            continue
        # done: the harness accepted the attempt, so the task ends with the attempt's true outcome
        # (an undetected failure is final). human/script: the agent's output is discarded.
        resolved = bool(res.resolved and res.overridden_to is None) if action == "done" else False
        break
    ep = Episode(task.task_id, resolved, cost, len(tiers), len(tiers) - 1, action == "human", task.complex,
                 latency_ms=latency, first_tier=tiers[0])
    return Trace(ep, tuple(tiers), action, decision.policy_version, decision.explored, tokens_in, tokens_out,
                 (time.perf_counter() - t0) * 1000.0)


def replay_traces(client: TierwiseClient, tasks: Iterable[ReplayTask], oracle: Oracle, *,
                  harness: str | None = None, desc: str = "replay", progress: bool = True,
                  workers: int = 1) -> list[Trace]:
    """Every task through the service, results in task order.

    ``workers=1`` sends tasks one after another, so the service's exploration draws are
    reproducible. Concurrency (``workers>1``) is only for traffic that does not explore
    (evaluation with exploration 0), where the order of requests cannot change any decision.
    """
    items = list(tasks)
    bar = tqdm(total=len(items), desc=desc, unit="task", leave=False, disable=not progress, mininterval=1.0)
    try:
        if workers <= 1:
            out = []
            for t in items:
                out.append(run_task(client, t, oracle, harness=harness))
                bar.update()
            return out
        from concurrent.futures import ThreadPoolExecutor

        def one(t: ReplayTask) -> Trace:
            tr = run_task(client, t, oracle, harness=harness)
            bar.update()
            return tr

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, items))
    finally:
        bar.close()


def replay(client: TierwiseClient, tasks: Iterable[ReplayTask], oracle: Oracle, *, harness: str | None = None,
           desc: str = "replay", progress: bool = True) -> list[Episode]:
    """The harness's contract: tasks in, ``Episode`` objects out, all through the real service."""
    return [t.episode for t in replay_traces(client, tasks, oracle, harness=harness, desc=desc,
                                             progress=progress)]


# --- the service, as a subprocess ------------------------------------------------------------------------


def service_env(*, policy_file: Path, seed: int, fast: bool, classifier_file: Path | None = None,
                poll_seconds: float = 1.0) -> dict[str, str]:
    """Environment for ``tierwise serve`` in a benchmark: registry on, fast policy polling.

    ``fast`` swaps the MiniLM encoder for the hashing embedder and its own classifier (quick mode
    and tests); the full benchmark uses the real default encoder.
    """
    env = {"TIERWISE_POLL_SECONDS": str(poll_seconds), "TIERWISE_SEED": str(seed),
           "TIERWISE_POLICY_FILE": str(policy_file), "TIERWISE_LOG_LEVEL": "warning"}
    if fast:
        if classifier_file is None:
            raise ValueError("fast mode needs a hashing classifier file")
        env.update({"TIERWISE_EMBEDDER": "hashing", "TIERWISE_CLASSIFIER_FILE": str(classifier_file)})
    return env


def hashing_classifier_file(cache_dir: Path) -> Path:
    """The hashing-embedder classifier, trained once per cache folder (seconds, no torch)."""
    from tierwise.bench._server import hashing_classifier

    return hashing_classifier(cache_dir / "classifier.hashing.json")


def wait_for_policy(client: TierwiseClient, *, changed_from: str | None = None, version: str | None = None,
                    timeout_s: float = 60.0) -> str:
    """Poll ``GET /v1/policy`` until the served version moves (hot reload); returns the new version."""
    deadline = time.monotonic() + timeout_s
    current = ""
    while time.monotonic() < deadline:
        current = str(client.policy().version)
        if (version is not None and current == version) or (
                version is None and changed_from is not None and current != changed_from):
            return current
        time.sleep(0.2)
    raise TimeoutError(f"service still serves policy {current} after {timeout_s:.0f}s "
                       f"(waiting for {version or 'a change from ' + str(changed_from)})")


def publish_and_promote(settings: Any, policy_json: str, description: str,
                        experiment: str = "tierwise-bench") -> str:
    """Register a policy variant in the service's MLflow registry and make it champion.

    Used for the operating-curve sweep: the variant reaches the service the way any retuned
    policy does (registry alias + hot reload), so it is served by the same code.
    """
    from tierwise.service.policy.registry import make_registry

    reg = make_registry(settings)
    run = reg.client.create_run(reg.experiment_id(experiment), run_name=description[:60])
    version = reg.publish(policy_json, run.info.run_id, description=description)
    reg.client.set_terminated(run.info.run_id)
    reg.promote(version)
    return version


# --- one retune through the tuner, then hot reload -------------------------------------------------------


@dataclass
class RetuneStep:
    """What one retune did: its status (``promoted``, ``challenger``, ``telemetry_too_thin``...) and versions."""

    status: str
    reason: str = ""
    version_before: str = ""
    version_after: str = ""
    promoted: bool = False
    seconds: float = 0.0
    n_decisions: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def retune(client: TierwiseClient, settings_kw: dict[str, Any], *, trials: int, seed: int,
           min_decisions: int, holdout_days: float | None = None, reload_timeout_s: float = 60.0,
           **extra: Any) -> RetuneStep:
    """Run one retune on the service's home and wait for the hot reload if it promoted.

    Too little telemetry is an outcome (the loop keeps its champion); any other exception is a
    broken tuner and propagates, so the bench and its test fail rather than report a static arm.
    """
    before = str(client.policy().version)
    settings = load_settings(**settings_kw)
    kwargs: dict[str, Any] = {"trials": trials, "seed": seed, "min_decisions": min_decisions,
                              "progress": False, **extra}
    if holdout_days is not None:
        kwargs["holdout_days"] = holdout_days
    t0 = time.monotonic()
    try:
        result = run_retune(settings, **kwargs)
    except TelemetryTooThin as exc:
        return RetuneStep(exc.code, exc.message, before, before, seconds=time.monotonic() - t0)
    seconds = time.monotonic() - t0
    fields = ("version", "run_id", "champion_version", "champion", "candidate", "n_train", "n_holdout", "split",
              "drift_flagged", "best_params", "timings")
    details = jsonable({k: getattr(result, k) for k in fields})
    step = RetuneStep(result.status, result.reason, before, before, seconds=seconds,
                      n_decisions=result.n_decisions, details=details)
    if result.status == "promoted" and result.version is not None:
        step.version_after = wait_for_policy(client, version=result.version, timeout_s=reload_timeout_s)
        step.promoted = True
    return step


def settings_kwargs(home: Path, env: dict[str, str]) -> dict[str, Any]:
    """``load_settings`` overrides matching the server's environment (same home, policy, embedder)."""
    kw: dict[str, Any] = {"home": home, "policy_file": Path(env["TIERWISE_POLICY_FILE"])}
    if "TIERWISE_EMBEDDER" in env:
        kw["embedder"] = env["TIERWISE_EMBEDDER"]
        kw["classifier_file"] = Path(env["TIERWISE_CLASSIFIER_FILE"])
    return kw
