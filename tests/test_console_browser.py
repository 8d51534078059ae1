"""End to end in a real headless browser: sign in, resolve a queued item, check it through the API.

Needs Debian's ``chromium`` and ``playwright`` from PyPI (no browser download: the system binary is
launched). Skipped, with the reason, where either is missing outside CI; in CI (``CI`` set) a missing
browser is an error, since ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from conftest import MECHANICAL, bearer, live_server, module_settings, to_human

from tierwise.service.keys import KeyStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

if os.environ.get("CI") and not CHROMIUM.exists():  # .ci/run installs it: in CI this test must run
    raise RuntimeError(f"{CHROMIUM} is missing in CI; .ci/run installs Debian's chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt install chromium)")]


def test_a_browser_signs_in_and_resolves_a_queued_item(tmp_path: Path, hashing_classifier_file: Path) -> None:
    with module_settings(tmp_path / "home", hashing_classifier_file) as settings:
        key = KeyStore(settings.keys_file).create(("admin",), name="oncall")[1]
        with live_server(settings) as url, httpx.Client(base_url=url, timeout=30) as api:
            item = to_human(api, MECHANICAL, bearer(key))
            with sync_api.sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), headless=True,
                                                           executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = ctx.new_page()
                    page.goto(f"{url}/ui/queue")
                    assert "/ui/login" in page.url  # no session: the login page
                    page.fill("#key", key)
                    page.click("form[action='/ui/login'] button[type=submit]")
                    page.wait_for_url(f"{url}/ui/queue")
                    assert key not in page.url
                    card = page.locator(f"#item-{item}")
                    card.locator("input[name=note]").first.fill("fixed the import by hand")
                    card.locator("button", has_text=f"Resolve #{item}").click()
                    page.wait_for_url(f"**/ui/queue?done=resolved&item={item}")
                    assert page.locator(f"#item-{item}").count() == 0
                finally:
                    ctx.close()
            open_items = api.get("/v1/queue", headers=bearer(key)).json()["items"]
            assert item not in {i["item_id"] for i in open_items}
