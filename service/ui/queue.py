"""The human queue as an operator sees it: open items with their cost so far, filtered, and
grouped by failure signature, so one failure across many tasks is one row with a count.

The signature is the one ``outcomes.py`` logs when it queues a task: profile, tiers tried,
failure kinds and policy version. Previews are redacted again on the way out, as ``/v1/queue``
does, for rows stored before redaction existed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tierwise.service.classify import FAILURE_KINDS, HARNESSES, PROFILES, FailureKind, Harness, Profile
from tierwise.service.errors import InvalidInput
from tierwise.service.outcomes import resolve_queue_item
from tierwise.service.redact import redact
from tierwise.service.telemetry.port import JournalPort

# Human items only: a task a deterministic script took over needs no person.
_OPEN = """
SELECT q.item_id, q.decision_id, q.ts, q.profile, q.tiers_tried, q.failure_kinds, q.policy_version,
       q.task_id, q.prompt_preview, d.harness,
       coalesce((SELECT sum(a.cost_usd) FROM attempts a WHERE a.decision_id = q.decision_id), 0.0) AS cost_usd
FROM queue q
LEFT JOIN decisions d USING (decision_id)
LEFT JOIN queue_resolutions r USING (item_id)
WHERE r.item_id IS NULL AND q.kind = 'human'
ORDER BY q.ts, q.item_id
"""

V = TypeVar("V", bound=str)


def _choice(query: Mapping[str, str], name: str, allowed: tuple[V, ...]) -> V | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    for option in allowed:
        if option == value:
            return option
    raise InvalidInput(f"{name} {value!r} is not one of: {', '.join(allowed)}", field=name)


@dataclass(frozen=True)
class QueueFilter:
    profile: Profile | None = None
    harness: Harness | None = None
    failure: FailureKind | None = None
    group: bool = False

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> QueueFilter:
        """From the page's query string; an unknown value is refused with its field named."""
        group = _choice(query, "group", ("signature",))
        return cls(profile=_choice(query, "profile", PROFILES), harness=_choice(query, "harness", HARNESSES),
                   failure=_choice(query, "failure", FAILURE_KINDS), group=group is not None)

    def admits(self, item: QueueItem) -> bool:
        return ((self.profile is None or item.profile == self.profile)
                and (self.harness is None or item.harness == self.harness)
                and (self.failure is None or self.failure in item.failure_kinds))


@dataclass(frozen=True)
class QueueItem:
    item_id: int
    decision_id: str
    ts: float
    profile: str
    harness: str | None
    tiers_tried: tuple[str, ...]
    failure_kinds: tuple[str, ...]
    policy_version: str
    task_id: str | None
    preview: str
    cost_usd: float

    @property
    def signature(self) -> tuple[str, tuple[str, ...], tuple[str, ...], str]:
        return (self.profile, self.tiers_tried, self.failure_kinds, self.policy_version)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueueItem:
        return cls(item_id=int(row["item_id"]), decision_id=row["decision_id"], ts=float(row["ts"]),
                   profile=row["profile"], harness=row["harness"],
                   tiers_tried=tuple(json.loads(row["tiers_tried"])),
                   failure_kinds=tuple(json.loads(row["failure_kinds"])), policy_version=row["policy_version"],
                   task_id=row["task_id"], preview=redact(row["prompt_preview"] or ""),
                   cost_usd=float(row["cost_usd"]))


@dataclass
class SignatureGroup:
    signature: tuple[str, tuple[str, ...], tuple[str, ...], str]
    items: list[QueueItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def oldest_ts(self) -> float:
        return min(i.ts for i in self.items)

    @property
    def cost_usd(self) -> float:
        return sum(i.cost_usd for i in self.items)


def open_items(journal: JournalPort, flt: QueueFilter) -> list[QueueItem]:
    """Open human-queue items that pass ``flt``, oldest first."""
    return [item for item in map(QueueItem.from_row, journal.fetch_all(_OPEN)) if flt.admits(item)]


def group_by_signature(items: list[QueueItem]) -> list[SignatureGroup]:
    """Largest group first; ties by the oldest item, so a long-waiting failure is not buried."""
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], SignatureGroup] = {}
    for item in items:
        groups.setdefault(item.signature, SignatureGroup(item.signature)).items.append(item)
    return sorted(groups.values(), key=lambda g: (-g.count, g.oldest_ts))


def resolve(journal: JournalPort, item_id: int, resolved_by: str, note: str | None) -> dict[str, Any]:
    if not resolved_by.strip():
        raise InvalidInput("resolved_by is blank: say who resolved the item", field="resolved_by")
    return resolve_queue_item(journal, item_id, resolved_by.strip(), note or None)


def hand_to_script(journal: JournalPort, item_id: int, script: str, by: str, note: str | None,
                   allowed: Collection[str]) -> dict[str, Any]:
    """Close the item as handed over to a deterministic script from the allow-list
    (``TIERWISE_SCRIPTS``). tierwise records the hand-over; the harness runs the script."""
    if script not in allowed:
        raise InvalidInput(f"script {script!r} is not one of: {', '.join(allowed) or '(none configured)'}",
                           field="script")
    text = f"handed to script {script}" + (f": {note}" if note else "")
    return resolve(journal, item_id, by, text)
