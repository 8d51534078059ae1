"""The service's encoder: MiniLM exported to ONNX, int8, on ONNX Runtime (real model, no fakes).

The export is checked against the fp32 sentence-transformers reference it is derived from, and
the cache against the two ways a multi-worker start can go wrong: building twice, or a worker
reading a half-written file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from tierwise.service.classify.embed import MiniLMEmbedder
from tierwise.service.classify.onnx_embed import OnnxMiniLMEmbedder, ensure_model
from tierwise.service.errors import ConfigError

pytestmark = pytest.mark.minilm

SHORT = [  # all under 64 word pieces, so truncation plays no part in the comparison
    "Rename the function parse_cfg to parse_config everywhere in the repo.",
    "Fix the off-by-one in the pagination helper; the last page is dropped.",
    "Split the billing module into invoices and payments and update every import.",
    "Investigate why the nightly ETL job runs out of memory and propose a fix plan.",
    "Add a missing type hint to utils.slugify.",
    "The login form accepts an empty password; make it reject one and add a test.",
]


@pytest.fixture(scope="module")
def onnx() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder(threads=1)


def test_int8_export_stays_close_to_the_fp32_reference(onnx: OnnxMiniLMEmbedder) -> None:
    ref = MiniLMEmbedder(threads=1).encode(SHORT)
    got = onnx.encode(SHORT)
    assert got.shape == (len(SHORT), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (got * ref).sum(axis=1)
    assert cos.min() > 0.9, cos  # int8 weights and activations; a broken export lands near 0
    # Each text is still nearest to its own reference vector, so the geometry survived.
    assert list((got @ ref.T).argmax(axis=1)) == list(range(len(SHORT)))


def test_a_text_encodes_the_same_alone_or_in_a_batch(onnx: OnnxMiniLMEmbedder) -> None:
    """Training encodes in bulk, the service one prompt at a time, replay either way: a prompt
    must get one vector (int8 activations are scaled per tensor, so padding would leak)."""
    together = onnx.encode(SHORT)
    alone = np.stack([onnx.encode([t])[0] for t in SHORT])
    assert np.array_equal(together, alone)


def test_long_prompts_are_truncated_not_rejected(onnx: OnnxMiniLMEmbedder) -> None:
    long = "refactor the scheduler " * 2000
    a, b = onnx.encode([long, long + " and more words at the far end"])
    assert np.array_equal(a, b)  # only the first 64 word pieces count


def test_the_model_is_built_once_and_reused(tmp_path: Path) -> None:
    """Two processes start on an empty cache at once, as two workers do: one file results, torch
    is loaded only by the build child, and a later call reuses the file."""
    code = ("import sys; from pathlib import Path; from tierwise.service.classify.onnx_embed import ensure_model; "
            "print(ensure_model(Path(sys.argv[1])), 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    lines = {out.strip() for out, _ in outs}
    assert all(line.endswith(" False") for line in lines), lines  # torch stayed in the build child
    paths = {line.rsplit(" ", 1)[0] for line in lines}
    assert len(paths) == 1
    built = Path(paths.pop())
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".onnx") == [built.name]
    stamp = built.stat().st_mtime_ns
    assert ensure_model(tmp_path) == built and built.stat().st_mtime_ns == stamp


def test_an_unusable_cache_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(ConfigError) as err:
        ensure_model(blocker / "cache")
    assert err.value.field == "TIERWISE_MODEL_CACHE"
    assert str(blocker) in str(err.value)


def test_a_failed_build_is_a_config_error_with_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build child cannot import torch (a stand-in module shadows it): the service gets one
    line naming the setting and the cause, and no half-built file is left behind."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shadow), str(REPO)]))
    with pytest.raises(ConfigError) as err:
        ensure_model(tmp_path / "cache")
    assert err.value.field == "TIERWISE_MODEL_CACHE"
    assert "torch is not installed here" in str(err.value)
    assert not list((tmp_path / "cache").glob("*.onnx"))
