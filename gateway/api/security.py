"""Logins with throttling, tokens, console sessions, user management, and their audit trail.

Throttling is persisted: failed logins are rows of ``auth_events`` (the audit trail needs them
anyway), so every server process shares the count and a restart does not reset it. A username
is locked after ``max_failures`` failures within ``window_minutes`` (a successful login starts
its count afresh); an address after the same number of failures for any usernames (never reset
by a success, so one valid account cannot launder guesses at others). The reply is 429 with
``Retry-After`` until the oldest counted failure leaves the window.
"""
from __future__ import annotations

import functools
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, func, select

from gateway.api.common import ApiError, iso
from gateway.auth import TOKEN_LIFETIME, issue_token
from gateway.users import ROLES, hash_password, verify_password
from store.models import ApiToken, User
from store.models_api import AuthEvent


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist takes as long as a real check."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class AuthPolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)
    token_lifetime: timedelta = TOKEN_LIFETIME

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "AuthPolicy":
        table = raw.get("auth", {}) if isinstance(raw, dict) else {}
        return cls(max_failures=int(table.get("max_failures", 5)),
                   window=timedelta(minutes=float(table.get("window_minutes", 15))),
                   session_lifetime=timedelta(hours=float(table.get("session_hours", 12))),
                   token_lifetime=timedelta(days=float(table.get("token_days", TOKEN_LIFETIME.days))))


def audit(session: Session, type_: str, now: datetime, *, username: str | None = None, actor: str | None = None,
          ip: str | None = None, **data: Any) -> None:
    session.add(AuthEvent(at=now, type=type_, username=username, actor=actor, ip=ip, data=data))


def _retry_after(session: Session, where: list[Any], policy: AuthPolicy, now: datetime) -> int | None:
    times = session.exec(select(AuthEvent.at).where(*where).order_by(AuthEvent.at.desc())  # type: ignore[attr-defined]
                         .limit(policy.max_failures)).all()
    if len(times) < policy.max_failures:
        return None
    return max(1, math.ceil((times[-1] + policy.window - now).total_seconds()))


def throttled(session: Session, username: str, ip: str, policy: AuthPolicy, now: datetime) -> int | None:
    """Seconds to wait before this username or address may try again, or None."""
    since = now - policy.window
    last_ok = session.exec(select(func.max(AuthEvent.at)).where(AuthEvent.type == "login_ok",
                                                                 AuthEvent.username == username)).one()
    user_since = max(since, last_ok) if last_ok else since
    waits = [
        _retry_after(session, [AuthEvent.type == "login_failed", AuthEvent.username == username,
                               AuthEvent.at > user_since], policy, now),
        _retry_after(session, [AuthEvent.type == "login_failed", AuthEvent.ip == ip, AuthEvent.at > since],
                     policy, now),
    ]
    found = [w for w in waits if w is not None]
    return max(found) if found else None


@dataclass(frozen=True)
class LoginOutcome:
    """A token, or the error to answer once the audit row of the failure is committed."""

    token: str | None = None
    user: User | None = None
    row: ApiToken | None = None
    error: ApiError | None = None


def login(session: Session, username: str, password: str, *, ip: str, now: datetime, policy: AuthPolicy,
          kind: str = "api", name: str = "login") -> LoginOutcome:
    """Check the password (throttled) and issue a token of ``kind`` ("api" or "session")."""
    key = username.strip().lower()[:150]
    wait = throttled(session, key, ip, policy, now)
    if wait is not None:
        audit(session, "login_throttled", now, username=key, ip=ip)
        return LoginOutcome(error=ApiError(429, "throttled", f"too many failed logins; try again in {wait} seconds",
                                           headers={"Retry-After": str(wait)}))
    user = session.exec(select(User).where(User.username == username.strip())).first()
    good = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not good or not user.active:
        audit(session, "login_failed", now, username=key, ip=ip,
              reason="inactive" if user is not None and good else "bad_credentials")
        return LoginOutcome(error=ApiError(401, "invalid_credentials", "wrong username or password"))
    lifetime = policy.session_lifetime if kind == "session" else policy.token_lifetime
    token, row = issue_token(session, user, now, name=name, kind=kind, lifetime=lifetime)
    user.last_login_at = now
    session.add(user)
    audit(session, "login_ok", now, username=key, actor=f"user:{user.username}", ip=ip, kind=kind)
    return LoginOutcome(token, user, row)


def token_json(row: ApiToken) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind, "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at), "last_used_at": iso(row.last_used_at),
            "revoked_at": iso(row.revoked_at)}


def list_tokens(session: Session, user: User) -> list[dict[str, Any]]:
    rows = session.exec(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())).all()  # type: ignore[union-attr]
    return [token_json(row) for row in rows]


def create_token(session: Session, user: User, name: str, days: float | None, *, ip: str, now: datetime,
                 policy: AuthPolicy) -> tuple[str, ApiToken]:
    lifetime = timedelta(days=days) if days else policy.token_lifetime
    token, row = issue_token(session, user, now, name=name, kind="api", lifetime=lifetime)
    audit(session, "token_created", now, username=user.username, actor=f"user:{user.username}", ip=ip,
          token_id=row.id, name=name)
    return token, row


def revoke_token(session: Session, user: User, token_id: int, *, ip: str, now: datetime) -> ApiToken | None:
    """Revoke one of the user's tokens (an admin may revoke anyone's); None if there is no such token."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role != "admin"):
        return None
    if row.revoked_at is None:
        row.revoked_at = now
        session.add(row)
        owner = session.get(User, row.user_id)
        audit(session, "token_revoked", now, username=owner.username if owner else None,
              actor=f"user:{user.username}", ip=ip, token_id=row.id, kind=row.kind)
    return row


# -- users -------------------------------------------------------------------------------------
def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role, "administration": user.administration,
            "language": user.language, "active": user.active, "created_at": iso(user.created_at),
            "last_login_at": iso(user.last_login_at)}


def list_users(session: Session) -> list[dict[str, Any]]:
    return [user_json(u) for u in session.exec(select(User).order_by(User.username)).all()]


def create_user(session: Session, admin: User, *, username: str, role: str, administration: str | None,
                password: str | None, language: str, known_administrations: set[str], ip: str,
                now: datetime) -> tuple[User, str | None]:
    """A new user; returns the generated password when none was given."""
    if role not in ROLES:
        raise ApiError(400, "invalid", f"role must be one of: {', '.join(ROLES)}", field="role")
    if role == "officer" and not administration:
        raise ApiError(400, "invalid", "an officer belongs to an administration", field="administration")
    if administration and administration not in known_administrations:
        raise ApiError(400, "invalid", "unknown administration; see the administrations directory",
                       field="administration")
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    if len(password) < 8:
        raise ApiError(400, "invalid", "the password must have at least 8 characters", field="password")
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise ApiError(409, "exists", f"user {username!r} already exists", field="username")
    user = User(username=username, role=role, administration=administration or None,
                password_hash=hash_password(password), language=language, created_at=now)
    session.add(user)
    session.flush()
    audit(session, "user_created", now, username=username, actor=f"user:{admin.username}", ip=ip, role=role,
          administration=administration)
    return user, generated


def set_active(session: Session, admin: User, username: str, active: bool, *, ip: str, now: datetime) -> User | None:
    """Deactivate (revoking every token and session) or reactivate a user."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        return None
    if user.active != active:
        user.active = active
        session.add(user)
        if not active:
            for row in session.exec(select(ApiToken).where(ApiToken.user_id == user.id,
                                                           ApiToken.revoked_at.is_(None))).all():  # type: ignore[union-attr]
                row.revoked_at = now
                session.add(row)
        audit(session, "user_activated" if active else "user_deactivated", now, username=username,
              actor=f"user:{admin.username}", ip=ip)
    return user
