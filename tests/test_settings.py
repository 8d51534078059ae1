"""Settings from TIERWISE_* variables: defaults, overrides, and bad values named with their value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from tierwise.service.errors import ConfigError
from tierwise.service.settings import Settings, load_settings


def test_defaults() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    assert (s.home, s.port, s.use_registry, s.embedder, s.seed) == (Path("./var"), 8000, True, "two-stage", None)
    assert s.telemetry_dir == Path("./var/telemetry")
    assert s.tracking_uri.startswith("sqlite:///") and s.tracking_uri.endswith("var/mlflow/mlflow.db")


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path))
    monkeypatch.setenv("TIERWISE_PORT", "9123")
    monkeypatch.setenv("TIERWISE_USE_REGISTRY", "false")
    monkeypatch.setenv("TIERWISE_EMBEDDER", "hashing")
    monkeypatch.setenv("TIERWISE_SEED", "42")
    s = load_settings()
    assert (s.home, s.port, s.use_registry, s.embedder, s.seed) == (tmp_path, 9123, False, "hashing", 42)
    assert s.telemetry_dir == tmp_path / "telemetry"


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_PORT", "9123")
    assert load_settings(port=9999).port == 9999


def test_registry_uri_overrides_the_local_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_REGISTRY_URI", "postgresql://mlflow@db/mlflow")
    # MLflow's SQLAlchemy store is driven through psycopg 3, the driver tierwise installs (issue 17).
    assert load_settings().tracking_uri == "postgresql+psycopg://mlflow@db/mlflow"
    monkeypatch.setenv("TIERWISE_REGISTRY_URI", "http://mlflow.internal:5000")
    assert load_settings().tracking_uri == "http://mlflow.internal:5000"


@pytest.mark.parametrize(("var", "value"), [
    ("TIERWISE_PORT", "abc"),
    ("TIERWISE_PORT", "70000"),
    ("TIERWISE_WORKERS", "0"),
    ("TIERWISE_USE_REGISTRY", "maybe"),
    ("TIERWISE_EMBEDDER", "bert"),
    ("TIERWISE_SEED", "x"),
    ("TIERWISE_MAX_PROMPT_CHARS", "0"),
    ("TIERWISE_EXPORT_INTERVAL_S", "-1"),
    ("TIERWISE_DURABILITY", "sometimes"),
])
def test_bad_env_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch, var: str,
                                                         value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == var
    assert var in info.value.message
    assert repr(value) in info.value.message


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "tierwise.service.cli", *args], env=full, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_prints_a_bad_setting_and_exits_2_without_a_traceback(tmp_path: Path) -> None:
    done = _cli(["route", "rename foo"], {"TIERWISE_PORT": "abc", "PYTHONPATH": str(REPO)}, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "TIERWISE_PORT" in done.stderr and "'abc'" in done.stderr
    assert done.stdout == ""
