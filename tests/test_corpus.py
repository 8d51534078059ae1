"""The corpus and the evaluation sets: size, balance, one definition of the labels, no leaks."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from conftest import DATA

from tierwise.service.classify import EXPECTED_OUTPUTS, PROFILES
from tierwise.service.classify.train import load_corpus, split_of


def _eval_rows(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((DATA / "eval").glob(pattern))
            for line in path.read_text().splitlines() if line.strip()]


def test_the_corpus_is_large_balanced_and_from_several_writers() -> None:
    rows = load_corpus(DATA / "corpus")
    assert len(rows) >= 2000
    assert len({r["id"] for r in rows}) == len(rows)
    counts = Counter(r["profile"] for r in rows)
    assert set(counts) == set(PROFILES)
    assert min(counts.values()) / len(rows) >= 0.2
    assert len({r["writer"] for r in rows}) >= 6
    for r in rows:
        assert r.get("expected_output") in (*EXPECTED_OUTPUTS, None), r["id"]
        assert 1 <= int(r["complexity"]) <= 5, r["id"]


def test_every_style_holds_every_profile() -> None:
    """A style that held one profile would teach the style, not the task."""
    by_style: dict[str, set[str]] = {}
    for r in load_corpus(DATA / "corpus"):
        if "style" in r:
            by_style.setdefault(str(r["style"]), set()).add(str(r["profile"]))
    assert len(by_style) >= 20
    assert {s: p for s, p in by_style.items() if p != set(PROFILES)} == {}


def test_the_split_is_stable_and_about_a_fifth() -> None:
    rows = load_corpus(DATA / "corpus")
    test = [r for r in rows if split_of(r) == "test"]
    assert 0.15 <= len(test) / len(rows) <= 0.25
    assert [split_of(r) for r in rows] == [split_of(r) for r in load_corpus(DATA / "corpus")]


def test_the_evaluation_sets_never_leak_into_the_corpus() -> None:
    corpus = {str(r["prompt"]).strip().lower() for r in load_corpus(DATA / "corpus")}
    ood = _eval_rows("ood_*.jsonl")
    para = _eval_rows("paraphrase.jsonl")
    assert len(ood) >= 300
    prompts = [str(r["request"]["prompt"]) for r in ood] + [p for r in para for p in r["prompts"]]
    assert not {p.strip().lower() for p in prompts} & corpus
    assert Counter(r["profile"] for r in ood).keys() == set(PROFILES)


def test_ood_requests_carry_fields_the_way_harnesses_do() -> None:
    """Many requests carry only a prompt; tool sets come from real harnesses, not the corpus."""
    ood = _eval_rows("ood_*.jsonl")
    requests = [r["request"] for r in ood]
    prompt_only = sum(set(q) <= {"prompt", "harness"} for q in requests)
    assert prompt_only / len(requests) >= 0.3
    assert sum("tools" in q for q in requests) / len(requests) >= 0.25
