"""Build the parts of a running tierwise from settings: one factory, used by the app and the CLI."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.classify.embed import make_embedder
from tierwise.service.classify.model import ProfileClassifier
from tierwise.service.classify.task import Task
from tierwise.service.errors import ArtifactMissing, ConfigError
from tierwise.service.outcomes import OutcomeRecorder
from tierwise.service.paths import default_classifier_file, default_policy_file
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.routing import Router
from tierwise.service.settings import ENV_PREFIX, Settings
from tierwise.service.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    classifier: ProfileClassifier
    holder: PolicyHolder
    store: TelemetryStore | None
    router: Router
    recorder: OutcomeRecorder | None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def load_policy_file(path: Path) -> RoutingPolicy:
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror or exc}",
                          field=f"{ENV_PREFIX}POLICY_FILE") from exc
    return parse_policy(raw)


def load_classifier(settings: Settings) -> ProfileClassifier:
    path = settings.classifier_file or default_classifier_file(settings.embedder)
    embedder = make_embedder(settings.embedder, settings.encoder_threads, settings.model_cache)
    try:
        return ProfileClassifier.load(path, embedder)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, not JSON, or a field missing
        raise ArtifactMissing(f"classifier artefact {path} cannot be loaded ({type(exc).__name__}: {exc}); "
                              "rebuild it with `tierwise train`", field="classifier_file") from exc


def initial_policy(settings: Settings) -> tuple[RoutingPolicy, str]:
    """The registry champion when there is one, else the last good cache, else the bootstrap file."""
    if settings.use_registry:
        from tierwise.service.policy.registry import startup_policy

        return startup_policy(settings)
    path = settings.policy_file or default_policy_file()
    return load_policy_file(path), f"file:{path}"


def warm_classifier(settings: Settings) -> ProfileClassifier:
    """Loading alone is lazy; one encode builds what the encoder derives (the ONNX file) and
    loads it, so a broken artefact or cache fails here and not on the first request."""
    classifier = load_classifier(settings)
    classifier.score(Task(prompt="warm up the encoder before the first request"))
    return classifier


def build(settings: Settings, *, telemetry: bool = True) -> Components:
    classifier = warm_classifier(settings)
    policy, source = initial_policy(settings)
    holder = PolicyHolder(policy, source)
    store = None
    if telemetry:
        store = TelemetryStore.open(settings.telemetry_dir, durability=settings.durability)
    rng = random.Random(settings.seed)
    router = Router(classifier, holder, store.route_journal if store else None, rng, shadow=settings.shadow)
    recorder = OutcomeRecorder(store.journal, holder) if store else None
    return Components(settings, classifier, holder, store, router, recorder)
