"""Who is at the console: a browser with a session cookie, or a script with ``Bearer``.

Both need the ``admin`` scope. A browser signs in once with a key (``/ui/login``) and then holds
only a signed, HttpOnly, SameSite=Strict cookie that names the key (``session.py``); the key is
never put in a URL. Every state-changing form carries a CSRF token derived from the session; a
``Bearer`` request needs none, since no browser sends that header on its own. A console without
keys (auth off, loopback only) is open, as the API is, but its forms still need the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from tierwise.service.api.auth import HEADER, Gate, require
from tierwise.service.errors import Forbidden, Unauthorized
from tierwise.service.keys import grants
from tierwise.service.ui.session import COOKIE, OPEN, Signer


@dataclass(frozen=True)
class Operator:
    name: str
    via: Literal["cookie", "bearer", "open"]
    csrf: str | None  # None for Bearer: nothing for another site to forge

    def check_csrf(self, signer: Signer, nonce: str, token: str | None) -> None:
        if self.via != "bearer" and not signer.check_csrf(nonce, token):
            raise Forbidden("missing or stale CSRF token: reload the page and submit the form again", field="csrf")


@dataclass(frozen=True)
class Seat:
    """The operator plus the nonce their CSRF token is bound to."""

    operator: Operator
    nonce: str


async def seat(request: Request, signer: Signer) -> Seat:
    """The admin at the console, or Unauthorized/Forbidden (the console's error handler turns a
    browser's Unauthorized into a redirect to the login page)."""
    gate: Gate = request.app.state.auth
    if not gate.enforced():  # a header sent anyway changes nothing, as on the API
        return Seat(Operator("operator", "open", signer.csrf(OPEN)), OPEN)
    if request.headers.get(HEADER):
        await require("admin")(request, None)
        key_id = str(request.state.key_id)
        name = next((r.name for r in gate.store.records() if r.id == key_id), key_id)
        return Seat(Operator(name, "bearer", None), "")
    session = signer.read(request.cookies.get(COOKIE))
    if session is None:
        raise Unauthorized("sign in with an API key that has the admin scope", field="key")
    record = next((r for r in gate.store.records() if r.id == session.key_id and not r.revoked), None)
    if record is None:
        raise Unauthorized("the key of this session is revoked or gone; sign in again", field="key")
    if not grants(record.scopes, "admin"):
        raise Forbidden(f"key {record.name!r} lacks the admin scope (it has: {', '.join(record.scopes)})",
                        field="key")
    return Seat(Operator(record.name, "cookie", signer.csrf(session.nonce)), session.nonce)
