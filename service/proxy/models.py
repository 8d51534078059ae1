"""Model ids the proxy answers to: ``tierwise`` routes, ``tierwise/<tier>`` forces a tier, and
anything else passes through to the default upstream unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from tierwise.service.errors import InvalidInput
from tierwise.service.policy.model import RoutingPolicy

Mode = Literal["auto", "forced", "passthrough"]
MODES: tuple[Mode, ...] = get_args(Mode)
ROUTER_ID = "tierwise"
AUTO_IDS = (ROUTER_ID, f"{ROUTER_ID}/auto")
PREFIX = f"{ROUTER_ID}/"


@dataclass(frozen=True)
class Target:
    mode: Mode
    tier: str | None = None  # the forced tier
    model: str | None = None  # the pass-through model id


def parse_model(model: str, policy: RoutingPolicy) -> Target:
    if model in AUTO_IDS:
        return Target("auto")
    if model.startswith(PREFIX):
        tier = model[len(PREFIX):]
        if tier not in policy.tiers:
            raise InvalidInput(f"model {model!r} names no tier of policy {policy.version}; use {ROUTER_ID!r} "
                               f"or one of {', '.join(PREFIX + t for t in policy.ladder)}", field="model")
        return Target("forced", tier=tier)
    return Target("passthrough", model=model)


def model_list(policy: RoutingPolicy) -> dict[str, Any]:
    """``GET /v1/models``: the router ids, one id per tier, and the tiers' model ids (pass-through)."""
    models = dict.fromkeys(policy.tiers[t].model for t in policy.ladder)
    ids = [*AUTO_IDS, *(PREFIX + t for t in policy.ladder), *models]
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": ROUTER_ID} for i in ids]}
