"""The packer: tags per language, the token counter, ranking signals, and packing per strategy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from context_sample import FILES, TASK

from tierwise.service.classify.embed import HashingEmbedder
from tierwise.service.context.model import MODES, Commit, SourceFile
from tierwise.service.context.pack import Packer, PackOptions
from tierwise.service.context.tags import extract
from tierwise.service.context.tokens import WordPieceCounter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def counter() -> WordPieceCounter:
    return WordPieceCounter()


@pytest.fixture
def packer(counter: WordPieceCounter) -> Packer:
    return Packer(counter=counter, embedder=HashingEmbedder())


def sample() -> list[SourceFile]:
    return [SourceFile(p, t) for p, t in FILES.items()]


def own_files() -> list[SourceFile]:
    """This repository's tracked Python files: real text nobody wrote for the test."""
    paths = subprocess.run(["git", "-C", str(REPO), "ls-files", "*.py"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [SourceFile(p, (REPO / p).read_text()) for p in paths if (REPO / p).is_file()]


@pytest.mark.parametrize(("lang", "path", "names", "imports"), [
    ("python", "shop/pricing.py", {"PriceBook", "list_price", "apply_discount"}, {"shop.money"}),
    ("typescript", "web/cart.ts", {"CartLine", "Cart", "total"}, {"./format"}),
    ("javascript", "web/legacy.js", {"renderBanner"}, {"./util"}),
    ("go", "svc/rates.go", {"Rate", "Describe"}, {"fmt"}),
    ("java", "svc/Ledger.java", {"Ledger", "balance"}, {"java.util.List"}),
])
def test_tags_find_definitions_and_imports(lang: str, path: str, names: set[str], imports: set[str]) -> None:
    tags = extract(lang, FILES[path].encode())  # type: ignore[arg-type]
    assert {d.name for d in tags.definitions} == names
    assert set(tags.imports) == imports


def test_signature_stops_at_the_body() -> None:
    tags = extract("python", FILES["shop/pricing.py"].encode())
    sig = {d.name: d.signature for d in tags.definitions}
    assert sig["apply_discount"] == "def apply_discount(price: Money, percent: float) -> Money:"
    assert sig["list_price"].startswith("def list_price(self, sku: str)")


def test_wordpiece_counts_add_up_over_newline_joins(counter: WordPieceCounter) -> None:
    a, b = FILES["shop/pricing.py"], FILES["svc/rates.go"]
    assert counter.count("hello world") == 2
    assert counter.count(a + "\n" + b) == counter.count(a) + counter.count(b)
    # No truncation: the shipped tokenizer.json truncates at 128 pieces unless told not to.
    assert counter.count("word " * 1000) == 1000


def test_the_file_the_task_names_comes_first_in_full_and_its_import_as_signatures(packer: Packer) -> None:
    packed = packer.pack(TASK, sample(), budget=2_000, strategy="focused")
    modes = {i.path: i.mode for i in packed.included}
    assert packed.included[0].path == "shop/pricing.py"
    assert modes["shop/pricing.py"] == "full"
    assert modes.get("shop/money.py") in ("full", "signatures")
    assert "svc/Ledger.java" not in modes and "web/legacy.js" not in modes
    assert "### shop/pricing.py (full)" in packed.context


def test_focused_gives_only_signatures_of_imports_beyond_the_top_files(packer: Packer) -> None:
    packer.options = PackOptions(focus_top=1)
    packed = packer.pack(TASK, sample(), budget=2_000, strategy="focused")
    assert [(i.path, i.mode) for i in packed.included] == [("shop/pricing.py", "full"), ("shop/money.py", "signatures")]


def test_map_adds_a_repository_map_beyond_the_full_files(packer: Packer) -> None:
    focused = packer.pack(TASK, sample(), budget=400, strategy="focused")
    mapped = packer.pack(TASK, sample(), budget=400, strategy="map")
    assert len(mapped.included) > len(focused.included)
    assert {"full", "signatures"} <= {i.mode for i in mapped.included}
    assert {i.mode for i in mapped.included} <= set(MODES)


@pytest.mark.parametrize("budget", [1, 30, 120, 400, 1_500, 6_000])
@pytest.mark.parametrize("strategy", ["focused", "map"])
def test_tokens_never_exceed_the_budget_and_are_the_real_count(packer: Packer, counter: WordPieceCounter,
                                                               budget: int, strategy: str) -> None:
    files = own_files()
    packed = packer.pack("the policy holder swaps policies atomically; add a context budget per tier", files,
                         budget=budget, strategy=strategy)  # type: ignore[arg-type]
    assert packed.tokens <= budget
    assert packed.tokens == counter.count(packed.context)
    assert sum(i.tokens for i in packed.included) <= budget
    accounted = [i.path for i in packed.included] + [d.path for d in packed.dropped]
    assert sorted(accounted) == sorted(f.path for f in files)  # each file once, included or dropped


def test_a_budget_too_small_for_anything_packs_nothing(packer: Packer) -> None:
    packed = packer.pack(TASK, sample(), budget=1, strategy="map")
    assert (packed.context, packed.tokens, packed.included) == ("", 0, [])
    assert {d.reason for d in packed.dropped} <= {"budget", "not_relevant"}


def test_bm25_and_mentions_rank_without_a_path_in_the_task(packer: Packer) -> None:
    _, ranking = packer.rank("shipping rate for a parcel by weight and zone", sample())
    assert packer.index(sample()).files[ranking.order[0]].path == "shop/shipping.py"
    _, ranking = packer.rank("Inventory.restock forgets the warehouse", sample())
    assert packer.index(sample()).files[ranking.order[0]].path == "shop/inventory.py"


def test_recent_commits_lift_the_files_they_touched(packer: Packer) -> None:
    files = [SourceFile(f"pkg/mod{i}.py", "def handler():\n    return 1\n") for i in range(6)]
    task = "the handler returns the wrong value"
    _, plain = packer.rank(task, files)
    _, lifted = packer.rank(task, files, [Commit("abc1", "handler: fix value", ("pkg/mod4.py",))])
    assert packer.index(files).files[plain.order[0]].path != "pkg/mod4.py"
    assert packer.index(files).files[lifted.order[0]].path == "pkg/mod4.py"


def test_a_repeat_call_reuses_the_index_and_packs_the_same(packer: Packer) -> None:
    files = sample()
    first = packer.pack(TASK, files, budget=800, strategy="map")
    index = packer.index(files)
    again = packer.pack(TASK, [SourceFile(f.path, f.content) for f in files], budget=800, strategy="map")
    assert packer.index(files) is index
    assert again == first
