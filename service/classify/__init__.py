"""Pure task scoring: structural features, embedding similarity, profile and tier success scores.

Nothing here imports FastAPI, DuckDB or MLflow, so the tuner and the notebooks reuse it as is.
Scores are numbers only; the thresholds that turn them into a tier live in the policy.
"""

PROFILES: tuple[str, ...] = ("mechanical", "local", "repository", "agentic")
EXPECTED_OUTPUTS: tuple[str, ...] = ("patch", "text", "json", "plan")
TOOLS: tuple[str, ...] = (
    "read_file", "edit_file", "search_code", "run_tests", "shell", "browser", "db_query",
)
HARNESSES: tuple[str, ...] = ("local", "ci", "prod")
