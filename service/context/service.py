"""The packer a running service (or the CLI) uses, from settings: the same embedder family as
the router's fast path (static MiniLM token embeddings, a table lookup, so embedding a pool of
300 files costs milliseconds), or the deterministic hashing one when the router runs on it."""

from __future__ import annotations

from tierwise.service.classify.embed import Embedder, make_embedder
from tierwise.service.context.pack import Packer
from tierwise.service.settings import Settings


def context_embedder(settings: Settings) -> Embedder:
    kind = "hashing" if settings.embedder == "hashing" else "static"
    return make_embedder(kind, settings.encoder_threads, settings.model_cache)


def make_packer(settings: Settings) -> Packer:
    return Packer(embedder=context_embedder(settings))
