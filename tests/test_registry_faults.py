"""Registry faults: a lost or re-created registry never replaces the served policy, artefacts follow
a moved home, retunes exclude each other, a killed retune's run is failed, and the policy CLI
answers a bad version with exit 2. Real MLflow (SQLite under a tmp home), no mocks.

A "restart" runs in a fresh process: MLflow caches its store per URI within a process, so only a
new process sees a truncated or deleted database the way a restarted service does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.cli import main
from tierwise.service.errors import RetuneBusy
from tierwise.service.locks import owned_lock
from tierwise.service.paths import default_policy_file
from tierwise.service.policy.cache import meta_path, read_cache
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.poller import PolicyPoller
from tierwise.service.policy.registry import CHAMPION, PolicyRegistry, make_registry, startup_policy
from tierwise.service.settings import Settings, load_settings

RESTART = """
import json, sys
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.poller import PolicyPoller
from tierwise.service.policy.registry import make_registry, startup_policy
from tierwise.service.paths import default_policy_file
from tierwise.service.settings import load_settings
s = load_settings()
if sys.argv[1] == "recreate":  # someone ran a command that bootstraps the empty registry
    make_registry(s).ensure_bootstrap(default_policy_file())
policy, source = startup_policy(s)
holder = PolicyHolder(policy, source)
PolicyPoller(s, holder).poll_once()
try:
    versions = [str(v.version) for v in make_registry(s).versions()]
except Exception:  # the corrupt file stays corrupt
    versions = None
print(json.dumps({"version": policy.version, "source": source, "causes": holder.health_causes(),
                  "versions": versions}))
"""


def _settings(home: Path) -> Settings:
    return load_settings(home=home, use_registry=True)


def _publish(reg: PolicyRegistry, threshold: float) -> str:
    raw = json.loads(default_policy_file().read_text())
    raw["thresholds"]["ci"]["local"] = threshold
    run = reg.client.create_run(reg.experiment_id("tierwise-retune"))
    version = reg.publish(json.dumps(raw), run.info.run_id)
    reg.client.set_terminated(run.info.run_id)
    return version


def _home_at_v3(home: Path) -> Settings:
    """A home whose champion is version 3 (bootstrap, then two publishes), served once."""
    s = _settings(home)
    assert startup_policy(s)[0].version == "1"
    reg = make_registry(s)
    _publish(reg, 0.7)
    reg.promote(_publish(reg, 0.6))
    assert startup_policy(s)[0].version == "3"
    return s


def _tierwise_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tierwise:")]


def _restart(home: Path, mode: str = "plain") -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env.update(TIERWISE_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true")
    out = subprocess.run([sys.executable, "-c", RESTART, mode], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("fault", "cause"), [
    ("truncate", "registry: lost"),
    ("delete", "registry: lost"),
    ("recreate", "registry: re-created"),
    ("corrupt", "registry: unavailable"),
])
def test_a_lost_registry_keeps_serving_the_cached_policy(tmp_path: Path, fault: str, cause: str) -> None:
    s = _home_at_v3(tmp_path / "home")
    db = s.home / "mlflow" / "mlflow.db"
    if fault == "truncate":
        db.write_bytes(b"")
    elif fault in ("delete", "recreate"):
        db.unlink()
    else:
        db.write_bytes(b"this is not an sqlite file" * 100)
    out = _restart(s.home, "recreate" if fault == "recreate" else "plain")
    assert out["version"] == "3" and out["source"].startswith("cache:")
    assert len(out["causes"]) == 1 and cause in out["causes"][0]
    assert out["causes"][0].endswith("serving cached policy v3")
    if fault in ("truncate", "delete"):
        assert out["versions"] == []  # no bootstrap version 1 was written over the lost registry
    cached = read_cache(s)
    assert cached is not None and cached.policy.version == "3"  # the cache was not overwritten
    assert json.loads(meta_path(s).read_text())["version"] == "3"


def test_a_registry_restored_from_an_older_backup_does_not_replace_the_cache(tmp_path: Path) -> None:
    s = _settings(tmp_path / "home")
    startup_policy(s)
    reg = make_registry(s)
    reg.promote(_publish(reg, 0.7))
    backup = tmp_path / "backup.db"
    shutil.copy(s.home / "mlflow" / "mlflow.db", backup)  # champion 2
    reg.promote(_publish(reg, 0.6))
    assert startup_policy(s)[0].version == "3"
    shutil.copy(backup, s.home / "mlflow" / "mlflow.db")
    out = _restart(s.home)
    assert out["version"] == "3" and "no version 3" in out["causes"][0]
    cached = read_cache(s)
    assert cached is not None and cached.policy.version == "3"


def test_a_rollback_in_the_same_registry_is_served_and_cached(tmp_path: Path) -> None:
    s = _home_at_v3(tmp_path / "home")
    make_registry(s).rollback()
    policy, source = startup_policy(s)
    assert (policy.version, source) == ("1", "registry:tierwise-policy@champion")
    cached = read_cache(s)
    assert cached is not None and cached.policy.version == "1"
    holder = PolicyHolder(policy, source)
    PolicyPoller(s, holder).poll_once()
    assert holder.health_causes() == []


def test_healthz_says_degraded_while_the_registry_is_unreachable(
        make_client: Callable[..., Any], tmp_path: Path, settings: Any) -> None:
    _home_at_v3(settings.home)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite file" * 100)
    client = make_client(use_registry=True, registry_uri=f"sqlite:///{garbage}")
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["policy_version"] == "3"
    assert any(c.startswith("registry: unavailable") and c.endswith("serving cached policy v3")
               for c in body["causes"])
    assert client.get("/v1/policy").json()["source"].startswith("cache:")


def test_a_moved_home_finds_its_artefacts_and_a_copy_writes_into_itself(tmp_path: Path) -> None:
    original = _settings(tmp_path / "a")
    startup_policy(original)
    reg = make_registry(original)
    _publish(reg, 0.7)
    shutil.copytree(original.home, tmp_path / "b")
    shutil.rmtree(original.home)
    copy = _settings(tmp_path / "b")
    reg = make_registry(copy)
    assert reg.load("2").thresholds["ci"]["local"] == 0.7
    assert startup_policy(copy)[0].version == "1"
    version = _publish(reg, 0.65)
    assert reg.load(version).thresholds["ci"]["local"] == 0.65
    assert not original.home.exists()  # nothing was written into the original's place
    run = reg.client.get_run(reg.client.get_model_version(reg.name, version).run_id)
    assert run.info.artifact_uri.startswith(copy.artifacts.as_uri())
    reg.client.log_dict(run.info.run_id, {"x": 1}, "extra.json")  # a retune's other artefacts
    assert not original.home.exists()
    assert list(copy.artifacts.rglob("extra.json"))


def test_a_missing_artefact_is_a_named_error_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    s = _settings(tmp_path / "home")
    startup_policy(s)
    reg = make_registry(s)
    version = _publish(reg, 0.7)
    monkeypatch.setenv("TIERWISE_HOME", str(s.home))
    for bad in ("99", "abc"):
        assert main(["policy", "promote", bad]) == 2
        err = _tierwise_lines(capsys.readouterr().err)  # MLflow logs its own lines on a first open
        assert len(err) == 1 and bad in err[0] and "[version]" in err[0]
    for p in s.artifacts.rglob("policy.json"):
        p.unlink()
    assert main(["policy", "promote", version]) == 2
    err = _tierwise_lines(capsys.readouterr().err)
    assert len(err) == 1 and "artifact_missing" in err[0] and f"version {version}" in err[0]
    assert reg.alias(CHAMPION) == "1"


def test_policy_list_shows_the_champion_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    s = _settings(tmp_path / "home")
    startup_policy(s)
    reg = make_registry(s)
    reg.set_alias("challenger", _publish(reg, 0.7))
    monkeypatch.setenv("TIERWISE_HOME", str(s.home))
    assert main(["policy", "list"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"1": "champion", "2": "challenger"}


def test_a_second_retune_exits_2_naming_the_running_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tierwise.tuner.retune import run_retune

    home = tmp_path / "home"
    monkeypatch.setenv("TIERWISE_HOME", str(home))
    with owned_lock(home / "retune.lock"):
        assert main(["retune", "--no-progress"]) == 2
        err = _tierwise_lines(capsys.readouterr().err)
        assert len(err) == 1 and f"another retune is running (pid {os.getpid()} since " in err[0]
        import time

        t = time.monotonic()
        with pytest.raises(RetuneBusy):
            run_retune(_settings(home), wait_s=0.6, progress=False)
        assert time.monotonic() - t >= 0.6
    assert not (home / "mlflow").exists()  # the busy retune touched nothing


def test_a_killed_retunes_running_run_is_marked_failed(tmp_path: Path) -> None:
    from tierwise.tuner.exclusive import FAILED_TAG, HOST_TAG, PID_TAG, fail_stale_runs, owner_tags
    from tierwise.tuner.retune import EXPERIMENT

    reg = make_registry(_settings(tmp_path / "home"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    exp = reg.experiment_id(EXPERIMENT)
    killed = reg.client.create_run(exp, tags={PID_TAG: str(dead.pid), HOST_TAG: owner_tags()[HOST_TAG]})
    live = reg.client.create_run(exp, tags=owner_tags())  # this process: still running
    assert fail_stale_runs(reg, EXPERIMENT, lock_held=False) == [killed.info.run_id]
    run = reg.client.get_run(killed.info.run_id)
    assert run.info.status == "FAILED" and "gone" in run.data.tags[FAILED_TAG]
    assert reg.client.get_run(live.info.run_id).info.status == "RUNNING"
    # holding the home's retune lock, no other retune of this home can be running
    assert fail_stale_runs(reg, EXPERIMENT, lock_held=True) == [live.info.run_id]
