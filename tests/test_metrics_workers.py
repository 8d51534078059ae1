"""/metrics on ``tierwise serve --workers 2`` counts every worker's requests, whichever answers.

Each worker is its own process with its own counters; without prometheus-client's multiprocess
mode a scrape shows only the share of the worker that happens to answer it.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from conftest import MECHANICAL

from tierwise.bench._server import Server, fast_env, hashing_classifier

ROUTES = 40


def _routes_total(text: str) -> float:
    return sum(float(v) for v in re.findall(r"^tierwise_routes_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def test_metrics_sum_over_workers(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", workers=2, env=fast_env(hashing_classifier(tmp_path / "clf.json")))
    try:
        server.start()
        server.wait_workers_healthy()
        for _ in range(ROUTES):  # a new connection each time, so both workers take a share
            r = httpx.post(f"{server.url}/v1/route", json={"prompt": MECHANICAL}, timeout=30)
            assert r.status_code == 200, r.text
        scrapes = [httpx.get(f"{server.url}/metrics", timeout=30).text for _ in range(8)]
    finally:
        server.stop()
    assert [_routes_total(t) for t in scrapes] == [ROUTES] * len(scrapes)
    # A gauge too: the version every live worker serves (here the policy file's).
    assert all('tierwise_policy_active{version="bootstrap"} 1.0' in t for t in scrapes)
