"""Shared fixtures for the routing-service tests.

The fast path trains a classifier with the deterministic ``HashingEmbedder`` once per session,
so most tests never load MiniLM; settings point every test at its own ``tmp_path`` home and a
file policy (no MLflow). Tests that need the real model are marked ``minilm`` and still run by
default.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
SEED = 20261127


@contextmanager
def module_settings(home: Path, classifier_file: Path) -> Iterator[Any]:
    """Settings for a module-scoped app: a clean ``TIERWISE_*`` environment (the autouse
    ``_clean_env`` is per test), the hashing classifier and a file policy."""
    from tierwise.service.settings import load_settings

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("TIERWISE_")]:
            mp.delenv(key)
        yield load_settings(home=home, embedder="hashing", classifier_file=classifier_file, use_registry=False,
                            seed=SEED, export_interval_s=0.1)


@contextmanager
def live_server(settings: Any) -> Iterator[str]:
    """A real uvicorn server for ``create_app(settings)`` on a free loopback port, in a thread."""
    import socket
    import threading
    import time

    import uvicorn

    from tierwise.service.api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "minilm: loads the real all-MiniLM-L6-v2 model (run by default)")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIERWISE_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("TIERWISE_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def hashing_classifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tierwise.service.classify.embed import HashingEmbedder
    from tierwise.service.classify.train import load_corpus, train

    artifact = train(load_corpus(DATA / "corpus", split="train"), HashingEmbedder())
    path = tmp_path_factory.mktemp("classifier") / "classifier.hashing.json"
    path.write_text(json.dumps(artifact))
    return path


@pytest.fixture(scope="session")
def default_policy_dict() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "policy.default.json").read_text())
    return data


@pytest.fixture
def policy_dict(default_policy_dict: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of the shipped policy."""
    return copy.deepcopy(default_policy_dict)


# Tier capabilities as a policy might restrict them (the shipped default gives every tier all of
# them): frontier alone drives a browser, small no database.
RESTRICTED_CAPABILITIES = {
    "small": ["read", "edit", "search", "test", "shell"],
    "medium": ["read", "edit", "search", "test", "shell", "database"],
    "frontier": ["read", "edit", "search", "test", "shell", "database", "browser"],
}


@pytest.fixture
def restricted_policy_dict(policy_dict: dict[str, Any]) -> dict[str, Any]:
    for tier, caps in RESTRICTED_CAPABILITIES.items():
        policy_dict["tiers"][tier]["capabilities"]["tools"] = list(caps)
    return policy_dict


@pytest.fixture
def make_settings(tmp_path: Path, hashing_classifier_file: Path) -> Callable[..., Any]:
    from tierwise.service.settings import load_settings

    def make(**overrides: Any) -> Any:
        base: dict[str, Any] = {
            "home": tmp_path / "home", "embedder": "hashing", "classifier_file": hashing_classifier_file,
            "use_registry": False, "seed": SEED, "export_interval_s": 0.1,
        }
        base.update(overrides)
        return load_settings(**base)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Any]) -> Any:
    return make_settings()


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    counter = iter(range(1_000))

    def write(policy: dict[str, Any]) -> Path:
        path = tmp_path / f"policy-{next(counter)}.json"
        path.write_text(json.dumps(policy))
        return path

    return write


@pytest.fixture
def make_client(make_settings: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Start an app (lifespan included) with settings overrides; all are closed at teardown."""
    from fastapi.testclient import TestClient

    from tierwise.service.api.app import create_app

    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


# Prompts whose profile the hashing classifier gets right with a wide margin.
MECHANICAL = "rename the helper get_usr to get_user in utils.py and reformat the file with black"
AGENTIC = ("investigate why the checkout service sometimes times out in production; figure out the root "
           "cause of the intermittent latency, design a fix and plan the rollout end-to-end")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def to_human(client: Any, prompt: str, headers: dict[str, str] | None = None, *, harness: str = "local",
             failure: str = "tests_failed") -> int:
    """Route ``prompt`` and fail every attempt until it lands in the human queue; its item id."""
    r = client.post("/v1/route", json={"prompt": prompt, "harness": harness}, headers=headers)
    assert r.status_code == 200, r.text
    d = r.json()
    attempt, tier = 0, d["tier"]
    while True:
        r = client.post("/v1/outcomes", headers=headers, json={
            "decision_id": d["decision_id"], "attempt": attempt, "tier": tier, "resolved": False,
            "cost_usd": 0.01, "failure": failure})
        assert r.status_code == 200, r.text
        nxt = r.json()["next"]
        if nxt["action"] != "escalate":
            assert nxt["action"] == "human"
            item: int = nxt["queue_item_id"]
            return item
        attempt, tier = nxt["attempt"], nxt["tier"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL 15 cluster for the session (``bench/_postgres.py``), removed after.

    In CI (``CI`` set) missing binaries are an error: ``.ci/run`` installs them. Elsewhere the
    PostgreSQL tests skip and say why."""
    from tierwise.bench import _postgres

    if not _postgres.available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL binaries missing under {_postgres.PG_BIN} in CI; .ci/run installs them")
        pytest.skip(f"PostgreSQL binaries not found under {_postgres.PG_BIN} (apt-get install postgresql); "
                    "outside CI the PostgreSQL tests skip")
    cluster = _postgres.Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's cluster, one per test."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50] + f"_{os.getpid()}"
    url: str = pg_cluster.create_database(name)
    return url
