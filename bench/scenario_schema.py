"""The scenario file format (``bench/scenarios/*.json``) as a pydantic model.

Why: a scenario is hand-written JSON, and a typo should fail at load time with the key that is
wrong (``tiers.small.success.local: ...``), not as a strange benchmark figure an hour later. The
model says what each key may hold; ``validate_scenario`` turns pydantic's errors into one
``ValueError`` whose message starts with the dotted key.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from tierwise.service.classify import Profile

TierName = Literal["small", "medium", "frontier"]  # cheapest to biggest
TIERS: tuple[TierName, ...] = ("small", "medium", "frontier")

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]


def _sums_to_one(mix: dict[Profile, float]) -> dict[Profile, float]:
    if not mix:
        raise ValueError("must be a non-empty object")
    total = sum(mix.values())
    if not math.isclose(total, 1.0, abs_tol=0.01):
        raise ValueError(f"weights sum to {total:.4f}, expected ~1")
    return mix


Mix = Annotated[dict[Profile, Probability], AfterValidator(_sums_to_one)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierSpec(_Strict):
    model: Name
    input_usd_per_mtok: NonNegative
    output_usd_per_mtok: NonNegative
    success: dict[Profile, Probability]
    latency_ms_per_1k_output: NonNegative
    base_latency_ms: NonNegative


class MixEvent(_Strict):
    week: StrictInt
    kind: Literal["mix"]
    mix: Mix


class SwapEvent(_Strict):
    week: StrictInt
    kind: Literal["swap_model"]
    tier: TierName
    model: Name
    success: dict[Profile, Probability] = Field(default_factory=dict)
    success_scale: Positive | None = None
    input_usd_per_mtok: NonNegative | None = None
    output_usd_per_mtok: NonNegative | None = None


Event = Annotated[MixEvent | SwapEvent, Field(discriminator="kind")]


class ScenarioSpec(_Strict):
    name: Name
    seed: StrictInt
    weeks: Annotated[StrictInt, Field(ge=1)]
    tasks_per_week: Annotated[StrictInt, Field(ge=1)]
    harness: Name = "ci"
    mix: Mix
    tiers: Annotated[dict[TierName, TierSpec], Field(min_length=1)]
    difficulty: dict[Profile, tuple[Positive, Positive]]  # Beta(alpha, beta) per profile
    tokens: dict[Profile, tuple[Positive, Positive]]  # (mean input, mean output) per profile
    difficulty_slope: NonNegative = 4.0
    override_rate: dict[Profile, Probability] = Field(default_factory=dict)
    schema_failure_rate: dict[TierName, Probability] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)
    # Free-text provenance, ignored by the simulator.
    description: str | None = None
    price_source: Any = None

    def cross_checks(self) -> None:
        """Rules between keys (pydantic checks each key alone); messages start with the key."""
        used = {p for p, w in self.mix.items() if w > 0}
        for tier in self.schema_failure_rate:
            require(tier in self.tiers, f"schema_failure_rate.{tier}", "refers to a tier the scenario lacks")
        for i, event in enumerate(self.events):
            path = f"events[{i}]"
            require(0 <= event.week < self.weeks, f"{path}.week", f"must be an integer in [0, {self.weeks})")
            if isinstance(event, MixEvent):
                used |= {p for p, w in event.mix.items() if w > 0}
                continue
            require(event.tier in self.tiers, f"{path}.tier", "refers to a tier the scenario lacks")
            require(not (event.success and event.success_scale is not None), path,
                     "give success or success_scale, not both")
        for profile in sorted(used):
            for key, table in (("difficulty", self.difficulty), ("tokens", self.tokens)):
                require(profile in table, f"{key}.{profile}", "missing for a profile the mix uses")
            for tier, spec in self.tiers.items():
                require(profile in spec.success, f"tiers.{tier}.success.{profile}",
                         "missing for a profile the mix uses")


class ScenarioError(ValueError):
    """A scenario that does not validate; the message starts with the offending key."""


def require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ScenarioError(f"{key}: {message}")


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i >= 2 and loc[i - 2] == "events" and part in ("mix", "swap_model") and isinstance(loc[i - 1], int):
            continue  # the discriminator's tag, not a key of the file
        else:
            out += ("." if out else "") + part
    return out or "<root>"


def validate_scenario(raw: Any) -> ScenarioSpec:
    """The scenario as a checked model, or a ``ScenarioError`` naming the first bad key."""
    if not isinstance(raw, dict):
        raise ScenarioError("<root>: scenario must be a JSON object")
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ScenarioError(f"{_dotted(tuple(err['loc']))}: {err['msg']}") from None
    spec.cross_checks()
    return spec
