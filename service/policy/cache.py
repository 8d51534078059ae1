"""The last good policy on disk, with where it came from, so a lost registry cannot replace it.

The service serves the registry's champion and keeps a copy (``settings.policy_cache``) for
restarts while MLflow is unreachable. Beside the copy, a small record says which version it is,
a digest of its content and the identity of the registry it came from. A registry that was
truncated, deleted or re-created starts again at version 1 with the bootstrap policy; comparing
that record with the registry (``registry.lineage_problem``) is what tells "the champion moved"
from "the registry lost its history", so the second never overwrites the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.errors import PolicyInvalid
from tierwise.service.policy.model import RoutingPolicy, parse_policy
from tierwise.service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedPolicy:
    policy: RoutingPolicy
    digest: str
    # None: a cache written before identities were recorded; only the digest is compared then.
    registry_id: str | None


def policy_digest(policy: RoutingPolicy) -> str:
    """The content of a policy, without its version label (set on load, not stored)."""
    body = policy.model_dump(mode="json", by_alias=True, exclude={"version"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def meta_path(settings: Settings) -> Path:
    return settings.policy_cache.with_name(settings.policy_cache.stem + ".meta.json")


def read_cache(settings: Settings) -> CachedPolicy | None:
    """The cached policy, or None if there is none or it cannot be read (which is logged)."""
    path = settings.policy_cache
    if not path.exists():
        return None
    try:
        policy = parse_policy(path.read_text(), scripts=settings.scripts)
    except (OSError, PolicyInvalid) as exc:
        log.error("the policy cache %s is unreadable (%s); ignoring it", path, exc)
        return None
    digest = policy_digest(policy)
    registry_id = None
    try:
        meta = json.loads(meta_path(settings).read_text())
        if meta.get("content_sha256") == digest and meta.get("version") == policy.version:
            registry_id = meta.get("registry_id")
    except (OSError, ValueError):
        pass  # no record (an older cache): the digest alone is compared
    return CachedPolicy(policy, digest, registry_id)


def write_cache(settings: Settings, policy: RoutingPolicy, registry_id: str | None) -> None:
    """Write the policy, then its record; a crash between the two leaves a record whose digest
    does not match, which reads as "no record", never as a wrong one."""
    path = settings.policy_cache
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, policy.canonical_json())
    meta = {"version": policy.version, "content_sha256": policy_digest(policy), "registry_id": registry_id,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _atomic_write(meta_path(settings), json.dumps(meta, indent=2))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
