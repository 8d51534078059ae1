"""Runtime settings, read from ``TIERWISE_*`` environment variables.

Settings are built by ``load_settings()`` at the edge (CLI, app factory), never at import time,
and a bad value is reported with the variable's name and the value, as starlette's config does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tierwise.service.errors import ConfigError
from tierwise.service.keys import AuthMode

ENV_PREFIX = "TIERWISE_"

# Ceilings of the request models (``api/schemas.py``), which are static: the settings below may
# lower a bound, never raise it past what the models let through.
PROMPT_CHARS_CEILING = 1_000_000
FILES_CEILING = 100_000
# The deterministic scripts a policy's ``escalation.scripts`` may name (``TIERWISE_SCRIPTS``,
# comma-separated). A policy comes from the registry, which a retune or a person writes; the
# allow-list keeps a policy from pointing the agent harness at an arbitrary program. The shipped
# policy names none; these are the codemods the docs and examples use.
DEFAULT_SCRIPTS: tuple[str, ...] = ("scripts/codemod.py", "scripts/codemod_rename.py", "scripts/format.py")


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
    # Where policy artefacts live; None: ``<home>/mlflow/artifacts``. Versions record their path
    # relative to it, so a home that is moved or restored elsewhere still finds them.
    artifact_root: Path | None = None
    poll_seconds: float = Field(10.0, gt=0)
    shadow: bool = False
    # Online adaptation between retunes (service/online): outcome statistics from the journal with
    # forgetting, drift-raised exploration, an exploration floor. Off: the policy's own draw.
    adapt: bool = False
    adapt_half_life: float = Field(150.0, gt=0)  # outcomes of a (profile, tier) for a weight to halve
    adapt_boost_rate: float = Field(0.3, ge=0.0, le=0.5)  # exploration while a drift is flagged
    adapt_boost_outcomes: int = Field(150, ge=0)  # outcomes of the profile a drift boost lasts
    adapt_floor: float = Field(0.02, ge=0.0, le=0.2)  # share spread over tiers outside the explore set
    adapt_refresh_decisions: int = Field(10, ge=1)  # routes between refreshes from the journal
    scripts: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SCRIPTS
    # Classifier.
    # "two-stage": static MiniLM token embeddings first, the int8 encoder only when unsure
    # (service/classify/two_stage.py); "static": the first stage alone.
    embedder: Literal["minilm", "minilm-int8", "static", "two-stage", "hashing"] = "two-stage"
    # The encoder's artefact (for "two-stage": its second stage's); None: data/classifier.<embedder>.json.
    classifier_file: Path | None = None
    # "two-stage": the static stage's artefact (None: data/classifier.static.json); the encoder
    # runs when the static top-two probability margin is under fast_margin, or when the prompt
    # has at least fast_long_prompt_tokens tokens (0: never for length alone).
    fast_classifier_file: Path | None = None
    fast_margin: float = Field(0.03, ge=0.0, le=1.0)
    fast_long_prompt_tokens: int = Field(0, ge=0)
    # Scores of this many recent distinct tasks per process, for agents that re-ask; 0: off.
    score_cache_size: int = Field(4096, ge=0, le=1_000_000)
    # Encoder intra-op threads per service process (see OnnxMiniLMEmbedder); training uses all cores.
    encoder_threads: int = Field(1, ge=1, le=64)
    # Derived model files (the int8 ONNX export, built on first use); None: ~/.cache/tierwise.
    model_cache: Path | None = None
    # Exploration randomness; None draws from the OS.
    seed: int | None = None
    # Request bounds.
    max_prompt_chars: int = Field(200_000, ge=1, le=PROMPT_CHARS_CEILING)
    max_files: int = Field(10_000, ge=0, le=FILES_CEILING)
    # A request body must arrive whole within this many seconds (slow senders get 408).
    body_timeout_s: float = Field(10.0, gt=0, le=600)
    # Telemetry.
    export_interval_s: float = Field(1.0, gt=0)
    durability: Literal["normal", "full"] = "normal"
    # Exported rows older than this leave the journal, unless the service still needs them
    # (an episode still open, an open human-queue item); see telemetry/retention.py.
    journal_retention_days: float = Field(7.0, gt=0)
    # An open episode (no outcome yet, or escalated) is kept this long for its late outcome.
    outcome_window_days: float = Field(30.0, gt=0)
    # How often the background thread runs retention and checkpoints the WAL to zero bytes.
    maintenance_interval_s: float = Field(600.0, gt=0)
    # Outcome reports run on this many threads per worker, reniced by this much (see api/lane.py).
    ingest_threads: int = Field(1, ge=1, le=64)
    ingest_nice: int = Field(10, ge=0, le=19)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # API keys (service/keys.py): "auto" requires a key iff one exists; "required" always does.
    auth: AuthMode = "auto"

    @property
    def telemetry_dir(self) -> Path:
        return self.home / "telemetry"

    @property
    def tracking_uri(self) -> str:
        if self.registry_uri:
            return self.registry_uri
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @field_validator("scripts", mode="before")
    @classmethod
    def _split_scripts(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(name.strip() for name in v.split(",") if name.strip())
        return v

    @property
    def artifacts(self) -> Path:
        return (self.artifact_root or self.home / "mlflow" / "artifacts").resolve()

    @property
    def policy_cache(self) -> Path:
        return self.home / "policy" / "last_good.json"

    @property
    def keys_file(self) -> Path:
        return self.home / "keys.json"


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
