"""The REST API handlers under ``/api/v1`` (described by ``gateway/api/openapi.py``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from conversations import reference as refs
from conversations.complaints import KINDS, STATUSES
from gateway.api import security, service
from gateway.api.common import (
    CAN,
    ApiError,
    api,
    choice,
    client_ip,
    date_bound,
    invalid,
    not_found,
    ok,
    paging,
    read_json,
    text_field,
)
from gateway.auth import TOKEN_ID_KEY, authenticate, require
from gateway.context import Gateway
from gateway.http import GATEWAY
from store.models import User

REPLY_MAX = 4000


def _gw(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def policy(gw: Gateway) -> security.AuthPolicy:
    cached = gw.extras.get("auth_policy")
    if cached is None:
        cached = gw.extras["auth_policy"] = security.AuthPolicy.from_config(dict(gw.config.raw))
    return cached


async def _mutation(request: web.Request, user: User, scope: str,
                    work: Callable[[Session], service.Result], *, idempotent: bool = False) -> web.Response:
    """Run ``work`` in one transaction; replay the stored answer for a repeated ``Idempotency-Key``;
    wake delivery for what it queued once committed."""
    gw = _gw(request)
    key = request.headers.get("Idempotency-Key") if idempotent else None
    if key is not None and not 1 <= len(key) <= 255:
        raise invalid("Idempotency-Key", "Idempotency-Key must have 1 to 255 characters")

    def run() -> tuple[service.Result, bool]:
        with gw.db.session() as session:
            stored = service.replay(session, user, key, scope)
            if stored is not None:
                return service.Result(stored[1], [], stored[0]), True
            result = work(session)
            service.remember(session, user, key, scope, result.status, result.body, gw.core.clock.now())
            return result, False

    def stored_only() -> tuple[service.Result, bool]:
        with gw.db.session() as session:
            stored = service.replay(session, user, key, scope)
            if stored is None:
                raise ApiError(409, "conflict", "a concurrent request changed this; retry")
            return service.Result(stored[1], [], stored[0]), True

    try:
        result, replayed = await gw.db.run(run)
    except IntegrityError:
        if not key:
            raise
        result, replayed = await gw.db.run(stored_only)  # a concurrent twin with the same key won
    gw.core.outbox_committed(result.outbox_ids)
    return ok(result.body, result.status, {"Idempotent-Replayed": "true"} if replayed else None)


def _scope(action: str, reference: str) -> str:
    return f"{action} {refs.clean(reference)}"


# -- auth, tokens, users ------------------------------------------------------------------------
@api
async def create_login_token(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    username = text_field(body, "username", required=True, max_length=150)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise invalid("password", "password is required")
    name = text_field(body, "name", max_length=200) or "login"
    gw = _gw(request)

    def work() -> security.LoginOutcome:
        with gw.db.session() as session:
            return security.login(session, username or "", password, ip=client_ip(request),
                                  now=gw.core.clock.now(), policy=policy(gw), name=name)

    outcome = await gw.db.run(work)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.row is not None and outcome.user is not None
    return ok({"token": outcome.token, "token_type": "Bearer", "id": outcome.row.id,
               "expires_at": security.iso(outcome.row.expires_at), "user": security.user_json(outcome.user)})


@api
async def revoke_current_token(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    gw = _gw(request)
    token_id = request[TOKEN_ID_KEY]

    def work() -> None:
        with gw.db.session() as session:
            security.revoke_token(session, user, token_id, ip=client_ip(request), now=gw.core.clock.now())

    await gw.db.run(work)
    return web.Response(status=204)


@api
async def me(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    return ok(security.user_json(user))


@api
async def list_tokens(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    gw = _gw(request)

    def work() -> list[dict[str, Any]]:
        with gw.db.session() as session:
            return security.list_tokens(session, user)

    return ok({"items": await gw.db.run(work)})


@api
async def create_token(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    body = await read_json(request)
    name = text_field(body, "name", required=True, max_length=200) or ""
    days = body.get("expires_in_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 366):
        raise invalid("expires_in_days", "expires_in_days must be a number of days between 1 and 366")
    gw = _gw(request)

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            token, row = security.create_token(session, user, name, days, ip=client_ip(request),
                                               now=gw.core.clock.now(), policy=policy(gw))
            return {**security.token_json(row), "token": token}

    return ok(await gw.db.run(work), 201)


@api
async def delete_token(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    gw = _gw(request)
    try:
        token_id = int(request.match_info["id"])
    except ValueError:
        raise not_found("token") from None

    def work() -> bool:
        with gw.db.session() as session:
            return security.revoke_token(session, user, token_id, ip=client_ip(request),
                                         now=gw.core.clock.now()) is not None

    if not await gw.db.run(work):
        raise not_found("token")
    return web.Response(status=204)


@api
async def list_users(request: web.Request) -> web.StreamResponse:
    await require(request, *CAN["users"])
    gw = _gw(request)

    def work() -> list[dict[str, Any]]:
        with gw.db.session() as session:
            return security.list_users(session)

    return ok({"items": await gw.db.run(work)})


@api
async def create_user(request: web.Request) -> web.StreamResponse:
    admin = await require(request, *CAN["users"])
    body = await read_json(request)
    gw = _gw(request)
    username = text_field(body, "username", required=True, max_length=150) or ""
    role = text_field(body, "role", required=True, max_length=16) or ""
    administration = text_field(body, "administration", max_length=128)
    language = text_field(body, "language", max_length=16) or gw.config.default_language
    choice(language, "language", gw.config.templates)
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise invalid("password", "password must be a string")

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            user, generated = security.create_user(
                session, admin, username=username, role=role, administration=administration, password=password,
                language=language, known_administrations=service.known_administrations(gw.core),
                ip=client_ip(request), now=gw.core.clock.now())
            body = security.user_json(user)
            if generated:
                body["password"] = generated
            return body

    return ok(await gw.db.run(work), 201)


def _activation(active: bool) -> Callable[[web.Request], Any]:
    @api
    async def handler(request: web.Request) -> web.StreamResponse:
        admin = await require(request, *CAN["users"])
        gw = _gw(request)
        username = request.match_info["username"]

        def work() -> dict[str, Any] | None:
            with gw.db.session() as session:
                user = security.set_active(session, admin, username, active, ip=client_ip(request),
                                           now=gw.core.clock.now())
                return security.user_json(user) if user else None

        found = await gw.db.run(work)
        if found is None:
            raise not_found("user")
        return ok(found)

    handler.__name__ = "activate_user" if active else "deactivate_user"
    return handler


# -- complaints ---------------------------------------------------------------------------------
def _filters(request: web.Request, gw: Gateway) -> service.Filters:
    q = request.query
    statuses = tuple(s for s in (q.get("status") or "").split(",") if s)
    for status in statuses:
        choice(status, "status", STATUSES)
    category = choice(q.get("category") or None, "category", gw.config.categories)
    kind = choice(q.get("kind") or None, "kind", KINDS)
    overdue_raw = q.get("overdue")
    if overdue_raw not in (None, "", "true", "false"):
        raise invalid("overdue", "overdue must be true or false")
    urn = None
    if q.get("phone"):
        urn = service.phone_urn(q["phone"], gw.settings.country)
    elif q.get("email"):
        urn = service.email_urn(q["email"])
    sort = q.get("sort") or "-received_at"
    choice(sort, "sort", service.SORTS)
    search_text = (q.get("q") or "").strip() or None
    if search_text and len(search_text) > 200:
        raise invalid("q", "q is longer than 200 characters")
    return service.Filters(
        status=statuses, category=category, administration=q.get("administration") or None,
        place=q.get("place") or None, channel=q.get("channel") or None, kind=kind,
        since=date_bound(q.get("from"), "from"), until=date_bound(q.get("to"), "to", end=True),
        overdue=None if not overdue_raw else overdue_raw == "true", q=search_text, urn=urn,
        created_by=q.get("created_by") or None, sort=sort)


@api
async def list_complaints(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["read"])
    gw = _gw(request)
    filters = _filters(request, gw)
    limit, offset = paging(request.query)

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            return service.search(session, gw.core, user, filters, limit, offset)

    return ok(await gw.db.run(work))


@api
async def lookup(request: web.Request) -> web.StreamResponse:
    """Look up by reference, phone or e-mail with the personal data in the body, not the URL."""
    user = await require(request, *CAN["read"])
    gw = _gw(request)
    body = await read_json(request)
    reference = text_field(body, "reference", max_length=40)
    phone = text_field(body, "phone", max_length=40)
    email = text_field(body, "email", max_length=254)
    if not (reference or phone or email):
        raise invalid("reference", "give a reference, a phone number or an e-mail address")
    urn = service.phone_urn(phone, gw.settings.country) if phone else service.email_urn(email) if email else None

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            if reference:
                try:
                    found = service.load_complaint(session, user, reference)
                except ApiError:
                    return {"items": [], "total": 0}
                return {"items": [service.summary(gw.core, found)], "total": 1}
            return service.search(session, gw.core, user, service.Filters(urn=urn), 50, 0)

    return ok(await gw.db.run(work))


@api
async def get_complaint(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["read"])
    gw = _gw(request)
    reference = request.match_info["reference"]

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            return service.detail(session, gw.core, service.load_complaint(session, user, reference))

    return ok(await gw.db.run(work))


@api
async def create_complaint(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["create"])
    gw = _gw(request)
    data = service.validate_intake(gw.core, await read_json(request))
    return await _mutation(request, user, "intake", lambda s: service.intake(gw.core, s, user, data),
                           idempotent=True)


@api
async def set_status(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["status"])
    gw = _gw(request)
    reference = request.match_info["reference"]
    body = await read_json(request)
    status = text_field(body, "status", required=True, max_length=16) or ""
    note = text_field(body, "note", max_length=2000)

    def work(session: Session) -> service.Result:
        complaint = service.load_complaint(session, user, reference, for_update=True)
        return service.change_status(gw.core, session, user, complaint, status, note)

    return await _mutation(request, user, _scope("status", reference), work, idempotent=True)


@api
async def post_reply(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["reply"])
    gw = _gw(request)
    reference = request.match_info["reference"]
    body = await read_json(request)
    text = text_field(body, "text", required=True, max_length=REPLY_MAX) or ""
    key = request.headers.get("Idempotency-Key")

    def work(session: Session) -> service.Result:
        complaint = service.load_complaint(session, user, reference, for_update=True)
        return service.reply(gw.core, session, user, complaint, text, f"{user.id}:{key}" if key else None)

    return await _mutation(request, user, _scope("reply", reference), work, idempotent=True)


@api
async def post_note(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["note"])
    gw = _gw(request)
    reference = request.match_info["reference"]
    body = await read_json(request)
    text = text_field(body, "text", required=True, max_length=REPLY_MAX) or ""

    def work(session: Session) -> service.Result:
        complaint = service.load_complaint(session, user, reference, for_update=True)
        return service.add_note(gw.core, session, user, complaint, text)

    return await _mutation(request, user, _scope("note", reference), work, idempotent=True)


@api
async def post_transfer(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["transfer"])
    gw = _gw(request)
    reference = request.match_info["reference"]
    body = await read_json(request)
    administration = text_field(body, "administration", max_length=128)
    category = text_field(body, "category", max_length=64)
    reason = text_field(body, "reason", required=True, max_length=2000) or ""

    def work(session: Session) -> service.Result:
        complaint = service.load_complaint(session, user, reference, for_update=True)
        return service.transfer(gw.core, session, user, complaint, administration=administration,
                                category=category, reason=reason)

    return await _mutation(request, user, _scope("transfer", reference), work, idempotent=True)


# -- routing ------------------------------------------------------------------------------------
@api
async def routing_corrections(request: web.Request) -> web.StreamResponse:
    await require(request, *CAN["corrections"])
    gw = _gw(request)
    fmt = request.query.get("format") or "json"
    choice(fmt, "format", ("json", "jsonl"))
    since = date_bound(request.query.get("from"), "from")

    def work() -> list[dict[str, Any]]:
        with gw.db.session() as session:
            return service.corrections(session, since)

    rows = await gw.db.run(work)
    if fmt == "jsonl":
        import json

        lines = "".join(json.dumps({k: row[k] for k in ("id", "text", "channel", "category", "place")},
                                   ensure_ascii=False) + "\n" for row in rows)
        return web.Response(text=lines, content_type="application/x-ndjson", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="routing-corrections.jsonl"'})
    return ok({"items": rows, "total": len(rows)})


@api
async def routing_suggest(request: web.Request) -> web.StreamResponse:
    user = await require(request, *CAN["read"])
    gw = _gw(request)
    body = await read_json(request)
    text = text_field(body, "text", required=True, max_length=gw.config.max_text_length) or ""
    place = choice(text_field(body, "place", max_length=64), "place", gw.config.places)
    language = text_field(body, "language", max_length=16) or user.language
    return ok(service.suggest(gw.core, text, place, gw.core.templates.language(language)))


def setup(app: web.Application) -> None:
    from gateway.api import openapi

    r = app.router
    r.add_get("/api/v1/openapi.json", openapi.serve)
    r.add_post("/api/v1/auth/token", create_login_token)
    r.add_delete("/api/v1/auth/token", revoke_current_token)
    r.add_get("/api/v1/me", me)
    r.add_get("/api/v1/tokens", list_tokens)
    r.add_post("/api/v1/tokens", create_token)
    r.add_delete("/api/v1/tokens/{id}", delete_token)
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_post("/api/v1/users/{username}/deactivate", _activation(False))
    r.add_post("/api/v1/users/{username}/activate", _activation(True))
    r.add_get("/api/v1/complaints", list_complaints)
    r.add_post("/api/v1/complaints", create_complaint)
    r.add_post("/api/v1/complaints/lookup", lookup)
    r.add_get("/api/v1/complaints/{reference}", get_complaint)
    r.add_post("/api/v1/complaints/{reference}/status", set_status)
    r.add_post("/api/v1/complaints/{reference}/replies", post_reply)
    r.add_post("/api/v1/complaints/{reference}/transfer", post_transfer)
    r.add_post("/api/v1/complaints/{reference}/notes", post_note)
    r.add_get("/api/v1/routing/corrections", routing_corrections)
    r.add_post("/api/v1/routing/suggest", routing_suggest)
