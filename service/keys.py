"""The API key store: ``<home>/keys.json``, written by ``tierwise keys`` and read by the service.

A key is shown once, when it is created; the file keeps only its SHA-256. Keys are 256 random
bits, so a plain hash is as good as a slow one here: there is nothing to brute-force. The file is
replaced atomically (temp file + ``os.replace``, mode 0600) under a file lock, so a running
service never reads half a file and two ``keys`` commands never lose each other's writes.

The service checks the file's identity (inode, size, mtime) with one ``stat`` per request and
re-reads it only when that changes, so ``tierwise keys revoke`` takes effect on the next request.

Pure stdlib: ``tierwise serve`` calls ``check_exposure`` before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import tempfile
import threading
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from tierwise.service.errors import ConfigError, InvalidInput, KeyNotFound
from tierwise.service.locks import file_lock

Scope = Literal["route", "report", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
AuthMode = Literal["auto", "required"]
KEY_PREFIX = "tw_"
CREATE_HINT = "tierwise keys create --scopes admin"
_FORMAT = 1


@dataclass(frozen=True)
class KeyRecord:
    """What the store keeps of a key: never the key itself."""

    id: str  # the first 12 hex digits of the hash: names a key in `keys list` and `keys revoke`
    name: str
    prefix: str  # the key's first characters, so its holder can tell which one it is
    scopes: tuple[Scope, ...]
    created_at: str
    revoked: bool
    sha256: str

    def public(self) -> dict[str, Any]:
        """The fields that may be shown: no key, no full hash."""
        return {"id": self.id, "name": self.name, "prefix": self.prefix, "scopes": list(self.scopes),
                "created_at": self.created_at, "revoked": self.revoked}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """``"route,report"`` → ``("route", "report")``; an unknown scope is named in the error."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise InvalidInput(f"--scopes is empty; choose from {', '.join(SCOPES)}", field="scopes")
    for name in names:
        if name not in SCOPES:
            raise InvalidInput(f"unknown scope {name!r}; choose from {', '.join(SCOPES)}", field="scopes")
    return tuple(s for s in SCOPES if s in names)


def grants(scopes: tuple[Scope, ...], needed: Scope) -> bool:
    """``admin`` implies every other scope."""
    return needed in scopes or "admin" in scopes


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, keys_exist: bool, mode: AuthMode) -> str | None:
    """May ``serve`` bind ``host``? None: keys protect it. A message: it may, unauthenticated, and
    the caller must log it loudly. Raises ConfigError when the API would be open beyond this machine
    (or ``TIERWISE_AUTH=required`` and there is no key)."""
    if keys_exist:
        return None
    if mode == "required":
        raise ConfigError(f"TIERWISE_AUTH=required but no API key exists; create one: {CREATE_HINT}",
                          field="TIERWISE_AUTH")
    if not is_loopback(host):
        raise ConfigError(f"refusing to serve on {host!r} without an API key: anyone who can reach it could "
                          f"route, report and read the human queue. Create a key first ({CREATE_HINT}) "
                          "or bind 127.0.0.1", field="host")
    return (f"no API key exists: the API on {host} is UNAUTHENTICATED (any local process may call it); "
            f"create a key to require one: {CREATE_HINT}")


class KeyStore:
    """The key file, cached in memory and re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: tuple[KeyRecord, ...] = ()
        self._loaded = False

    # -- reading ---------------------------------------------------------------------------------

    def records(self) -> tuple[KeyRecord, ...]:
        """Every key, revoked ones included; re-read only if the file changed since last time."""
        stamp = self._stat()
        if self._loaded and stamp == self._stamp:
            return self._records
        with self._lock:
            stamp = self._stat()
            if not self._loaded or stamp != self._stamp:
                self._records = self._read() if stamp is not None else ()
                self._stamp, self._loaded = stamp, True
            return self._records

    def lookup(self, key: str) -> KeyRecord | None:
        """The live (not revoked) record of ``key``, or None. Constant-time in the hash compare."""
        want = digest(key)
        found = None
        for rec in self.records():
            if hmac.compare_digest(rec.sha256, want):
                found = rec
        return found if found is not None and not found.revoked else None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self) -> tuple[KeyRecord, ...]:
        try:
            data = json.loads(self.path.read_text())
            return tuple(KeyRecord(**dict(k, scopes=tuple(k["scopes"]))) for k in data["keys"])
        except FileNotFoundError:
            return ()
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path} is not a valid key file: {exc}", field="keys") from exc

    # -- writing (the CLI) -----------------------------------------------------------------------

    def create(self, scopes: tuple[Scope, ...], name: str | None = None) -> tuple[KeyRecord, str]:
        """A new key: returns its record and the key itself, which is never stored."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        h = digest(key)
        with self._locked():
            records = list(self._read())
            name = name or f"key-{h[:6]}"
            if any(r.name == name and not r.revoked for r in records):
                raise InvalidInput(f"a live key is already named {name!r}; pick another --name", field="name")
            rec = KeyRecord(id=h[:12], name=name, prefix=key[:7], scopes=scopes,
                            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), revoked=False, sha256=h)
            self._write([*records, rec])
        return rec, key

    def revoke(self, name_or_id: str) -> KeyRecord:
        """Revoke the live key with this name or id (revoked keys stay listed, as an audit trail)."""
        with self._locked():
            records = list(self._read())
            hits = [i for i, r in enumerate(records) if not r.revoked and name_or_id in (r.name, r.id)]
            if not hits:
                raise KeyNotFound(f"no live key named or with id {name_or_id!r}; see `tierwise keys list`",
                                  field="key")
            for i in hits:
                records[i] = KeyRecord(**{**asdict(records[i]), "revoked": True})
            self._write(records)
        return records[hits[0]]

    def _locked(self) -> AbstractContextManager[None]:
        return file_lock(self.path.with_name(self.path.name + ".lock"))

    def _write(self, records: list[KeyRecord]) -> None:
        body = {"format": _FORMAT, "keys": [dict(asdict(r), scopes=list(r.scopes)) for r in records]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(body, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
