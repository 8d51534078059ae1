"""Pure task scoring: structural features, embedding similarity, profile and tier success scores.

Nothing here imports FastAPI, DuckDB or MLflow, so the tuner and the notebooks reuse it as is.
Scores are numbers only; the thresholds that turn them into a tier live in the policy.

The vocabularies below are declared once, as ``Literal`` types; every tuple is derived from them.
"""

from typing import Literal, get_args

Profile = Literal["mechanical", "local", "repository", "agentic"]
"""Ordered from least to most demanding: "the more demanding profile" means the later one."""
ExpectedOutput = Literal["patch", "text", "json", "plan"]
Harness = Literal["local", "ci", "prod"]
Capability = Literal["read", "edit", "search", "test", "shell", "browser", "database"]
"""What a model must be able to drive for a tool; tool names map to these (``classify.tools``)."""

PROFILES: tuple[Profile, ...] = get_args(Profile)
EXPECTED_OUTPUTS: tuple[ExpectedOutput, ...] = get_args(ExpectedOutput)
HARNESSES: tuple[Harness, ...] = get_args(Harness)
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)
