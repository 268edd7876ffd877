"""Authentication for the REST API and the console: bearer tokens and session cookies (both
stored hashed), users and roles.

``authenticate(request)`` gives the user or raises 401 (JSON): a bearer token, or the console's
session cookie (then every unsafe method must carry the session's CSRF token, as the
``X-CSRF-Token`` header or a ``csrf_token`` form field, else 403). ``visible_to(user, complaint)``
is the scoping rule: officers see only their administration (and its regional branches).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from aiohttp import web
from sqlmodel import select

from gateway.http import GATEWAY, json_error
from gateway.users import verify_password
from store.models import ApiToken, Complaint, User

TOKEN_LIFETIME = timedelta(days=30)
USER_KEY: web.RequestKey[User] = web.RequestKey("gateway.user", User)
TOKEN_ID_KEY: web.RequestKey[int] = web.RequestKey("gateway.token_id", int)
SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, user: User, now: datetime, name: str = "", kind: str = "api",  # type: ignore[no-untyped-def]
                lifetime: timedelta = TOKEN_LIFETIME) -> tuple[str, ApiToken]:
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=token_hash(token), name=name, kind=kind,  # type: ignore[arg-type]
                   created_at=now, expires_at=now + lifetime)
    session.add(row)
    session.flush()
    return token, row


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a console session: derived from the (secret) session token, so it needs
    no storage, differs per session, and does not reveal the session token."""
    return hmac.new(session_token.encode(), b"gateway-console-csrf", hashlib.sha256).hexdigest()


def _lookup(gw, token: str, session_cookie: bool = False) -> tuple[User, int] | None:  # type: ignore[no-untyped-def]
    """The active user and token id behind ``token``; session tokens only from the cookie."""
    now = gw.core.clock.now()
    with gw.db.session() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
        if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
            return None
        if (row.kind == "session") != session_cookie:
            return None
        user = session.get(User, row.user_id)
        if user is None or not user.active:
            return None
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
            row.last_used_at = now
            session.add(row)
        return user, row.id  # type: ignore[return-value]


def unauthorized(message: str = "authentication required") -> web.HTTPUnauthorized:
    resp = json_error(401, "unauthorized", message)
    return web.HTTPUnauthorized(text=resp.text, content_type="application/json",
                                headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


async def _csrf_ok(request: web.Request, session_token: str) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # aiohttp caches it: the handler reads the same form again
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    return bool(sent) and hmac.compare_digest(sent, csrf_token_for(session_token))


async def authenticate(request: web.Request) -> User:
    """The user behind the request's bearer token or console session cookie; raises 401 otherwise
    (403 when a cookie-authenticated unsafe request lacks the session's CSRF token)."""
    cached = request.get(USER_KEY)
    if cached is not None:
        return cached
    gw = request.app[GATEWAY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        found = await gw.db.run(_lookup, gw, token.strip())
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise unauthorized()
        found = await gw.db.run(_lookup, gw, token, True)
        if found is not None and request.method not in SAFE_METHODS and not await _csrf_ok(request, token):
            resp = json_error(403, "csrf", "missing or wrong CSRF token; reload the page and try again")
            raise web.HTTPForbidden(text=resp.text, content_type="application/json")
    if found is None:
        raise unauthorized("invalid, expired or revoked token")
    user, token_id = found
    request[USER_KEY] = user
    request[TOKEN_ID_KEY] = token_id
    return user


async def require(request: web.Request, *roles: str) -> User:
    """Authenticate and check the role; 403 for a role that may not use this route."""
    user = await authenticate(request)
    if roles and user.role not in roles:
        resp = json_error(403, "forbidden", f"this action needs one of the roles: {', '.join(roles)}")
        raise web.HTTPForbidden(text=resp.text, content_type="application/json")
    return user


def visible_to(user: User, complaint: Complaint) -> bool:
    if user.role != "officer":
        return True
    admin = complaint.administration or ""
    mine = user.administration or ""
    return bool(mine) and (admin == mine or admin.startswith(mine + "."))


def login(gw, username: str, password: str) -> tuple[str, User] | None:  # type: ignore[no-untyped-def]
    now = gw.core.clock.now()
    with gw.db.session() as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active or not verify_password(user.password_hash, password):
            return None
        token, _ = issue_token(session, user, now, name="login")
        user.last_login_at = now
        session.add(user)
        return token, user
