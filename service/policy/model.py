"""``RoutingPolicy``: everything that turns scores into a decision, validated on load.

A policy is data. The service, the tuner and the notebooks all read the same JSON, and a
policy that fails validation is refused with the offending field named.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from tierwise.service.classify import CAPABILITIES, HARNESSES, PROFILES, Capability, Harness, Profile
from tierwise.service.classify.success import SUCCESS_FEATURES, LinearSuccessModel
from tierwise.service.classify.tools import vocabulary
from tierwise.service.context.model import Strategy
from tierwise.service.errors import PolicyInvalid
from tierwise.service.settings import DEFAULT_SCRIPTS

TEMPERATURE_RANGES: dict[str, tuple[float, float]] = {
    "mechanical": (0.0, 0.2),
    "local": (0.2, 0.4),
    "repository": (0.3, 0.6),
    "agentic": (0.3, 0.6),
}


class FieldError(ValueError):
    """A cross-field check that knows which field is wrong, so the error can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# The ladder is ordered by blended list price per token, 3 input : 1 output: the blend public price
# comparisons use, and the one the bench orders its ladder by. Input and output prices alone can
# disagree (DeepSeek V3.2 is dearer per input token than GPT-5 mini, far cheaper per output token).
BLEND_INPUT, BLEND_OUTPUT = 3.0, 1.0

# Packing budgets by ladder rank for tiers that name none (issue 18's suggested defaults):
# small models get little context on purpose.
DEFAULT_CONTEXT_TOKENS = (8_000, 32_000, 100_000)


class _Strict(BaseModel):
    # ``Infinity``/``NaN`` parse as JSON in Python; a policy with them would make every cost
    # comparison meaningless, so they are refused with the field named.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Capabilities(_Strict):
    tool_use: bool
    json_mode: bool
    # The tool capabilities this tier's model can drive. Policies written before the open tool
    # vocabulary named tools (``read_file``, ``db_query``); those load as their capabilities.
    tools: list[Capability] = Field(default_factory=list)

    @field_validator("tools", mode="before")
    @classmethod
    def _as_capabilities(cls, v: object) -> object:
        if not isinstance(v, list):
            return v
        out: list[object] = []
        for name in v:
            if isinstance(name, str) and name not in CAPABILITIES:
                caps, unknown = vocabulary().resolve([name])
                if unknown:
                    raise ValueError(f"unknown capability or tool {name!r}; capabilities: {list(CAPABILITIES)}")
                out += [c for c in CAPABILITIES if c in caps]
            else:
                out.append(name)
        return list(dict.fromkeys(out))


class Unsure(_Strict):
    """When the classifier's top profile probability is below ``threshold``, the decision says so
    and routes as ``route_as``: the more demanding of the two leading profiles, or a named one."""

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    route_as: Literal["more_demanding"] | Profile = "more_demanding"


class Tier(_Strict):
    model: str = Field(min_length=1)
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    context_window: int = Field(gt=0)
    max_input_tokens: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    capabilities: Capabilities
    # Context packing (``POST /v1/context``): tokens of packed files this tier's model gets, well
    # under its input window on purpose, and how they are spent. None: by ladder rank (see
    # ``RoutingPolicy.context_budget``), so policies written before the field still load.
    context_tokens: int | None = Field(None, gt=0)
    context_strategy: Strategy | None = None

    @property
    def blended_usd_per_mtok(self) -> float:
        return (BLEND_INPUT * self.input_usd_per_mtok + BLEND_OUTPUT * self.output_usd_per_mtok) / (
            BLEND_INPUT + BLEND_OUTPUT)

    @model_validator(mode="after")
    def _budget_fits(self) -> Tier:
        if self.max_input_tokens + self.max_output_tokens > self.context_window:
            raise ValueError("max_input_tokens + max_output_tokens exceeds context_window")
        if self.context_tokens is not None and self.context_tokens > self.max_input_tokens:
            raise ValueError("context_tokens exceeds max_input_tokens")
        return self


class OutputSchema(_Strict):
    name: str = Field(min_length=1)
    json_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return v


class Escalation(_Strict):
    max_steps: int = Field(2, ge=0, le=2)
    # The tiers escalation may climb through, cheapest first; None means every tier of the ladder.
    # Lets a policy (or the tuner) skip rungs, e.g. escalate small → frontier directly.
    ladder: list[str] | None = None
    # A deterministic script that takes over from the human queue for a profile, if any.
    scripts: dict[Profile, str] = Field(default_factory=dict)


class SuccessModelSpec(_Strict):
    """A learned per-tier logistic model over ``SUCCESS_FEATURES`` (replaces the priors)."""

    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    coef: dict[str, list[float]]
    intercept: dict[str, float]

    @model_validator(mode="after")
    def _shapes(self) -> SuccessModelSpec:
        if tuple(self.feature_names) != SUCCESS_FEATURES:
            raise ValueError(f"feature_names must be {list(SUCCESS_FEATURES)}")
        n = len(self.feature_names)
        if len(self.mean) != n or len(self.scale) != n or any(s <= 0 for s in self.scale):
            raise ValueError("mean and scale need one entry per feature, and scale must be > 0")
        for tier, c in self.coef.items():
            if len(c) != n:
                raise ValueError(f"coef for tier {tier!r} needs {n} values")
        if set(self.coef) != set(self.intercept):
            raise ValueError("coef and intercept must name the same tiers")
        return self

    def to_model(self) -> LinearSuccessModel:
        return LinearSuccessModel(tuple(self.feature_names), tuple(self.mean), tuple(self.scale),
                                  self.coef, self.intercept)


class RoutingPolicy(_Strict):
    schema_version: Literal[1] = 1
    version: str = Field("bootstrap", min_length=1)
    description: str = ""
    price_source: str = Field(min_length=1)
    tiers: dict[str, Tier]
    # Cheapest first; escalation walks up this list.
    ladder: list[str] = Field(min_length=1)
    success_priors: dict[Profile, dict[str, float]]
    success_model: SuccessModelSpec | None = None
    thresholds: dict[Harness, dict[Profile, float]]
    temperature: dict[Profile, float]
    output_schemas: dict[Profile, OutputSchema]
    escalation: Escalation = Escalation()
    exploration: dict[Harness, float]
    # Which tiers an exploratory pick draws from: the eligible neighbours of the greedy tier on the
    # ladder ("adjacent"), or every other eligible tier ("any"). A threshold moves tasks a rung at
    # a time, so neighbours are the counterfactuals the tuner needs; "any" spreads the same budget
    # over tiers no candidate would pick (small for agentic work, say).
    explore: Literal["adjacent", "any"] = "adjacent"
    unsure: Unsure = Unsure()
    # Tokens of context one in-scope file is assumed to need, for the context-window check.
    tokens_per_file: int = Field(300, ge=0)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> RoutingPolicy:
        tiers = set(self.tiers)
        if sorted(self.ladder) != sorted(tiers) or len(set(self.ladder)) != len(self.ladder):
            raise FieldError("ladder", f"must list each tier {sorted(tiers)} exactly once, got {self.ladder}")
        _check_price_order(self)
        _need_all(self.success_priors, PROFILES, "success_priors")
        for profile, row in self.success_priors.items():
            if set(row) != tiers:
                raise FieldError(f"success_priors.{profile}", f"must give a prior for each tier {sorted(tiers)}")
            for tier, p in row.items():
                if not 0.0 <= p <= 1.0:
                    raise FieldError(f"success_priors.{profile}.{tier}", f"{p} is outside [0, 1]")
        if self.escalation.ladder is not None:
            unknown = [t for t in self.escalation.ladder if t not in tiers]
            if unknown:
                raise FieldError("escalation.ladder", f"names unknown tiers {unknown}")
            _check_climbs(self.escalation.ladder, self.ladder)
        allowed = (info.context or {}).get("scripts", DEFAULT_SCRIPTS)
        for prof, script in self.escalation.scripts.items():
            if script not in allowed:
                raise FieldError(f"escalation.scripts.{prof}", f"{script!r} is not a configured script; "
                                 f"allowed: {sorted(allowed)} (TIERWISE_SCRIPTS)")
        if self.success_model is not None and set(self.success_model.coef) != tiers:
            raise FieldError("success_model.coef", "must give a model for each tier")
        _need_all(self.thresholds, HARNESSES, "thresholds")
        for harness, by_profile in self.thresholds.items():
            _need_all(by_profile, PROFILES, f"thresholds.{harness}")
            for prof, value in by_profile.items():
                if not 0.0 <= value <= 1.0:
                    raise FieldError(f"thresholds.{harness}.{prof}", f"{value} is outside [0, 1]")
        _need_all(self.temperature, PROFILES, "temperature")
        for prof, temp in self.temperature.items():
            lo, hi = TEMPERATURE_RANGES[prof]
            if not lo <= temp <= hi:
                raise FieldError(f"temperature.{prof}", f"{temp} is outside [{lo}, {hi}]")
        _need_all(self.output_schemas, PROFILES, "output_schemas")
        _need_all(self.exploration, HARNESSES, "exploration")
        for harness, rate in self.exploration.items():
            if not 0.0 <= rate <= 0.5:
                raise FieldError(f"exploration.{harness}", f"{rate} is outside [0, 0.5]")
        return self

    def rank(self, tier: str) -> int:
        return self.ladder.index(tier)

    def context_budget(self, tier: str) -> tuple[int, Strategy]:
        """The tier's packing budget and strategy: its own fields, else by rank on the ladder
        (``DEFAULT_CONTEXT_TOKENS``; the cheapest tier ``focused``, the others ``map``), never
        above the tier's ``max_input_tokens``."""
        t, rank = self.tiers[tier], self.rank(tier)
        tokens = t.context_tokens or DEFAULT_CONTEXT_TOKENS[min(rank, len(DEFAULT_CONTEXT_TOKENS) - 1)]
        strategy: Strategy = t.context_strategy or ("focused" if rank == 0 else "map")
        return min(tokens, t.max_input_tokens), strategy

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=False)


def _check_price_order(policy: RoutingPolicy) -> None:
    """Escalation climbs the ladder to buy capability; a rung cheaper than the one below it
    would make "escalate" mean "retry on a cheaper model", and the tuner's cost model assumes
    cost grows with rank. Equal prices are allowed (two models at one price point)."""
    for lower, upper in zip(policy.ladder, policy.ladder[1:], strict=False):
        lo, hi = policy.tiers[lower].blended_usd_per_mtok, policy.tiers[upper].blended_usd_per_mtok
        if hi < lo:
            raise FieldError("ladder", f"must be ordered by price, cheapest first: {upper!r} "
                             f"(${hi:.4g}/Mtok blended 3:1) is above {lower!r} (${lo:.4g}/Mtok)")


def _check_climbs(climb: list[str], ladder: list[str]) -> None:
    """The escalation ladder only climbs: each rung strictly above the previous one, so no tier
    escalates to itself or to a cheaper tier, and no chain can cycle."""
    ranks = [ladder.index(t) for t in climb]
    for i in range(1, len(ranks)):
        if ranks[i] <= ranks[i - 1]:
            what = "itself" if ranks[i] == ranks[i - 1] else f"the cheaper tier {climb[i]!r}"
            raise FieldError("escalation.ladder", f"must climb the ladder {ladder}: {climb[i - 1]!r} "
                             f"escalates to {what}, which would cycle")


def _need_all(mapping: dict[Any, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise FieldError(where, f"is missing {missing}")


def parse_policy(raw: str | bytes | dict[str, Any], *, version: str | None = None,
                 scripts: Collection[str] = DEFAULT_SCRIPTS) -> RoutingPolicy:
    """Parse and validate; any problem becomes PolicyInvalid naming the field (dotted path).

    ``scripts`` is the allow-list for ``escalation.scripts`` (the ``TIERWISE_SCRIPTS`` setting)."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    except json.JSONDecodeError as exc:
        raise PolicyInvalid(f"policy is not valid JSON: {exc.msg} at line {exc.lineno}", field="$") from exc
    if not isinstance(data, dict):
        raise PolicyInvalid("policy must be a JSON object", field="$")
    if version is not None:
        data["version"] = version
    try:
        return RoutingPolicy.model_validate(data, context={"scripts": frozenset(scripts)})
    except ValidationError as exc:
        err = exc.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        prefix = [str(p) for p in err["loc"]]
        if isinstance(cause, FieldError):
            prefix.append(cause.field)
        field = ".".join(prefix) or "$"
        msg = str(cause) if isinstance(cause, FieldError) else str(err["msg"]).removeprefix("Value error, ")
        raise PolicyInvalid(f"invalid policy: {field}: {msg}", field=field) from exc
