"""Policies in the MLflow model registry: publish, aliases, bootstrap, and hot reload.

A policy version is a folder (``policy.json`` plus any model files) logged to a run and
registered with ``create_model_version``. The ``champion`` alias is what the service serves;
it moves only through ``promote`` (the tuner's gate, or a person) and ``rollback``, which
moves it back to the champion before. The service keeps the last good policy on disk, so a
restart works while MLflow cannot be reached.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.service.errors import PolicyInvalid, PolicyNotFound, RegistryUnavailable
from tierwise.service.locks import file_lock
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.settings import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from tierwise.service.api.metrics import Metrics

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
BOOTSTRAP_EXPERIMENT = "tierwise-bootstrap"


def mlflow_environment() -> None:
    """MLflow's environment, set once for every caller (service, tuner, notebook, benchmarks)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # One small JSON per policy load; a progress bar for it is noise in the service log, the
    # benchmarks and the notebook.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def mlflow_client(settings: Settings) -> MlflowClient:
    mlflow_environment()
    from mlflow.tracking import MlflowClient

    if not settings.registry_uri:
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class PolicyRegistry:
    def __init__(self, client: MlflowClient, name: str, artifact_root: Path) -> None:
        self.client = client
        self.name = name
        self.artifact_root = artifact_root

    def experiment_id(self, experiment: str) -> str:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.client.tracking_uri.startswith("sqlite:"):
            location = (self.artifact_root / experiment).as_uri()
        return str(self.client.create_experiment(experiment, artifact_location=location))

    def versions(self) -> list[Any]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException:
            return []
        return sorted(found, key=lambda v: int(v.version))

    def publish(self, policy_json: str, run_id: str, files: dict[str, bytes] | None = None,
                description: str = "") -> str:
        """Log the policy folder to ``run_id`` and register it as a new version."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "policy"
            folder.mkdir()
            (folder / "policy.json").write_text(policy_json)
            for name, data in (files or {}).items():
                (folder / name).write_bytes(data)
            # One folder per publish: a version's source must never be overwritten by a later
            # publish from the same run.
            existing = {f.path for f in self.client.list_artifacts(run_id)}
            artifact_path = "policy" if "policy" not in existing else f"policy-{uuid.uuid4().hex[:12]}"
            self.client.log_artifacts(run_id, str(folder), artifact_path=artifact_path)
        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(self.name, description="tierwise routing policies")
        run = self.client.get_run(run_id)
        mv = self.client.create_model_version(self.name, source=f"{run.info.artifact_uri}/{artifact_path}",
                                              run_id=run_id, description=description)
        return str(mv.version)

    def alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def raw(self, version: str) -> str:
        import mlflow.artifacts

        mv = self.client.get_model_version(self.name, version)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{mv.source}/policy.json", dst_path=tmp)
            return Path(local).read_text()

    def load(self, version: str) -> RoutingPolicy:
        return parse_policy(self.raw(version), version=version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def history(self) -> list[str]:
        model = self.client.get_registered_model(self.name)
        return list(json.loads(model.tags.get(HISTORY_TAG, "[]")))

    def promote(self, version: str) -> str | None:
        """Make ``version`` the champion after validating it; returns the previous champion."""
        self.load(version)  # refuse a version the service would refuse
        previous = self.alias(CHAMPION)
        if previous == version:
            return previous
        history = self.history()
        if previous is not None:
            history.append(previous)
        self.client.set_registered_model_tag(self.name, HISTORY_TAG, json.dumps(history[-50:]))
        self.set_alias(CHAMPION, version)
        if self.alias(CHALLENGER) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return previous

    def rollback(self) -> tuple[str, str]:
        """Move ``champion`` back to the version before it; returns (from, to)."""
        history = self.history()
        current = self.alias(CHAMPION)
        if not history or current is None:
            raise PolicyNotFound("no earlier champion to roll back to", field="champion")
        target = history.pop()
        self.set_alias(CHAMPION, target)
        self.client.set_registered_model_tag(self.name, HISTORY_TAG, json.dumps(history))
        return current, target

    def ensure_bootstrap(self, policy_file: Path) -> str:
        """On an empty registry, the bootstrap file becomes version 1 and champion."""
        with file_lock(self.artifact_root.parent / "bootstrap.lock"):
            champion = self.alias(CHAMPION)
            if champion is not None:
                return champion
            if self.versions():
                raise PolicyNotFound(f"registered model {self.name} has versions but no "
                                     f"'{CHAMPION}' alias; run `tierwise policy promote V`", field="champion")
            policy = parse_policy(policy_file.read_text())
            run = self.client.create_run(self.experiment_id(BOOTSTRAP_EXPERIMENT), run_name="bootstrap")
            version = self.publish(policy.canonical_json(), run.info.run_id, description="bootstrap policy")
            self.client.set_terminated(run.info.run_id)
            self.set_alias(CHAMPION, version)
            log.info("registered the bootstrap policy as %s version %s (champion)", self.name, version)
            return version


def make_registry(settings: Settings) -> PolicyRegistry:
    return PolicyRegistry(mlflow_client(settings), settings.policy_name, settings.artifact_root)


def write_cache(settings: Settings, policy: RoutingPolicy) -> None:
    path = settings.policy_cache
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(policy.canonical_json())
    os.replace(tmp, path)


def startup_policy(settings: Settings) -> tuple[RoutingPolicy, str]:
    """Champion from the registry; if MLflow is down or the champion is bad, the disk cache."""
    try:
        reg = make_registry(settings)
        version = reg.ensure_bootstrap(settings.policy_file or default_policy_file())
        policy = reg.load(version)
        write_cache(settings, policy)
        return policy, f"registry:{settings.policy_name}@{CHAMPION}"
    except (PolicyInvalid, PolicyNotFound) as exc:
        problem: Exception = exc
    except Exception as exc:  # MLflow unreachable, bad URI, network
        problem = RegistryUnavailable(f"policy registry unavailable: {exc}")
    if settings.policy_cache.exists():
        log.warning("%s; serving the last good policy from %s", problem, settings.policy_cache)
        return parse_policy(settings.policy_cache.read_text()), f"cache:{settings.policy_cache}"
    raise problem


class PolicyPoller:
    """Polls the champion (and challenger) alias and swaps the holder's policy when it moves."""

    def __init__(self, settings: Settings, holder: PolicyHolder, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: set[str] = set()
        self._registry: PolicyRegistry | None = None

    def poll_once(self) -> bool:
        """One poll; returns whether the active policy changed. Never raises."""
        try:
            if self._registry is None:
                self._registry = make_registry(self.settings)
            reg = self._registry
            version = reg.alias(CHAMPION)
            changed = False
            if version is not None and version != self.holder.policy.version and version not in self._refused:
                changed = self._install(reg, version)
            if self.settings.shadow:
                self._shadow(reg)
            return changed
        except Exception as exc:
            log.warning("policy poll failed (%s); keeping policy %s", exc, self.holder.policy.version)
            return False

    def _install(self, reg: PolicyRegistry, version: str) -> bool:
        try:
            policy = reg.load(version)
        except Exception as exc:
            self._refused.add(version)
            if self.metrics:
                self.metrics.policy_refused.inc()
            log.error("refused policy version %s: %s; still serving %s", version, exc, self.holder.policy.version)
            return False
        old = self.holder.policy.version
        if self.holder.swap(policy, f"registry:{self.settings.policy_name}@{CHAMPION}"):
            write_cache(self.settings, policy)
            if self.metrics:
                self.metrics.policy_swaps.inc()
                self.metrics.policy_info.labels(old).set(0)
                self.metrics.policy_info.labels(policy.version).set(1)
            log.info("hot-reloaded policy %s -> %s", old, policy.version)
            return True
        return False

    def _shadow(self, reg: PolicyRegistry) -> None:
        version = reg.alias(CHALLENGER)
        current = self.holder.challenger
        if version is None:
            self.holder.set_challenger(None)
        elif (current is None or current.version != version) and version not in self._refused:
            try:
                self.holder.set_challenger(reg.load(version))
            except Exception as exc:
                self._refused.add(version)
                log.error("refused challenger %s: %s", version, exc)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.settings.poll_seconds):
                self.poll_once()

        if self.settings.shadow:
            self.poll_once()
        self._thread = threading.Thread(target=loop, name="tierwise-policy-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
