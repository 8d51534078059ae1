"""Route one task: score it, decide under the active policy, log the decision.

This is the service's one routing path; the CLI's ``tierwise route`` and the HTTP endpoint both
call it, and the tuner replays the same ``classify`` + ``policy.decide`` functions it uses.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from tierwise.service.classify.model import Scorer, Scores
from tierwise.service.classify.task import Task
from tierwise.service.errors import TelemetryUnavailable
from tierwise.service.online.source import OnlineSource
from tierwise.service.policy.adaptive import AdaptRates, adapt
from tierwise.service.policy.decide import Decision, decide
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.redact import preview
from tierwise.service.telemetry.port import JournalPort

log = logging.getLogger(__name__)

PREVIEW_CHARS = 280


@dataclass(frozen=True)
class Routed:
    decision_id: str
    decision: Decision
    scores: Scores
    latency_ms: float
    shadow_tier: str | None = None
    # False when the journal refused the decision: the caller still gets it, and counts the drop.
    logged: bool = True

    def to_response(self) -> dict[str, Any]:
        d, plan = self.decision, self.decision.plan
        return {
            "decision_id": self.decision_id,
            "policy_version": d.policy_version,
            "profile": d.profile,
            "profile_scores": self.scores.profile_scores,
            "unsure": d.unsure,
            "complexity": self.scores.complexity,
            "tier": d.tier,
            "model": plan.model,
            "temperature": plan.temperature,
            "max_input_tokens": plan.max_input_tokens,
            "max_output_tokens": plan.max_output_tokens,
            "output_schema": plan.output_schema,
            "escalation_chain": list(d.escalation_chain),
            "explored": d.explored,
            "propensity": d.propensity,
            "tier_scores": d.tier_scores,
            "reasons": list(d.reasons),
            "stage": self.scores.stage,
            "latency_ms": round(self.latency_ms, 3),
        }


class Router:
    def __init__(self, classifier: Scorer, holder: PolicyHolder, journal: JournalPort | None,
                 rng: random.Random, shadow: bool = False, online: OnlineSource | None = None,
                 rates: AdaptRates | None = None) -> None:
        self.classifier = classifier
        # Online adaptation (``service/online``): None keeps the policy's own draw.
        self.online = online
        self.rates = rates or AdaptRates()
        self.holder = holder
        self.journal = journal
        self.rng = rng
        self.shadow = shadow

    def prepare(self, task: Task, *, harness: str, task_id: str | None = None) -> tuple[Routed, dict[str, Any] | None]:
        """Score and decide, without logging: the decision and the journal row that records it
        (None without a journal). The HTTP route commits the row through a group committer."""
        start = time.perf_counter()
        policy = self.holder.policy  # one reference for the whole request
        scores = self.classifier.score(task)
        if self.online is None:
            decision = decide(policy, scores, tools=task.tools, n_files=len(task.files), harness=harness,
                              rng=self.rng)
        else:
            base = decide(policy, scores, tools=task.tools, n_files=len(task.files), harness=harness, rng=None)
            decision = adapt(policy, base, self.online.view(policy.version), self.rates, self.rng)
        shadow_tier = None
        challenger = self.holder.challenger if self.shadow else None
        if challenger is not None:
            shadow_tier = decide(challenger, scores, tools=task.tools, n_files=len(task.files),
                                 harness=harness, rng=None).greedy_tier
        latency_ms = (time.perf_counter() - start) * 1000.0
        routed = Routed(new_decision_id(), decision, scores, latency_ms, shadow_tier)
        if self.journal is None:
            return routed, None
        return routed, decision_row(routed, task, task_id, policy.rank(decision.tier), len(policy.ladder),
                                    challenger.version if challenger else None)

    def route(self, task: Task, *, harness: str, task_id: str | None = None) -> Routed:
        """Decide and log in this thread (the CLI's path)."""
        routed, row = self.prepare(task, harness=harness, task_id=task_id)
        if row is None or self.journal is None:
            return routed
        try:
            self.journal.insert("decisions", row)
        except TelemetryUnavailable as exc:
            return unlogged(routed, exc)
        return routed


def unlogged(routed: Routed, exc: TelemetryUnavailable) -> Routed:
    """A decision is worth more to the agent than its log line: answer, and say it was lost."""
    log.warning("decision %s answered but not logged: %s", routed.decision_id, exc.message)
    return replace(routed, logged=False)


def new_decision_id() -> str:
    """32 hex digits, time-ordered (like UUIDv7): inserts land at the end of the journal's
    primary-key indexes instead of all over them, 2–4x faster for bulk ingest."""
    return f"{time.time_ns():016x}{secrets.randbits(64):016x}"


def decision_row(r: Routed, task: Task, task_id: str | None, rank: int, ladder_size: int,
                 shadow_version: str | None) -> dict[str, Any]:
    """Everything the tuner needs to replay this decision exactly, plus what analysts read."""
    d, s = r.decision, r.scores
    return {
        "decision_id": r.decision_id, "ts": time.time(), "policy_version": d.policy_version,
        "harness": d.harness, "task_id": task_id, "prompt_preview": preview(task.prompt, PREVIEW_CHARS),
        "prompt_chars": len(task.prompt), "prompt_tokens": s.prompt_tokens, "n_files": len(task.files),
        "tools": json.dumps(list(task.tools)), "expected_output": task.expected_output,
        "diff_lines": task.diff_lines, "repo_files": task.repo.files,
        "modules_touched": task.repo.modules_touched, "languages": json.dumps(list(task.repo.languages)),
        "features": json.dumps(s.features), "profile": d.profile,
        "profile_scores": json.dumps(s.profile_scores), "complexity": s.complexity,
        "tier_scores": json.dumps(d.tier_scores), "eligible": json.dumps(list(d.eligible)),
        "tier": d.tier, "tier_rank": rank, "ladder_size": ladder_size, "greedy_tier": d.greedy_tier,
        "model": d.plan.model, "temperature": d.plan.temperature, "explored": int(d.explored),
        "propensity": d.propensity, "escalation_chain": json.dumps(list(d.escalation_chain)),
        "reasons": json.dumps(list(d.reasons)), "latency_ms": r.latency_ms,
        "shadow_version": shadow_version, "shadow_tier": r.shadow_tier,
        # Which scorer decided; the journal stores the keys its schema has (a ``stage`` column
        # is for the telemetry package to add), so this is harmless until then.
        "stage": s.stage,
    }


def scores_from_row(row: dict[str, Any]) -> Scores:
    """Rebuild the classifier's output from a logged decision, for exact replay."""
    return Scores(
        profile_scores=json.loads(row["profile_scores"]), complexity=float(row["complexity"]),
        features=json.loads(row["features"]), prototype_similarity={}, keywords={},
        prompt_tokens=int(row["prompt_tokens"]),
    )
