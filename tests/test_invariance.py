"""Invariance: a task keeps its profile whatever the harness's tool names, without repo facts,
and in other words. Run on the whole out-of-distribution set with the shipped classifier and the
real encoder; each property states its tolerance as a share of the sample."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import DATA
from test_classifier_real import TOOL_SETS, MemoEmbedder

from tierwise.bench.classifier_eval import load_ood
from tierwise.service.classify.embed import make_embedder
from tierwise.service.classify.model import ProfileClassifier
from tierwise.service.classify.task import RepoInfo, Task

pytestmark = pytest.mark.minilm


@pytest.fixture(scope="module")
def classifier() -> ProfileClassifier:
    return ProfileClassifier.load(DATA / "classifier.minilm-int8.json", MemoEmbedder(make_embedder("minilm-int8")))


@pytest.fixture(scope="module")
def sample() -> list[Task]:
    tasks, _, _ = load_ood(DATA / "eval")
    return tasks


def _kept(classifier: ProfileClassifier, before: list[Task], after: list[Task]) -> float:
    a = [s.profile for s in classifier.score_many(before)]
    b = [s.profile for s in classifier.score_many(after)]
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize("tools", sorted(TOOL_SETS))
def test_profile_does_not_depend_on_the_tool_names(classifier: ProfileClassifier, sample: list[Task],
                                                   tools: str) -> None:
    assert _kept(classifier, sample, [replace(t, tools=tuple(TOOL_SETS[tools])) for t in sample]) == 1.0


def test_profile_survives_removing_repo_and_diff_lines(classifier: ProfileClassifier, sample: list[Task]) -> None:
    stripped = [replace(t, repo=RepoInfo(), diff_lines=None) for t in sample]
    assert _kept(classifier, sample, stripped) >= 0.95


def test_profile_survives_removing_every_optional_field(classifier: ProfileClassifier, sample: list[Task]) -> None:
    assert _kept(classifier, sample, [Task(prompt=t.prompt) for t in sample]) >= 0.90


def test_profile_survives_paraphrase(classifier: ProfileClassifier) -> None:
    """Three phrasings of one task, written by a separate writer: the share of phrasings that get
    their task's majority profile."""
    rows = [json.loads(line) for line in (DATA / "eval" / "paraphrase.jsonl").read_text().splitlines() if line]
    assert len(rows) >= 60
    agree = total = 0
    for row in rows:
        got = [s.profile for s in classifier.score_many([Task(prompt=p) for p in row["prompts"]])]
        majority = max(set(got), key=got.count)
        agree += got.count(majority)
        total += len(got)
    assert agree / total >= PARAPHRASE_AGREEMENT


PARAPHRASE_AGREEMENT = 0.90
