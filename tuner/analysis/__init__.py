"""Misroute analysis: the computations behind ``notebooks/misroutes.ipynb``, one concern per module.

The notebook only loads, calls and shows; what counts as a misroute (``misroutes``), what it cost,
how the KPIs moved (``kpis``), how calibrated the scores are (``calibration``), what drifted
(``drift_windows``) and how a challenger would have done (``whatif``) live in typed, unit-tested
modules. This package re-exports exactly what the notebook, the CLI and the tests call.
"""

from tierwise.tuner.analysis.calibration import calibration_table
from tierwise.tuner.analysis.drift_windows import (
    DRIFT_CATEGORICAL,
    DRIFT_NUMERIC,
    drift,
    drift_frame,
    split_windows,
)
from tierwise.tuner.analysis.kpis import kpis_over_time, pick_freq
from tierwise.tuner.analysis.load import (
    REPO_ROOT,
    Telemetry,
    kpi_table,
    load_telemetry,
    open_telemetry,
    resolve_home,
    to_utc,
    window_bounds,
)
from tierwise.tuner.analysis.misroutes import (
    episode_outcome,
    explain,
    label_misroutes,
    misroute_matrix,
    misroute_summary,
    queue_signatures,
    tier_evidence,
    top_misroutes,
)
from tierwise.tuner.analysis.plots import (
    plot_calibration,
    plot_drift,
    plot_kpis,
    plot_misroute_matrix,
    plot_queue_signatures,
    plot_what_if,
)
from tierwise.tuner.analysis.registry import contenders, open_registry, policy_from_home, promotions, shifted_policy
from tierwise.tuner.analysis.whatif import disagreements, replay_targets, what_if

__all__ = [
    "DRIFT_CATEGORICAL", "DRIFT_NUMERIC", "REPO_ROOT", "Telemetry", "calibration_table", "contenders",
    "disagreements", "drift", "drift_frame", "episode_outcome", "explain", "kpi_table", "kpis_over_time",
    "label_misroutes", "load_telemetry", "misroute_matrix", "misroute_summary", "open_registry",
    "open_telemetry", "pick_freq",
    "plot_calibration", "plot_drift", "plot_kpis", "plot_misroute_matrix", "plot_queue_signatures", "plot_what_if",
    "policy_from_home", "promotions", "queue_signatures", "replay_targets", "resolve_home", "shifted_policy",
    "split_windows", "tier_evidence", "to_utc", "top_misroutes", "what_if", "window_bounds",
]
