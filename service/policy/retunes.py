"""The newest ``tierwise retune`` run in MLflow: what the console's overview and the
``tierwise_drift_flagged`` gauge both read (the tuner writes it; see ``tuner/retune.py``)."""

from __future__ import annotations

from typing import Any

from tierwise.service.policy.registry import PolicyRegistry


def latest_retune_run(registry: PolicyRegistry) -> tuple[str, Any] | None:
    """(experiment id, run) of the newest retune run, or None before the first retune."""
    from tierwise.tuner.retune import EXPERIMENT

    exp = registry.client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = registry.client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return (str(exp.experiment_id), runs[0]) if runs else None
