"""``POST /v1/context``: pack the client's candidate files into a tier's budget.

The service never reads a path from disk here: it packs what the request carries. The packer
(and its caches of indexes, tags and token counts) is built on the first request, once per
process, so an app that never packs never loads a tokenizer.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from tierwise.service.api.auth import require
from tierwise.service.api.context_schemas import ContextIn, ContextOut
from tierwise.service.api.responses import errors
from tierwise.service.api.routes import Parts
from tierwise.service.context.model import Commit, SourceFile
from tierwise.service.context.pack import Packer
from tierwise.service.context.service import make_packer
from tierwise.service.errors import DecisionNotFound, InvalidInput, TelemetryUnavailable
from tierwise.service.textnorm import is_blank

router = APIRouter()
# What was packed for which decision: paths, modes and tokens, never the content.
telemetry = logging.getLogger("tierwise.context")
_lock = threading.Lock()


def _packer(request: Request) -> Packer:
    with _lock:
        packer: Packer | None = getattr(request.app.state, "packer", None)
        if packer is None:
            packer = make_packer(request.app.state.settings)
            request.app.state.packer = packer
    return packer


PackerDep = Annotated[Packer, Depends(_packer)]


def _check_bounds(body: ContextIn, parts: Parts) -> None:
    s = parts.settings
    if is_blank(body.task):
        raise InvalidInput("task is blank", field="task")
    if len(body.files) > s.context_max_files:
        raise InvalidInput(f"files lists {len(body.files)} files; the limit is {s.context_max_files}",
                           field="files")
    total, seen = 0, set()
    for i, f in enumerate(body.files):
        size = len(f.content.encode("utf-8", "surrogatepass"))
        if size > s.context_max_file_bytes:
            raise InvalidInput(f"{f.path} has {size} bytes; the limit is {s.context_max_file_bytes}",
                               field=f"files.{i}.content")
        if f.path in seen:
            raise InvalidInput(f"{f.path} is listed twice", field=f"files.{i}.path")
        seen.add(f.path)
        total += size
    if total > s.context_max_bytes:
        raise InvalidInput(f"files carry {total} bytes; the limit is {s.context_max_bytes}", field="files")


def _tier(body: ContextIn, parts: Parts) -> str:
    if (body.decision_id is None) == (body.tier is None):
        raise InvalidInput("send exactly one of decision_id and tier", field="tier")
    if body.tier is not None:
        if body.tier not in parts.holder.policy.tiers:
            raise InvalidInput(f"unknown tier {body.tier!r}; tiers: {parts.holder.policy.ladder}", field="tier")
        return body.tier
    if parts.store is None:
        raise TelemetryUnavailable("this server runs without telemetry, so it cannot look up decisions; send tier")
    row = parts.store.journal.decision(body.decision_id or "")
    if row is None:
        raise DecisionNotFound(f"no decision {body.decision_id!r}", field="decision_id")
    tier = str(row["tier"])
    if tier not in parts.holder.policy.tiers:
        raise InvalidInput(f"decision's tier {tier!r} is not in the active policy", field="decision_id")
    return tier


@router.post("/v1/context", response_model=ContextOut, responses=errors(400, 401, 403, 404, 413, 422, 503),
             dependencies=[Depends(require("route"))])
def context(body: ContextIn, parts: Parts, packer: PackerDep) -> dict[str, Any]:
    _check_bounds(body, parts)
    tier = _tier(body, parts)
    budget, strategy = parts.holder.policy.context_budget(tier)
    if body.max_tokens is not None:
        budget = min(budget, body.max_tokens)
    files = [SourceFile(f.path, f.content) for f in body.files]
    commits = [Commit(c.sha, c.message, tuple(c.files)) for c in body.commits]
    packed = packer.pack(body.task, files, budget, strategy, commits)
    included = [{"path": i.path, "mode": i.mode, "tokens": i.tokens} for i in packed.included]
    telemetry.info("context %s", json.dumps({
        "decision_id": body.decision_id, "tier": tier, "strategy": strategy, "budget": budget,
        "tokens": packed.tokens, "files": len(files), "included": included}))
    return {"context": packed.context, "tokens": packed.tokens, "budget": packed.budget, "tier": tier,
            "strategy": strategy, "counter": packer.counter.name, "margin": packer.options.margin,
            "included": included,
            "dropped": [{"path": d.path, "reason": d.reason} for d in packed.dropped]}
