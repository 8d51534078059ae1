"""Policy versions for the analysis: promotions over time, and the champion and challenger to compare."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.tuner.analysis.load import to_utc


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
