"""Structural features: token estimate, file/module counts, keyword cues, one-hots."""

from __future__ import annotations

import math

import pytest

from tierwise.service.classify import EXPECTED_OUTPUTS
from tierwise.service.classify.features import (
    FEATURE_NAMES,
    PROFILE_FEATURES,
    estimate_tokens,
    keyword_hits,
    present_groups,
    profile_mask,
    structural_features,
    top_level_modules,
)
from tierwise.service.classify.task import RepoInfo, Task


@pytest.mark.parametrize(("text", "tokens"), [("", 1), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100),
                                              ("x" * 401, 101)])
def test_token_estimate_is_ceil_of_chars_over_four_and_at_least_one(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_top_level_modules_counts_distinct_first_components() -> None:
    files = ("api/routes.py", "/api/schemas.py", "core/model.py", "README.md", "", "/")
    # api, core, README.md; the blank and bare-slash paths are ignored.
    assert top_level_modules(files) == 3
    assert top_level_modules(()) == 0


def test_file_and_module_counts_in_features() -> None:
    task = Task(prompt="p", files=("a/x.py", "a/y.py", "b/z.py", "c.py"),
                repo=RepoInfo(files=999, modules_touched=5, languages=("python", "go")), diff_lines=40)
    f = structural_features(task)
    assert f["log_files"] == pytest.approx(math.log1p(4))
    assert f["log_top_modules"] == pytest.approx(math.log1p(3))
    assert f["log_modules_touched"] == pytest.approx(math.log1p(5))
    assert f["modules_touched_known"] == 1.0
    assert f["log_diff_lines"] == pytest.approx(math.log1p(40))
    assert f["diff_unknown"] == 0.0
    assert f["log_repo_files"] == pytest.approx(math.log1p(999))
    assert f["n_languages"] == 2.0


def test_unknown_repo_facts_are_flagged_not_guessed() -> None:
    f = structural_features(Task(prompt="p"))
    assert f["modules_touched_known"] == 0.0
    assert f["diff_unknown"] == 1.0
    assert f["log_modules_touched"] == 0.0
    assert f["log_files"] == 0.0


def test_prompt_token_feature_uses_the_estimate() -> None:
    f = structural_features(Task(prompt="y" * 1000))
    assert f["log_prompt_tokens"] == pytest.approx(math.log1p(250))


def test_keywords_match_whole_words_per_profile() -> None:
    hits = keyword_hits("Rename foo and reformat with black; fix the bug; refactor across modules; "
                        "investigate why.")
    assert hits["mechanical"] == ["black", "reformat", "rename"]
    assert hits["local"] == ["bug", "fix"]
    assert hits["repository"] == ["across", "modules", "refactor"]
    assert hits["agentic"] == ["investigate", "why"]
    # Whole words only: "prefix" holds "fix", "debugger" holds "bug", neither is a hit.
    assert keyword_hits("the prefix of the debugger")["local"] == []


def test_keyword_counts_feed_features() -> None:
    f = structural_features(Task(prompt="fix the bug, the test fails with a traceback"))
    assert f["kw_local"] == 4.0  # fix, bug, fails, traceback
    assert f["kw_mechanical"] == 0.0
    assert f["has_trace"] == 1.0
    assert f["has_code"] == 0.0


def test_code_fence_and_questions() -> None:
    f = structural_features(Task(prompt="why?\n```py\nx = 1\n```\nreally?"))
    assert f["has_code"] == 1.0
    assert f["questions"] == 2.0


@pytest.mark.parametrize("kind", EXPECTED_OUTPUTS)
def test_expected_output_is_one_hot(kind: str) -> None:
    f = structural_features(Task(prompt="p", expected_output=kind))
    assert [f[f"out_{k}"] for k in EXPECTED_OUTPUTS] == [1.0 if k == kind else 0.0 for k in EXPECTED_OUTPUTS]


def test_no_expected_output_sets_no_one_hot() -> None:
    f = structural_features(Task(prompt="p"))
    assert sum(f[f"out_{k}"] for k in EXPECTED_OUTPUTS) == 0.0


def test_tools_are_counted_for_telemetry_but_never_a_profile_feature() -> None:
    f = structural_features(Task(prompt="p", tools=("Bash", "Read", "browser")))
    assert f["n_tools"] == 3.0
    assert not any("tool" in name for name in PROFILE_FEATURES)


def test_paths_named_in_the_text_are_counted_once() -> None:
    f = structural_features(Task(prompt="see src/app/main.py, utils.ts and src/app/main.py; v1.2 is not a file"))
    assert f["log_text_paths"] == pytest.approx(math.log1p(2))


def test_only_fields_that_are_present_enter_the_profile_features() -> None:
    bare = Task(prompt="p")
    assert present_groups(bare) == {"text": True, "files": False, "modules_touched": False, "diff_lines": False,
                                     "expected_output": False}
    full = Task(prompt="p", files=("a.py",), repo=RepoInfo(modules_touched=2), diff_lines=5, expected_output="json")
    assert all(present_groups(full).values())
    assert len(profile_mask(full)) == len(PROFILE_FEATURES) and set(profile_mask(full)) == {1.0}
    # A zero diff is the old corpus's "unknown"; an empty files list is no files.
    assert not present_groups(Task(prompt="p", diff_lines=0, files=()))["diff_lines"]


def test_feature_order_is_fixed() -> None:
    f = structural_features(Task(prompt="anything", tools=("shell",), expected_output="plan"))
    assert tuple(f) == FEATURE_NAMES
    assert all(isinstance(v, float) for v in f.values())
