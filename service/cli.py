"""``tierwise``: the command line. Domain errors become a one-line message and exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TypedDict

from tierwise.service.classify import EXPECTED_OUTPUTS, HARNESSES
from tierwise.service.errors import TierwiseError
from tierwise.service.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


# Connection bounds per worker. An idle kept-alive connection closes after 5 s; a request line and
# headers may take 16 KiB; past 512 open connections or requests in flight, a new one gets a 503 at
# once rather than holding memory until the box runs out. Bodies are bounded in size and time by
# the app itself (``api/limits.py``: 413, and 408 after ``TIERWISE_BODY_TIMEOUT_S``).
class _ConnectionLimits(TypedDict):
    timeout_keep_alive: int
    h11_max_incomplete_event_size: int
    limit_concurrency: int


UVICORN_LIMITS = _ConnectionLimits(timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024,
                                   limit_concurrency=512)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.service.keys import KeyStore, check_exposure

    # Before anything heavy loads: without a key, serve on loopback only, and say so loudly.
    warning = check_exposure(args.host or settings.host, bool(KeyStore(settings.keys_file).records()), settings.auth)
    if warning:
        logging.getLogger(__name__).warning(warning)
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    from tierwise.service.components import warm_classifier

    # Fail here, as a CLI error naming the setting, not as a traceback in every worker; this also
    # builds the encoder's derived files once, before the workers start.
    warm_classifier(settings)
    if settings.use_registry:
        # Bootstrap the registry once, here, so N workers do not race to create it.
        from tierwise.service.policy.registry import startup_policy

        startup_policy(settings)
    if workers > 1:
        _serve_workers(settings, host, port, workers)
    else:
        from tierwise.service.api.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level, **UVICORN_LIMITS)
    return 0


def _serve_workers(settings: Settings, host: str, port: int, workers: int) -> None:
    """Several worker processes on one socket; each builds its own app from the environment.

    The socket is rebuilt with ``IPPROTO_TCP`` so asyncio turns on TCP_NODELAY: uvicorn's own
    multi-worker path binds with ``proto=0``, which adds ~40 ms (Nagle + delayed ACK) to every
    request on a kept-alive connection (uvicorn issue #3149).
    """
    import os
    import shutil
    import socket
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from tierwise.service.api.metrics import MULTIPROC_ENV

    os.environ["TIERWISE_HOME"] = str(settings.home)
    # Metrics from every worker, summed at scrape time (service/api/metrics.py). A fresh
    # directory per run: files left by an earlier run would add its counts to this one's.
    metrics_dir = tempfile.mkdtemp(prefix="tierwise-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    config = uvicorn.Config("tierwise.service.api.app:create_app_from_env", factory=True, host=host, port=port,
                            workers=workers, log_level=settings.log_level, **UVICORN_LIMITS)
    raw = config.bind_socket()
    sock = socket.socket(raw.family, raw.type, socket.IPPROTO_TCP, fileno=raw.detach())
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.service.errors import InvalidInput

    # Checked before anything heavy is imported or loaded.
    if not args.prompt.strip():
        raise InvalidInput("prompt is empty", field="prompt")
    if args.diff_lines is not None and args.diff_lines < 0:
        raise InvalidInput(f"--diff-lines must be >= 0, got {args.diff_lines}", field="diff_lines")
    from pydantic import TypeAdapter, ValidationError

    from tierwise.service.api.schemas import ToolName

    try:
        TypeAdapter(list[ToolName]).validate_python(args.tool)
    except ValidationError as exc:
        raise InvalidInput(f"--tool: {exc.errors()[0]['msg']}: {exc.errors()[0]['input']!r}", field="tools") from exc
    from tierwise.service.classify.task import RepoInfo, Task
    from tierwise.service.components import build

    parts = build(settings, telemetry=False)
    task = Task(prompt=args.prompt, files=tuple(args.file), repo=RepoInfo(),
                diff_lines=args.diff_lines, expected_output=args.expected_output, tools=tuple(args.tool))
    routed = parts.router.route(task, harness=args.harness)
    out = routed.to_response()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"tier {out['tier']} → {out['model']} (temperature {out['temperature']}, policy "
              f"{out['policy_version']})")
        print(f"profile {out['profile']}: " + ", ".join(f"{k} {v:.2f}" for k, v in out["profile_scores"].items()))
        print(f"budgets: input {out['max_input_tokens']}, output {out['max_output_tokens']}; "
              f"escalation: {' → '.join(out['escalation_chain']) or 'none'}")
        for reason in out["reasons"]:
            print(f"  - {reason}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.service.classify.embed import make_embedder
    from tierwise.service.classify.train import load_corpus, train
    from tierwise.service.paths import corpus_dir, default_classifier_file

    rows = load_corpus(corpus_dir(), split="train")
    # "two-stage" trains its first stage (data/classifier.static.json); its second stage is the
    # minilm-int8 artefact (TIERWISE_EMBEDDER=minilm-int8 tierwise train).
    kind = "static" if settings.embedder == "two-stage" else settings.embedder
    artifact = train(rows, make_embedder(kind, cache_dir=settings.model_cache), seed=args.seed, progress=True)
    out = Path(args.out) if args.out else default_classifier_file(kind)
    out.write_text(json.dumps(artifact, separators=(",", ":")) + "\n")
    info = artifact["trained_on"]
    print(f"trained on {len(rows)} rows from {len(info['writers'])} writers with seed {args.seed} "
          f"(expert mix {artifact['mix']}, temperature {artifact['temperature']}); wrote {out}")
    print("evaluate it on tasks it never saw: tierwise eval")
    return 0


def cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.service.paths import default_policy_file
    from tierwise.service.policy.registry import CHAMPION, make_registry

    reg = make_registry(settings)
    reg.ensure_bootstrap(settings.policy_file or default_policy_file())
    if args.action == "list":
        champion, challenger = reg.alias(CHAMPION), reg.alias("challenger")
        print(f"{'version':>8}  {'alias':<11} {'created':<20} description")
        for v in reg.versions():
            number = str(v.version)  # MLflow gives an int; the aliases resolve to strings
            alias = "champion" if number == champion else "challenger" if number == challenger else ""
            created = date.fromtimestamp(v.creation_timestamp / 1000).isoformat()
            print(f"{v.version:>8}  {alias:<11} {created:<20} {v.description or ''}")
    elif args.action == "show":
        version = args.version or reg.alias(CHAMPION)
        print(reg.load(str(version)).canonical_json())
    elif args.action == "promote":
        if not args.version:
            raise TierwiseError("policy promote needs a version", field="version")
        prev = reg.promote(str(args.version))
        print(f"champion: {prev} → {args.version}")
    elif args.action == "rollback":
        old, new = reg.rollback()
        print(f"champion: {old} → {new} (rolled back)")
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from tierwise.service.errors import ConfigError
    from tierwise.service.telemetry.store import open_warehouse

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError as exc:
        raise ConfigError(f"--since {args.since!r} is not a YYYY-MM-DD date", field="since") from exc
    try:
        wh = open_warehouse(settings.home, journal_url=settings.journal_url, segments=settings.segments_url)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc), field="TIERWISE_HOME") from exc
    try:
        df = wh.kpis(by=args.by, since=since)
    finally:
        wh.close()
    if df.empty:
        print("no decisions recorded yet")
        return 0
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.float_format",
                           "{:.4f}".format):
        print(df.set_index(df.columns[0]).T.to_string())
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from tierwise.service.keys import CREATE_HINT, KeyStore, parse_scopes

    store = KeyStore(settings.keys_file)
    if args.action == "create":
        record, key = store.create(parse_scopes(args.scopes), args.name)
        print(key)  # alone on stdout, so `KEY=$(tierwise keys create ...)` works
        print(f"created key {record.name!r} (id {record.id}, scopes {','.join(record.scopes)}). It will not be "
              "shown again: store it now; send it as 'Authorization: Bearer <key>'.", file=sys.stderr)
    elif args.action == "list":
        records = store.records()
        if not records:
            print(f"no API keys: the API is unauthenticated (loopback only). Create one: {CREATE_HINT}")
        else:
            print(f"{'name':<20} {'id':<12}  {'prefix':<8} {'scopes':<18} {'created':<20}")
        for r in records:
            print(f"{r.name:<20} {r.id}  {r.prefix}…  {','.join(r.scopes):<18} {r.created_at}"
                  f"{'  revoked' if r.revoked else ''}")
    else:
        record = store.revoke(args.key)
        print(f"revoked key {record.name!r} (id {record.id}); a running server refuses it from its next request")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tierwise", description="Route coding-agent tasks to a model tier.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int)
    s.set_defaults(fn=cmd_serve)
    r = sub.add_parser("route", help="route one task locally and print the decision (no server)")
    r.add_argument("prompt")
    r.add_argument("--file", action="append", default=[], help="a path in scope (repeatable)")
    r.add_argument("--tool", action="append", default=[], help="a tool the harness offers, any name (repeatable)")
    r.add_argument("--harness", default="ci", choices=HARNESSES)
    r.add_argument("--expected-output", choices=EXPECTED_OUTPUTS)
    r.add_argument("--diff-lines", type=int)
    r.add_argument("--json", action="store_true", help="print the full decision as JSON")
    r.set_defaults(fn=cmd_route)
    t = sub.add_parser("train", help="rebuild the classifier artefact from the corpus")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out")
    t.set_defaults(fn=cmd_train)
    pol = sub.add_parser("policy", help="list, show, promote or roll back policy versions")
    pol.add_argument("action", choices=["list", "show", "promote", "rollback"])
    pol.add_argument("version", nargs="?")
    pol.set_defaults(fn=cmd_policy)
    st = sub.add_parser("stats", help="KPIs from telemetry")
    st.add_argument("--since", help="YYYY-MM-DD")
    st.add_argument("--by", choices=["version", "day"], default="version")
    st.set_defaults(fn=cmd_stats)
    k = sub.add_parser("keys", help="create, list or revoke API keys")
    ks = k.add_subparsers(dest="action", required=True)
    kc = ks.add_parser("create", help="create a key and print it, once")
    kc.add_argument("--scopes", required=True, help="comma-separated: route, report, admin (admin implies all)")
    kc.add_argument("--name", help="a label for `keys list` and `keys revoke` (default: key-<id>)")
    ks.add_parser("list", help="every key: name, id, prefix, scopes, created, revoked (never the key)")
    kr = ks.add_parser("revoke", help="revoke a key by name or id")
    kr.add_argument("key", metavar="NAME_OR_ID")
    k.set_defaults(fn=cmd_keys)
    _extensions(sub)
    return p


def _extensions(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Subcommands that live in the tuner and bench packages. Imported directly: a broken module
    is an error at start, not a subcommand that silently goes missing."""
    from tierwise.bench.cli import register as register_bench
    from tierwise.service.context.cli import register as register_pack
    from tierwise.tuner.cli import register as register_tuner

    register_tuner(sub)
    register_bench(sub)
    register_pack(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        code: int = args.fn(args, settings)
        return code
    except TierwiseError as exc:
        where = f" [{exc.field}]" if exc.field else ""
        print(f"tierwise: {exc.code}{where}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
