"""Runtime settings, read from ``TIERWISE_*`` environment variables.

Settings are built by ``load_settings()`` at the edge (CLI, app factory), never at import time,
and a bad value is reported with the variable's name and the value, as starlette's config does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tierwise.service.errors import ConfigError

ENV_PREFIX = "TIERWISE_"


class Settings(BaseSettings):
    """All state lives under ``home``; deleting it resets tierwise."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=32)
    # Policy source: the MLflow registry alias, with the bootstrap file as version 1.
    registry_uri: str | None = None
    policy_name: str = "tierwise-policy"
    policy_file: Path | None = None
    use_registry: bool = True
    poll_seconds: float = Field(10.0, gt=0)
    shadow: bool = False
    # Classifier.
    embedder: Literal["minilm", "minilm-int8", "hashing"] = "minilm-int8"
    classifier_file: Path | None = None
    # Encoder intra-op threads per service process (see OnnxMiniLMEmbedder); training uses all cores.
    encoder_threads: int = Field(1, ge=1, le=64)
    # Derived model files (the int8 ONNX export, built on first use); None: ~/.cache/tierwise.
    model_cache: Path | None = None
    # Exploration randomness; None draws from the OS.
    seed: int | None = None
    # Request bounds.
    max_prompt_chars: int = Field(200_000, ge=1)
    max_files: int = Field(10_000, ge=0)
    # Telemetry.
    export_interval_s: float = Field(1.0, gt=0)
    durability: Literal["normal", "full"] = "normal"
    # Outcome reports run on this many threads per worker, reniced by this much (see api/lane.py).
    ingest_threads: int = Field(1, ge=1, le=64)
    ingest_nice: int = Field(10, ge=0, le=19)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def telemetry_dir(self) -> Path:
        return self.home / "telemetry"

    @property
    def tracking_uri(self) -> str:
        if self.registry_uri:
            return self.registry_uri
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.home / "mlflow" / "artifacts").resolve()

    @property
    def policy_cache(self) -> Path:
        return self.home / "policy" / "last_good.json"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into a ConfigError.

    The message names the environment variable and the bad value, so an operator can fix it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        env = ENV_PREFIX + key.upper()
        value = first.get("input")
        raise ConfigError(f"{env}={value!r} is invalid: {first['msg']}", field=env) from exc
