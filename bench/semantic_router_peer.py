"""aurelio semantic-router 1.1.1 as a peer profile classifier, on tierwise's own encoder.

Why: to compare routing approaches rather than encoders, the peer embeds with exactly the
encoder tierwise uses (``make_embedder("minilm-int8")``), through a semantic-router
``DenseEncoder`` subclass, so it can never fetch a model or call an embedding API.

The peer is built the documented way: one ``Route`` per profile whose utterances are that
profile's training prompts, an ``IndexedRouter`` over the default in-memory ``LocalIndex``, with
its default scoring (cosine similarity, top_k=5 nearest utterances, "mean" aggregation per route).

semantic-router is imported lazily, so this module imports where it is not installed.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tierwise.service.classify.embed import Embedder


@functools.cache
def _encoder_class() -> type[Any]:
    """The DenseEncoder subclass, defined on first use so semantic-router is imported lazily."""
    from pydantic import Field
    from semantic_router.encoders import DenseEncoder

    class TierwiseDenseEncoder(DenseEncoder):
        """Encodes with a tierwise embedder: the same vectors tierwise's classifier sees.

        Only the sync ``__call__`` is given: semantic-router runs a sync encoder in a thread
        when it has no async path, and tierwise's embedders are sync.
        """

        embedder: Any = Field(exclude=True)
        type: str = "tierwise"

        def __call__(self, docs: list[Any]) -> list[list[float]]:
            vectors = self.embedder.encode([str(d) for d in docs])
            return [list(map(float, v)) for v in vectors]

    return TierwiseDenseEncoder


def make_encoder(embedder: Embedder) -> Any:
    """A semantic-router ``DenseEncoder`` that encodes with ``embedder``."""
    return _encoder_class()(name=embedder.name, embedder=embedder)


class SemanticRouterPeer:
    """semantic-router's ``IndexedRouter`` with one route per profile, predicting top-1 profiles.

    Thresholds: the router's and every route's ``confidence_threshold`` stay ``None``, which in
    1.1.1 means "no bar", so every query gets its top-scoring route (top-1 accuracy is what is
    compared; a 0.0 bar would instead drop a route whose mean cosine is negative). Should a call
    still return no route, the fallback is the route with the highest raw similarity score, read
    from the same API with ``limit=None`` and a ``-inf`` per-call threshold (the API exposes
    scores, so the most-frequent-profile fallback is never needed). ``n_fallbacks`` counts them.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], embedder: Embedder) -> None:
        from semantic_router import IndexedRouter, Route
        from semantic_router.index import LocalIndex

        by_profile: dict[str, list[str]] = {}
        for row in rows:
            by_profile.setdefault(str(row["profile"]), []).append(str(row["prompt"]))
        routes = [Route(name=name, utterances=prompts) for name, prompts in by_profile.items()]
        self.majority = Counter({n: len(p) for n, p in by_profile.items()}).most_common(1)[0][0]
        self.n_fallbacks = 0
        # the constructor embeds and indexes every utterance, so a built peer is ready to call
        self.router = IndexedRouter(
            encoder=make_encoder(embedder),
            routes=routes,
            index=LocalIndex(),
            confidence_threshold=None,
        )

    def _predict_one(self, prompt: str) -> str:
        choice = self.router(prompt)  # limit=1: one RouteChoice, name None when nothing passed
        if not isinstance(choice, list) and choice.name is not None:
            return choice.name
        self.n_fallbacks += 1
        ranked = self.router(prompt, limit=None, threshold=float("-inf"))  # every route, by score
        if isinstance(ranked, list) and ranked and ranked[0].name is not None:
            return ranked[0].name
        return self.majority

    def predict(self, prompts: list[str]) -> list[str]:
        """One profile per prompt, each routed on its own (semantic-router's public call)."""
        return [self._predict_one(p) for p in prompts]


def timed_predict(peer: SemanticRouterPeer, prompts: Sequence[str]) -> tuple[list[str], list[float]]:
    """Predictions and per-prompt wall-clock latency in ms, one prompt per call as in service."""
    preds: list[str] = []
    latencies: list[float] = []
    for prompt in prompts:
        start = time.perf_counter()
        preds.extend(peer.predict([prompt]))
        latencies.append((time.perf_counter() - start) * 1000.0)
    return preds, latencies
