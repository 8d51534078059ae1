"""Build the parts of a running tierwise from settings: one factory, used by the app and the CLI."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tierwise.service.classify.cache import CachedScorer
from tierwise.service.classify.embed import make_embedder
from tierwise.service.classify.model import ProfileClassifier, Scorer
from tierwise.service.classify.two_stage import TwoStageScorer
from tierwise.service.errors import ArtifactMissing, ConfigError
from tierwise.service.outcomes import OutcomeRecorder
from tierwise.service.paths import default_classifier_file, default_policy_file
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.routing import Router
from tierwise.service.settings import ENV_PREFIX, Settings
from tierwise.service.telemetry.store import Retention, TelemetryStore

if TYPE_CHECKING:
    from tierwise.service.telemetry.pg_store import PgTelemetryStore

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    classifier: Scorer
    holder: PolicyHolder
    store: TelemetryStore | PgTelemetryStore | None
    router: Router
    recorder: OutcomeRecorder | None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def load_policy_file(path: Path, scripts: tuple[str, ...] | None = None) -> RoutingPolicy:
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror or exc}",
                          field=f"{ENV_PREFIX}POLICY_FILE") from exc
    return parse_policy(raw) if scripts is None else parse_policy(raw, scripts=scripts)


def _load_artifact(settings: Settings, kind: str, path: Path | None, field: str) -> ProfileClassifier:
    path = path or default_classifier_file(kind)
    embedder = make_embedder(kind, settings.encoder_threads, settings.model_cache)
    try:
        return ProfileClassifier.load(path, embedder)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, not JSON, or a field missing
        raise ArtifactMissing(f"classifier artefact {path} cannot be loaded ({type(exc).__name__}: {exc}); "
                              "rebuild it with `tierwise train`", field=field) from exc


def load_classifier(settings: Settings) -> Scorer:
    """The configured scorer behind the score cache (``classify/cache.py``)."""
    scorer: Scorer
    if settings.embedder == "two-stage":
        fast = _load_artifact(settings, "static", settings.fast_classifier_file, "fast_classifier_file")
        encoder = _load_artifact(settings, "minilm-int8", settings.classifier_file, "classifier_file")
        scorer = TwoStageScorer(fast, encoder, margin=settings.fast_margin,
                                long_prompt_tokens=settings.fast_long_prompt_tokens)
    else:
        scorer = _load_artifact(settings, settings.embedder, settings.classifier_file, "classifier_file")
    return CachedScorer(scorer, settings.score_cache_size)


def initial_policy(settings: Settings) -> tuple[RoutingPolicy, str]:
    """The registry champion when there is one, else the last good cache, else the bootstrap file."""
    if settings.use_registry:
        from tierwise.service.policy.registry import startup_policy

        return startup_policy(settings)
    path = settings.policy_file or default_policy_file()
    return load_policy_file(path, settings.scripts), f"file:{path}"


def warm_classifier(settings: Settings) -> Scorer:
    """Loading alone is lazy; one encode per stage builds what the encoders derive (the ONNX
    file, the static table) and loads it, so a broken artefact or cache fails here and not on
    the first request."""
    classifier = load_classifier(settings)
    classifier.warm()
    return classifier


def open_store(settings: Settings) -> TelemetryStore | PgTelemetryStore:
    """The embedded SQLite journal under the home, or the shared PostgreSQL one (``journal_url``)."""
    if settings.journal_url:
        from tierwise.service.telemetry.pg_store import PgTelemetryStore

        return PgTelemetryStore.open(settings.journal_url, settings.segments_dir, durability=settings.durability)
    return TelemetryStore.open(settings.telemetry_dir, durability=settings.durability)


def build(settings: Settings, *, telemetry: bool = True) -> Components:
    classifier = warm_classifier(settings)
    policy, source = initial_policy(settings)
    holder = PolicyHolder(policy, source)
    store: TelemetryStore | PgTelemetryStore | None = None
    if telemetry:
        store = open_store(settings)
        store.retention = Retention(settings.journal_retention_days, settings.outcome_window_days,
                                    settings.maintenance_interval_s)
    rng = random.Random(settings.seed)
    router = Router(classifier, holder, store.route_journal if store else None, rng, shadow=settings.shadow)
    if settings.adapt and store is not None:
        from tierwise.service.online.source import OnlineSource
        from tierwise.service.online.stats import AdaptConfig
        from tierwise.service.policy.adaptive import AdaptRates

        if not isinstance(store, TelemetryStore):
            # The online statistics' query is SQLite's (rowid order); not ported to PostgreSQL yet.
            raise ConfigError("TIERWISE_ADAPT=true needs the embedded SQLite journal for now; unset "
                              "TIERWISE_JOURNAL_URL or TIERWISE_ADAPT", field="TIERWISE_ADAPT")
        cfg = AdaptConfig(half_life=settings.adapt_half_life, boost_outcomes=settings.adapt_boost_outcomes)
        router.online = OnlineSource(store.route_journal, cfg, refresh_decisions=settings.adapt_refresh_decisions)
        router.rates = AdaptRates(boost_rate=settings.adapt_boost_rate, floor=settings.adapt_floor)
    recorder = OutcomeRecorder(store.journal, holder) if store else None
    return Components(settings, classifier, holder, store, router, recorder)
