"""`make screenshots`: the operator console's pages as PNGs under docs/img/, for the README.

Starts a real `tierwise serve` on a fresh home (default scorer, MLflow registry), routes a few
dozen tasks from the corpus test split and reports their outcomes (some resolve, some fail up
the ladder into the human queue), then signs in with an admin key in Debian's headless
chromium (through playwright, no browser download) and captures /ui, /ui/queue and the
champion's /ui/policy page.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

import httpx

from tierwise.bench._server import ROOT, Server
from tierwise.service.classify.train import load_corpus
from tierwise.service.keys import KeyStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
OUT = ROOT / "docs" / "img"


def drive(api: httpx.Client, headers: dict[str, str], n: int, seed: int = 0) -> None:
    """Route ``n`` corpus tasks; each attempt resolves with probability 0.6, else escalates."""
    rng = random.Random(seed)
    rows = load_corpus(ROOT / "data" / "corpus", split="test")[:n]
    for i, row in enumerate(rows):
        d = api.post("/v1/route", headers=headers, json={
            "prompt": str(row["prompt"]), "files": row.get("files", []), "harness": ("ci", "local")[i % 2]}).json()
        attempt, tier = 0, d["tier"]
        while True:
            ok = rng.random() < 0.6
            r = api.post("/v1/outcomes", headers=headers, json={
                "decision_id": d["decision_id"], "attempt": attempt, "tier": tier, "resolved": ok,
                "cost_usd": round(rng.uniform(0.002, 0.4), 4), **({} if ok else {"failure": "tests_failed"})})
            r.raise_for_status()
            nxt = r.json()["next"]
            if nxt["action"] != "escalate":
                break
            attempt, tier = nxt["attempt"], nxt["tier"]


def capture(url: str, key: str, version: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = {"ui-overview.png": "/ui", "ui-queue.png": "/ui/queue", "ui-policy.png": f"/ui/policy/{version}"}
    written = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, headless=True, executable_path=str(CHROMIUM), args=ARGS,
                                                   viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.goto(f"{url}/ui/login")
            page.fill("#key", key)
            page.click("form[action='/ui/login'] button[type=submit]")
            page.wait_for_url(f"{url}/ui**")
            for name, path in shots.items():
                page.goto(url + path)
                # The queue grows with traffic: its first screen says enough and keeps the PNG small.
                page.screenshot(path=str(out / name), full_page=name != "ui-queue.png")
                written.append(out / name)
        finally:
            ctx.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=40, help="tasks to route before capturing")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ.pop("TIERWISE_HOME", None)
        server = Server(home)
        server.init_registry()
        key = KeyStore(home / "keys.json").create(("admin",), name="screenshots")[1]
        headers = {"Authorization": f"Bearer {key}"}
        with server.start(), httpx.Client(base_url=server.url, timeout=60) as api:
            print(f"routing {args.tasks} tasks ...")
            drive(api, headers, args.tasks)
            version = api.get("/v1/policy", headers=headers).json()["version"]
            for path in capture(server.url, key, version, args.out):
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
