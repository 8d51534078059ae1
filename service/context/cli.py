"""``tierwise pack --repo PATH "TASK" [--tier T | --decision ID]``: the context for a task, from a
local checkout, under the tier's budget in the active policy. For people and scripts on their own
machine; the service's ``POST /v1/context`` packs the same way from what a request carries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tierwise.service.errors import DecisionNotFound, InvalidInput
from tierwise.service.settings import Settings


def _tier(args: argparse.Namespace, settings: Settings, ladder: list[str]) -> str:
    if args.decision is None:
        tier = args.tier or ladder[0]
        if tier not in ladder:
            raise InvalidInput(f"unknown tier {tier!r}; tiers: {ladder}", field="tier")
        return str(tier)
    from tierwise.service.telemetry.journal import Journal, connect
    from tierwise.service.telemetry.store import TelemetryPaths

    path = TelemetryPaths(settings.telemetry_dir).journal
    if not path.exists():
        raise DecisionNotFound(f"no journal at {path}, so no decision {args.decision!r}", field="decision")
    journal = Journal(connect(path))
    try:
        row = journal.decision(args.decision)
    finally:
        journal.close()
    if row is None:
        raise DecisionNotFound(f"no decision {args.decision!r}", field="decision")
    return str(row["tier"])


def cmd_pack(args: argparse.Namespace, settings: Settings) -> int:
    if not args.task.strip():
        raise InvalidInput("task is empty", field="task")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise InvalidInput(f"--max-tokens must be >= 1, got {args.max_tokens}", field="max_tokens")
    from tierwise.service.components import initial_policy
    from tierwise.service.context.repo import read_checkout
    from tierwise.service.context.service import make_packer

    policy, _ = initial_policy(settings)
    tier = _tier(args, settings, policy.ladder)
    budget, strategy = policy.context_budget(tier)
    if args.max_tokens is not None:
        budget = min(budget, args.max_tokens)
    checkout = read_checkout(Path(args.repo), max_files=settings.context_max_files,
                             max_file_bytes=settings.context_max_file_bytes,
                             max_bytes=settings.context_max_bytes, commits=args.commits)
    packer = make_packer(settings)
    packed = packer.pack(args.task, checkout.files, budget, strategy, checkout.commits, checkout.skipped)
    if args.json:
        print(json.dumps({"context": packed.context, "tokens": packed.tokens, "budget": packed.budget,
                          "tier": tier, "strategy": strategy, "counter": packer.counter.name,
                          "margin": packer.options.margin,
                          "included": [vars(i) for i in packed.included],
                          "dropped": [vars(d) for d in packed.dropped]}, indent=2))
        return 0
    if not args.quiet:
        print(packed.context)
        print()
    print(f"# tier {tier} ({strategy}): {packed.tokens} of {budget} tokens ({packer.counter.name}, "
          f"margin {packer.options.margin:.0%}); {len(packed.included)} files included, "
          f"{len(packed.dropped)} left out")
    for inc in packed.included:
        print(f"#   {inc.mode:<10} {inc.tokens:>7}  {inc.path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pack", help="pack a local checkout's files into a tier's context budget")
    p.add_argument("task", help="the task text")
    p.add_argument("--repo", required=True, help="a git checkout (files from git ls-files)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tier", help="a tier of the active policy (default: the cheapest)")
    who.add_argument("--decision", help="a decision id from the journal: its tier's budget")
    p.add_argument("--max-tokens", type=int, help="tighten the budget below the tier's")
    p.add_argument("--commits", type=int, default=30, help="recent commits to weigh (default 30)")
    p.add_argument("--json", action="store_true", help="print the response /v1/context would give")
    p.add_argument("--quiet", action="store_true", help="print only the summary, not the context")
    p.set_defaults(fn=cmd_pack)
