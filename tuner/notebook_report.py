"""Execute ``notebooks/misroutes.ipynb`` headless and write it as HTML under ``$TIERWISE_HOME/reports/``.

``make notebook-report`` runs ``python -m tierwise.tuner.notebook_report``. Parameters are injected the way
papermill does it: a cell tagged ``injected-parameters`` right after the cell tagged ``parameters``,
so the notebook's own defaults stay readable and the report shows what it was run with. The notebook
only reads telemetry (in-memory DuckDB over exported Parquet), so this is safe while the service runs.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "notebooks" / "misroutes.ipynb"
INJECTED_TAG = "injected-parameters"


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def inject_parameters(nb: NotebookNode, params: Mapping[str, Any]) -> NotebookNode:
    """A copy of ``nb`` with ``params`` assigned in a new cell after the ``parameters`` cell."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if INJECTED_TAG not in _tags(c)]
    lines = ["# Parameters injected by tierwise.tuner.notebook_report", *(f"{k} = {v!r}" for k, v in params.items())]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})  # type: ignore[no-untyped-call]
    index = next((i + 1 for i, c in enumerate(out.cells) if "parameters" in _tags(c)), 0)
    out.cells.insert(index, cell)
    return out


def strip_outputs(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` without outputs or execution counts (how the notebook is committed)."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return out


def execute(params: Mapping[str, Any], notebook: Path = NOTEBOOK, timeout: int = 600,
            allow_errors: bool = False) -> NotebookNode:
    """Run the notebook with ``params`` in a fresh kernel (working directory: the notebook's folder).

    Raises ``nbclient.exceptions.CellExecutionError`` on the first failing cell unless ``allow_errors``.
    """
    from nbclient import NotebookClient

    nb = inject_parameters(nbformat.read(notebook, as_version=4), params)  # type: ignore[no-untyped-call]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()
    return nb


def errors(nb: NotebookNode) -> list[str]:
    """One line per cell that raised: its index and the exception."""
    return [f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            for i, cell in enumerate(nb.cells) for out in cell.get("outputs", []) if out.get("output_type") == "error"]


def to_html(nb: NotebookNode) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)  # type: ignore[no-untyped-call]
    return str(body)


def default_home() -> Path:
    from tierwise.service.settings import load_settings

    return load_settings().home


def report_path(home: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return home / "reports" / f"misroutes-{stamp}.html"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tierwise.tuner.notebook_report",
                                description="Execute notebooks/misroutes.ipynb headless and save it as HTML.")
    p.add_argument("--home", type=Path, help="TIERWISE_HOME to analyse (default: $TIERWISE_HOME or ./var)")
    p.add_argument("--start", help="first day, YYYY-MM-DD (UTC, inclusive)")
    p.add_argument("--end", help="last day, YYYY-MM-DD (UTC, inclusive)")
    p.add_argument("--out", type=Path, help="HTML file to write (default: HOME/reports/misroutes-<UTC time>.html)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = p.parse_args(argv)
    home = (args.home or default_home()).resolve()
    if not (home / "telemetry" / "journal.sqlite").exists():
        print(f"notebook_report: no telemetry under {home}/telemetry; run the service first "
              "(or pass --home)", file=sys.stderr)
        return 2
    params = {"TIERWISE_HOME": str(home), "START_DATE": args.start, "END_DATE": args.end}
    out = args.out or report_path(home)
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = execute(params, timeout=args.timeout, allow_errors=True)  # a failing cell still gets a report
    failures = errors(nb)
    for message in failures:
        print(f"notebook_report: {message}", file=sys.stderr)
    code = 1 if failures else 0
    out.write_text(to_html(nb))
    print(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
