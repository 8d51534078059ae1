"""The locust users of the load bench: agents that route and report, and a hostile client.

Importing this module imports locust, which monkey-patches the process for gevent: only
``bench/load.py`` imports it, and it does so before anything that opens sockets or threads.

Hostile probes go over raw sockets, not an HTTP library: a server that answers 413 to an
oversized upload and closes the connection while the client is still writing is defending
itself, and a library that dies on the broken pipe before reading the answer would call that a
connection error. Here the reader runs beside the writer, so the answer is seen if one came.
"""

from __future__ import annotations

import itertools
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Group
from locust import FastHttpUser, User, constant_throughput, task

from tierwise.bench.load_requests import Probe, hostile_probes, outcome_body, route_bodies, slow_body
from tierwise.bench.load_summary import Sample


@dataclass
class LoadState:
    """What the users share for one run (gevent is single-threaded: plain lists are safe)."""

    host: str = "127.0.0.1"
    port: int = 0
    auth: dict[str, str] = field(default_factory=dict)
    per_user_rate: float = 1.0
    hostile_rate: float = 1.0
    hold_s: float = 20.0
    slow_burst: int = 10
    seed: int = 0
    t0: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    server_route_ms: list[float] = field(default_factory=list)  # the router's own latency_ms: encode + decide
    slow_skipped: int = 0
    slow_cap: BoundedSemaphore = field(default_factory=lambda: BoundedSemaphore(50))
    background: Group = field(default_factory=Group)

    def record(self, group: str, name: str, started: float, status: int | None, error: str | None = None,
               expect: frozenset[str] = frozenset()) -> None:
        now = time.perf_counter()
        self.samples.append(Sample(group, name, (now - started) * 1000, status, error, expect,
                                   round(time.monotonic() - self.t0, 3)))


STATE = LoadState()
_user_ids = itertools.count()
_hostile_ids = itertools.count()


class AgentUser(FastHttpUser):
    """One agent: route a task, report the attempt, follow ``next`` while it says escalate."""

    wait_time = constant_throughput(1.0)  # replaced by LoadState.per_user_rate in load.py
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.rng = random.Random(STATE.seed * 1000 + next(_user_ids))
        self.bodies = route_bodies()

    def _post(self, group: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        with self.client.post(path, json=body, headers=STATE.auth, name=path, catch_response=True) as resp:
            status = resp.status_code or None
            error = None if status else type(resp.error).__name__ if resp.error else "no_status"
            STATE.record(group, path, started, status, error)
            if status != 200:
                resp.failure(f"status {status or error}")
                return None
            resp.success()
            out: dict[str, Any] = resp.json()
            return out

    @task
    def episode(self) -> None:
        decision = self._post("route", "/v1/route", self.rng.choice(self.bodies))
        if decision is None:
            return
        if isinstance(decision.get("latency_ms"), int | float):
            STATE.server_route_ms.append(float(decision["latency_ms"]))
        attempt, tier = 0, decision["tier"]
        while attempt <= 2:
            answer = self._post("outcome", "/v1/outcomes",
                                outcome_body(decision["decision_id"], attempt, tier, self.rng))
            nxt = (answer or {}).get("next") or {}
            if nxt.get("action") != "escalate":
                return
            attempt, tier = int(nxt["attempt"]), str(nxt["tier"])


def _read_status(sock: socket.socket) -> tuple[int | None, str | None]:
    """Read an HTTP response head; (status, None), or (None, "closed") if the peer hung up first."""
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, "closed"
        buf += chunk
    parts = buf.split(b"\r\n", 1)[0].split()
    return (int(parts[1]), None) if len(parts) >= 2 and parts[1].isdigit() else (None, "garbled")


def _head(probe: Probe, length: int | None) -> bytes:
    lines = [f"{probe.method} {probe.path} HTTP/1.1", f"Host: {STATE.host}:{STATE.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in {**probe.headers, **STATE.auth}.items()]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_probe(probe: Probe, timeout_s: float = 60.0) -> tuple[int | None, str | None]:
    """Send one probe on a fresh connection; the answer, even if the server cut the upload short."""
    try:
        sock = socket.create_connection((STATE.host, STATE.port), timeout=10.0)
    except OSError as exc:
        return None, f"connect:{type(exc).__name__}"

    def write() -> str | None:
        """Returns why the upload stopped early (the server may have answered and hung up)."""
        try:
            if callable(probe.body):
                sock.sendall(_head(probe, None))
                for chunk in probe.body():
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(_head(probe, len(probe.body)) + probe.body)
        except OSError as exc:
            return type(exc).__name__
        return None

    writer = gevent.spawn(write)
    try:
        sock.settimeout(timeout_s)
        with gevent.Timeout(timeout_s, False):
            status, error = _read_status(sock)
            if status is None and writer.ready() and writer.value:
                error = f"reset:{writer.value}"
            return status, error
        return None, "timeout"
    except TimeoutError:
        return None, "timeout"
    except OSError as exc:
        return None, f"reset:{type(exc).__name__}"
    finally:
        writer.kill(block=False)
        sock.close()


def hold_slow_body() -> None:
    """One slowloris connection: announce a body, send part of it, wait for the server's verdict."""
    probe = slow_body(STATE.host, STATE.port, STATE.hold_s, STATE.auth)
    started = time.perf_counter()
    try:
        sock = socket.create_connection((STATE.host, STATE.port), timeout=10.0)
    except OSError as exc:
        STATE.record("probe", probe.name, started, None, f"connect:{type(exc).__name__}", probe.expect)
        return
    try:
        sock.settimeout(None)  # the hold below is the only clock; the connect timeout must not fire first
        sock.sendall(probe.head + probe.partial)
        status, error = None, "held"
        with gevent.Timeout(probe.hold_s, False):
            status, error = _read_status(sock)
    except OSError as exc:
        status, error = None, ("closed" if isinstance(exc, ConnectionResetError) else f"reset:{type(exc).__name__}")
    finally:
        sock.close()
        STATE.slow_cap.release()
    STATE.record("probe", probe.name, started, status, error, probe.expect)


class HostileUser(User):
    """Sends the hardening issue's requests in turn, mixed into the agents' traffic."""

    fixed_count = 1
    wait_time = constant_throughput(1.0)  # replaced by LoadState.hostile_rate in load.py

    def on_start(self) -> None:
        turns: list[Probe | None] = [*hostile_probes(), None]  # None: a burst of slow bodies
        start = next(_hostile_ids) * 4 % len(turns)  # two hostile users do not send the same probe together
        self.turns = itertools.cycle(turns[start:] + turns[:start])

    @task
    def probe(self) -> None:
        probe = next(self.turns)
        if probe is None:
            for _ in range(STATE.slow_burst):
                if not STATE.slow_cap.acquire(blocking=False):
                    STATE.slow_skipped += 1
                    continue
                STATE.background.spawn(hold_slow_body)
            return
        started = time.perf_counter()
        status, error = send_probe(probe)
        STATE.record("probe", probe.name, started, status, error, probe.expect)
