"""Console pages: server-rendered (Jinja2, autoescaped), with a little progressive JavaScript.

Sessions are ``api_tokens`` rows of kind "session" behind an HttpOnly, SameSite=Strict cookie
(``Secure`` when GATEWAY_PUBLIC_URL is https); every POST carries the session's CSRF token
(checked by ``gateway.auth.authenticate``); the login form has its own pre-session token.
The pages call the same operations as the REST API (``gateway.api.service``), so the role
and administration rules are the same.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from sqlmodel import Session, select

from conversations import reference as refs
from conversations.complaints import KINDS, OPEN_STATUSES, STATUSES
from gateway.api import security, service
from gateway.api.common import CAN, ApiError, client_ip
from gateway.api.routes import policy
from gateway.auth import SESSION_COOKIE, authenticate, csrf_token_for
from gateway.console.i18n import DEFAULT, LANGUAGES, Translator, canned
from gateway.context import Gateway
from gateway.http import GATEWAY
from store.models import Complaint, User

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
LANG_COOKIE = "gw_lang"
LOGIN_CSRF_COOKIE = "gw_login_csrf"
PAGE_SIZE = 25
SESSION_KEY: web.RequestKey[str] = web.RequestKey("console.session", str)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
# Events shown in the conversation besides the messages themselves.
HIDDEN_EVENTS = frozenset({"reply", "citizen_message"})
DONE_FLASH = {"reply": "reply_sent", "note": "note_added", "status": "status_changed_flash",
              "unchanged": "status_unchanged", "transfer": "transferred_flash"}

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=jinja2.select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


_env.filters["dt"] = _fmt


def _gw(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def ui_language(request: web.Request, user: User | None) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen  # type: ignore[return-value]
    if user is not None and user.language in LANGUAGES:
        return user.language
    accept = request.headers.get("Accept-Language", "")
    for part in accept.split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return DEFAULT


def _secure(gw: Gateway) -> bool:
    return (gw.settings.public_url or "").startswith("https://")


def _headers(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


def render(request: web.Request, template: str, *, user: User | None = None, status: int = 200,
           **ctx: Any) -> web.Response:
    gw = _gw(request)
    lang = ui_language(request, user)
    t = Translator(lang)
    token = request.get(SESSION_KEY)
    html = _env.get_template(template).render(
        t=t, lang=lang, dir=t.dir, user=user, csrf=csrf_token_for(token) if token else "", can=_can(user),
        languages=[(code, Translator(code)("language_name")) for code in LANGUAGES], here=request.path_qs,
        config=gw.config, admin_names=_admin_names(gw, lang), category_names=_category_names(gw, lang),
        place_names=_place_names(gw), **ctx)
    return _headers(web.Response(text=html, status=status, content_type="text/html"))  # type: ignore[return-value]


def _can(user: User | None) -> dict[str, bool]:
    return {action: bool(user and user.role in roles) for action, roles in CAN.items()}


def _admin_names(gw: Gateway, lang: str) -> dict[str, str]:
    names = {}
    for admin in gw.config.administrations.values():
        names[admin.id] = admin.name(lang)
        for branch in admin.branches.values():
            names[branch.id] = gw.config.administration_name(branch.id, lang)
    return names


def _category_names(gw: Gateway, lang: str) -> dict[str, str]:
    return {cid: cat.name(lang) for cid, cat in gw.config.categories.items()}


def _place_names(gw: Gateway) -> dict[str, str]:
    return {pid: (place.names[0] if place.names else pid) for pid, place in sorted(gw.config.places.items())}


def error_page(request: web.Request, status: int, key: str, user: User | None = None,
               detail: str | None = None) -> web.Response:
    return render(request, "error.html", user=user, status=status, message_key=key, detail=detail)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


Page = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


def page(*roles: str) -> Callable[[Page], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A console page for signed-in users (of ``roles``); POSTs must carry the CSRF token."""

    def decorate(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            token = request.cookies.get(SESSION_COOKIE)
            user = None
            if token:
                try:
                    user = await authenticate(request)
                except web.HTTPUnauthorized:
                    user = None
                except web.HTTPForbidden:
                    return error_page(request, 403, "csrf_failed")
            if user is None:
                if request.method == "GET" and not request.path.endswith("/live"):
                    raise web.HTTPSeeOther("/console/login?" + urlencode({"next": request.path_qs}))
                return error_page(request, 401, "login")
            request[SESSION_KEY] = token
            if roles and user.role not in roles:
                return error_page(request, 403, "forbidden", user)
            try:
                return await handler(request, user)
            except ApiError as exc:
                if exc.status == 404:
                    return error_page(request, 404, "not_found", user)
                if exc.status == 403:
                    return error_page(request, 403, "forbidden", user, exc.message)
                return error_page(request, exc.status, "error", user, exc.message)

        wrapped.__name__ = handler.__name__
        return wrapped

    return decorate


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


# -- login / logout / language --------------------------------------------------------------------
async def login_page(request: web.Request, error: str | None = None, status: int = 200,
                     minutes: int = 0) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    resp = render(request, "login.html", status=status, error=error, minutes=minutes, login_csrf=nonce,
                  next=_safe_next(request.query.get("next")))
    resp.set_cookie(LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="Strict", secure=_secure(_gw(request)),
                    path="/console/login", max_age=3600)
    return resp


async def login_get(request: web.Request) -> web.StreamResponse:
    return await login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    gw = _gw(request)
    form = await _form(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form.get("login_csrf", "")):
        return await login_page(request, "csrf_failed", 403)
    username, password = form.get("username", ""), form.get("password", "")
    if not username or not password:
        return await login_page(request, "wrong_credentials", 401)

    def work() -> security.LoginOutcome:
        with gw.db.session() as session:
            return security.login(session, username, password, ip=client_ip(request), now=gw.core.clock.now(),
                                  policy=policy(gw), kind="session", name="console")

    outcome = await gw.db.run(work)
    if outcome.error is not None:
        if outcome.error.status == 429:
            seconds = int(outcome.error.headers.get("Retry-After", "60"))
            resp = await login_page(request, "throttled", 429, minutes=max(1, -(-seconds // 60)))
            resp.headers["Retry-After"] = str(seconds)
            return resp
        return await login_page(request, "wrong_credentials", 401)
    resp = web.HTTPSeeOther(_safe_next(form.get("next")))
    resp.set_cookie(SESSION_COOKIE, outcome.token or "", httponly=True, samesite="Strict", secure=_secure(gw),
                    path="/", max_age=int(policy(gw).session_lifetime.total_seconds()))
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    raise resp


@page()
async def logout(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    from gateway.auth import TOKEN_ID_KEY

    token_id = request[TOKEN_ID_KEY]

    def work() -> None:
        with gw.db.session() as session:
            security.revoke_token(session, user, token_id, ip=client_ip(request), now=gw.core.clock.now())

    await gw.db.run(work)
    resp = web.HTTPSeeOther("/console/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def set_language(request: web.Request) -> web.StreamResponse:
    """Switch the interface language (a preference cookie; nothing else changes)."""
    code = request.match_info["lang"]
    if code not in LANGUAGES:
        raise web.HTTPNotFound()
    resp = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    resp.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True,
                    secure=_secure(_gw(request)), path="/")
    raise resp


# -- queues ----------------------------------------------------------------------------------------
VIEWS = {
    "triage": {"status": ("new",)},
    "inbox": {"status": ("assigned", "in_progress")},
    "open": {"status": OPEN_STATUSES},
    "overdue": {"overdue": True},
    "mine": {},
    "all": {},
}


def default_view(user: User) -> str:
    return {"supervisor": "triage", "admin": "triage", "officer": "inbox", "agent": "mine"}[user.role]


def _views_for(user: User) -> list[str]:
    if user.role == "officer":
        return ["inbox", "overdue", "all"]
    if user.role == "agent":
        return ["mine", "open", "all"]
    return ["triage", "open", "overdue", "all"]


def _queue_filters(request: web.Request, user: User, view: str) -> service.Filters:
    q = request.query
    base = dict(VIEWS.get(view, {}))
    status = q.get("status")
    filters = service.Filters(
        status=(status,) if status in STATUSES else tuple(base.get("status", ())),
        category=q.get("category") if q.get("category") in _gw(request).config.categories else None,
        place=q.get("place") or None, channel=q.get("channel") or None,
        kind=q.get("kind") if q.get("kind") in KINDS else None,
        overdue=True if base.get("overdue") or q.get("overdue") == "true" else None,
        q=(q.get("q") or "").strip()[:200] or None,
        created_by=user.username if view == "mine" else None,
        sort="answer_due_at" if view in ("inbox", "overdue") else "-received_at")
    return filters


def _offset(request: web.Request) -> int:
    try:
        return max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return 0


def _queue_data(gw: Gateway, user: User, filters: service.Filters, offset: int) -> dict[str, Any]:
    with gw.db.session() as session:
        return service.search(session, gw.core, user, filters, PAGE_SIZE, offset)


def _version(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _calls_panel(gw: Gateway) -> dict[str, Any]:
    """Recent calls and open callback tasks, when the phone line's module is installed."""
    try:
        calls = importlib.import_module("conversations.calls")
    except ModuleNotFoundError as exc:
        if exc.name != "conversations.calls":
            raise
        return {"available": False, "calls": [], "callbacks": []}
    with gw.db.session() as session:
        recent = calls.list_calls(session, limit=10, offset=0)
        tasks = calls.list_callbacks(session, status="open", limit=20, offset=0)
    return {"available": True, "calls": recent.get("calls", []), "callbacks": tasks.get("callbacks", [])}


@page()
async def queue(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    view = request.query.get("view") or default_view(user)
    if view not in _views_for(user):
        view = default_view(user)
    filters = _queue_filters(request, user, view)
    offset = _offset(request)
    data = await gw.db.run(_queue_data, gw, user, filters, offset)
    calls = await gw.db.run(_calls_panel, gw) if user.role == "agent" else None
    query = {k: v for k, v in request.query.items() if k != "offset"}
    return render(request, "queue.html", user=user, view=view, views=_views_for(user), page=data, calls=calls,
                  query=query, query_string=urlencode(query), version=_version(data["items"]),
                  statuses=STATUSES, kinds=KINDS, offset=offset, page_size=PAGE_SIZE)


@page()
async def queue_live(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    view = request.query.get("view") or default_view(user)
    if view not in _views_for(user):
        view = default_view(user)
    data = await gw.db.run(_queue_data, gw, user, _queue_filters(request, user, view), _offset(request))
    version = _version(data["items"])
    if request.query.get("v") == version:
        return _headers(web.json_response({"version": version}))  # type: ignore[return-value]
    t = Translator(ui_language(request, user))
    html = _env.get_template("_rows.html").render(t=t, page=data, admin_names=_admin_names(gw, t.lang),
                                                  category_names=_category_names(gw, t.lang))
    return _headers(web.json_response({"version": version, "html": html, "total": data["total"]}))  # type: ignore[return-value]


# -- one complaint -------------------------------------------------------------------------------
def timeline(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages and events in one list, in order (a reply's event is shown as its message)."""
    items = [{**m, "item": "message", "order": (m["created_at"], 0, m["id"])} for m in detail["messages"]]
    items += [{**e, "item": "event", "order": (e["at"], 1, e["id"])} for e in detail["events"]
              if e["type"] not in HIDDEN_EVENTS]
    return sorted(items, key=lambda item: item["order"])


def _complaint_data(gw: Gateway, user: User, reference: str) -> tuple[dict[str, Any], str]:
    with gw.db.session() as session:
        complaint = service.load_complaint(session, user, reference)
        return service.detail(session, gw.core, complaint), complaint.language or gw.config.default_language


def _live_version(detail: dict[str, Any]) -> str:
    return _version([detail["status"], detail["administration"], detail["category"],
                     [(m["id"], m["status"]) for m in detail["messages"]], [e["id"] for e in detail["events"]]])


@page()
async def complaint_page(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    reference = request.match_info["reference"]
    detail, citizen_lang = await gw.db.run(_complaint_data, gw, user, reference)
    if refs.clean(reference) != refs.clean(detail["reference"]) or reference != detail["reference"]:
        raise web.HTTPSeeOther(f"/console/complaints/{detail['reference']}")
    done = request.query.get("done")
    flash = None
    if done in DONE_FLASH:
        flash = Translator(ui_language(request, user))(DONE_FLASH[done])
    elif done in ("intake", "intake_sent"):
        flash = Translator(ui_language(request, user))("intake_done_sent" if done == "intake_sent" else "intake_done",
                                                       reference=detail["reference"])
    return render(request, "complaint.html", user=user, c=detail, items=timeline(detail), flash=flash,
                  error=request.query.get("error"), canned=canned(citizen_lang, gw.config.raw),
                  statuses=STATUSES, version=_live_version(detail), form_id=secrets.token_urlsafe(12))


@page()
async def complaint_live(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    detail, _lang = await gw.db.run(_complaint_data, gw, user, request.match_info["reference"])
    version = _live_version(detail)
    if request.query.get("v") == version:
        return _headers(web.json_response({"version": version}))  # type: ignore[return-value]
    t = Translator(ui_language(request, user))
    ctx = dict(t=t, c=detail, items=timeline(detail), admin_names=_admin_names(gw, t.lang),
               category_names=_category_names(gw, t.lang), place_names=_place_names(gw))
    return _headers(web.json_response({  # type: ignore[return-value]
        "version": version, "timeline": _env.get_template("_timeline.html").render(**ctx),
        "summary": _env.get_template("_summary.html").render(**ctx)}))


async def _act(request: web.Request, user: User, action: str, key: str | None,
               work: Callable[[Session, Complaint], service.Result]) -> service.Result:
    """Run a complaint action in one transaction (replaying a double-submitted form), then wake delivery."""
    gw = _gw(request)
    reference = request.match_info["reference"]
    scope = f"console-{action} {refs.clean(reference)}"

    def run() -> service.Result:
        with gw.db.session() as session:
            stored = service.replay(session, user, key, scope)
            if stored is not None:
                return service.Result(stored[1], [], stored[0])
            complaint = service.load_complaint(session, user, reference, for_update=True)
            result = work(session, complaint)
            service.remember(session, user, key, scope, result.status, result.body, gw.core.clock.now())
            return result

    result = await gw.db.run(run)
    gw.core.outbox_committed(result.outbox_ids)
    return result


def _back(reference: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/console/complaints/{refs.format_reference(refs.clean(reference))}?done={done}")


async def _action_error(request: web.Request, user: User, exc: ApiError) -> web.StreamResponse:
    if exc.status in (403, 404):
        raise exc
    reference = request.match_info["reference"]
    return await _redisplay(request, user, reference, exc.message, exc.status)


async def _redisplay(request: web.Request, user: User, reference: str, error: str, status: int) -> web.Response:
    gw = _gw(request)
    detail, citizen_lang = await gw.db.run(_complaint_data, gw, user, reference)
    return render(request, "complaint.html", user=user, c=detail, items=timeline(detail), flash=None, error=error,
                  canned=canned(citizen_lang, gw.config.raw), statuses=STATUSES, version=_live_version(detail),
                  form_id=secrets.token_urlsafe(12), status=status)


@page(*CAN["reply"])
async def reply_post(request: web.Request, user: User) -> web.StreamResponse:
    form = await _form(request)
    text = form.get("text", "")
    gw = _gw(request)
    try:
        if not text:
            raise ApiError(400, "invalid", "text is required", field="text")
        key = form.get("form_id") or None
        await _act(request, user, "reply", key, lambda s, c: service.reply(
            gw.core, s, user, c, text[:4000], f"{user.id}:console:{key}" if key else None))
    except ApiError as exc:
        return await _action_error(request, user, exc)
    raise _back(request.match_info["reference"], "reply")


@page(*CAN["note"])
async def note_post(request: web.Request, user: User) -> web.StreamResponse:
    form = await _form(request)
    text = form.get("text", "")
    gw = _gw(request)
    try:
        if not text:
            raise ApiError(400, "invalid", "text is required", field="text")
        await _act(request, user, "note", form.get("form_id") or None,
                   lambda s, c: service.add_note(gw.core, s, user, c, text[:4000]))
    except ApiError as exc:
        return await _action_error(request, user, exc)
    raise _back(request.match_info["reference"], "note")


@page(*CAN["status"])
async def status_post(request: web.Request, user: User) -> web.StreamResponse:
    form = await _form(request)
    gw = _gw(request)
    try:
        result = await _act(request, user, "status", None, lambda s, c: service.change_status(
            gw.core, s, user, c, form.get("status", ""), form.get("note") or None))
    except ApiError as exc:
        return await _action_error(request, user, exc)
    raise _back(request.match_info["reference"], "status" if result.body.get("changed") else "unchanged")


@page(*CAN["transfer"])
async def transfer_post(request: web.Request, user: User) -> web.StreamResponse:
    form = await _form(request)
    gw = _gw(request)
    try:
        reason = form.get("reason", "")
        if not reason:
            raise ApiError(400, "invalid", "reason is required", field="reason")
        await _act(request, user, "transfer", None, lambda s, c: service.transfer(
            gw.core, s, user, c, administration=form.get("administration") or None,
            category=form.get("category") or None, reason=reason[:2000]))
    except ApiError as exc:
        return await _action_error(request, user, exc)
    if user.role == "officer":
        raise web.HTTPSeeOther("/console/queue?done=transfer")  # it is probably no longer theirs
    raise _back(request.match_info["reference"], "transfer")


# -- intake ------------------------------------------------------------------------------------------
def _prefill_from_call(gw: Gateway, call_sid: str) -> str:
    try:
        calls = importlib.import_module("conversations.calls")
    except ModuleNotFoundError:
        return ""
    with gw.db.session() as session:
        call = calls.find_call(session, call_sid)
        caller = call.caller if call is not None else None
    return caller.partition(":")[2] if caller else ""


@page(*CAN["create"])
async def intake_get(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    values = {"channel": "phone", "consent_sms": "on", "kind": "complaint"}
    call_sid = request.query.get("call")
    if call_sid:
        values["phone"] = await gw.db.run(_prefill_from_call, gw, call_sid[:64])
        values["call"] = call_sid[:64]
    return render(request, "intake.html", user=user, values=values, error=None, field=None,
                  kinds=KINDS, channels=service.INTAKE_CHANNELS, form_id=secrets.token_urlsafe(12))


@page(*CAN["create"])
async def intake_post(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    form = await _form(request)
    body: dict[str, Any] = {k: form.get(k) or None for k in ("text", "phone", "email", "channel", "kind", "category",
                                                               "place")}
    body["consent_sms"] = form.get("consent_sms") == "on"
    key = form.get("form_id") or None
    try:
        data = service.validate_intake(gw.core, body)

        def run() -> service.Result:
            with gw.db.session() as session:
                stored = service.replay(session, user, key, "console-intake")
                if stored is not None:
                    return service.Result(stored[1], [], stored[0])
                result = service.intake(gw.core, session, user, data)
                if form.get("call"):
                    _link_call(session, form["call"][:64], result.body["reference"])
                service.remember(session, user, key, "console-intake", result.status, result.body,
                                 gw.core.clock.now())
                return result

        result = await gw.db.run(run)
    except ApiError as exc:
        return render(request, "intake.html", user=user, values=form, error=exc.message, field=exc.field,
                      kinds=KINDS, channels=service.INTAKE_CHANNELS, form_id=secrets.token_urlsafe(12),
                      status=exc.status)
    gw.core.outbox_committed(result.outbox_ids)
    done = "intake_sent" if result.body.get("notified") else "intake"
    raise web.HTTPSeeOther(f"/console/complaints/{result.body['reference']}?done={done}")


def _link_call(session: Session, call_sid: str, reference: str) -> None:
    """Attach the complaint to the call it was logged during (when the phone line is installed)."""
    try:
        calls = importlib.import_module("conversations.calls")
    except ModuleNotFoundError:
        return
    call = calls.find_call(session, call_sid)
    complaint = session.exec(select(Complaint).where(Complaint.reference == refs.clean(reference))).first()
    if call is not None and complaint is not None and getattr(call, "complaint_id", None) is None:
        call.complaint_id = complaint.id
        session.add(call)


@page("agent", "supervisor", "admin")
async def callback_done(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    try:
        calls = importlib.import_module("conversations.calls")
        task_id = int(request.match_info["id"])
    except (ModuleNotFoundError, ValueError):
        return error_page(request, 404, "not_found", user)

    def work() -> None:
        with gw.db.session() as session:
            calls.mark_callback_done(session, task_id, username=user.username, now=gw.core.clock.now())

    await gw.db.run(work)
    raise web.HTTPSeeOther("/console/queue")


# -- search ------------------------------------------------------------------------------------------
@page()
async def search_get(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    text = (request.query.get("q") or "").strip()[:200]
    data = None
    if text:
        digits = refs.parse(text)
        if digits is not None:
            def exact() -> str | None:
                with gw.db.session() as session:
                    try:
                        return service.load_complaint(session, user, digits).reference
                    except ApiError:
                        return None
            found = await gw.db.run(exact)
            if found:
                raise web.HTTPSeeOther(f"/console/complaints/{refs.format_reference(found)}")
        data = await gw.db.run(_queue_data, gw, user, service.Filters(q=text), 0)
    return render(request, "search.html", user=user, q=text, page=data, error=None)


@page()
async def search_post(request: web.Request, user: User) -> web.StreamResponse:
    """Look a citizen up by phone or e-mail: the answer is rendered here, so nothing lands in a URL."""
    gw = _gw(request)
    form = await _form(request)
    try:
        if form.get("phone"):
            urn = service.phone_urn(form["phone"], gw.settings.country)
        elif form.get("email"):
            urn = service.email_urn(form["email"])
        else:
            raise ApiError(400, "invalid", "give a phone number or an e-mail address", field="phone")
    except ApiError as exc:
        return render(request, "search.html", user=user, q="", page=None, error=exc.message, status=400)
    data = await gw.db.run(_queue_data, gw, user, service.Filters(urn=urn), 0)
    return render(request, "search.html", user=user, q="", page=data, error=None)


# -- users and tokens ----------------------------------------------------------------------------------
def _users(gw: Gateway) -> list[dict[str, Any]]:
    with gw.db.session() as session:
        return security.list_users(session)


@page(*CAN["users"])
async def users_get(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    return render(request, "users.html", user=user, users=await gw.db.run(_users, gw), created=None, error=None)


@page(*CAN["users"])
async def users_post(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    form = await _form(request)

    def work() -> tuple[str, str | None]:
        with gw.db.session() as session:
            created, generated = security.create_user(
                session, user, username=form.get("username", "")[:150], role=form.get("role", ""),
                administration=form.get("administration") or None, password=form.get("password") or None,
                language=form.get("language") or DEFAULT,
                known_administrations=service.known_administrations(gw.core), ip=client_ip(request),
                now=gw.core.clock.now())
            return created.username, generated

    try:
        if not form.get("username"):
            raise ApiError(400, "invalid", "username is required", field="username")
        created = await gw.db.run(work)
    except ApiError as exc:
        return render(request, "users.html", user=user, users=await gw.db.run(_users, gw), created=None,
                      error=exc.message, status=exc.status)
    return render(request, "users.html", user=user, users=await gw.db.run(_users, gw), created=created, error=None)


def _user_activation(active: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @page(*CAN["users"])
    async def handler(request: web.Request, user: User) -> web.StreamResponse:
        gw = _gw(request)

        def work() -> None:
            with gw.db.session() as session:
                security.set_active(session, user, request.match_info["username"], active, ip=client_ip(request),
                                    now=gw.core.clock.now())

        await gw.db.run(work)
        raise web.HTTPSeeOther("/console/users")

    return handler


def _tokens(gw: Gateway, user: User) -> list[dict[str, Any]]:
    with gw.db.session() as session:
        return security.list_tokens(session, user)


@page()
async def tokens_get(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    return render(request, "tokens.html", user=user, tokens=await gw.db.run(_tokens, gw, user), created=None)


@page()
async def tokens_post(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    form = await _form(request)
    name = (form.get("name") or "token")[:200]

    def work() -> str:
        with gw.db.session() as session:
            token, _row = security.create_token(session, user, name, None, ip=client_ip(request),
                                                now=gw.core.clock.now(), policy=policy(gw))
            return token

    token = await gw.db.run(work)
    return render(request, "tokens.html", user=user, tokens=await gw.db.run(_tokens, gw, user), created=token)


@page()
async def token_revoke(request: web.Request, user: User) -> web.StreamResponse:
    gw = _gw(request)
    try:
        token_id = int(request.match_info["id"])
    except ValueError:
        return error_page(request, 404, "not_found", user)

    def work() -> None:
        with gw.db.session() as session:
            security.revoke_token(session, user, token_id, ip=client_ip(request), now=gw.core.clock.now())

    await gw.db.run(work)
    raise web.HTTPSeeOther("/console/tokens")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/queue")


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", index)
    r.add_get("/console/", index)
    r.add_get("/console/login", login_get)
    r.add_post("/console/login", login_post)
    r.add_post("/console/logout", logout)
    r.add_get("/console/lang/{lang}", set_language)
    r.add_get("/console/queue", queue)
    r.add_get("/console/queue/live", queue_live)
    r.add_get("/console/complaints/{reference}", complaint_page)
    r.add_get("/console/complaints/{reference}/live", complaint_live)
    r.add_post("/console/complaints/{reference}/reply", reply_post)
    r.add_post("/console/complaints/{reference}/note", note_post)
    r.add_post("/console/complaints/{reference}/status", status_post)
    r.add_post("/console/complaints/{reference}/transfer", transfer_post)
    r.add_get("/console/intake", intake_get)
    r.add_post("/console/intake", intake_post)
    r.add_post("/console/callbacks/{id}/done", callback_done)
    r.add_get("/console/search", search_get)
    r.add_post("/console/search", search_post)
    r.add_get("/console/users", users_get)
    r.add_post("/console/users", users_post)
    r.add_post("/console/users/{username}/deactivate", _user_activation(False))
    r.add_post("/console/users/{username}/activate", _user_activation(True))
    r.add_get("/console/tokens", tokens_get)
    r.add_post("/console/tokens", tokens_post)
    r.add_post("/console/tokens/{id}/revoke", token_revoke)
    r.add_static("/console/static/", STATIC_DIR)
