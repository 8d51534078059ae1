"""The ingest load generator: outcome reports at an offered rate, from its own process.

It runs in a separate process so its threads do not share the timing thread's GIL."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from typing import Any

import httpx


def _ingest_worker(url: str, bodies: list[dict[str, Any]], clients: int, max_s: float, nice: int, rate: float,
                   path: str, active: Any, stop: Any, ok: Any, failed: Any, samples: Any) -> None:
    """The load generator's body, in its own process: ``clients`` threads POST outcomes until the
    bodies run out, ``stop`` is set or ``max_s`` passes; they send only while ``active`` is set.
    ``rate`` > 0 paces the total to that many reports/s (open loop: each thread keeps its own
    schedule, and a late thread sends at once to catch up); 0 sends as fast as the server answers.
    ``path`` ``/healthz`` sends GETs instead (the control: HTTP traffic that does no ingest work)."""
    if nice:
        os.nice(nice)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(bodies)):
        todo.put(i)
    gap = clients / rate if rate > 0 else 0.0

    def work(k: int) -> None:
        deadline = time.monotonic() + max_s
        due = time.monotonic() + gap * k / clients
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set() and time.monotonic() < deadline:
                if not active.is_set():
                    active.wait(timeout=0.2)
                    due = time.monotonic() + gap * k / clients
                    continue
                if gap:
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    due = max(due + gap, time.monotonic() - 10 * gap)
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = http.get(path) if path == "/healthz" else http.post(path, json=bodies[i])
                    problem = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                with (failed if problem else ok).get_lock():
                    (failed if problem else ok).value += 1
                if problem and samples.qsize() < 3:
                    samples.put(problem)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Ingest:
    """The outcome load generator, run in a separate process (at ``nice``) so that its threads
    share neither the GIL nor the scheduler priority of the thread that times ``/v1/route``;
    on a 2-core box that is the difference between measuring the server and measuring ourselves."""

    def __init__(self, url: str, bodies: list[dict[str, Any]], clients: int, max_s: float, nice: int = 0,
                 rate: float = 0.0, path: str = "/v1/outcomes") -> None:
        ctx = mp.get_context("spawn")
        self.active, self.stop = ctx.Event(), ctx.Event()
        self.active.set()
        self._ok, self._failed = ctx.Value("l", 0), ctx.Value("l", 0)
        self._samples: Any = ctx.Queue()
        self.max_s = max_s
        self.active_s = 0.0
        self.active_ok = 0  # reports acknowledged while a route block was being timed
        self.proc = ctx.Process(target=_ingest_worker, daemon=True,
                                args=(url, bodies, clients, max_s, nice, rate, path, self.active, self.stop, self._ok,
                                      self._failed, self._samples))
        self.t0 = self.t1 = 0.0

    @property
    def ok(self) -> int:
        return int(self._ok.value)

    @property
    def failed(self) -> list[str]:
        out = []
        while not self._samples.empty():
            out.append(self._samples.get())
        return out + ["..."] * max(0, int(self._failed.value) - len(out))

    def alive(self) -> bool:
        return self.proc.is_alive()

    def start(self) -> Ingest:
        self.proc.start()
        self.t0 = time.perf_counter()
        return self

    def join(self) -> float:
        self.proc.join(timeout=self.max_s + 60)
        self.t1 = time.perf_counter()
        return self.t1 - self.t0
