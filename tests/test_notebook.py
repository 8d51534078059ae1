"""End to end: a real ``tierwise serve`` takes simulated traffic, a new champion is promoted mid-run and a
challenger registered, then ``notebooks/misroutes.ipynb`` runs headless against that home *while the
server is still running* (so a lock conflict between the notebook and the service would fail it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tierwise.bench.simulator import ScenarioWorld, Simulator, load_scenario
from tierwise.bench.simulator import load_corpus as sim_corpus
from tierwise.service.client import ClientError, TierwiseClient

REPO = Path(__file__).resolve().parents[1]
TASKS_PER_PHASE = 150
FIGURES = ("kpis", "misroute-matrix", "queue-signatures", "calibration", "drift", "what-if")


@dataclass
class Live:
    home: Path
    proc: subprocess.Popen[bytes]
    client: TierwiseClient
    sim: Simulator
    routed: int
    champion: str
    challenger: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ClientError, Exception):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _drive(client: TierwiseClient, sim: Simulator, tasks: list[Any]) -> int:
    """Route each task and report attempts, following escalations until done / human / script."""
    for task in tasks:
        d = client.route(**task.request)
        tier, attempt = d.tier, 0
        while True:
            a = sim.attempt(task, tier, attempt)
            nxt = client.report(d.decision_id, attempt, tier, resolved=a.resolved, cost_usd=a.cost_usd,
                                input_tokens=a.input_tokens, output_tokens=a.output_tokens,
                                latency_ms=a.latency_ms, failure=a.failure, overridden_to=a.overridden_to,
                                output=a.output)
            if nxt.action != "escalate":
                break
            assert nxt.tier is not None and nxt.attempt is not None
            tier, attempt = nxt.tier, nxt.attempt
    return len(tasks)


def _publish_shifted(registry: Any, base: Any, delta: float, name: str) -> str:
    """Register ``base`` with thresholds moved by ``delta``, from a run of its own."""
    data = json.loads(base.canonical_json())
    data["thresholds"] = {h: {p: min(1.0, max(0.0, t + delta)) for p, t in row.items()}
                          for h, row in data["thresholds"].items()}
    data["description"] = f"test: thresholds {delta:+.2f}"
    run = registry.client.create_run(registry.experiment_id("notebook-test"), run_name=name)
    version = str(registry.publish(json.dumps(data), run.info.run_id, description=name))
    registry.client.set_terminated(run.info.run_id)
    return version


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from tierwise.service.classify.embed import HashingEmbedder
    from tierwise.service.classify.train import load_corpus, train
    from tierwise.service.policy.registry import make_registry
    from tierwise.service.settings import load_settings

    home = tmp_path_factory.mktemp("tierwise-home")
    classifier = home / "classifier.hashing.json"
    classifier.write_text(json.dumps(train(load_corpus(REPO / "data" / "corpus", split="train"), HashingEmbedder())))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env.update(TIERWISE_HOME=str(home), TIERWISE_USE_REGISTRY="true", TIERWISE_EMBEDDER="hashing",
               TIERWISE_CLASSIFIER_FILE=str(classifier), TIERWISE_SEED="1", TIERWISE_POLL_SECONDS="0.5",
               TIERWISE_LOG_LEVEL="warning", MLFLOW_DISABLE_TELEMETRY="true")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tierwise")), "serve", "--port", str(port)],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = TierwiseClient(f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        _wait("the server to answer /healthz", lambda: proc.poll() is None and client.health(), 120)
        scenario: ScenarioWorld = load_scenario(REPO / "bench" / "scenarios" / "steady.json")
        sim = Simulator(scenario, sim_corpus(REPO / "data" / "corpus"))
        routed = _drive(client, sim, sim.tasks_for_week(0)[:TASKS_PER_PHASE])
        registry = make_registry(load_settings(home=home))
        bootstrap = registry.load(str(registry.alias("champion")))
        champion = _publish_shifted(registry, bootstrap, -0.10, "champion")
        registry.promote(champion)
        _wait(f"the server to hot-reload v{champion}", lambda: client.policy().version == champion, 30)
        routed += _drive(client, sim, sim.tasks_for_week(3)[:TASKS_PER_PHASE])
        challenger = _publish_shifted(registry, bootstrap, +0.05, "challenger")
        registry.set_alias("challenger", challenger)
        yield Live(home, proc, client, sim, routed, champion, challenger)
    finally:
        client.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def _outputs(nb: Any) -> tuple[list[str], int, list[str]]:
    text, images, errors = [], 0, []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text.append(out.text)
            elif out.output_type == "error":
                errors.append(f"{out.ename}: {out.evalue}")
            elif "image/png" in out.get("data", {}):
                images += 1
    return text, images, errors


@pytest.mark.slow
def test_notebook_runs_against_a_live_server(live: Live) -> None:
    from tierwise.tuner import notebook_report

    assert live.proc.poll() is None, "the server must be running while the notebook reads telemetry"
    time.sleep(1.5)  # let the server's background export run, so both exporters race for real
    nb = notebook_report.execute({"TIERWISE_HOME": str(live.home), "START_DATE": None, "END_DATE": None},
                                 timeout=300)
    text, images, errors = _outputs(nb)
    stdout = "".join(text)
    assert not errors, errors
    assert notebook_report.errors(nb) == []
    assert images >= len(FIGURES), f"expected a figure per section, got {images}"
    for marker in FIGURES:
        assert f"FIGURE {marker}:" in stdout, f"missing the {marker} figure"
    assert "TABLE top-misroutes:" in stdout and stdout.rstrip().endswith("DONE")
    assert f"{live.routed} decisions ({live.routed} with outcomes)" in stdout
    assert "policy registry: found" in stdout
    assert "2 champion promotion marker(s)" in stdout
    assert f"champion v{live.champion} vs challenger v{live.challenger} (registry aliases)" in stdout
    assert f"before vs after v{live.champion} became champion" in stdout
    assert "Traceback" not in stdout
    # the figures are the ones the sections name (one image per figure cell, in order)
    figure_cells = [c for c in nb.cells if c.cell_type == "code" and "FIGURE " in "".join(
        o.get("text", "") for o in c.get("outputs", []))]
    assert len(figure_cells) == len(FIGURES)
    assert all(any("image/png" in o.get("data", {}) for o in c.outputs) for c in figure_cells)

    # the service kept working throughout, and still takes traffic after the notebook
    assert live.proc.poll() is None
    task = live.sim.tasks_for_week(1)[0]
    assert _drive(live.client, live.sim, [task]) == 1
    assert live.client.health()

    html = notebook_report.to_html(nb)
    assert "data:image/png;base64" in html and "Misroute matrix" in html
    out = notebook_report.report_path(live.home)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    assert out.stat().st_size > 50_000


@pytest.mark.slow
def test_report_cli_writes_html_even_when_a_cell_fails(live: Live, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tierwise.tuner import notebook_report

    out = tmp_path / "report.html"
    code = notebook_report.main(["--home", str(live.home), "--start", "2026-13-45", "--out", str(out)])
    assert code == 1
    assert "ValueError" in capsys.readouterr().err
    assert out.exists() and "2026-13-45" in out.read_text()
