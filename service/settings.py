"""Runtime settings, read from ``TIERWISE_*`` environment variables.

Settings are built by ``load_settings()`` at the edge (CLI, app factory), never at import time,
and a bad value is reported with the variable's name and the value, as starlette's config does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tierwise.service.errors import ConfigError
from tierwise.service.keys import AuthMode
from tierwise.service.urls import is_postgres_url, redact_url, sqlalchemy_url

ENV_PREFIX = "TIERWISE_"

# Ceilings of the request models (``api/schemas.py``), which are static: the settings below may
# lower a bound, never raise it past what the models let through.
PROMPT_CHARS_CEILING = 1_000_000
FILES_CEILING = 100_000
# ``POST /v1/context`` carries file contents: its own ceilings (``api/context_schemas.py``).
CONTEXT_FILES_CEILING = 20_000
CONTEXT_FILE_CHARS_CEILING = 4_000_000
CONTEXT_BYTES_CEILING = 256_000_000
# The deterministic scripts a policy's ``escalation.scripts`` may name (``TIERWISE_SCRIPTS``,
# comma-separated). A policy comes from the registry, which a retune or a person writes; the
# allow-list keeps a policy from pointing the agent harness at an arbitrary program. The shipped
# policy names none; these are the codemods the docs and examples use.
DEFAULT_SCRIPTS: tuple[str, ...] = ("scripts/codemod.py", "scripts/codemod_rename.py", "scripts/format.py")


class UpstreamSpec(BaseModel):
    """An OpenAI-compatible endpoint and the name of the environment variable holding its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str = Field(min_length=1)
    api_key_env: str | None = None


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
    # POST /v1/context: at most this many candidate files, this many bytes (UTF-8) in one file's
    # content, and in all contents together; the body limit of that path follows the last.
    context_max_files: int = Field(5_000, ge=1, le=CONTEXT_FILES_CEILING)
    context_max_file_bytes: int = Field(1_000_000, ge=1, le=CONTEXT_FILE_CHARS_CEILING)
    context_max_bytes: int = Field(32_000_000, ge=1, le=CONTEXT_BYTES_CEILING)
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
    # Scale-out (docs/deploy.md): the journal on PostgreSQL (``postgresql://...``; None: the
    # embedded SQLite journal under ``home``), and the segments on a location every host and the
    # tuner see (None: ``<home>/telemetry/segments``).
    journal_url: str | None = None
    segments_url: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # API keys (service/keys.py): "auto" requires a key iff one exists; "required" always does.
    auth: AuthMode = "auto"
    # The MLflow UI's address (e.g. http://127.0.0.1:5000), for the console's links to each
    # version's run; None: the console shows run ids without links.
    mlflow_ui_url: str | None = None
    # OpenAI-compatible proxy (service/proxy/): where each tier's calls go. ``upstreams`` maps a
    # tier to {"base_url", "api_key_env"} (JSON in TIERWISE_UPSTREAMS); tiers without one use the
    # default below. Only the *name* of the key's environment variable is configured: the key is
    # read at call time and never stored, logged or journalled.
    upstream_base_url: str | None = None
    upstream_api_key_env: str | None = None
    upstreams: dict[str, UpstreamSpec] = Field(default_factory=dict)
    upstream_connect_timeout_s: float = Field(5.0, gt=0, le=600)
    upstream_timeout_s: float = Field(120.0, gt=0, le=3600)
    # Tasks the proxy keeps one decision for (per worker), and how long an idle one lives.
    proxy_sessions: int = Field(10_000, ge=1, le=1_000_000)
    proxy_session_ttl_s: float = Field(3600.0, gt=0)

    @property
    def telemetry_dir(self) -> Path:
        return self.home / "telemetry"

    @property
    def tracking_uri(self) -> str:
        if self.registry_uri:
            return sqlalchemy_url(self.registry_uri)  # postgresql:// -> psycopg 3 for MLflow's store
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def segments_dir(self) -> Path:
        return self.segments_url or self.telemetry_dir / "segments"

    @field_validator("journal_url")
    @classmethod
    def _postgres_only(cls, v: str | None) -> str | None:
        if v is not None and not is_postgres_url(v):
            raise ValueError("must be a postgresql:// URL (unset: the SQLite journal under TIERWISE_HOME)")
        return v

    @field_validator("segments_url", mode="before")
    @classmethod
    def _file_url(cls, v: object) -> object:
        if isinstance(v, str) and "://" in v:
            if not v.startswith("file://"):
                raise ValueError("must be a directory path or a file:// URL")
            return v.removeprefix("file://")
        return v

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
        value = redact_url(value) if isinstance(value, str) else value  # never print a password
        raise ConfigError(f"{env}={value!r} is invalid: {first['msg']}", field=env) from exc
