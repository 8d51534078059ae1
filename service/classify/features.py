"""Structural features: cheap signals a harness sends with the task, plus keyword cues.

They are stable, explainable and free to compute. ``structural_features`` returns everything
that is logged with a decision; only ``PROFILE_GROUPS`` feed the profile classifier, each group
counting only when its field is present (``present_groups``), so a field a harness leaves out
cannot move the profile. Tool names are absent on purpose: a harness offers the same tools for
every task, so they describe the harness, not the work.
"""

from __future__ import annotations

import math
import re

from tierwise.service.classify import EXPECTED_OUTPUTS
from tierwise.service.classify.task import Task

# Keyword cues per profile; matched as whole words on the lower-cased prompt.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "mechanical": (
        "rename", "renamed", "reformat", "format", "formatting", "prettier", "black", "gofmt",
        "lint", "typo", "bump", "sort", "boilerplate", "docstring", "docstrings", "commit message",
        "changelog", "summarize", "summarise", "summary", "replace", "license header", "copyright",
        "isort", "whitespace", "indentation", "convert", "regenerate",
    ),
    "local": (
        "bug", "fix", "fails", "failing", "error", "exception", "traceback", "crash", "off-by-one",
        "null", "nil", "panic", "segfault", "returns", "wrong", "edge case", "regression",
        "unit test", "flaky",
    ),
    "repository": (
        "refactor", "migrate", "migration", "across", "callers", "every caller", "all callers",
        "signature", "interface", "api", "module", "modules", "deprecate", "extract", "split",
        "codebase", "package", "layer", "dependency injection", "replace all",
    ),
    "agentic": (
        "investigate", "figure out", "find out", "why", "root cause", "design", "build",
        "set up", "prototype", "evaluate", "plan", "end-to-end", "production", "outage",
        "intermittent", "sometimes", "latency", "memory leak", "oom", "upgrade", "from scratch",
        "whatever", "track down",
    ),
}

_PATTERNS = {
    profile: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")
    for profile, words in KEYWORDS.items()
}
_CODE_FENCE = re.compile(r"```|^\s{4}\S", re.MULTILINE)
# A path (``src/app/main.py``) or a bare file name with a common source extension.
_PATH = re.compile(r"(?:[\w.-]+/)+[\w.-]+\.\w{1,6}\b|\b[\w-]+\.(?:py|ts|tsx|js|jsx|go|rs|java|kt|cs|rb|php|"
                   r"swift|c|h|cc|cpp|hpp|scala|ex|exs|sql|tf|ya?ml|toml|json|md|sh|css|html|vue|dart)\b")
_TRACE = re.compile(r"traceback|exception|error:|panic:|at [\w.$]+\(|segmentation fault", re.IGNORECASE)


def estimate_tokens(text: str) -> int:
    """About four characters a token for English and code; good enough for budgets."""
    return max(1, math.ceil(len(text) / 4))


def top_level_modules(files: tuple[str, ...]) -> int:
    """Distinct first path components: a proxy for how many modules a change crosses."""
    tops = {f.strip("/").split("/", 1)[0] for f in files if f.strip("/")}
    return len(tops)


def keyword_hits(prompt: str) -> dict[str, list[str]]:
    lowered = prompt.lower()
    return {p: sorted(set(rx.findall(lowered))) for p, rx in _PATTERNS.items()}


def structural_features(task: Task, hits: dict[str, list[str]] | None = None) -> dict[str, float]:
    """Numeric features in a fixed order (see ``FEATURE_NAMES``); logs tame heavy tails.

    ``hits`` is ``keyword_hits(task.prompt)`` when the caller has it already (the scorer reports
    them too): the keyword regexes are a third of the fast path's time."""
    if hits is None:
        hits = keyword_hits(task.prompt)
    feats: dict[str, float] = {
        "log_prompt_tokens": math.log1p(estimate_tokens(task.prompt)),
        "log_files": math.log1p(len(task.files)),
        "log_top_modules": math.log1p(top_level_modules(task.files)),
        "log_modules_touched": math.log1p(task.repo.modules_touched or 0),
        "modules_touched_known": 1.0 if task.repo.modules_touched is not None else 0.0,
        "log_diff_lines": math.log1p(task.diff_lines or 0),
        "diff_unknown": 1.0 if not task.diff_lines else 0.0,
        "log_repo_files": math.log1p(task.repo.files or 0),
        "n_languages": float(len(task.repo.languages)),
        "n_tools": float(len(task.tools)),
        "log_text_paths": math.log1p(len(set(_PATH.findall(task.prompt)))),
        "has_code": 1.0 if _CODE_FENCE.search(task.prompt) else 0.0,
        "has_trace": 1.0 if _TRACE.search(task.prompt) else 0.0,
        "questions": float(task.prompt.count("?")),
    }
    for kind in EXPECTED_OUTPUTS:
        feats[f"out_{kind}"] = 1.0 if task.expected_output == kind else 0.0
    for profile, words in hits.items():
        feats[f"kw_{profile}"] = float(len(words))
    return feats


FEATURE_NAMES: tuple[str, ...] = tuple(structural_features(Task(prompt="x")).keys())

# The profile classifier's inputs, by the request field they come from. "text" is always there;
# any other group counts only when its field is present (see ``present_groups``).
PROFILE_GROUPS: dict[str, tuple[str, ...]] = {
    "text": ("log_prompt_tokens", "has_code", "has_trace", "questions", "log_text_paths",
             *(f"kw_{p}" for p in KEYWORDS)),
    "files": ("log_files", "log_top_modules"),
    "modules_touched": ("log_modules_touched",),
    "diff_lines": ("log_diff_lines",),
    "expected_output": tuple(f"out_{kind}" for kind in EXPECTED_OUTPUTS),
}
PROFILE_FEATURES: tuple[str, ...] = tuple(f for names in PROFILE_GROUPS.values() for f in names)


def present_groups(task: Task) -> dict[str, bool]:
    """Which ``PROFILE_GROUPS`` the request actually carries. An empty list, a zero diff (the old
    corpus's "unknown") and a missing key all mean absent."""
    return {
        "text": True,
        "files": bool(task.files),
        "modules_touched": task.repo.modules_touched is not None,
        "diff_lines": bool(task.diff_lines),
        "expected_output": task.expected_output is not None,
    }


def profile_mask(task: Task) -> list[float]:
    """1.0 per ``PROFILE_FEATURES`` entry whose group is present, else 0.0."""
    present = present_groups(task)
    return [1.0 if present[g] else 0.0 for g, names in PROFILE_GROUPS.items() for _ in names]
