"""The load bench's request builders and its judging, without a server or locust (fast).

The bench is only as good as its probes: a builder that silently sent a 1 KB body instead of
1M files would make every hostile run pass. So each probe's shape is checked here, and so is the
rule that decides what counts as an error (a 4xx on a probe is a pass, a 5xx an error).
"""

from __future__ import annotations

import json
import random
import sys

import pytest

from tierwise.bench.load_auth import has_keys_command, parse_key
from tierwise.bench.load_requests import (
    BIG_ID,
    chunked_chunks,
    hostile_probes,
    outcome_body,
    route_bodies,
    slow_body,
)
from tierwise.bench.load_summary import Sample, classify, markdown, summarise, verdicts
from tierwise.service.classify import FAILURE_KINDS

FOUR = frozenset({"4xx"})
# The larger body limit the server has derived from its defaults (prompt chars x4, files x512, +1 MB;
# it has been tightened since): the chunked probe must exceed it.
DEFAULT_BODY_LIMIT = 200_000 * 4 + 10_000 * 512 + 1_000_000


def test_route_bodies_are_varied_and_valid() -> None:
    bodies = route_bodies()
    assert len(bodies) > 500
    assert all(isinstance(b["prompt"], str) and b["prompt"].strip() for b in bodies)
    assert len({b["prompt"] for b in bodies}) > 0.9 * len(bodies)
    assert sum("files" in b for b in bodies) > 100 and sum("tools" in b for b in bodies) > 100
    assert sum("repo" in b for b in bodies) > 100
    assert {b["harness"] for b in bodies} <= {"local", "ci", "prod"}
    assert not any("request" in b or "profile" in b or "split" in b for b in bodies)  # labels never sent


def test_outcome_bodies_fail_with_a_kind() -> None:
    rng = random.Random(1)
    bodies = [outcome_body("d1", 0, "small", rng) for _ in range(200)]
    failed = [b for b in bodies if not b["resolved"]]
    assert 40 < len(failed) < 120
    assert all(b["failure"] in FAILURE_KINDS for b in failed)
    assert not any("failure" in b for b in bodies if b["resolved"])
    assert {b["failure"] for b in failed} == set(FAILURE_KINDS)


def _json(probe_name: str) -> dict:  # type: ignore[type-arg]
    probe = {p.name: p for p in hostile_probes()}[probe_name]
    assert isinstance(probe.body, bytes)
    out: dict = json.loads(probe.body)  # type: ignore[type-arg]
    return out


def test_hostile_probes_have_the_intended_shape() -> None:
    probes = {p.name: p for p in hostile_probes()}
    assert set(probes) == {"files_1m", "chunked_over_limit", "languages_100x68k", "queue_id_2p63",
                           "prompt_zero_width", "prompt_nul_ansi", "deep_nested_json", "tools_bash"}
    files = _json("files_1m")["files"]
    assert len(files) == 1_000_000 and 2e6 < len(probes["files_1m"].body) < 4e6  # type: ignore[arg-type]
    langs = _json("languages_100x68k")["repo"]["languages"]
    assert len(langs) == 100 and all(len(s) == 68 * 1024 for s in langs)
    assert probes["queue_id_2p63"].path == f"/v1/queue/{2**63}/resolve" and BIG_ID == 9223372036854775808
    assert probes["queue_id_2p63"].method == "POST"
    zw = _json("prompt_zero_width")["prompt"]
    assert set(zw) == {"\u200b"} and zw.strip()  # str.strip() keeps it: only a Unicode-aware check refuses it
    nul = _json("prompt_nul_ansi")["prompt"]
    assert "\x00" in nul and "\x1b[" in nul
    assert "bash" in _json("tools_bash")["tools"] and probes["tools_bash"].expect == frozenset({"2xx"})
    deep = probes["deep_nested_json"].body
    assert isinstance(deep, bytes) and deep.count(b"[") >= 100_000
    limit = sys.getrecursionlimit()
    with pytest.raises(RecursionError):
        json.loads(deep)  # beyond any recursive parser: the server must refuse it with a 4xx, not a 500
    assert sys.getrecursionlimit() == limit
    for name, p in probes.items():
        assert p.headers["content-type"] == "application/json", name
        assert p.chunked == (name == "chunked_over_limit"), name
        if name not in ("tools_bash", "prompt_nul_ansi"):
            assert p.expect == FOUR, name


def test_chunked_probe_exceeds_the_limit_and_is_valid_json() -> None:
    probe = {p.name: p for p in hostile_probes()}["chunked_over_limit"]
    assert callable(probe.body)
    chunks = list(probe.body())
    total = sum(map(len, chunks))
    assert total > DEFAULT_BODY_LIMIT and max(map(len, chunks)) <= 64 * 1024
    small = b"".join(chunked_chunks(total=1000, chunk=64))
    assert len(small) == 1000 and json.loads(small)["prompt"] == "a" * (1000 - len('{"prompt":""}'))


def test_slow_body_announces_more_than_it_sends() -> None:
    sb = slow_body("127.0.0.1", 8123, hold_s=5.0, auth={"Authorization": "Bearer tw_x"})
    head = sb.head.decode()
    assert head.startswith("POST /v1/route HTTP/1.1\r\n") and head.endswith("\r\n\r\n")
    assert f"Content-Length: {sb.content_length}\r\n" in head and "Authorization: Bearer tw_x\r\n" in head
    assert 0 < len(sb.partial) < sb.content_length and sb.hold_s == 5.0


def _s(group: str, status: int | None, ms: float = 10.0, name: str = "x", error: str | None = None,
       expect: frozenset[str] = FOUR) -> Sample:
    return Sample(group, name, ms, status, error, expect if group == "probe" else frozenset())


def test_classify_hostile_4xx_passes_and_5xx_fails() -> None:
    assert classify(_s("probe", 413)) == "ok" and classify(_s("probe", 408)) == "ok"
    assert classify(_s("probe", 422)) == "ok"
    assert classify(_s("probe", 500)) == "error" and classify(_s("probe", 503)) == "error"
    assert classify(_s("probe", None, error="reset:BrokenPipeError")) == "error"
    assert classify(_s("probe", 200)) == "unexpected"  # accepted a hostile body: reported, not an error
    assert classify(_s("probe", 422, expect=frozenset({"2xx"}))) == "unexpected"  # `bash` refused
    slow = frozenset({"4xx", "closed"})
    assert classify(_s("probe", None, error="closed", expect=slow)) == "ok"
    assert classify(_s("probe", None, error="held", expect=slow)) == "unexpected"
    assert classify(_s("route", 200)) == "ok"
    assert classify(_s("route", 422)) == "error" and classify(_s("outcome", 409)) == "error"
    assert classify(_s("outcome", None, error="connect:ConnectionRefusedError")) == "error"


def test_summary_percentiles_and_error_counts() -> None:
    samples = [_s("route", 200, ms=float(i)) for i in range(1, 101)]
    samples += [_s("route", 500, ms=999.0), _s("outcome", 200, ms=5.0), _s("outcome", None, error="timeout")]
    samples += [_s("probe", 413, name="files_1m"), _s("probe", 500, name="files_1m"),
                _s("probe", 200, name="languages_100x68k"), _s("probe", 422, name="queue_id_2p63")]
    out = summarise(samples, duration_s=10.0)
    assert out["route"]["count"] == 101 and out["route"]["ok"] == 100
    assert out["route"]["p50_ms"] == pytest.approx(50.5) and out["route"]["p99_ms"] == pytest.approx(99.01)
    assert out["routes_per_s"] == 10.1
    assert out["errors"] == 3
    assert out["errors_by_kind"] == {"outcome:connection": 1, "probe:5xx": 1, "route:5xx": 1}
    assert out["probes"]["files_1m"]["statuses"] == {"413": 1, "500": 1}
    assert out["misbehaving_probes"] == ["files_1m", "languages_100x68k"]
    assert out["probes"]["queue_id_2p63"]["ok"] == 1


def test_verdicts_and_markdown() -> None:
    def run(p99: float, errors: int, rss: int) -> dict:  # type: ignore[type-arg]
        r = summarise([_s("route", 200, ms=p99), _s("outcome", 200)], 1.0)
        r.update(errors=errors, peak_rss_bytes=rss, disk_start={"total": 1, "journal": 0, "segments": 0},
                 disk_end={"total": 2_000_000, "journal": 1_000_000, "segments": 500_000})
        return r

    steady = run(20.0, 0, 500_000_000)
    assert verdicts(steady, run(39.0, 0, 900_000_000))["met"] is True
    slow = verdicts(steady, run(41.0, 0, 900_000_000))
    assert slow["hostile_route_p99_within_2x"] is False and slow["met"] is False
    assert verdicts(steady, run(30.0, 0, 1 << 30))["hostile_peak_rss_under_1gb"] is False
    assert verdicts(run(20.0, 1, 1), None) == {"steady_zero_errors": False, "met": False}
    result = {"runs": {"steady": steady}, "verdicts": verdicts(steady, None), "rate_routes_per_s": 40,
              "duration_s": 60, "users": 40, "embedder": "minilm-int8", "workers": 1, "cpus": 2,
              "loadavg_start": [1.0, 1.0, 1.0]}
    md = markdown(result)
    assert "| steady |" in md and "steady_zero_errors = True" in md


def test_api_key_detection_and_parsing() -> None:
    assert has_keys_command("usage: tierwise [-h]\n  {serve,route,keys,retune} ...")
    assert not has_keys_command("usage: tierwise [-h]\n  {serve,route,retune} ...\n keys are great")
    key = "tw_" + "A1b2-C3d4_" * 4
    assert parse_key(key + "\n") == key
    assert parse_key(json.dumps({"id": "abc", "key": key})) == key
    assert parse_key(f"created key-1 (id 0123456789ab, scopes admin): {key}") == key
    with pytest.raises(ValueError):
        parse_key("created\n")
