"""Browser sessions for the console: a signed cookie that names the API key, never holds it.

The cookie is ``<key id>.<expiry>.<nonce>.<signature>``; the signature is an HMAC under a secret
kept in the home (``ui_session.key``, mode 0600, made on first use), so every worker of
``tierwise serve --workers N`` accepts every other worker's sessions without shared memory. The
key is looked up again on every request, so revoking it (``tierwise keys revoke``) ends its
sessions at once. The CSRF token of a session is derived from its nonce under the same secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "tierwise_session"
LOGIN_COOKIE = "tierwise_login"  # the login form's double-submit CSRF nonce
LIFETIME_S = 12 * 3600
# The CSRF "session" of a console that runs without keys (loopback only, see keys.check_exposure).
OPEN = "-"


def load_secret(path: Path) -> bytes:
    """The home's signing secret, created once: written whole to a temp file, then linked into
    place, so two workers racing on a new home agree on one secret and never read half of it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ui-secret-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another worker won: use its secret
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path.read_bytes()


@dataclass(frozen=True)
class Session:
    key_id: str
    expires: int
    nonce: str


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def issue(self, key_id: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + LIFETIME_S)
        payload = f"{key_id}.{expires}.{secrets.token_hex(16)}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None if it is missing, forged, malformed or expired."""
        if not cookie:
            return None
        payload, _dot, mac = cookie.rpartition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        key_id, _, rest = payload.partition(".")
        expires, _, nonce = rest.partition(".")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return None
        return Session(key_id, int(expires), nonce)

    def csrf(self, nonce: str) -> str:
        return self._mac(f"csrf|{nonce}")[:40]

    def check_csrf(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(nonce), token or "")
