"""Logins, throttling, tokens (create, list, revoke), sessions with CSRF, users, the audit trail,
and ``gateway user add``."""
from __future__ import annotations


import subprocess
import sys
from datetime import timedelta

from sqlmodel import select

from conversations.clock import Clock
from gateway.auth import SESSION_COOKIE, csrf_token_for, issue_token
from store.models import ApiToken, User
from store.models_api import AuthEvent
from tests.api.conftest import PASSWORD, ApiEnv


def audit_types(env: ApiEnv) -> list[str]:
    with env.gw.db.session() as s:
        return [e.type for e in s.exec(select(AuthEvent).order_by(AuthEvent.id))]


async def test_login_token(api_env: ApiEnv) -> None:
    env = api_env
    status, body = await env.call(None, "POST", "/api/v1/auth/token", {"username": "omar", "password": PASSWORD})
    assert status == 200 and body["token"] and body["user"]["role"] == "officer"
    assert body["user"]["administration"] == "water_utility" and "password" not in str(body["user"])
    status, me = await env.call(None, "GET", "/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert status == 200 and me["username"] == "omar"
    status, bad = await env.call(None, "POST", "/api/v1/auth/token", {"username": "omar", "password": "wrong-pass"})
    assert status == 401 and bad["error"]["code"] == "invalid_credentials"
    status, bad = await env.call(None, "POST", "/api/v1/auth/token", {"username": "nobody", "password": "x"})
    assert status == 401 and bad["error"]["code"] == "invalid_credentials"
    status, bad = await env.call(None, "POST", "/api/v1/auth/token", {"username": "omar"})
    assert status == 400 and bad["error"]["field"] == "password"
    assert audit_types(env) == ["login_ok", "login_failed", "login_failed"]
    resp = await env.client.get("/api/v1/complaints")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["error"]["code"] == "unauthorized"
    for header in ("Bearer nonsense", "Basic b21hcjp4", "Bearer "):
        resp = await env.client.get("/api/v1/complaints", headers={"Authorization": header})
        assert resp.status == 401


async def test_throttling_per_username(api_factory) -> None:
    clock = Clock()
    env: ApiEnv = await api_factory(clock=clock)
    for _ in range(5):
        status, _body = await env.call(None, "POST", "/api/v1/auth/token", {"username": "omar", "password": "nope1234"})
        assert status == 401
    resp = await env.client.post("/api/v1/auth/token", json={"username": "omar", "password": PASSWORD})
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "throttled"
    retry_after = int(resp.headers["Retry-After"])
    assert 800 < retry_after <= 900
    clock.advance(timedelta(seconds=retry_after + 1))
    status, body = await env.call(None, "POST", "/api/v1/auth/token", {"username": "omar", "password": PASSWORD})
    assert status == 200
    assert audit_types(env) == ["login_failed"] * 5 + ["login_throttled", "login_ok"]


async def test_throttling_per_address(api_env: ApiEnv) -> None:
    env = api_env
    for i in range(5):
        status, _ = await env.call(None, "POST", "/api/v1/auth/token", {"username": f"guess{i}", "password": "x"})
        assert status == 401
    resp = await env.client.post("/api/v1/auth/token", json={"username": "sara", "password": PASSWORD})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


async def test_named_tokens_and_revocation(api_env: ApiEnv) -> None:
    env = api_env
    status, created = await env.call("supervisor", "POST", "/api/v1/tokens", {"name": "nightly export",
                                                                             "expires_in_days": 7})
    assert status == 201 and created["token"] and created["name"] == "nightly export"
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert (await env.call(None, "GET", "/api/v1/complaints", headers=bearer))[0] == 200
    status, listing = await env.call("supervisor", "GET", "/api/v1/tokens")
    assert {t["name"] for t in listing["items"]} >= {"nightly export", "test"}
    assert all("token" not in t for t in listing["items"])
    # another user cannot revoke it (and cannot tell it exists)
    assert (await env.call("agent", "DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 404
    assert (await env.call("supervisor", "DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 204
    status, body = await env.call(None, "GET", "/api/v1/complaints", headers=bearer)
    assert status == 401 and "revoked" in body["error"]["message"]
    status, listing = await env.call("supervisor", "GET", "/api/v1/tokens")
    assert [t["revoked_at"] for t in listing["items"] if t["id"] == created["id"]] != [None]
    # log out revokes the token used
    status, login = await env.call(None, "POST", "/api/v1/auth/token", {"username": "amina", "password": PASSWORD})
    own = {"Authorization": f"Bearer {login['token']}"}
    assert (await env.call(None, "DELETE", "/api/v1/auth/token", headers=own))[0] == 204
    assert (await env.call(None, "GET", "/api/v1/me", headers=own))[0] == 401
    assert (await env.call("agent", "GET", "/api/v1/me"))[0] == 200  # her other tokens still work
    # expiry
    env.gw.core.clock.advance(timedelta(days=31))
    assert (await env.call("agent", "GET", "/api/v1/me"))[0] == 401
    assert "token_created" in audit_types(env) and "token_revoked" in audit_types(env)


async def test_users_management(api_env: ApiEnv) -> None:
    env = api_env
    status, body = await env.call("admin", "POST", "/api/v1/users", {"username": "nadia", "role": "officer",
                                                                     "administration": "water_utility.oran"})
    assert status == 201 and body["password"] and body["administration"] == "water_utility.oran"
    generated = body["password"]
    for bad, field in (({"username": "x", "role": "officer"}, "administration"),
                       ({"username": "x", "role": "king"}, "role"),
                       ({"username": "x", "role": "officer", "administration": "nasa"}, "administration"),
                       ({"username": "x", "role": "agent", "password": "short"}, "password"),
                       ({"role": "agent"}, "username")):
        status, answer = await env.call("admin", "POST", "/api/v1/users", bad)
        assert status == 400 and answer["error"]["field"] == field, (bad, answer)
    status, answer = await env.call("admin", "POST", "/api/v1/users", {"username": "nadia", "role": "agent"})
    assert status == 409
    status, login = await env.call(None, "POST", "/api/v1/auth/token", {"username": "nadia", "password": generated})
    assert status == 200
    bearer = {"Authorization": f"Bearer {login['token']}"}
    status, users = await env.call("admin", "GET", "/api/v1/users")
    assert "nadia" in {u["username"] for u in users["items"]} and all("password" not in u for u in users["items"])
    status, body = await env.call("admin", "POST", "/api/v1/users/nadia/deactivate")
    assert status == 200 and body["active"] is False
    assert (await env.call(None, "GET", "/api/v1/me", headers=bearer))[0] == 401
    status, _ = await env.call(None, "POST", "/api/v1/auth/token", {"username": "nadia", "password": generated})
    assert status == 401
    assert (await env.call("admin", "POST", "/api/v1/users/ghost/deactivate"))[0] == 404
    assert (await env.call("admin", "POST", "/api/v1/users/nadia/activate"))[1]["active"] is True
    with env.gw.db.session() as s:
        events = s.exec(select(AuthEvent).where(AuthEvent.username == "nadia").order_by(AuthEvent.id)).all()
        assert [(e.type, e.actor) for e in events if e.type.startswith("user_")] == [
            ("user_created", "user:adam"), ("user_deactivated", "user:adam"), ("user_activated", "user:adam")]


async def test_session_cookie_needs_csrf(api_env: ApiEnv) -> None:
    env = api_env
    with env.gw.db.session() as s:
        user = s.exec(select(User).where(User.username == "sara")).one()
        session_token, _ = issue_token(s, user, env.gw.core.clock.now(), kind="session", name="console")
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran")
    cookie = {"Cookie": f"{SESSION_COOKIE}={session_token}"}
    assert (await env.call(None, "GET", f"/api/v1/complaints/{reference}", headers=cookie))[0] == 200
    path = f"/api/v1/complaints/{reference}/notes"
    status, body = await env.call(None, "POST", path, {"text": "x"}, headers=cookie)
    assert status == 403 and body["error"]["code"] == "csrf"
    status, body = await env.call(None, "POST", path, {"text": "x"}, headers={**cookie, "X-CSRF-Token": "forged"})
    assert status == 403
    other_session_csrf = csrf_token_for("another-session")
    assert (await env.call(None, "POST", path, {"text": "x"}, headers={**cookie, "X-CSRF-Token": other_session_csrf}
                           ))[0] == 403
    status, body = await env.call(None, "POST", path, {"text": "checked"},
                                  headers={**cookie, "X-CSRF-Token": csrf_token_for(session_token)})
    assert status == 201
    # a session token is not a bearer token, and an API token is not a session cookie
    assert (await env.call(None, "GET", "/api/v1/me", headers={"Authorization": f"Bearer {session_token}"}))[0] == 401
    assert (await env.call(None, "GET", "/api/v1/me",
                           headers={"Cookie": f"{SESSION_COOKIE}={env.tokens['supervisor']}"}))[0] == 401


def test_cli_user_add(tmp_path, sqlite_url) -> None:
    env = {"GATEWAY_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "gateway", "user", "add"]
    given = subprocess.run([*cmd, "--username", "root", "--role", "admin"], input="a-long-secret-password\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert given.returncode == 0, given.stderr
    assert "user root created with role admin" in given.stdout and "password:" not in given.stdout
    generated = subprocess.run([*cmd, "--username", "omar", "--role", "officer", "--administration", "water_utility"],
                               input="", capture_output=True, text=True, env=env, timeout=60)
    assert generated.returncode == 0 and "password: " in generated.stdout
    no_admin = subprocess.run([*cmd, "--username", "x", "--role", "officer"], input="", capture_output=True,
                              text=True, env=env, timeout=60)
    assert no_admin.returncode == 1 and "administration" in no_admin.stderr
    unknown = subprocess.run([*cmd, "--username", "y", "--role", "officer", "--administration", "nasa"], input="",
                             capture_output=True, text=True, env=env, timeout=60)
    assert unknown.returncode == 2 and "nasa" in unknown.stderr
    again = subprocess.run([*cmd, "--username", "root", "--role", "admin"], input="another-password\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr
    from gateway.users import verify_password
    from store.db import Database

    db = Database(sqlite_url)
    try:
        with db.session() as s:
            root = s.exec(select(User).where(User.username == "root")).one()
            assert root.role == "admin" and root.password_hash.startswith("$argon2")
            assert verify_password(root.password_hash, "a-long-secret-password")
            assert s.exec(select(ApiToken)).all() == []
    finally:
        db.close()

