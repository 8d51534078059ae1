"""End to end: a real service learns from simulated traffic, hot-reloads, rolls back, refuses junk.

1. A service starts with the bootstrap policy (version 1, champion) and serves a simulated
   workload whose true per-tier success rates differ from the bootstrap priors (the small model
   is much better than the priors think on local and repository work).
2. ``run_retune`` registers version 2 and promotes it; the running service picks it up within
   the poll interval, with no restart. A second retune on unchanged data does not promote.
3. Fresh simulated traffic (next week's tasks) under version 2 costs less per resolved task
   than the same tasks under version 1 (after ``rollback``, which the service follows), at a
   resolution rate no worse beyond noise.
4. Corrupt versions (bad JSON; a tier with no model) pointed at by the champion alias by hand are
   refused by the service, which keeps serving.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tierwise.bench.simulator import ScenarioWorld, SimTask, Simulator, load_corpus, load_scenario
from tierwise.service.client import TierwiseClient
from tierwise.service.policy.registry import CHALLENGER, CHAMPION, make_registry
from tierwise.service.settings import Settings, load_settings
from tierwise.tuner.retune import run_retune

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TIERWISE = REPO / ".venv" / "bin" / "tierwise"
TRAIN_TASKS = 2400
FRESH_TASKS = 700
POLL_SECONDS = 1.0


def _scenario(tmp: Path) -> ScenarioWorld:
    raw = json.loads((REPO / "bench" / "scenarios" / "steady.json").read_text())
    raw["name"] = "e2e-retune"
    raw["tasks_per_week"] = TRAIN_TASKS
    raw["weeks"] = 2
    # The truth the bootstrap priors get wrong: the small model handles most local and
    # repository work (priors: 0.70 and 0.40).
    raw["tiers"]["small"]["success"].update({"mechanical": 0.97, "local": 0.93, "repository": 0.8})
    path = tmp / "scenario.json"
    path.write_text(json.dumps(raw))
    return load_scenario(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tierwise-e2e-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def policy_file(home: Path) -> Path:
    policy = json.loads((REPO / "data" / "policy.default.json").read_text())
    # The shipped 5% exploration needs more traffic than a test can afford for OPE; 25% does not.
    policy["exploration"] = {"local": 0.25, "ci": 0.25, "prod": 0.25}
    path = home / "bootstrap.json"
    path.write_text(json.dumps(policy))
    return path


@pytest.fixture(scope="module")
def settings(home: Path, policy_file: Path, hashing_classifier_file: Path) -> Settings:
    return load_settings(home=home / "var", policy_file=policy_file, embedder="hashing",
                         classifier_file=hashing_classifier_file, poll_seconds=POLL_SECONDS, seed=5)


@pytest.fixture(scope="module")
def server(settings: Settings, home: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env.update(TIERWISE_HOME=str(settings.home), TIERWISE_POLL_SECONDS=str(POLL_SECONDS), TIERWISE_SEED="5",
               TIERWISE_EMBEDDER="hashing", TIERWISE_CLASSIFIER_FILE=str(settings.classifier_file),
               TIERWISE_POLICY_FILE=str(settings.policy_file), TIERWISE_LOG_LEVEL="warning",
               MLFLOW_DISABLE_TELEMETRY="true")
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(TIERWISE), "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start: " + (home / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _play(client: TierwiseClient, sim: Simulator, task: SimTask) -> tuple[bool, float, str]:
    """One task through route → attempts → outcomes, as an agent harness would."""
    d = client.route_body(task.request)
    tier, attempt, cost = d.tier, 0, 0.0
    while True:
        a = sim.attempt(task, tier, attempt)
        cost += a.cost_usd
        nxt = client.report(d.decision_id, attempt, tier, resolved=a.resolved, cost_usd=a.cost_usd,
                            input_tokens=a.input_tokens, output_tokens=a.output_tokens, latency_ms=a.latency_ms,
                            failure=a.failure, overridden_to=a.overridden_to)
        if nxt.action != "escalate":
            return nxt.resolved, cost, d.policy_version
        tier, attempt = str(nxt.tier), attempt + 1


def _drive(url: str, sim: Simulator, tasks: list[SimTask]) -> dict[str, Any]:
    """One client, one task at a time: the seeded server then draws its exploration in the same
    order on every run, the simulator is deterministic per task, and the retune's holdout hashes
    the task, so the whole test gives the same numbers every time (with threads it did not)."""
    with TierwiseClient(url) as client:
        results = [_play(client, sim, t) for t in tasks]
    resolved = sum(r for r, _, _ in results)
    cost = sum(c for _, c, _ in results)
    return {"n": len(results), "resolution": resolved / len(results), "cost_per_resolved": cost / max(resolved, 1),
            "versions": sorted({v for _, _, v in results})}


def _wait_for_version(url: str, version: str, timeout: float = POLL_SECONDS * 5 + 5) -> float:
    start = time.time()
    while time.time() - start < timeout:
        if httpx.get(f"{url}/v1/policy", timeout=5).json()["version"] == version:
            return time.time() - start
        time.sleep(0.1)
    raise AssertionError(f"service did not switch to policy {version} within {timeout}s")


def test_retune_loop(server: str, settings: Settings, home: Path) -> None:
    sim = Simulator(_scenario(home), load_corpus(REPO / "data" / "corpus"))
    assert httpx.get(f"{server}/v1/policy").json()["version"] == "1"

    before = _drive(server, sim, sim.tasks_for_week(0))
    assert before["versions"] == ["1"]

    first = run_retune(settings, trials=60, min_decisions=1000, progress=False)
    assert first.status == "promoted", first.reason
    assert first.version == "2" and first.champion_version == "1"
    waited = _wait_for_version(server, "2")
    assert waited <= POLL_SECONDS * 3 + 2  # picked up by the poller, no restart

    second = run_retune(settings, trials=60, min_decisions=1000, progress=False)
    assert second.status == "challenger", second.reason
    reg = make_registry(settings)
    assert reg.alias(CHAMPION) == "2" and reg.alias(CHALLENGER) == second.version

    fresh = sim.tasks_for_week(1)[:FRESH_TASKS]
    after = _drive(server, sim, fresh)
    assert after["versions"] == ["2"]

    old, new = reg.rollback()
    assert (old, new) == ("2", "1")
    _wait_for_version(server, "1")
    baseline = _drive(server, sim, fresh)  # the same fresh tasks under the old policy
    assert baseline["versions"] == ["1"]
    print(f"\nbootstrap on week 0: {before}\nv2 on fresh: {after}\nv1 on fresh: {baseline}", file=sys.stderr)
    assert after["cost_per_resolved"] < 0.95 * baseline["cost_per_resolved"], (after, baseline)
    assert after["resolution"] >= baseline["resolution"] - 0.03, (after, baseline)

    # Corrupt versions registered by hand and aliased directly (promote() would refuse them).
    good = reg.raw("1")
    no_model = json.loads(good)
    no_model["tiers"]["small"].pop("model")
    client = reg.client
    for body in ("{not json", json.dumps(no_model)):
        run = client.create_run(reg.experiment_id("tierwise-manual"))
        bad = reg.publish(body, run.info.run_id, description="corrupt by hand")
        client.set_terminated(run.info.run_id)
        reg.set_alias(CHAMPION, bad)
        time.sleep(POLL_SECONDS * 2.5)
        health = httpx.get(f"{server}/healthz").json()
        assert health["status"] == "ok" and health["policy_version"] == "1"
        with TierwiseClient(server) as c:
            assert c.route_body(fresh[0].request).policy_version == "1"
    reg.set_alias(CHAMPION, "1")
