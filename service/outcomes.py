"""Record an attempt's outcome and say what the agent does next: done, escalate, human or script.

Rules (ARCHITECTURE.md): a failed attempt moves up the decision's chain and never retries a
tier; at most ``escalation.max_steps`` escalations; then the task goes to the human queue (or the
profile's deterministic script) with its failure signature. An override is a failure of the
routed tier, and the next step follows the override.

Concurrency: the reads and the rules (jsonschema, the policy) run on a WAL snapshot without the
write lock. The IMMEDIATE transaction that writes first checks that no attempt of the decision
landed since that read (else it reads again), so two processes racing on the same report still
cannot both record it, while the lock is held for a few inserts only. A route's decision write
waits behind that lock, so the shorter it is held, the less ingest shows in route latency.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from tierwise.service.errors import DecisionNotFound, InvalidInput, OutcomeConflict, QueueItemNotFound
from tierwise.service.policy.decide import plan_for
from tierwise.service.policy.escalation import above, next_step
from tierwise.service.policy.holder import PolicyHolder
from tierwise.service.policy.model import RoutingPolicy
from tierwise.service.telemetry.port import JournalConflict, JournalPort


@dataclass(frozen=True)
class AttemptFacts:
    """What one attempt did and cost: the fields an outcome report carries and the bench's
    oracles answer with (``bench/loop.AttemptResult``, which adds what the harness claimed),
    written once."""

    resolved: bool
    cost_usd: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    failure: str | None = None
    overridden_to: str | None = None
    output: Any = None


@dataclass(frozen=True, kw_only=True)
class Report(AttemptFacts):
    decision_id: str
    attempt: int
    tier: str
    has_output: bool = False

    def fingerprint(self) -> str:
        body = {k: v for k, v in self.__dict__.items() if k != "has_output"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def check_output(policy: RoutingPolicy, profile: str, output: Any) -> list[str]:
    schema = policy.output_schemas[profile].json_schema  # type: ignore[index]
    errors = sorted(Draft202012Validator(schema).iter_errors(output), key=lambda e: list(e.path))
    return [f"{'/'.join(str(p) for p in e.path) or '$'}: {e.message}" for e in errors[:5]]


@dataclass
class _Plan:
    """What one report will write, worked out before the write lock is taken."""

    response: dict[str, Any]
    attempt_row: dict[str, Any]
    escalation_row: dict[str, Any] | None = None
    queue_row: dict[str, Any] | None = None


# Another worker recording an attempt of the same decision between our read and our write makes
# us read again; more than this many times in a row is not a race but a client loop.
MAX_REREADS = 5


class OutcomeRecorder:
    def __init__(self, journal: JournalPort, holder: PolicyHolder) -> None:
        self.journal = journal
        self.holder = holder

    def record(self, report: Report) -> dict[str, Any]:
        for _ in range(MAX_REREADS):
            decision = self.journal.decision(report.decision_id)
            if decision is None:
                raise DecisionNotFound(f"unknown decision {report.decision_id!r}", field="decision_id")
            prior = self.journal.attempts(report.decision_id)
            same = next((a for a in prior if a["attempt"] == report.attempt), None)
            if same is not None:
                if same["request_hash"] == report.fingerprint():
                    return dict(json.loads(same["response"]), duplicate=True)
                raise OutcomeConflict(f"attempt {report.attempt} of {report.decision_id} was already "
                                      "reported with different values", field="attempt")
            policy = self.holder.version(decision["policy_version"])
            self._check_sequence(decision, prior, report, policy)
            plan = self._plan(decision, prior, report, policy)
            try:
                with self.journal.transaction() as tx:
                    self.journal.lock_decision(tx, report.decision_id)
                    seen = tx.execute("SELECT count(*) AS n FROM attempts WHERE decision_id = ?",
                                      (report.decision_id,)).fetchone()["n"]
                    if seen == len(prior):  # nothing landed since the read: the plan still holds
                        return self._apply(tx, plan)
            except JournalConflict:  # another host stored this attempt first: read it, then answer
                continue
        raise OutcomeConflict(f"attempts of {report.decision_id} kept changing while this report was "
                              f"recorded ({MAX_REREADS} re-reads); send it again", field="attempt")

    def _check_sequence(self, decision: dict[str, Any], prior: list[dict[str, Any]], report: Report,
                        policy: RoutingPolicy) -> None:
        if report.attempt != len(prior):
            raise OutcomeConflict(f"attempt {report.attempt} is out of sequence: expected attempt "
                                  f"{len(prior)} for this decision", field="attempt")
        if prior and prior[-1]["next_action"] != "escalate":
            raise OutcomeConflict(f"the decision is closed (last next step: {prior[-1]['next_action']})",
                                  field="attempt")
        expected = prior[-1]["next_tier"] if prior else decision["tier"]
        if report.tier != expected:
            raise OutcomeConflict(f"attempt {report.attempt} was routed to tier {expected!r}, "
                                  f"not {report.tier!r}", field="tier")
        if report.overridden_to is not None and report.overridden_to not in policy.tiers:
            raise InvalidInput(f"overridden_to {report.overridden_to!r} is not a tier of policy "
                               f"{policy.version} ({', '.join(policy.ladder)})", field="overridden_to")
        if report.overridden_to is not None and report.overridden_to == report.tier:
            raise InvalidInput(f"overridden_to {report.overridden_to!r} is the tier of this attempt; an "
                               "override names the tier the developer forced instead", field="overridden_to")
        if report.resolved and report.failure is not None:
            raise InvalidInput(f"a resolved attempt cannot have failure {report.failure!r}; send "
                               "resolved=false with the failure kind", field="failure")

    def _plan(self, decision: dict[str, Any], prior: list[dict[str, Any]], report: Report,
              policy: RoutingPolicy) -> _Plan:
        profile = decision["profile"]
        resolved, failure, schema_valid, schema_errors = report.resolved, report.failure, None, []
        if report.has_output:
            schema_errors = check_output(policy, profile, report.output)
            schema_valid = not schema_errors
            if schema_errors:
                resolved, failure = False, "schema_invalid"
        if report.overridden_to is not None:
            resolved = False
        if not resolved and failure is None and report.overridden_to is None:
            failure = "error"
        tried = [a["tier"] for a in prior] + [report.tier]
        failures = [a["failure"] for a in prior if a["failure"]] + ([failure] if failure else [])
        now = time.time()
        plan = _Plan(response={}, attempt_row={})
        nxt = {"action": "done"} if resolved else self._after_failure(plan, decision, report, policy, tried,
                                                                        failures, now)
        plan.response = {
            "decision_id": report.decision_id, "attempt": report.attempt, "tier": report.tier,
            "resolved": resolved, "failure": failure, "schema_valid": schema_valid,
            "schema_errors": schema_errors, "overridden_to": report.overridden_to, "next": nxt,
        }
        plan.attempt_row = {
            "decision_id": report.decision_id, "attempt": report.attempt, "ts": now, "tier": report.tier,
            "model": policy.tiers[report.tier].model if report.tier in policy.tiers else None,
            "resolved": int(resolved), "claimed_resolved": int(report.resolved), "cost_usd": report.cost_usd,
            "input_tokens": report.input_tokens, "output_tokens": report.output_tokens,
            "latency_ms": report.latency_ms, "failure": failure, "overridden_to": report.overridden_to,
            "schema_valid": None if schema_valid is None else int(schema_valid),
            "next_action": nxt["action"], "next_tier": nxt.get("tier"),
            "request_hash": report.fingerprint(),
        }
        return plan

    def _apply(self, tx: Any, plan: _Plan) -> dict[str, Any]:
        """The only part that holds the write lock: a few inserts."""
        if plan.escalation_row is not None:
            self.journal.insert("escalations", plan.escalation_row, conn=tx)
        if plan.queue_row is not None:
            self.journal.insert("queue", plan.queue_row, conn=tx)
            plan.response["next"]["queue_item_id"] = self.journal.last_id(tx, "queue", "item_id")
        self.journal.insert("attempts", dict(plan.attempt_row, response=json.dumps(plan.response)), conn=tx)
        return plan.response

    def _after_failure(self, plan: _Plan, decision: dict[str, Any], report: Report,
                       policy: RoutingPolicy, tried: list[str], failures: list[str],
                       now: float) -> dict[str, Any]:
        chain = json.loads(decision["escalation_chain"] or "[]")
        action, nxt_tier = next_step(policy, chain=chain, tier=report.tier, attempt=report.attempt, tried=tried,
                                     overridden_to=report.overridden_to, profile=decision["profile"])
        if action == "escalate" and nxt_tier is not None:
            cause = f"override to {report.overridden_to}" if report.overridden_to else (failures[-1] or "error")
            plan.escalation_row = {
                "decision_id": report.decision_id, "from_attempt": report.attempt, "from_tier": report.tier,
                "to_tier": nxt_tier, "cause": cause, "ts": now}
            step = plan_for(policy, nxt_tier, decision["profile"])
            rest = [t for t in above(policy, chain, nxt_tier) if t not in tried]
            return {"action": "escalate", "attempt": report.attempt + 1, "tier": nxt_tier,
                    "model": step.model, "temperature": step.temperature,
                    "max_input_tokens": step.max_input_tokens, "max_output_tokens": step.max_output_tokens,
                    "output_schema": step.output_schema,
                    "escalation_chain": rest[: max(0, policy.escalation.max_steps - report.attempt - 1)]}
        kind = action
        script = policy.escalation.scripts.get(decision["profile"]) if kind == "script" else None
        plan.queue_row = {
            "decision_id": report.decision_id, "ts": now, "kind": kind, "script": script,
            "profile": decision["profile"], "tiers_tried": json.dumps(tried), "failure_kinds": json.dumps(failures),
            "policy_version": decision["policy_version"], "task_id": decision["task_id"],
            "prompt_preview": decision["prompt_preview"]}
        signature = {"profile": decision["profile"], "tiers_tried": tried, "failure_kinds": failures,
                     "policy_version": decision["policy_version"]}
        out: dict[str, Any] = {"action": kind, "queue_item_id": None, "signature": signature}
        if script:
            out["script"] = script
        return out


def resolve_queue_item(journal: JournalPort, item_id: int, resolved_by: str, note: str | None) -> dict[str, Any]:
    try:
        with journal.transaction() as tx:
            item = tx.execute("SELECT * FROM queue WHERE item_id = ?", (item_id,)).fetchone()
            if item is None:
                raise QueueItemNotFound(f"no queue item {item_id}", field="item_id")
            done = tx.execute("SELECT * FROM queue_resolutions WHERE item_id = ?", (item_id,)).fetchone()
            if done is not None:
                raise OutcomeConflict(f"queue item {item_id} was already resolved by {done['resolved_by']}",
                                      field="item_id")
            tx.execute("INSERT INTO queue_resolutions (item_id, ts, resolved_by, note) VALUES (?, ?, ?, ?)",
                       (item_id, time.time(), resolved_by, note))
    except JournalConflict as exc:  # another host resolved it between our read and our insert
        raise OutcomeConflict(f"queue item {item_id} was already resolved", field="item_id") from exc
    return {"item_id": item_id, "resolved_by": resolved_by, "note": note, "status": "resolved"}
