"""``tierwise route`` without a server, and the CLI's error contract (one line, exit 2).

One test runs the real ``tierwise`` executable in a subprocess; the rest call ``main()`` in
process (a process start costs seconds here), where an uncaught exception would fail the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import MECHANICAL, REPO

from tierwise.service.cli import main

ROUTE_FIELDS = {"decision_id", "policy_version", "profile", "profile_scores", "tier", "model", "temperature",
                "max_input_tokens", "max_output_tokens", "output_schema", "escalation_chain", "explored",
                "propensity", "reasons", "latency_ms"}


@pytest.fixture
def env(tmp_path: Path, hashing_classifier_file: Path) -> dict[str, str]:
    return {"TIERWISE_HOME": str(tmp_path / "home"), "TIERWISE_USE_REGISTRY": "false",
            "TIERWISE_EMBEDDER": "hashing", "TIERWISE_CLASSIFIER_FILE": str(hashing_classifier_file),
            "TIERWISE_SEED": "3"}


@pytest.fixture
def in_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_route_json_prints_a_decision_without_a_server(env: dict[str, str], tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "tierwise"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tierwise.service.cli"]
    full = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    full.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run([*cmd, "route", MECHANICAL, "--json", "--harness", "local", "--file", "utils.py",
                           "--tool", "edit_file", "--expected-output", "patch", "--diff-lines", "4"],
                          env=full, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) >= ROUTE_FIELDS
    assert (out["profile"], out["tier"], out["policy_version"]) == ("mechanical", "small", "bootstrap")
    assert out["escalation_chain"] == ["medium", "frontier"]
    # no server, no telemetry: route writes nothing under the home
    assert not (tmp_path / "home" / "telemetry").exists()


@pytest.fixture
def restricted_env(in_env: dict[str, str], restricted_policy_dict: dict[str, Any], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A policy where small has no database and only frontier drives a browser."""
    path = tmp_path / "restricted.json"
    path.write_text(json.dumps(restricted_policy_dict))
    monkeypatch.setenv("TIERWISE_POLICY_FILE", str(path))
    return {**in_env, "TIERWISE_POLICY_FILE": str(path)}


def test_route_json_in_process(restricted_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", MECHANICAL, "--json", "--tool", "db_query", "--harness", "local"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= ROUTE_FIELDS
    assert out["tier"] == "medium"  # small lacks db_query


def test_route_text_output(restricted_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", MECHANICAL, "--tool", "browser"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tier frontier → claude-opus-4-5-20251101")
    assert "small excluded" in out
    assert "escalation: none" in out


@pytest.mark.parametrize(("args", "field"), [
    (["route", "   "], "prompt"),
    (["route", "x", "--diff-lines", "-3"], "diff_lines"),
    (["route", "x", "--tool", ""], "tools"),
    (["route", "x", "--tool", "ba\nsh"], "tools"),
    (["stats"], "TIERWISE_HOME"),
    (["stats", "--since", "last week"], "since"),
])
def test_domain_errors_are_one_line_and_exit_2(in_env: dict[str, str], capsys: pytest.CaptureFixture[str],
                                               args: list[str], field: str) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tierwise: ")
    assert f"[{field}]" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_missing_classifier_artefact_exits_2(in_env: dict[str, str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERWISE_CLASSIFIER_FILE", str(tmp_path / "missing.json"))
    assert main(["route", "x"]) == 2
    assert "[classifier_file]" in capsys.readouterr().err


def test_corrupt_classifier_artefact_exits_2(in_env: dict[str, str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("TIERWISE_CLASSIFIER_FILE", str(bad))
    assert main(["route", "x"]) == 2
    err = capsys.readouterr().err
    assert "[classifier_file]" in err and "bad.json" in err


def test_serve_with_a_broken_artefact_exits_2_before_any_worker_starts(
        in_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERWISE_CLASSIFIER_FILE", str(tmp_path / "missing.json"))
    assert main(["serve", "--workers", "2", "--port", "1"]) == 2  # port 1 is never bound
    err = capsys.readouterr().err
    assert "[classifier_file]" in err and "Traceback" not in err


def test_serve_with_an_unusable_model_cache_names_the_setting(
        in_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The real int8 encoder's cache path is a file: the error names TIERWISE_MODEL_CACHE."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("TIERWISE_EMBEDDER", "minilm-int8")
    monkeypatch.delenv("TIERWISE_CLASSIFIER_FILE")
    monkeypatch.setenv("TIERWISE_MODEL_CACHE", str(blocker / "cache"))
    assert main(["serve", "--port", "1"]) == 2
    assert "[TIERWISE_MODEL_CACHE]" in capsys.readouterr().err


def test_missing_policy_file_exits_2(in_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERWISE_POLICY_FILE", str(tmp_path / "nope.json"))
    assert main(["route", "x"]) == 2
    err = capsys.readouterr().err
    assert "[TIERWISE_POLICY_FILE]" in err and "nope.json" in err


def test_invalid_policy_file_exits_2(in_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text('{"version": "x"}')
    monkeypatch.setenv("TIERWISE_POLICY_FILE", str(bad))
    assert main(["route", "x"]) == 2
    assert "policy_invalid" in capsys.readouterr().err


def test_usage_error_exits_2(in_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["route"])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_train_writes_an_artefact_the_service_loads(in_env: dict[str, str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tierwise.service.classify.embed import HashingEmbedder
    from tierwise.service.classify.model import ProfileClassifier
    from tierwise.service.classify.task import Task

    out = tmp_path / "clf.json"
    assert main(["train", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trained on ") and str(out) in printed
    clf = ProfileClassifier.load(out, HashingEmbedder())
    assert clf.artifact["trained_on"]["seed"] == 1
    assert sum(clf.score(Task(prompt="rename foo to bar everywhere")).profile_scores.values()) == pytest.approx(1.0,
                                                                                                              abs=1e-5)
