"""Where shipped data lives: the ``tierwise.data`` package (the repo's ``data/`` folder)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir() -> Path:
    try:
        return Path(str(resources.files("tierwise.data")))
    except ModuleNotFoundError:  # running from a checkout without an install
        return Path(__file__).resolve().parent.parent / "data"


def default_policy_file() -> Path:
    return data_dir() / "policy.default.json"


def default_classifier_file(embedder: str) -> Path:
    name = "classifier.json" if embedder == "minilm" else f"classifier.{embedder}.json"
    return data_dir() / name


def corpus_dir() -> Path:
    return data_dir() / "corpus"
