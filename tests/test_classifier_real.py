"""The shipped classifier with the real MiniLM encoder (int8 ONNX, the service default).

Marked ``minilm`` and run by default. Figures are judged on the out-of-distribution set in
``data/eval`` (other writers, another brief, real harnesses' field habits), not on the corpus's
own split, which shares its writers' style. Floats are compared by the decisions they make.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from conftest import DATA

from tierwise.bench.classifier_eval import load_ood
from tierwise.service.classify.embed import make_embedder
from tierwise.service.classify.evaluate import evaluate, text_and_files
from tierwise.service.classify.model import ProfileClassifier
from tierwise.service.classify.task import RepoInfo, Task
from tierwise.service.classify.train import load_corpus, train
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import parse_policy
from tierwise.service.routing import Router

pytestmark = pytest.mark.minilm


class MemoEmbedder:
    """The real encoder with a per-text memo, under the same name the artefact records."""

    def __init__(self, inner: Any) -> None:
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
    return MemoEmbedder(make_embedder("minilm-int8"))


@pytest.fixture(scope="module")
def shipped(embedder: MemoEmbedder) -> ProfileClassifier:
    return ProfileClassifier.load(DATA / "classifier.minilm-int8.json", embedder)


@pytest.fixture(scope="module")
def ood() -> tuple[list[Task], list[str]]:
    tasks, labels, _ = load_ood(DATA / "eval")
    return tasks, labels


@pytest.fixture(scope="module")
def router(shipped: ProfileClassifier) -> Router:
    policy = parse_policy((DATA / "policy.default.json").read_text())
    return Router(shipped, PolicyHolder(policy, "file"), None, random.Random(0))


def test_shipped_artefact_was_trained_on_every_writer_of_the_corpus() -> None:
    artifact = json.loads((DATA / "classifier.minilm-int8.json").read_text())
    assert artifact["embedder"] == "all-MiniLM-L6-v2-onnx-int8"
    writers = {r["writer"] for r in load_corpus(DATA / "corpus")}
    assert set(artifact["trained_on"]["writers"]) == writers
    assert artifact["trained_on"]["rows"] == len(load_corpus(DATA / "corpus", split="train"))


def test_out_of_distribution_bar(shipped: ProfileClassifier, ood: tuple[list[Task], list[str]]) -> None:
    tasks, labels = ood
    report = evaluate(shipped, tasks, labels, "ood")
    assert report.n >= 300
    assert report.accuracy >= 0.90, report.render()
    assert report.macro_f1 >= 0.88, report.render()
    assert report.ece <= 0.05, report.render()


def test_out_of_distribution_bar_from_text_and_files_alone(shipped: ProfileClassifier,
                                                           ood: tuple[list[Task], list[str]]) -> None:
    tasks, labels = ood
    report = evaluate(shipped, [text_and_files(t) for t in tasks], labels, "ood_text_files")
    assert report.accuracy >= 0.88, report.render()


def test_retraining_with_the_same_seed_reproduces_the_shipped_decisions(
        embedder: MemoEmbedder, shipped: ProfileClassifier, ood: tuple[list[Task], list[str]]) -> None:
    """Decisions, not digits: int8 kernels differ across CPUs, so the embeddings (and every
    probability after them) may move in the last places. What must hold is the profile of
    every task the classifier is not on the fence about, and probabilities to a few hundredths."""
    seed = int(shipped.artifact["trained_on"]["seed"])
    artifact = train(load_corpus(DATA / "corpus", split="train"), embedder, seed=seed)
    retrained = ProfileClassifier(artifact, embedder)
    tasks, _ = ood
    before, after = shipped.score_many(tasks), retrained.score_many(tasks)
    for a, b in zip(after, before, strict=True):
        top = sorted(b.profile_scores.values(), reverse=True)
        if top[0] - top[1] > 0.05:
            assert a.profile == b.profile
        assert max(abs(a.profile_scores[p] - b.profile_scores[p]) for p in a.profile_scores) < 0.03
        assert abs(a.complexity - b.complexity) < 0.03
    assert artifact["mix"] == shipped.artifact["mix"]
    assert artifact["temperature"] == pytest.approx(shipped.artifact["temperature"], rel=0.05)


# Requests shaped like what common harnesses send: the same full tool set for every task, or none.
TOOL_SETS = {
    "none": [],
    "tierwise": ["read_file", "edit_file", "search_code", "run_tests", "shell"],
    "claude_code": ["Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "WebFetch", "WebSearch",
                    "TodoWrite", "Task"],
    "openhands": ["execute_bash", "str_replace_editor", "browser", "execute_ipython_cell", "think", "finish"],
    "swe_agent": ["bash", "str_replace_editor", "submit"],
}
ONE_FILE_BUGS = [
    Task(prompt="Fix the KeyError in parse_headers when the header list is empty.", files=("http/headers.py",)),
    Task(prompt="Fix the off-by-one in paginate()", files=("api/pagination.py",)),
    Task(prompt="`slugify('Ünïcode title')` returns an empty string; it should transliterate. Fix it in "
                "utils/text.py and add a test."),
    Task(prompt="TypeError: Cannot read properties of undefined (reading 'map') in CartSummary.tsx when the "
                "cart is empty. Guard it."),
]
MECHANICAL_EDITS = [
    Task(prompt="Sort the imports in app/main.py.", files=("app/main.py",)),
    Task(prompt="Rename the function get_usr to get_user in src/accounts/utils.py and update its call sites in "
                "that file. No behaviour change.", files=("src/accounts/utils.py",)),
    Task(prompt="Add the Apache-2.0 licence header to every .go file under cmd/ and internal/."),
    Task(prompt="Bump lodash from 4.17.20 to 4.17.21 in package.json."),
]


@pytest.mark.parametrize("harness_tools", sorted(TOOL_SETS))
def test_one_file_bugs_route_below_frontier_whatever_the_tools(router: Router, harness_tools: str) -> None:
    for task in ONE_FILE_BUGS:
        d = router.route(Task(prompt=task.prompt, files=task.files, tools=tuple(TOOL_SETS[harness_tools])),
                         harness="local").decision
        assert d.profile == "local", (task.prompt, d.reasons)
        assert d.tier != "frontier", (task.prompt, d.reasons)


@pytest.mark.parametrize("harness_tools", sorted(TOOL_SETS))
def test_mechanical_edits_route_to_small_whatever_the_tools(router: Router, harness_tools: str) -> None:
    for task in MECHANICAL_EDITS:
        d = router.route(Task(prompt=task.prompt, files=task.files, tools=tuple(TOOL_SETS[harness_tools])),
                         harness="local").decision
        assert d.profile == "mechanical", (task.prompt, d.reasons)
        assert d.tier == "small", (task.prompt, d.reasons)
        assert d.plan.temperature <= 0.2


def test_the_issues_repository_examples_are_repository(router: Router) -> None:
    for prompt in ("Port every HTTP call in the codebase from urllib3 to aiohttp and make all the call sites async.",
                   "Replace the global settings singleton with an injected Config object in every package and "
                   "update the tests."):
        for tools in (TOOL_SETS["none"], TOOL_SETS["tierwise"]):
            d = router.route(Task(prompt=prompt, tools=tuple(tools)), harness="ci").decision
            assert d.profile == "repository", (prompt, tools, d.reasons)


def test_an_open_ended_production_investigation_goes_to_frontier(router: Router) -> None:
    task = Task(prompt="Checkout requests sometimes time out in production under load, but we can't reproduce it "
                       "locally. Investigate the root cause (DB pool exhaustion? retries? the payment provider?), "
                       "design a fix and plan a safe rollout.",
                repo=RepoInfo(files=5200, languages=("python", "go")), tools=tuple(TOOL_SETS["claude_code"]))
    d = router.route(task, harness="local").decision
    assert d.profile == "agentic"
    assert d.tier == "frontier"
    assert any(r.startswith("profile agentic") for r in d.reasons)


def test_the_fp32_reference_artefact_is_current_and_meets_the_bar(ood: tuple[list[Task], list[str]]) -> None:
    """``TIERWISE_EMBEDDER=minilm`` (fp32 on torch, 256 word pieces) has its own artefact."""
    fp32 = ProfileClassifier.load(DATA / "classifier.json", make_embedder("minilm"))
    tasks, labels = ood
    report = evaluate(fp32, tasks, labels, "ood_fp32")
    assert report.accuracy >= 0.90, report.render()
    assert report.ece <= 0.05, report.render()
