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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.service.classify import PROFILES, FailureKind

# Cheapest to biggest: a human override escalates one step along this order.
TIERS = ("small", "medium", "frontier")
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
_META_KEYS = frozenset({"description", "price_source"})
_SCENARIO_KEYS = frozenset(
    {"name", "seed", "weeks", "tasks_per_week", "harness", "mix", "tiers", "difficulty",
     "difficulty_slope", "override_rate", "schema_failure_rate", "tokens", "events"}
)
_TIER_KEYS = frozenset(
    {"model", "input_usd_per_mtok", "output_usd_per_mtok", "success", "latency_ms_per_1k_output",
     "base_latency_ms"}
)
_SWAP_KEYS = frozenset(
    {"week", "kind", "tier", "model", "success", "success_scale", "input_usd_per_mtok", "output_usd_per_mtok"}
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
class Scenario:
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
        _check(isinstance(self.name, str) and bool(self.name), "name", "must be a non-empty string")
        _check(_is_int(self.seed), "seed", "must be an integer")
        _check(_is_int(self.weeks) and self.weeks >= 1, "weeks", "must be an integer >= 1")
        _check(_is_int(self.tasks_per_week) and self.tasks_per_week >= 1, "tasks_per_week", "must be >= 1")
        _check(isinstance(self.harness, str) and bool(self.harness), "harness", "must be a non-empty string")
        slope = self.difficulty_slope
        _check(_finite(slope) and slope >= 0, "difficulty_slope", "must be a number >= 0")
        _check(bool(self.tiers), "tiers", "must define at least one tier")
        for name, truth in self.tiers.items():
            _check(name in TIERS, f"tiers.{name}", f"unknown tier; expected one of {TIERS}")
            _check_tier(f"tiers.{name}", truth)
        used = set(_check_mix("mix", self.mix))
        for key, pair in (("difficulty", self.difficulty), ("tokens", self.tokens)):
            for profile, (a, b) in pair.items():
                _check_profile(f"{key}.{profile}", profile)
                ok = _finite(a) and _finite(b) and a > 0 and b > 0
                _check(ok, f"{key}.{profile}", "must be two numbers > 0")
        for profile, rate in self.override_rate.items():
            _check_profile(f"override_rate.{profile}", profile)
            _check_prob(f"override_rate.{profile}", rate)
        for tier, rate in self.schema_failure_rate.items():
            _check(tier in self.tiers, f"schema_failure_rate.{tier}", "refers to a tier the scenario lacks")
            _check_prob(f"schema_failure_rate.{tier}", rate)
        for i, event in enumerate(self.events):
            used |= self._check_event(f"events[{i}]", event)
        for profile in sorted(used):
            for key, table in (("difficulty", self.difficulty), ("tokens", self.tokens)):
                _check(profile in table, f"{key}.{profile}", "missing for a profile the mix uses")
            for tier, truth in self.tiers.items():
                _check(profile in truth.success, f"tiers.{tier}.success.{profile}", "missing for a used one")

    def _check_event(self, path: str, event: dict[str, Any]) -> set[str]:
        """Validate one drift event and return the profiles it brings into the mix."""
        _check(isinstance(event, dict), path, "must be an object")
        week: Any = event.get("week")
        in_range = _is_int(week) and 0 <= week < self.weeks
        _check(in_range, f"{path}.week", f"must be an integer in [0, {self.weeks})")
        kind = event.get("kind")
        if kind == "mix":
            _check(set(event) == {"week", "kind", "mix"}, path, "a mix event has exactly week, kind, mix")
            return set(_check_mix(f"{path}.mix", event["mix"]))
        _check(kind == "swap_model", f"{path}.kind", "must be 'mix' or 'swap_model'")
        for key in event:
            _check(key in _SWAP_KEYS, f"{path}.{key}", "unknown key for a swap_model event")
        _check(event.get("tier") in self.tiers, f"{path}.tier", "refers to a tier the scenario lacks")
        model = event.get("model")
        _check(isinstance(model, str) and bool(model), f"{path}.model", "must be a non-empty string")
        _check(not ("success" in event and "success_scale" in event), path, "give success or success_scale")
        for profile, p in event.get("success", {}).items():
            _check_profile(f"{path}.success.{profile}", profile)
            _check_prob(f"{path}.success.{profile}", p)
        if "success_scale" in event:
            scale = event["success_scale"]
            _check(_finite(scale) and scale > 0, f"{path}.success_scale", "must be a number > 0")
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            if key in event:
                _check(_finite(event[key]) and event[key] >= 0, f"{path}.{key}", "must be a number >= 0")
        return set()


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


def load_scenario(path: Path) -> Scenario:
    """Parse a scenario JSON file; errors name the offending key so a bad scenario is quick to fix."""
    raw = json.loads(Path(path).read_text())
    _check(isinstance(raw, dict), "<root>", "scenario must be a JSON object")
    for key in raw:
        _check(key in _SCENARIO_KEYS or key in _META_KEYS, key, "unknown scenario key")
    for key in ("name", "seed", "weeks", "tasks_per_week", "mix", "tiers", "difficulty", "tokens"):
        _check(key in raw, key, "missing required scenario key")
    tiers: dict[str, TierTruth] = {}
    for name, spec in _mapping("tiers", raw["tiers"]).items():
        spec = _mapping(f"tiers.{name}", spec)
        for key in _TIER_KEYS | set(spec):
            _check(key in spec and key in _TIER_KEYS, f"tiers.{name}.{key}", "missing or unknown tier key")
        success = _mapping(f"tiers.{name}.success", spec["success"])
        tiers[name] = TierTruth(**{**spec, "success": success})
    optional_keys = ("difficulty_slope", "override_rate", "schema_failure_rate", "harness")
    optional = {k: raw[k] for k in optional_keys if k in raw}
    return Scenario(
        name=raw["name"],
        seed=raw["seed"],
        weeks=raw["weeks"],
        tasks_per_week=raw["tasks_per_week"],
        mix=dict(_mapping("mix", raw["mix"])),
        tiers=tiers,
        difficulty=_pairs("difficulty", raw["difficulty"]),
        tokens=_pairs("tokens", raw["tokens"]),
        events=list(raw.get("events", [])),
        **optional,
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

    def __init__(self, scenario: Scenario, corpus: list[dict[str, Any]]) -> None:
        self.scenario = scenario
        # sorted() is stable, so events of the same week apply in file order.
        self._events = sorted(scenario.events, key=lambda e: int(e["week"]))
        rows: dict[str, list[dict[str, Any]]] = {p: [] for p in PROFILES}
        for i, row in enumerate(corpus):
            for key in ("id", "prompt", "profile"):
                _check(key in row, f"corpus[{i}].{key}", "missing")
            _check_profile(f"corpus[{i}].profile", row["profile"])
            rows[row["profile"]].append(row)
        mixes = [scenario.mix] + [e["mix"] for e in self._events if e["kind"] == "mix"]
        for profile in sorted({p for m in mixes for p, w in m.items() if w > 0}):
            _check(bool(rows[profile]), f"corpus.{profile}", "no corpus rows for a profile the mix uses")
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
        _check(_is_int(week) and 0 <= week < sc.weeks, "week", f"must be in [0, {sc.weeks})")
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
        _check(tier in tiers, "tier", f"unknown tier {tier!r}; scenario has {sorted(tiers)}")
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


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_prob(key: str, value: Any) -> None:
    _check(_finite(value) and 0.0 <= value <= 1.0, key, f"probability {value!r} not in [0, 1]")


def _check_profile(key: str, profile: Any) -> None:
    _check(profile in PROFILES, key, f"unknown profile {profile!r}; expected one of {PROFILES}")


def _check_mix(key: str, mix: Any) -> list[str]:
    """Validate a task mix and return the profiles it actually uses."""
    _check(isinstance(mix, dict) and bool(mix), key, "must be a non-empty object")
    for profile, weight in mix.items():
        _check_profile(f"{key}.{profile}", profile)
        _check_prob(f"{key}.{profile}", weight)
    total = sum(mix.values())
    _check(abs(total - 1.0) <= 0.01, key, f"weights sum to {total:.4f}, expected ~1")
    return [p for p, w in mix.items() if w > 0]


def _check_tier(key: str, truth: TierTruth) -> None:
    _check(isinstance(truth.model, str) and bool(truth.model), f"{key}.model", "must be a non-empty string")
    for name in ("input_usd_per_mtok", "output_usd_per_mtok", "latency_ms_per_1k_output", "base_latency_ms"):
        value = getattr(truth, name)
        _check(_finite(value) and value >= 0, f"{key}.{name}", "must be a number >= 0")
    _check(isinstance(truth.success, dict), f"{key}.success", "must be an object")
    for profile, p in truth.success.items():
        _check_profile(f"{key}.success.{profile}", profile)
        _check_prob(f"{key}.success.{profile}", p)


def _mapping(key: str, value: Any) -> dict[str, Any]:
    _check(isinstance(value, dict), key, "must be an object")
    return dict(value)


def _pairs(key: str, value: Any) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for profile, pair in _mapping(key, value).items():
        _check(isinstance(pair, list | tuple) and len(pair) == 2, f"{key}.{profile}", "must be a pair [a, b]")
        out[profile] = (pair[0], pair[1])
    return out
