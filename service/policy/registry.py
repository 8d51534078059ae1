"""Policies in the MLflow model registry: publish, aliases, bootstrap, and hot reload.

A policy version is a folder (``policy.json`` plus any model files) logged to a run and
registered with ``create_model_version``. The ``champion`` alias is what the service serves;
it moves only through ``promote`` (the tuner's gate, or a person) and ``rollback``, which
moves it back to the champion before. The service keeps the last good policy on disk
(``cache.py``), so a restart works while MLflow cannot be reached, and a registry that lost its
history (truncated, deleted, re-created) never replaces it: see ``lineage_problem``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.service.errors import ArtifactMissing, PolicyInvalid, PolicyNotFound, RegistryUnavailable
from tierwise.service.locks import file_lock
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.artifacts import ARTIFACT_TAG, rebase_local_store, relative_to_root
from tierwise.service.policy.cache import CachedPolicy, policy_digest, read_cache, write_cache
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.settings import DEFAULT_SCRIPTS, Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
# A registered model's identity: a new one (a re-created registry) gets a new id.
IDENTITY_TAG = "tierwise.registry_id"
DIGEST_TAG = "tierwise.content_sha256"
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
    def __init__(self, client: MlflowClient, name: str, artifact_root: Path, *, lock_dir: Path | None = None,
                 scripts: Collection[str] = DEFAULT_SCRIPTS, local: bool = True) -> None:
        self.client = client
        self.name = name
        self.artifact_root = artifact_root
        self.lock_dir = lock_dir or artifact_root.parent
        self.scripts = scripts
        # The home's own SQLite registry: artefacts are local files under ``artifact_root``.
        self.local = local

    def experiment_id(self, experiment: str) -> str:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if not self.client.tracking_uri.startswith(("http:", "https:")):  # a database store: our root
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
            self.client.create_registered_model(self.name, description="tierwise routing policies",
                                                tags={IDENTITY_TAG: uuid.uuid4().hex})
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/{artifact_path}"
        tags: dict[str, str] = {}
        # Publishing does not judge (promote and the service do); an invalid body gets no digest.
        with contextlib.suppress(PolicyInvalid):
            tags[DIGEST_TAG] = policy_digest(parse_policy(policy_json, scripts=self.scripts))
        relative = relative_to_root(source, self.artifact_root)
        if relative is not None:
            tags[ARTIFACT_TAG] = relative
        mv = self.client.create_model_version(self.name, source=source, run_id=run_id, tags=tags,
                                              description=description)
        return str(mv.version)

    def identity(self) -> str | None:
        """The registered model's id tag; None when there is no registered model (a registry that
        is empty, truncated or re-created), ``""`` for one registered before ids were recorded."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return None
        return str(model.tags.get(IDENTITY_TAG, ""))

    def digest(self, version: str) -> str | None:
        """The content digest of ``version``, or None if the registry has no such version."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.name, version)
        except MlflowException:
            return None
        tagged = mv.tags.get(DIGEST_TAG)
        return str(tagged) if tagged else policy_digest(self.load(version))

    def alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def raw(self, version: str) -> str:
        """The version's ``policy.json``: from the folder its tag names under the current artifact
        root when there is one, else from MLflow's ``source`` (a remote store, or an old version)."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        if not version.isdigit():
            raise PolicyNotFound(f"policy version {version!r} is not a version number", field="version")
        try:
            mv = self.client.get_model_version(self.name, version)
        except MlflowException as exc:
            raise PolicyNotFound(f"policy version {version} does not exist in {self.name}", field="version") from exc
        relative = mv.tags.get(ARTIFACT_TAG)
        if relative:
            path = self.artifact_root / relative / "policy.json"
            try:
                return path.read_text()
            except OSError as exc:
                raise ArtifactMissing(f"policy version {version}: its artefact {path} is missing "
                                      f"({exc.strerror or exc})", field="version") from exc
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(artifact_uri=f"{mv.source}/policy.json", dst_path=tmp)
                return Path(local).read_text()
        except (MlflowException, OSError) as exc:
            raise ArtifactMissing(f"policy version {version}: its artefact {mv.source} cannot be read "
                                  f"({type(exc).__name__})", field="version") from exc

    def load(self, version: str) -> RoutingPolicy:
        return parse_policy(self.raw(version), version=version, scripts=self.scripts)

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
        with file_lock(self.lock_dir / "bootstrap.lock"):
            champion = self.alias(CHAMPION)
            if champion is not None:
                if self.identity() == "":  # registered before ids were recorded: give it one, once
                    self.client.set_registered_model_tag(self.name, IDENTITY_TAG, uuid.uuid4().hex)
                return champion
            if self.versions():
                raise PolicyNotFound(f"registered model {self.name} has versions but no "
                                     f"'{CHAMPION}' alias; run `tierwise policy promote V`", field="champion")
            policy = parse_policy(policy_file.read_text(), scripts=self.scripts)
            run = self.client.create_run(self.experiment_id(BOOTSTRAP_EXPERIMENT), run_name="bootstrap")
            version = self.publish(policy.canonical_json(), run.info.run_id, description="bootstrap policy")
            self.client.set_terminated(run.info.run_id)
            self.set_alias(CHAMPION, version)
            log.info("registered the bootstrap policy as %s version %s (champion)", self.name, version)
            return version


def make_registry(settings: Settings) -> PolicyRegistry:
    """The registry of ``settings``. For the home's own SQLite file, tierwise's experiments are
    first rebased onto the current artifact root (``artifacts.py``), and MLflow's schema is
    created or migrated under the bootstrap lock: two processes migrating one new file race."""
    client = mlflow_client(settings)
    lock_dir = settings.home / "mlflow"
    local = not settings.registry_uri
    if local:
        with file_lock(lock_dir / "bootstrap.lock"):
            rebase_local_store(settings.home / "mlflow" / "mlflow.db", settings.artifacts)
            client.search_registered_models(max_results=1)  # creates or migrates the schema
    return PolicyRegistry(client, settings.policy_name, settings.artifacts, lock_dir=lock_dir,
                          scripts=settings.scripts, local=local)


def lineage_problem(reg: PolicyRegistry, cached: CachedPolicy | None) -> str | None:
    """Why the registry may not replace the cached policy, or None when it may.

    The registry's champion may replace the cache only if the registry still holds the cached
    version with the same content (and, when recorded, has the same identity). A truncated or
    deleted registry is empty; a re-created one has a new identity and a different version 1; one
    restored from an older backup lacks the cached version. Within one registry the champion may
    go back (``rollback``): that is a person's decision, not a loss."""
    if cached is None:
        return None
    identity = reg.identity()
    version = cached.policy.version
    if identity is None:
        return "lost (no registered model)"
    if cached.registry_id and identity and identity != cached.registry_id:
        return f"re-created (id {identity[:8]}, the cached policy came from {cached.registry_id[:8]})"
    digest = reg.digest(version) if version.isdigit() else None
    if digest is None:
        return f"has no version {version} (re-created or restored from an older backup)"
    if digest != cached.digest:
        return f"version {version} differs from the cached one (re-created)"
    return None


def startup_policy(settings: Settings) -> tuple[RoutingPolicy, str]:
    """Champion from the registry; if MLflow is down, the champion is bad, or the registry lost
    the history the cache came from, the disk cache (never overwritten in those cases)."""
    cached = read_cache(settings)
    problem: Exception
    try:
        reg = make_registry(settings)
        lost = lineage_problem(reg, cached)
        if lost is not None:  # do not bootstrap a version 1 over a registry that lost its history
            raise RegistryUnavailable(f"policy registry {lost}")
        version = reg.ensure_bootstrap(settings.policy_file or default_policy_file())
        policy = reg.load(version)
        write_cache(settings, policy, reg.identity())
        return policy, f"registry:{settings.policy_name}@{CHAMPION}"
    except (PolicyInvalid, PolicyNotFound, ArtifactMissing, RegistryUnavailable) as exc:
        problem = exc
    except Exception as exc:  # MLflow unreachable, bad URI, network, a corrupt database file
        problem = RegistryUnavailable(f"policy registry unavailable: {type(exc).__name__}: {exc}")
    if cached is not None:
        log.warning("%s; serving the last good policy %s from %s", problem, cached.policy.version,
                    settings.policy_cache)
        return cached.policy, f"cache:{settings.policy_cache}"
    raise problem
