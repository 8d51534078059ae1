"""The context bench's own logic: labels from gold patches, releases by PR number, and a clean
skip without the data (the data itself is read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierwise.bench.context_bench import gold_files, main
from tierwise.bench.context_sources import release_for
from tierwise.bench.swebench_data import default_real_dir

PATCH = """diff --git a/django/db/models/query.py b/django/db/models/query.py
--- a/django/db/models/query.py
+++ b/django/db/models/query.py
@@ -1 +1 @@
-a
+b
diff --git a/django/db/models/sql/compiler.py b/django/db/models/sql/compiler.py
"""


def test_gold_files_are_the_paths_a_patch_edits() -> None:
    assert gold_files(PATCH) == ["django/db/models/query.py", "django/db/models/sql/compiler.py"]


def test_a_later_pull_request_gets_a_later_release() -> None:
    early, late = release_for("django/django", 11_000), release_for("django/django", 17_000)
    assert early is not None and late is not None
    assert (early.version, late.version) == ("3.0", "5.0")
    assert release_for("someone/else", 1) is None


def test_without_the_data_the_bench_skips_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "absent"), "--no-speed", "--out", str(tmp_path / "c.md")]) == 0
    assert "Skipped" in capsys.readouterr().out
    assert not (tmp_path / "c.md").exists()


def test_every_gold_patch_names_files() -> None:
    data = default_real_dir()
    if not (data / "swebench_verified_gold_patches.jsonl").is_file():
        pytest.skip(f"SWE-bench data not at {data}")
    import json

    rows = [json.loads(line) for line in (data / "swebench_verified_gold_patches.jsonl").open()]
    assert len(rows) == 500
    assert all(gold_files(r["patch"]) for r in rows)
