"""Load the real SWE-bench Verified × 24-model routing table, read in place.

The data is CC BY-NC 4.0, so it is never copied into this repository: we read it
from a shared folder and make its absence a clean, explicit condition
(:class:`DataUnavailable`) instead of a crash, so tests and benchmarks can skip.

The gold-patch file in that folder is deliberately never opened here: it is the
answer key, and any router feature derived from it would be a leak.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tierwise.service.errors import TierwiseError

ENV_VAR = "TIERWISE_REAL_DATA"


class DataUnavailable(TierwiseError):
    """A benchmark's data set is not on this machine; benchmarks skip with this message. A
    benchmark concern, so it lives here and not among the service's domain errors."""

    code = "data_unavailable"

TASKS_FILE = "swebench_verified_tasks.jsonl"
RUNS_FILE = "mini_swe_agent_per_instance.csv"
MODELS_FILE = "models.csv"

# OpenAI's annotation, easiest first; anything from index 1 on counts as complex,
# because the router's cheap tier is meant for the "<15 min fix" bucket.
DIFFICULTY_ORDER = ("<15 min fix", "15 min - 1 hour", "1-4 hours", ">4 hours")
COMPLEX_FROM = 1


def default_real_dir() -> Path:
    """Where the shared data lives: env override first, else beside the repo."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared" / "data" / "real"


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames cannot be compared/hashed as values
class SwebenchData:
    """All per-task, per-model facts a router simulation needs, aligned by instance_id.

    ``resolved`` and ``cost`` share one index (tasks) and one column order (models.csv
    order), so simulations can index them without re-joining.
    """

    tasks: pd.DataFrame
    resolved: pd.DataFrame
    cost: pd.DataFrame
    models: pd.DataFrame

    def prices(self, model_key: str) -> tuple[float | None, float | None]:
        """List (input, output) USD per Mtok; None where no first-party price exists."""
        row = self.models.loc[model_key]
        return _opt_float(row["list_input_usd_per_mtok"]), _opt_float(row["list_output_usd_per_mtok"])


def _opt_float(value: object) -> float | None:
    return None if pd.isna(value) else float(value)  # type: ignore[arg-type]


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataUnavailable(f"real SWE-bench data not found: {path} (set {ENV_VAR} to its folder)")
    return path


def _read_tasks(path: Path) -> pd.DataFrame:
    # JSONL rather than CSV: problem statements carry raw newlines and \r.
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = pd.DataFrame(rows)[["instance_id", "repo", "difficulty", "problem_statement"]]
    unknown = set(tasks["difficulty"]) - set(DIFFICULTY_ORDER)
    if unknown:
        raise ValueError(f"{path}: unknown difficulty labels {sorted(unknown)}")
    if tasks["instance_id"].duplicated().any():
        raise ValueError(f"{path}: duplicate instance_id")
    rank = tasks["difficulty"].map(DIFFICULTY_ORDER.index)
    tasks["complex"] = (rank >= COMPLEX_FROM).astype(bool)
    return tasks.set_index("instance_id")


def _pivot(runs: pd.DataFrame, value: str, tasks: pd.Index, models: pd.Index) -> pd.DataFrame:
    wide = runs.pivot(index="instance_id", columns="model_key", values=value)
    return wide.reindex(index=tasks, columns=models)


def load_tasks(real_dir: Path | None = None) -> pd.DataFrame:
    """Only the task table (problem statements and difficulty), indexed by instance_id."""
    root = real_dir if real_dir is not None else default_real_dir()
    return _read_tasks(_require(_require(root) / TASKS_FILE))


def load_swebench(real_dir: Path | None = None) -> SwebenchData:
    """Load and cross-validate the three tables; fail loudly on any gap.

    A missing (task, model) pair would silently bias every rate computed later,
    so it is a ValueError rather than a NaN.
    """
    root = real_dir if real_dir is not None else default_real_dir()
    _require(root)
    tasks = _read_tasks(_require(root / TASKS_FILE))
    runs = pd.read_csv(_require(root / RUNS_FILE))
    models = pd.read_csv(_require(root / MODELS_FILE)).set_index("model_key")

    if runs.duplicated(["instance_id", "model_key"]).any():
        raise ValueError(f"{RUNS_FILE}: duplicate (instance_id, model_key) rows")
    extra_models = set(runs["model_key"]) - set(models.index)
    extra_tasks = set(runs["instance_id"]) - set(tasks.index)
    if extra_models or extra_tasks:
        raise ValueError(f"{RUNS_FILE}: rows for unknown models {sorted(extra_models)[:3]} "
                         f"or tasks {sorted(extra_tasks)[:3]}")
    resolved = _pivot(runs, "resolved", tasks.index, models.index)
    cost = _pivot(runs, "cost_usd", tasks.index, models.index)
    missing = resolved.isna() | cost.isna()
    if missing.to_numpy().any():
        task, model = missing.stack().loc[lambda s: s].index[0]
        raise ValueError(f"{RUNS_FILE}: {int(missing.to_numpy().sum())} (task, model) pairs "
                         f"missing, e.g. ({task}, {model})")
    if not resolved.isin([0, 1]).to_numpy().all():
        raise ValueError(f"{RUNS_FILE}: resolved must be 0/1")
    return SwebenchData(tasks=tasks, resolved=resolved.astype(bool),
                        cost=cost.astype(float), models=models)


def folds(data: SwebenchData, k: int = 5, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """K-fold split by task, stratified by repo + difficulty, deterministic in ``seed``.

    Shuffle, stable-sort by stratum, then deal round-robin with one running counter:
    every stratum is spread across folds and fold sizes differ by at most one, even
    for strata smaller than ``k`` (many repo × difficulty cells are tiny).
    """
    if k < 2 or k > len(data.tasks):
        raise ValueError(f"k must be in [2, {len(data.tasks)}], got {k}")
    ids = data.tasks.index.to_numpy()
    order = np.random.default_rng(seed).permutation(len(ids))
    strata = (data.tasks["repo"] + "|" + data.tasks["difficulty"]).to_numpy()[order]
    dealt = ids[order][np.argsort(strata, kind="stable")]
    fold_of = np.arange(len(dealt)) % k
    out: list[tuple[list[str], list[str]]] = []
    for f in range(k):
        test = sorted(str(t) for t in dealt[fold_of == f])
        train = sorted(str(t) for t in dealt[fold_of != f])
        out.append((train, test))
    return out
