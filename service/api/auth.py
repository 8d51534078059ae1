"""Bearer API keys at the HTTP edge: ``dependencies=[Depends(require("route"))]`` on a route.

Auth is on as soon as the key store holds any key (revoked ones count: revoking every key must
not open the API), or always under ``TIERWISE_AUTH=required``. Once on in a process it stays on,
so deleting ``keys.json`` under a running server locks it rather than opening it. With no key at
all it is off, which ``tierwise serve`` allows on a loopback address only (``keys.check_exposure``).

Errors name the header, never the key: nothing here logs or echoes the credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tierwise.service.errors import Forbidden, Unauthorized
from tierwise.service.keys import AuthMode, KeyStore, Scope, grants

HEADER = "Authorization"
# Declares the scheme in /openapi.json; the header is parsed below, for precise error messages.
_bearer = HTTPBearer(auto_error=False, description="an API key from `tierwise keys create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


class Gate:
    """The key store plus the sticky "auth is on" switch, one per app."""

    def __init__(self, store: KeyStore, mode: AuthMode) -> None:
        self.store = store
        self._on = mode == "required"

    def enforced(self) -> bool:
        if not self._on and self.store.records():
            self._on = True
        return self._on


def require(scope: Scope) -> Callable[..., Awaitable[None]]:
    """A dependency that admits a request whose key holds ``scope`` (or ``admin``)."""

    async def check(request: Request, _: Credentials) -> None:
        gate: Gate = request.app.state.auth
        if not gate.enforced():
            return
        header = request.headers.get(HEADER)
        if not header:
            raise Unauthorized(f"an API key is required: send '{HEADER}: Bearer <key>'", field=HEADER)
        scheme, _sep, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthorized(f"malformed {HEADER} header: expected 'Bearer <key>'", field=HEADER)
        record = gate.store.lookup(token)
        if record is None:
            raise Unauthorized("unknown or revoked API key", field=HEADER)
        if not grants(record.scopes, scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope (it has: {', '.join(record.scopes)})",
                            field=HEADER)
        request.state.key_id = record.id

    return check
