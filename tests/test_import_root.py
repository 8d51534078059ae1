"""tierwise claims one top-level name: `tierwise`.

Why: a user's own project may well have a `service` or `tuner` module; an installed router
must not shadow it. Run from a neutral directory so the checkout itself is not on sys.path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_only_tierwise_is_importable(tmp_path: Path) -> None:
    for name in ("service", "tuner", "bench", "tierwise_data"):
        proc = _run(f"import {name}", tmp_path)
        assert proc.returncode != 0, f"`import {name}` should fail outside the checkout"
        assert "ModuleNotFoundError" in proc.stderr
    proc = _run(
        "import tierwise.service.cli, tierwise.tuner.cli, tierwise.bench.cli\n"
        "import importlib.resources as r\n"
        "print(r.files('tierwise.data').joinpath('policy.default.json').is_file())",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
