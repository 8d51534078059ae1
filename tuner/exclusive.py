"""One retune at a time per home, and no MLflow run left ``RUNNING`` by one that died.

Two retunes at once would both judge their candidate against the same champion, and the later
promotion would replace the earlier one without being compared to it; on a fresh registry they
also race MLflow's schema migration. So a retune holds a lock under the home from before it reads
the champion until after it moves the alias. A retune killed with ``kill -9`` cannot end its
MLflow run; the next one marks such runs ``FAILED``, with a tag saying why.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tierwise.service.errors import RetuneBusy
from tierwise.service.locks import LockHeld, owned_lock
from tierwise.service.policy.registry import PolicyRegistry
from tierwise.service.settings import Settings

log = logging.getLogger(__name__)

PID_TAG = "tierwise.pid"
HOST_TAG = "tierwise.host"
FAILED_TAG = "tierwise.failed_reason"


@contextmanager
def retune_lock(settings: Settings, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the home's retune lock, waiting up to ``wait_s`` seconds; else ``RetuneBusy``."""
    try:
        with owned_lock(settings.home / "retune.lock", wait_s=wait_s):
            yield
    except LockHeld as exc:
        waited = f" (waited {wait_s:g} s; --wait to wait longer)" if wait_s else " (--wait S to wait for it)"
        raise RetuneBusy(f"another retune is running ({exc.owner or 'pid unknown'}){waited}",
                         field="retune") from None


def owner_tags() -> dict[str, str]:
    """Tags naming the process that owns a run, so a later retune can tell that it died."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(run: Any, *, lock_held: bool) -> str | None:
    """Why ``run``'s owner is gone, or None if it may still be running.

    A run without owner tags predates them. On this host a dead pid is gone; and with the home's
    retune lock held (a local registry) no other retune of this home can be running at all, which
    also covers a pid reused by an unrelated process."""
    tags = run.data.tags
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if not pid or not host:
        return "its retune recorded no owner and is not running"
    if host != socket.gethostname():
        return None
    if not pid.isdigit() or not _alive(int(pid)):
        return f"its retune (pid {pid}) is gone (killed or crashed)"
    if lock_held:
        return f"its retune (pid {pid}) does not hold the retune lock"
    return None


def fail_stale_runs(reg: PolicyRegistry, experiment: str, *, lock_held: bool) -> list[str]:
    """Mark the experiment's ``RUNNING`` runs whose owner is gone ``FAILED``; returns their ids."""
    exp = reg.client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    failed: list[str] = []
    for run in reg.client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'"):
        why = owner_gone(run, lock_held=lock_held)
        if why is None:
            continue
        reg.client.set_tag(run.info.run_id, FAILED_TAG, f"marked FAILED by a later retune: {why}")
        reg.client.set_terminated(run.info.run_id, status="FAILED")
        log.warning("retune: MLflow run %s was left RUNNING; %s: marked FAILED", run.info.run_id, why)
        failed.append(run.info.run_id)
    return failed
