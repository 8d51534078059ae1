"""The console's pages and forms, under ``/ui`` and out of the OpenAPI document (it describes the
JSON API; these are HTML). Reads run in the thread pool (journal, DuckDB, MLflow are blocking);
a form handler reads its body on the loop, then does the work in the pool."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from tierwise.service.api.auth import Gate
from tierwise.service.api.routes import NO_TELEMETRY
from tierwise.service.components import Components
from tierwise.service.errors import InvalidInput, RegistryUnavailable, TelemetryUnavailable
from tierwise.service.keys import grants
from tierwise.service.telemetry.port import JournalPort
from tierwise.service.ui import overview, queue
from tierwise.service.ui.auth import Seat, seat
from tierwise.service.ui.console import Console, console_of
from tierwise.service.ui.forms import read_form, required
from tierwise.service.ui.policy_view import diff, readable
from tierwise.service.ui.session import COOKIE, LIFETIME_S, LOGIN_COOKIE
from tierwise.service.ui.svg import line_chart

log = logging.getLogger(__name__)

router = APIRouter(prefix="/ui", include_in_schema=False)
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# A registry version is a number; a policy file's is a name such as ``bootstrap``.
Version = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


async def _seat(request: Request) -> Seat:
    return await seat(request, console_of(request).signer)


SeatDep = Annotated[Seat, Depends(_seat)]
ConsoleDep = Annotated[Console, Depends(console_of)]


def _parts(request: Request) -> Components:
    parts: Components = request.app.state.parts
    return parts


def _journal(request: Request) -> JournalPort:
    store = _parts(request).store
    if store is None:
        raise TelemetryUnavailable(NO_TELEMETRY)
    return store.journal


def _context(s: Seat, **extra: Any) -> dict[str, Any]:
    return {"operator": s.operator, "csrf": s.operator.csrf, **extra}


def _back(path: str, **params: str | int) -> RedirectResponse:
    return RedirectResponse(path + ("?" + urlencode(params) if params else ""), status_code=303)


async def _form(request: Request, s: Seat, console: Console) -> dict[str, str]:
    form = await read_form(request)
    s.operator.check_csrf(console.signer, s.nonce, form.get("csrf"))
    return form


def _confirmed(form: dict[str, str]) -> None:
    if form.get("confirm") != "yes":
        raise InvalidInput("tick the confirmation box: this changes what every agent is routed by", field="confirm")


# -- sign in / out ---------------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a console path: never another site (``//evil``) or a scheme."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def _login_page(request: Request, console: Console, target: str, error: str | None, status: int) -> Response:
    nonce = secrets.token_hex(16)
    response = console.page(request, "login.html", {"operator": None, "csrf": console.signer.csrf(f"login|{nonce}"),
                                                    "next": target, "error": error}, status_code=status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/ui", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/login")
def login_form(request: Request, console: ConsoleDep, next: str | None = None) -> Response:
    gate: Gate = request.app.state.auth
    if not gate.enforced():
        return _back(_safe_next(next))
    return _login_page(request, console, _safe_next(next), None, 200)


@router.post("/login")
async def login(request: Request, console: ConsoleDep) -> Response:
    form = await read_form(request)
    target = _safe_next(form.get("next"))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not console.signer.check_csrf(f"login|{nonce}", form.get("csrf")):
        return _login_page(request, console, target, "The sign-in form expired: please try again.", 403)
    gate: Gate = request.app.state.auth
    record = gate.store.lookup(form.get("key", "").strip()) if form.get("key", "").strip() else None
    if record is None:
        return _login_page(request, console, target, "Unknown or revoked API key.", 401)
    if not grants(record.scopes, "admin"):
        return _login_page(request, console, target, f"Key {record.name!r} lacks the admin scope "
                           f"(it has: {', '.join(record.scopes)}).", 403)
    log.info("console: key %s (%s) signed in", record.name, record.id)
    response = _back(target)
    response.set_cookie(COOKIE, console.signer.issue(record.id), max_age=LIFETIME_S, path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    await _form(request, s, console)
    response = _back("/ui/login")
    response.delete_cookie(COOKIE, path="/ui")
    return response


# -- the human queue -------------------------------------------------------------------------------

@router.get("/queue")
def queue_page(request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    flt = queue.QueueFilter.parse(request.query_params)
    items = queue.open_items(_journal(request), flt)
    done = request.query_params.get("done")
    item = request.query_params.get("item", "")
    flash = f"Item {item} {'resolved' if done == 'resolved' else 'handed to a script'}." \
        if done in ("resolved", "script") and item.isdigit() else None
    from tierwise.service.classify import FAILURE_KINDS, HARNESSES, PROFILES

    return console.page(request, "queue.html", _context(
        s, items=items, groups=queue.group_by_signature(items) if flt.group else None, flt=flt, flash=flash,
        profiles=PROFILES, harnesses=HARNESSES, failure_kinds=FAILURE_KINDS,
        scripts=console.settings.scripts, query=urlencode({k: v for k, v in request.query_params.items()
                                                            if k in ("profile", "harness", "failure", "group")})))


@router.post("/queue/{item_id}/resolve")
async def resolve_item(item_id: ItemId, request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    form = await _form(request, s, console)
    journal = _journal(request)
    action = form.get("action", "resolve")
    by = form.get("resolved_by", "").strip() or s.operator.name
    note = form.get("note", "").strip() or None
    if action == "resolve":
        await run_in_threadpool(queue.resolve, journal, item_id, by, note)
    elif action == "script":
        script = required(form, "script")
        await run_in_threadpool(queue.hand_to_script, journal, item_id, script, by, note, console.settings.scripts)
    else:
        raise InvalidInput(f"action {action!r} is not one of: resolve, script", field="action")
    log.info("console: %s closed queue item %d (%s)", s.operator.name, item_id, action)
    back = {k: v for k, v in form.items() if k in ("profile", "harness", "failure", "group") and v}
    return _back("/ui/queue", done="resolved" if action == "resolve" else "script", item=item_id, **back)


# -- overview --------------------------------------------------------------------------------------

def _kpis(request: Request) -> overview.Kpis:
    try:
        return overview.kpis(_parts(request).store)
    except Exception as exc:  # DuckDB or the export: the page still shows what serves
        log.warning("console: KPIs unavailable: %s: %s", type(exc).__name__, exc)
        return overview.Kpis(error=f"KPIs unavailable: {type(exc).__name__}: {exc}")


def _plots(k: overview.Kpis) -> list[Any]:
    days = [r["key"][5:] for r in k.by_day]  # MM-DD
    if not days:
        return []
    return [
        line_chart("Cost per resolved task (USD), by day", days,
                   {"cost per resolved": [r["cost_per_resolved"] for r in k.by_day]}, label=lambda v: f"${v:.3f}"),
        line_chart("Rates by day", days, {name.replace("_rate", "").replace("_", " "): [r[name] for r in k.by_day]
                                          for name in ("resolution_rate", "escalation_rate", "override_rate",
                                                       "human_queue_rate")},
                   label=lambda v: f"{100 * v:.0f}%"),
    ]


@router.get("")
def overview_page(request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    ui = console.settings.mlflow_ui_url
    k = _kpis(request)
    open_count = None
    with contextlib.suppress(TelemetryUnavailable):  # a server without telemetry: the card says so
        open_count = len(queue.open_items(_journal(request), queue.QueueFilter()))
    registry = overview.guarded(lambda: overview.registry_view(console.registry(), ui),
                                lambda m: overview.RegistryView(error=m), "policy registry")
    retune = overview.guarded(lambda: overview.last_retune(console.registry(), ui),
                              lambda m: overview.RetuneView(error=m), "the last retune run")
    return console.page(request, "overview.html", _context(
        s, serving=overview.serving(_parts(request).holder), registry=registry, retune=retune, kpis=k,
        columns=overview.KPI_COLUMNS, plots=_plots(k), open_count=open_count, mlflow_ui=ui))


# -- policies --------------------------------------------------------------------------------------

@router.get("/policy")
def policy_index(request: Request, s: SeatDep) -> Response:
    return _back(f"/ui/policy/{_parts(request).holder.policy.version}")


@router.get("/policy/{version}")
def policy_page(version: Version, request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    from tierwise.service.policy.registry import CHALLENGER, CHAMPION

    holder = _parts(request).holder
    try:
        reg = console.registry()
    except RegistryUnavailable as exc:
        if version != holder.policy.version:
            raise
        return console.page(request, "policy.html", _context(
            s, version=version, view=readable(holder.policy), policy=holder.policy, champion=None, changes=None,
            aliases=(), registry_error=exc.message, flash=None))
    policy = reg.load(version)
    champion_version = reg.alias(CHAMPION)
    changes = None
    if champion_version is not None and champion_version != version:
        changes = diff(reg.load(champion_version), policy)
    aliases = tuple(a for a in (CHAMPION, CHALLENGER) if reg.alias(a) == version)
    done = request.query_params.get("done")
    flash = {"promoted": f"Version {version} is now the champion; the service loads it within "
                         f"{console.settings.poll_seconds:g} s.",
             "rolledback": f"Rolled back: version {version} is the champion again."}.get(done or "")
    return console.page(request, "policy.html", _context(
        s, version=version, view=readable(policy), policy=policy, champion=champion_version, changes=changes,
        aliases=aliases, registry_error=None, flash=flash))


@router.post("/policy/{version}/promote")
async def promote(version: Version, request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    form = await _form(request, s, console)
    _confirmed(form)
    reg = await run_in_threadpool(console.registry)
    previous = await run_in_threadpool(reg.promote, version)
    log.info("console: %s promoted policy %s (champion was %s)", s.operator.name, version, previous)
    return _back(f"/ui/policy/{version}", done="promoted")


@router.post("/policy/rollback")
async def rollback(request: Request, s: SeatDep, console: ConsoleDep) -> Response:
    form = await _form(request, s, console)
    _confirmed(form)
    reg = await run_in_threadpool(console.registry)
    old, new = await run_in_threadpool(reg.rollback)
    log.info("console: %s rolled the champion back from %s to %s", s.operator.name, old, new)
    return _back(f"/ui/policy/{new}", done="rolledback")
