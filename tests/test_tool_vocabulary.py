"""The open tool vocabulary: any harness's names map to capabilities; unknown names are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import DATA

from tierwise.service.classify import CAPABILITIES
from tierwise.service.classify.tools import ToolVocabulary, normalise, vocabulary
from tierwise.service.errors import PolicyInvalid
from tierwise.service.policy.model import parse_policy

HARNESS_SETS = {
    "claude_code": ["Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "WebFetch", "WebSearch",
                    "TodoWrite", "Task", "NotebookEdit"],
    "openhands": ["execute_bash", "str_replace_editor", "browser", "execute_ipython_cell", "think", "finish"],
    "swe_agent": ["bash", "str_replace_editor", "submit"],
    "mini_swe_agent": ["bash"],
    "codex_cli": ["shell", "apply_patch", "update_plan", "view_image"],
    "cline": ["execute_command", "read_file", "write_to_file", "replace_in_file", "search_files", "list_files",
              "list_code_definition_names", "browser_action", "ask_followup_question", "attempt_completion"],
    "cursor": ["codebase_search", "read_file", "run_terminal_cmd", "list_dir", "grep_search", "edit_file",
               "file_search", "delete_file", "web_search"],
    "aider": ["run", "test", "web"],
    "tierwise": ["read_file", "edit_file", "search_code", "run_tests", "shell", "browser", "db_query"],
}


def test_the_shipped_table_covers_the_common_harnesses() -> None:
    table = json.loads((DATA / "tools.json").read_text())
    for harness in ("claude_code", "openhands", "swe_agent", "mini_swe_agent", "codex_cli", "cline_roo", "aider",
                    "openai_functions"):
        assert table["harnesses"][harness], harness
    assert set(table["capabilities"]) == set(CAPABILITIES)


@pytest.mark.parametrize("harness", sorted(HARNESS_SETS))
def test_every_name_a_common_harness_sends_is_known(harness: str) -> None:
    caps, unknown = vocabulary().resolve(HARNESS_SETS[harness])
    assert unknown == ()
    assert caps <= set(CAPABILITIES)


def test_names_match_case_insensitively_and_capabilities_are_right() -> None:
    v = vocabulary()
    assert v.resolve(["BASH"])[0] == {"shell"}
    assert v.resolve(["str-replace-editor"])[0] == {"read", "edit"}
    assert v.resolve(["WebFetch", "query_db"])[0] == {"browser", "database"}
    assert v.resolve(["TodoWrite", "finish", "submit"]) == (frozenset(), ())
    assert normalise(" Run Tests ") == "run_tests"


def test_unknown_names_are_reported_once_in_order() -> None:
    caps, unknown = vocabulary().resolve(["mcp__github__create_issue", "Bash", "frobnicate", "frobnicate"])
    assert caps == {"shell"}
    assert unknown == ("mcp__github__create_issue", "frobnicate")


def test_a_bad_table_names_the_entry() -> None:
    with pytest.raises(ValueError, match=r"harnesses\.x\.Foo: unknown capabilities \['teleport'\]"):
        ToolVocabulary.from_table({"harnesses": {"x": {"Foo": ["teleport"]}}})
    with pytest.raises(ValueError, match=r"harnesses\.b\.foo maps to \['edit'\] but harnesses\.a\.Foo"):
        ToolVocabulary.from_table({"harnesses": {"a": {"Foo": ["read"]}, "b": {"foo": ["edit"]}}})


def test_policy_capabilities_accept_legacy_tool_names(policy_dict: dict[str, Any]) -> None:
    policy_dict["tiers"]["small"]["capabilities"]["tools"] = ["read_file", "edit_file", "db_query", "read"]
    policy = parse_policy(policy_dict)
    assert policy.tiers["small"].capabilities.tools == ["read", "edit", "database"]


def test_policy_refuses_an_unknown_capability(policy_dict: dict[str, Any]) -> None:
    policy_dict["tiers"]["small"]["capabilities"]["tools"] = ["read", "hammer"]
    with pytest.raises(PolicyInvalid, match="hammer") as exc:
        parse_policy(policy_dict)
    assert exc.value.field == "tiers.small.capabilities.tools"
