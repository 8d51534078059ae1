"""Fixtures of the proxy tests: a fake upstream on loopback, tierwise in front of it, the official
``openai`` client pointed at tierwise, and a read-only view of the journal."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import SEED, live_server

from tierwise.bench.fake_upstream import FakeUpstream, serve
from tierwise.service.settings import load_settings

KEY_ENV = "TW_TEST_UPSTREAM_KEY"
KEY = "sk-upstream-Zq8vN3pL0xR7tY2wK5mB9cD4"
MODELS = {"small": "gpt-5-mini-2025-08-07", "medium": "claude-sonnet-4-5-20250929",
          "frontier": "claude-opus-4-5-20251101"}


@dataclass
class Env:
    fake: FakeUpstream
    base: str
    settings: Any
    client: openai.OpenAI

    def journal(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        path = Path(self.settings.home) / "telemetry" / "journal.sqlite"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def attempts(self, decision_id: str) -> list[dict[str, Any]]:
        return self.journal("SELECT * FROM attempts WHERE decision_id = ? ORDER BY attempt", (decision_id,))


def deterministic_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """No exploration, so a test knows which tier a prompt gets."""
    policy["exploration"] = {h: 0.0 for h in policy["exploration"]}
    return policy


def start_env(tmp_path: Path, write_policy: Callable[[dict[str, Any]], Path],
              policy_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch, params: Any) -> Iterator[Env]:
    """The body of each test module's ``env`` fixture. ``params`` (``indirect=True``) are settings
    overrides; a ``policy`` key takes a function that edits the policy dict.

    The classifier is the shipped static MiniLM stage (real, and ready in a fraction of a second),
    not the session's hashing classifier, which these tests do not need to train."""
    overrides = dict(params or {})
    edit = overrides.pop("policy", None)
    policy = deterministic_policy(policy_dict)
    if edit is not None:
        edit(policy)
    monkeypatch.setenv(KEY_ENV, KEY)
    fake = FakeUpstream()
    with serve(fake) as url:
        settings = load_settings(**{"home": tmp_path / "home", "embedder": "static", "use_registry": False,
                                    "seed": SEED, "export_interval_s": 0.1, "upstream_base_url": url,
                                    "upstream_api_key_env": KEY_ENV, "upstream_timeout_s": 1.0,
                                    "policy_file": write_policy(policy), **overrides})
        with live_server(settings) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused-locally", max_retries=0)
            yield Env(fake, base, settings, client)
            client.close()
