"""``tierwise pack --repo``: the same packing from a local git checkout the test creates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from context_sample import TASK, write_repo

from tierwise.service.cli import main


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIERWISE_USE_REGISTRY", "false")
    monkeypatch.setenv("TIERWISE_EMBEDDER", "hashing")
    return write_repo(tmp_path / "shop-repo")


def test_pack_a_checkout_for_the_small_tier(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "--repo", str(repo), TASK, "--tier", "small", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["tier"], out["budget"], out["strategy"]) == ("small", 8000, "focused")
    assert out["included"][0] == {"path": "shop/pricing.py", "mode": "full", "tokens": out["included"][0]["tokens"]}
    assert "MAX_DISCOUNT = 100" in out["context"]  # the working tree as committed last
    assert {"path": "shop/logo.png", "reason": "binary"} in out["dropped"]


def test_the_summary_lists_what_went_in(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "--repo", str(repo), TASK, "--max-tokens", "300", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# tier small (focused): ")
    assert "of 300 tokens" in out and "shop/pricing.py" in out and "### " not in out


def test_not_a_checkout_is_a_cli_error_naming_repo(tmp_path: Path, repo: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    assert main(["pack", "--repo", str(tmp_path / "plain"), TASK]) == 2
    assert "[repo]" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "field"), [(["--tier", "galactic"], "[tier]"),
                                             (["--decision", "nope"], "[decision]"),
                                             (["--max-tokens", "0"], "[max_tokens]")])
def test_bad_arguments_name_the_field(repo: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                      field: str) -> None:
    assert main(["pack", "--repo", str(repo), TASK, *args]) == 2
    assert field in capsys.readouterr().err


def test_too_many_files_is_refused_before_reading_them(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERWISE_CONTEXT_MAX_FILES", "3")
    assert main(["pack", "--repo", str(repo), TASK]) == 2
    assert "TIERWISE_CONTEXT_MAX_FILES" in capsys.readouterr().err
