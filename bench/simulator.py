"""Synthetic workload simulator: stands in for the models and the humans behind tierwise.

Why it exists: a router is judged on outcomes (resolved, cost, overrides) that real traffic reveals
slowly, noisily and without ground truth. Here the truth is known, so benchmarks and end-to-end tests
can check that the router learns sensible thresholds and notices drift (model swaps, mix shifts).

Conventions:
- weeks are 0-based (0 .. weeks-1); an event at week w applies from week w on;
- every random draw comes from a generator keyed by (seed, purpose, ids), so results never depend on
  call order, and two routers facing the same scenario see the same tasks and the same luck;
- scenarios are JSON (see bench/scenarios/), so a new scenario needs no code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.bench.scenario_schema import TIERS, require, validate_scenario
from tierwise.service.classify import PROFILES, FailureKind

# Failed attempts mostly fail tests; infrastructure trouble is less common, refusals are rare.
FAILURE_WEIGHTS: dict[FailureKind, float] = {"tests_failed": 0.75, "timeout": 0.11, "error": 0.10, "refused": 0.04}
# Latent difficulty at or above this counts as "complex" for analysis. We use the latent variable, not
# the corpus' complexity label, because difficulty is what actually lowers success in the simulator.
COMPLEX_DIFFICULTY = 0.6

# What a valid structured output looks like; the router's output schema should accept exactly this.
VALID_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["summary", "patch"],
    "properties": {"summary": {"type": "string"}, "patch": {"type": "string"}},
    "additionalProperties": False,
}
# Each of these violates VALID_OUTPUT_SCHEMA in a way models really do: junk, wrong type, missing key.
_INVALID_OUTPUTS: tuple[dict[str, Any], ...] = (
    {"oops": True},
    {"summary": 42, "patch": ""},
    {"patch": "--- a/x\n+++ b/x\n"},
)
_PROMPT_SUFFIXES = (
    " Keep the diff minimal.",
    " Don't change public APIs.",
    " CI on main is red because of this.",
    " Add a test if it's cheap.",
)
_NOISE_SIGMA = 0.3  # lognormal spread of token counts and latency around their means


@dataclass(frozen=True)
class TierTruth:
    """The hidden truth about one tier's model: what it costs, how fast it is, how often it succeeds."""

    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    success: dict[str, float]  # success probability per profile at median difficulty (0.5)
    latency_ms_per_1k_output: float
    base_latency_ms: float

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """List-price cost, so simulated spend is comparable with real invoices."""
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


@dataclass(frozen=True)
class ScenarioWorld:
    """A workload plus the ground truth of the models; validated on construction so bad JSON fails early."""

    name: str
    seed: int
    weeks: int
    tasks_per_week: int
    mix: dict[str, float]
    tiers: dict[str, TierTruth]
    difficulty: dict[str, tuple[float, float]]  # Beta(alpha, beta) of latent difficulty per profile
    tokens: dict[str, tuple[float, float]]  # (mean input, mean output) tokens per profile
    difficulty_slope: float = 4.0  # logit-scale penalty per unit of difficulty above 0.5
    override_rate: dict[str, float] = field(default_factory=dict)  # per profile; missing means 0
    schema_failure_rate: dict[str, float] = field(default_factory=dict)  # per tier; missing means 0
    events: list[dict[str, Any]] = field(default_factory=list)
    harness: str = "ci"

    def __post_init__(self) -> None:
        validate_scenario(self.as_raw())

    def as_raw(self) -> dict[str, Any]:
        """The scenario as its JSON file would hold it (what ``validate_scenario`` checks)."""
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["tiers"] = {name: asdict(truth) for name, truth in self.tiers.items()}
        return raw


@dataclass(frozen=True)
class SimTask:
    """One task as the agent would send it, plus the hidden truth (profile, difficulty) for analysis."""

    task_id: str
    week: int
    profile: str
    difficulty: float
    complex: bool  # difficulty >= COMPLEX_DIFFICULTY
    request: dict[str, Any]  # the /v1/route body
    source_id: str  # id of the seed-corpus row it was drawn from


@dataclass(frozen=True)
class Attempt:
    """What the agent reports after one try, plus the probability it had, for analysis."""

    tier: str
    model: str
    resolved: bool
    failure: str | None
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_ms: float
    overridden_to: str | None
    output: dict[str, Any] | None
    true_success_probability: float


def load_scenario(path: Path) -> ScenarioWorld:
    """Parse a scenario JSON file; errors name the offending key so a bad scenario is quick to fix."""
    raw = json.loads(Path(path).read_text())
    spec = validate_scenario(raw)
    return ScenarioWorld(
        name=spec.name, seed=spec.seed, weeks=spec.weeks, tasks_per_week=spec.tasks_per_week,
        mix={str(k): v for k, v in spec.mix.items()},
        tiers={n: TierTruth(**t.model_dump()) for n, t in spec.tiers.items()},
        difficulty={str(k): v for k, v in spec.difficulty.items()},
        tokens={str(k): v for k, v in spec.tokens.items()}, difficulty_slope=spec.difficulty_slope,
        override_rate={str(k): v for k, v in spec.override_rate.items()},
        schema_failure_rate={str(k): v for k, v in spec.schema_failure_rate.items()},
        events=list(raw.get("events", [])),  # as written: the simulator reads which keys an event gives
        harness=spec.harness,
    )


def load_corpus(corpus_dir: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Read every *.jsonl under corpus_dir; rows without a split count as train (the safe default)."""
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(corpus_dir).glob("*.jsonl")):
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            if split is None or row.get("split", "train") == split:
                rows.append(row)
    return rows


def is_valid_output(output: Any) -> bool:
    """Check an output against VALID_OUTPUT_SCHEMA without needing a JSON-schema library."""
    return (
        isinstance(output, dict)
        and set(output) == {"summary", "patch"}
        and all(isinstance(v, str) for v in output.values())
    )


class Simulator:
    """Draws weekly tasks from the seed corpus and plays the models (and humans) that attempt them."""

    def __init__(self, scenario: ScenarioWorld, corpus: list[dict[str, Any]]) -> None:
        self.scenario = scenario
        # sorted() is stable, so events of the same week apply in file order.
        self._events = sorted(scenario.events, key=lambda e: int(e["week"]))
        rows: dict[str, list[dict[str, Any]]] = {p: [] for p in PROFILES}
        for i, row in enumerate(corpus):
            for key in ("id", "prompt", "profile"):
                require(key in row, f"corpus[{i}].{key}", "missing")
            require(row["profile"] in PROFILES, f"corpus[{i}].profile", f"unknown profile {row['profile']!r}")
            rows[row["profile"]].append(row)
        mixes = [scenario.mix] + [e["mix"] for e in self._events if e["kind"] == "mix"]
        for profile in sorted({p for m in mixes for p, w in m.items() if w > 0}):
            require(bool(rows[profile]), f"corpus.{profile}", "no corpus rows for a profile the mix uses")
        self._rows = rows
        self._complexity: dict[str, np.ndarray] = {p: np.array([float(r.get("complexity", 3)) for r in rows[p]])
                                                  for p in PROFILES}

    def tiers_at(self, week: int) -> dict[str, TierTruth]:
        """The tiers' truth in a given week, after every swap event up to and including that week."""
        tiers = dict(self.scenario.tiers)
        for event in self._events:
            if event["kind"] != "swap_model" or event["week"] > week:
                continue
            old = tiers[event["tier"]]
            success = {**old.success, **event.get("success", {})}
            scale = float(event.get("success_scale", 1.0))
            tiers[event["tier"]] = replace(
                old,
                model=event["model"],
                success={p: min(1.0, s * scale) for p, s in success.items()},
                input_usd_per_mtok=float(event.get("input_usd_per_mtok", old.input_usd_per_mtok)),
                output_usd_per_mtok=float(event.get("output_usd_per_mtok", old.output_usd_per_mtok)),
            )
        return tiers

    def mix_at(self, week: int) -> dict[str, float]:
        """The task mix in a given week: the latest mix event at or before it, else the initial mix."""
        mix = self.scenario.mix
        for event in self._events:
            if event["kind"] == "mix" and event["week"] <= week:
                mix = event["mix"]
        return dict(mix)

    def tasks_for_week(self, week: int) -> list[SimTask]:
        """The week's tasks, deterministic per (seed, week) so every router under test sees the same ones."""
        sc = self.scenario
        in_range = isinstance(week, int) and not isinstance(week, bool) and 0 <= week < sc.weeks
        require(in_range, "week", f"must be in [0, {sc.weeks})")
        rng = _rng(sc.seed, "week", week)
        mix = self.mix_at(week)
        profiles = [p for p in PROFILES if mix.get(p, 0.0) > 0]
        weights = np.array([mix[p] for p in profiles])
        drawn = rng.choice(len(profiles), size=sc.tasks_per_week, p=weights / weights.sum())
        tasks = []
        for i, k in enumerate(drawn):
            profile = profiles[int(k)]
            difficulty = float(rng.beta(*sc.difficulty[profile]))
            row = self._pick_row(profile, difficulty, rng)
            task_id = f"{sc.name}-s{sc.seed}-w{week:02d}-{i:05d}"
            request = {
                "prompt": _vary_prompt(str(row["prompt"]), rng),
                "files": list(row.get("files", [])),
                "repo": dict(row.get("repo", {})),
                "diff_lines": row.get("diff_lines", 0),
                "expected_output": row.get("expected_output", "patch"),
                "tools": list(row.get("tools", [])),
                "harness": sc.harness,
                "task_id": task_id,
            }
            tasks.append(SimTask(task_id, week, profile, difficulty, difficulty >= COMPLEX_DIFFICULTY,
                                 request, str(row["id"])))
        return tasks

    def expected_success(self, task: SimTask, tier: str, week: int | None = None) -> float:
        """Probability an attempt resolves (schema failures included); week defaults to the task's week."""
        week = task.week if week is None else week
        schema_rate = self.scenario.schema_failure_rate.get(tier, 0.0)
        return self._pass_probability(task, tier, week) * (1.0 - schema_rate)

    def true_best_tier(self, task: SimTask, week: int | None = None, tolerance: float = 0.05) -> str:
        """Oracle for analysis: the cheapest tier within `tolerance` of the best success probability."""
        week = task.week if week is None else week
        tiers = self.tiers_at(week)
        mean_in, mean_out = self.scenario.tokens[task.profile]
        scale = _token_scale(task.difficulty)
        best = max(self.expected_success(task, t, week) for t in tiers)
        good = [t for t in tiers if self.expected_success(task, t, week) >= best - tolerance]
        return min(good, key=lambda t: (tiers[t].cost_usd(mean_in * scale, mean_out * scale), TIERS.index(t)))

    def attempt(self, task: SimTask, tier: str, attempt_no: int) -> Attempt:
        """One try of `task` on `tier`, deterministic per (seed, task_id, tier, attempt_no).

        The success draw is shared across tiers (common random numbers): a task one model solves is
        rarely beyond a stronger one, and it makes counterfactual comparisons between routers less noisy.
        All draws happen unconditionally so changing one probability never shifts the others.
        """
        sc = self.scenario
        truth = self._tier(tier, task.week)
        schema_rate = sc.schema_failure_rate.get(tier, 0.0)
        p_pass = self._pass_probability(task, tier, task.week)
        u_success = float(_rng(sc.seed, "success", task.task_id, attempt_no).random())
        rng = _rng(sc.seed, "attempt", task.task_id, tier, attempt_no)
        u_schema, u_override = rng.random(2)
        kinds = list(FAILURE_WEIGHTS)
        kind = kinds[int(rng.choice(len(kinds), p=list(FAILURE_WEIGHTS.values())))]
        bad_output = _INVALID_OUTPUTS[int(rng.integers(len(_INVALID_OUTPUTS)))]
        noise = rng.lognormal(-_NOISE_SIGMA**2 / 2, _NOISE_SIGMA, size=3)

        passed = u_success < p_pass
        schema_bad = passed and u_schema < schema_rate
        resolved = passed and not schema_bad
        failure = None if resolved else ("schema_invalid" if schema_bad else kind)

        mean_in, mean_out = sc.tokens[task.profile]
        scale = _token_scale(task.difficulty)
        input_tokens = max(1, round(mean_in * scale * noise[0]))
        output_tokens = max(1, round(mean_out * scale * noise[1]))
        latency = (truth.base_latency_ms + truth.latency_ms_per_1k_output * output_tokens / 1000) * noise[2]
        if failure == "timeout":
            latency *= 2.0  # it ran past its budget before the harness killed it

        bigger = [t for t in TIERS[TIERS.index(tier) + 1:] if t in sc.tiers]
        overridden = not resolved and bool(bigger) and u_override < sc.override_rate.get(task.profile, 0.0)

        output: dict[str, Any] | None = None
        if schema_bad:
            output = dict(bad_output)
        elif task.request.get("expected_output") == "json" and failure not in ("timeout", "error"):
            output = _valid_output(task)
        return Attempt(
            tier=tier,
            model=truth.model,
            resolved=resolved,
            failure=failure,
            cost_usd=truth.cost_usd(input_tokens, output_tokens),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=float(latency),
            overridden_to=bigger[0] if overridden else None,
            output=output,
            true_success_probability=p_pass * (1.0 - schema_rate),
        )

    def _pass_probability(self, task: SimTask, tier: str, week: int) -> float:
        """Probability the work itself is right, before any schema failure: the documented logit model."""
        base = self._tier(tier, week).success[task.profile]
        return _sigmoid(_logit(base) - self.scenario.difficulty_slope * (task.difficulty - 0.5))

    def _tier(self, tier: str, week: int) -> TierTruth:
        tiers = self.tiers_at(week)
        require(tier in tiers, "tier", f"unknown tier {tier!r}; scenario has {sorted(tiers)}")
        return tiers[tier]

    def _pick_row(self, profile: str, difficulty: float, rng: np.random.Generator) -> dict[str, Any]:
        """Prefer rows whose complexity label, relative to the profile's range, matches the difficulty.

        Why: the router only sees the request; if difficulty were independent of it, no feature could
        predict success within a profile and the benchmark could not reward a smarter router. The range
        is per profile because labels cluster by profile (mechanical rows are mostly 1, agentic 4-5).
        """
        complexity = self._complexity[profile]
        lo, hi = float(complexity.min()), float(complexity.max())
        target, width = lo + (hi - lo) * difficulty, max(0.35 * (hi - lo), 0.5)
        weights = np.exp(-0.5 * ((complexity - target) / width) ** 2) + 1e-12
        return self._rows[profile][int(rng.choice(len(weights), p=weights / weights.sum()))]


def _valid_output(task: SimTask) -> dict[str, Any]:
    files = task.request.get("files") or ["src/main.py"]
    name = files[0] if isinstance(files[0], str) else str(files[0])
    return {"summary": f"{task.profile} change for {task.task_id}", "patch": f"--- a/{name}\n+++ b/{name}\n"}


def _vary_prompt(prompt: str, rng: np.random.Generator) -> str:
    """Light, realistic surface variation so identical seed rows do not produce identical requests."""
    u, suffix, ticket = rng.random(), int(rng.integers(len(_PROMPT_SUFFIXES))), int(rng.integers(100, 9999))
    if u < 0.5:
        return prompt
    if u < 0.8:
        return prompt.rstrip() + _PROMPT_SUFFIXES[suffix]
    return f"[ENG-{ticket}] {prompt}"


def _token_scale(difficulty: float) -> float:
    """Harder tasks read more context and write more; the scale averages ~1 at median difficulty."""
    return 0.6 + 0.8 * difficulty


def _rng(*key: object) -> np.random.Generator:
    """A generator seeded by the key's bytes: stable across processes (unlike hash()), order-free."""
    return np.random.default_rng(list("\x1f".join(map(str, key)).encode()))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
