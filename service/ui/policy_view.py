"""A policy as a person reads it, and what differs from the champion, field by field.

The diff flattens both policies' JSON into dotted paths (``thresholds.ci.local``) so a change
deep in a tier or a schema is one readable row, not a reformatted blob.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.policy.model import RoutingPolicy

# Differ by construction between any two versions: not a change anyone made.
IGNORED = frozenset({"version"})


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Dotted path → JSON text of each leaf; lists are leaves (a ladder is read as a whole)."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value, sort_keys=True)}


@dataclass(frozen=True)
class Change:
    path: str
    kind: Literal["changed", "added", "removed"]
    champion: str | None
    this: str | None


def diff(champion: RoutingPolicy, this: RoutingPolicy) -> list[Change]:
    a = flatten(champion.model_dump(mode="json", by_alias=True))
    b = flatten(this.model_dump(mode="json", by_alias=True))
    out = []
    for path in sorted(set(a) | set(b)):
        if path in IGNORED or a.get(path) == b.get(path):
            continue
        kind: Literal["changed", "added", "removed"] = (
            "added" if path not in a else "removed" if path not in b else "changed")
        out.append(Change(path, kind, a.get(path), b.get(path)))
    return out


def readable(policy: RoutingPolicy) -> dict[str, Any]:
    """The tables of the policy page, in the order an operator asks about them."""
    return {
        "harnesses": [h for h in HARNESSES if h in policy.thresholds],
        "profiles": list(PROFILES),
        "thresholds": policy.thresholds,
        "exploration": policy.exploration,
        "tiers": [(name, policy.tiers[name]) for name in policy.ladder],
        "temperature": policy.temperature,
        "escalation": policy.escalation,
        "schemas": {p: (s.name, json.dumps(s.json_schema, indent=2, sort_keys=True))
                    for p, s in policy.output_schemas.items()},
        "unsure": policy.unsure,
        "learned": policy.success_model is not None,
    }
