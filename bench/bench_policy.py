"""The SWE-bench bench policy: a bootstrap built from models.csv alone, blind to the 500 results.

What may be looked at: the model table's *list prices* and nothing else. The resolved counts, the
recorded mean costs and the per-task outcomes in the same folder are what the benchmark scores,
so no field of the policy may come from them.

Choices, each documented in the policy's ``description`` too:

- Tiers: one per model in ``BENCH_MODELS`` (tier name = the data's ``model_key``), with the list
  input/output price per Mtok from models.csv.
- Ladder: ascending *blended list price*, ``(3 × input + 1 × output) / 4`` per Mtok: the common
  3:1 input:output blend used by public price comparisons. It is price alone; note that by this
  blend DeepSeek V3.2 (0.315) is cheaper than GPT-5 mini (0.6875), so DeepSeek is the bottom rung.
  (Ordering by the recorded mean cost per task would give the same ladder, but that field is an
  outcome of the runs being scored, so it is not used.)
- Success priors: identical for every profile and a function of price rank only, from 0.50 at the
  cheapest tier to 0.70 at the dearest: "you get what you pay for", nothing task-specific.
- Thresholds: 0.5 everywhere (neutral), so the bootstrap starts every task on the cheapest tier and
  climbs on failure: the static cheap-first rules that retuning has to beat.
- Escalation: at most two steps over the whole ladder (the service's limit).
- Exploration: 0 on ``local`` (evaluation), ``EXPLORATION_CI`` on ``ci`` (warm-up traffic), 0.05 on
  ``prod``; exploration is what lets the tuner see the outcome of tiers the policy would not pick.
  It draws from every rung (``explore: any``), not only the greedy tier's neighbours (the product
  default): this bootstrap starts every task on the bottom rung, so neighbours-only exploration
  would never try gemini, sonnet or opus first.
- Budgets: 128k input tokens and 32k output tokens for every tier (all five have ≥ 160k context).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.model import RoutingPolicy, parse_policy

BENCH_MODELS: tuple[str, ...] = (
    "gpt_5_mini",
    "deepseek_v3_2_reasoner",
    "gemini_3_pro_preview_20251118",
    "sonnet_4_5_20250929",
    "claude_opus_4_5_20251101",
)
WEAK_MODEL = "gpt_5_mini"
STRONG_MODEL = "claude_opus_4_5_20251101"
INPUT_WEIGHT, OUTPUT_WEIGHT = 3.0, 1.0
PRIOR_LOW, PRIOR_HIGH = 0.5, 0.7
NEUTRAL_THRESHOLD = 0.5
EXPLORATION_CI = 0.25
TOOLS = ["read_file", "edit_file", "search_code", "run_tests", "shell"]
CONTEXT_WINDOW = 160_000
MAX_INPUT, MAX_OUTPUT = 128_000, 32_000


def blended_price(input_usd: float, output_usd: float) -> float:
    return (INPUT_WEIGHT * input_usd + OUTPUT_WEIGHT * output_usd) / (INPUT_WEIGHT + OUTPUT_WEIGHT)


def ladder_from_prices(models: pd.DataFrame, keys: tuple[str, ...] = BENCH_MODELS) -> list[str]:
    """Cheapest first by blended list price (ties by key, for determinism)."""
    def price(k: str) -> float:
        row = models.loc[k]
        if pd.isna(row["list_input_usd_per_mtok"]) or pd.isna(row["list_output_usd_per_mtok"]):
            raise ValueError(f"{k}: no list price in models.csv; it cannot be a bench tier")
        return blended_price(float(row["list_input_usd_per_mtok"]), float(row["list_output_usd_per_mtok"]))

    return sorted(keys, key=lambda k: (price(k), k))


def build_policy(models: pd.DataFrame, keys: tuple[str, ...] = BENCH_MODELS) -> RoutingPolicy:
    """The bench bootstrap policy; reads only model keys, tags and list prices from ``models``."""
    ladder = ladder_from_prices(models, keys)
    base = json.loads(default_policy_file().read_text())  # temperature map and output schemas
    n = len(ladder)
    priors = {t: round(PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * i / max(1, n - 1), 4) for i, t in enumerate(ladder)}
    tiers: dict[str, Any] = {}
    for k in ladder:
        row = models.loc[k]
        tiers[k] = {
            "model": str(row["model_tag"]),
            "input_usd_per_mtok": float(row["list_input_usd_per_mtok"]),
            "output_usd_per_mtok": float(row["list_output_usd_per_mtok"]),
            "context_window": CONTEXT_WINDOW,
            "max_input_tokens": MAX_INPUT,
            "max_output_tokens": MAX_OUTPUT,
            "capabilities": {"tool_use": True, "json_mode": True, "tools": list(TOOLS)},
        }
    blends = ", ".join(f"{k} {blended_price(tiers[k]['input_usd_per_mtok'], tiers[k]['output_usd_per_mtok']):.4g}"
                       for k in ladder)
    raw = {
        "schema_version": 1,
        "version": "bench-bootstrap",
        "description": ("SWE-bench bench bootstrap: ladder by blended list price (3 in : 1 out) "
                        f"[{blends}]; priors by price rank only, equal across profiles; thresholds "
                        f"{NEUTRAL_THRESHOLD}; never reads results of the 500 tasks."),
        "price_source": "shared/data/real/models.csv list prices (litellm 1.110.2 backup price file)",
        "tiers": tiers,
        "ladder": ladder,
        "success_priors": {p: dict(priors) for p in PROFILES},
        "success_model": None,
        "thresholds": {h: {p: NEUTRAL_THRESHOLD for p in PROFILES} for h in HARNESSES},
        "temperature": base["temperature"],
        "output_schemas": base["output_schemas"],
        "escalation": {"max_steps": 2, "scripts": {}},
        "exploration": {"local": 0.0, "ci": EXPLORATION_CI, "prod": 0.05},
        "explore": "any",
        "tokens_per_file": 300,
    }
    return parse_policy(raw)


def write_policy(policy: RoutingPolicy, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policy.canonical_json())
    return path


def shift_threshold(t: float, push: float) -> float:
    """Move a threshold toward 1 (``push`` > 0) or toward 0 (``push`` < 0) by that fraction of the way."""
    out = t + push * (1.0 - t) if push >= 0 else t * (1.0 + push)
    return round(min(1.0, max(0.0, out)), 6)


def shifted_thresholds(policy: RoutingPolicy, push: float, version: str) -> str:
    """The same policy with every threshold pushed toward 1 or 0 (see ``shift_threshold``), as JSON.

    One knob for the operating curve: a positive push demands more confidence before settling on a
    cheap tier (more first attempts high on the ladder, more cost), a negative one settles sooner.
    A multiplicative scale was tried first; learned success scores sit in a narrow band, so ±25% moved
    no decision. Exploration is untouched here (evaluation copies zero it separately).
    """
    raw = json.loads(policy.canonical_json())
    raw["version"] = version
    raw["thresholds"] = {h: {p: shift_threshold(t, push) for p, t in row.items()}
                         for h, row in raw["thresholds"].items()}
    return json.dumps(raw, indent=2)


def monolithic_policy(models: pd.DataFrame, key: str) -> RoutingPolicy:
    """A one-tier policy (always ``key``, never escalate): the monolithic baseline, servable as is."""
    base = json.loads(build_policy(models).canonical_json())
    raw = dict(base, version=f"monolithic-{key}", description=f"always {key}, one attempt",
               tiers={key: base["tiers"][key]}, ladder=[key],
               success_priors={p: {key: PRIOR_HIGH} for p in PROFILES},
               escalation={"max_steps": 0, "scripts": {}},
               exploration={h: 0.0 for h in HARNESSES})
    return parse_policy(raw)
