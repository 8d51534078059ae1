"""Pure task scoring: structural features, embedding similarity, profile and tier success scores.

Nothing here imports FastAPI, DuckDB or MLflow, so the tuner and the notebooks reuse it as is.
Scores are numbers only; the thresholds that turn them into a tier live in the policy.

The vocabularies below are declared once, as ``Literal`` types; every tuple is derived from them,
and the API, the CLI, the KPI SQL, the tuner and the benchmarks all import them from here.
"""

from typing import Literal, get_args

Profile = Literal["mechanical", "local", "repository", "agentic"]
"""Ordered from least to most demanding: "the more demanding profile" means the later one."""
ExpectedOutput = Literal["patch", "text", "json", "plan"]
Harness = Literal["local", "ci", "prod"]
Capability = Literal["read", "edit", "search", "test", "shell", "browser", "database"]
"""What a model must be able to drive for a tool; tool names map to these (``classify.tools``)."""
FailureKind = Literal["tests_failed", "schema_invalid", "timeout", "refused", "error"]
"""Why an attempt failed, as the harness reports it (outcomes, KPIs, the simulator)."""
NextAction = Literal["done", "escalate", "human", "script"]
"""What an outcome report tells the harness to do next."""
Stage = Literal["static", "encoder"]
"""Which scorer decided a profile: the static token embeddings (fast path) or the MiniLM encoder."""

PROFILES: tuple[Profile, ...] = get_args(Profile)
EXPECTED_OUTPUTS: tuple[ExpectedOutput, ...] = get_args(ExpectedOutput)
HARNESSES: tuple[Harness, ...] = get_args(Harness)
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)
NEXT_ACTIONS: tuple[NextAction, ...] = get_args(NextAction)
STAGES: tuple[Stage, ...] = get_args(Stage)
