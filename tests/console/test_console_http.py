"""The console over plain HTTP: login (with its CSRF token and throttling), sessions, CSRF on
every form, roles and scoping, language and direction, escaping, the live endpoints."""
from __future__ import annotations

import re

from aiohttp import ClientSession
from sqlmodel import select

from gateway.auth import SESSION_COOKIE
from store.models import ApiToken
from tests.api.conftest import PASSWORD, ApiEnv

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')


async def login(env: ApiEnv, username: str, password: str = PASSWORD) -> tuple[ClientSession, int]:
    """A separate cookie jar per person; returns the session and the login POST status."""
    session = ClientSession(base_url=str(env.client.make_url("/")), cookie_jar=_jar())
    page = await (await session.get("/console/login")).text()
    nonce = LOGIN_CSRF.search(page).group(1)
    resp = await session.post("/console/login", data={"username": username, "password": password,
                                                      "login_csrf": nonce, "next": "/console/queue"},
                              allow_redirects=False)
    return session, resp.status


def _jar():  # type: ignore[no-untyped-def]
    from aiohttp import CookieJar

    return CookieJar(unsafe=True)


async def test_login_session_cookie_and_logout(api_env: ApiEnv) -> None:
    env = api_env
    anonymous = await env.client.get("/console/queue", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/console/login?next=")
    session, status = await login(env, "omar")
    try:
        assert status == 303
        cookie = [c for c in session.cookie_jar if c.key == SESSION_COOKIE][0]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert not cookie["secure"]  # GATEWAY_PUBLIC_URL is http here; see test_secure_cookie_behind_https
        page = await session.get("/console/queue")
        html = await page.text()
        assert page.status == 200 and "omar" in html and 'dir="ltr"' in html
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        csrf = CSRF.search(html).group(1)
        # the session cookie also authenticates the API (reads freely, writes with the CSRF header)
        assert (await session.get("/api/v1/me")).status == 200
        resp = await session.post("/console/logout", data={}, allow_redirects=False)
        assert resp.status == 403  # no CSRF token
        resp = await session.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
        assert resp.status == 303
        assert (await session.get("/api/v1/me")).status == 401
        with env.gw.db.session() as s:
            sessions = s.exec(select(ApiToken).where(ApiToken.kind == "session")).all()
            assert len(sessions) == 1 and sessions[0].revoked_at is not None
    finally:
        await session.close()


async def test_login_errors_and_throttling(api_env: ApiEnv) -> None:
    env = api_env
    session = ClientSession(base_url=str(env.client.make_url("/")), cookie_jar=_jar())
    try:
        # a login form posted without its own CSRF token (login CSRF) is refused
        resp = await session.post("/console/login", data={"username": "omar", "password": PASSWORD})
        assert resp.status == 403
    finally:
        await session.close()
    for _ in range(5):
        s, status = await login(env, "omar", "wrong-password")
        await s.close()
        assert status == 401
    s, status = await login(env, "omar")
    await s.close()
    assert status == 429


async def test_every_form_needs_the_csrf_token(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran")
    session, _ = await login(env, "sara")
    try:
        html = await (await session.get(f"/console/complaints/{reference}")).text()
        csrf = CSRF.search(html).group(1)
        forms = [(f"/console/complaints/{reference}/reply", {"text": "bonjour"}),
                 (f"/console/complaints/{reference}/note", {"text": "note"}),
                 (f"/console/complaints/{reference}/status", {"status": "in_progress"}),
                 (f"/console/complaints/{reference}/transfer", {"reason": "x"}),
                 ("/console/intake", {"text": "x", "phone": "0612345678", "channel": "phone"}),
                 ("/console/search", {"phone": "0612345678"}),
                 ("/console/users", {"username": "x", "role": "agent"}),
                 ("/console/tokens", {"name": "x"}),
                 ("/console/logout", {})]
        for path, data in forms:
            for token in (None, "0" * 64):
                body = dict(data, **({"csrf_token": token} if token else {}))
                resp = await session.post(path, data=body, allow_redirects=False)
                assert resp.status == 403, (path, token, resp.status)
        status, detail = await env.call("supervisor", "GET", f"/api/v1/complaints/{reference}")
        assert [e["type"] for e in detail["events"]] == ["created", "routed"]  # nothing happened
        resp = await session.post(f"/console/complaints/{reference}/note", data={"text": "ok", "csrf_token": csrf},
                                  allow_redirects=False)
        assert resp.status == 303
    finally:
        await session.close()


async def test_officer_scope_and_roles_in_the_console(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran")
    other, _ = await login(env, "malik")
    agent, _ = await login(env, "amina")
    try:
        assert (await other.get(f"/console/complaints/{reference}")).status == 404
        html = await (await other.get("/console/queue")).text()
        assert reference not in html
        html = await (await agent.get(f"/console/complaints/{reference}")).text()
        assert 'id="reply-form"' not in html and 'id="note-form"' in html  # agents note, officers reply
        csrf = CSRF.search(html).group(1)
        resp = await agent.post(f"/console/complaints/{reference}/reply", data={"text": "x", "csrf_token": csrf})
        assert resp.status == 403
        assert (await agent.get("/console/users")).status == 403
        assert (await other.get("/console/intake")).status == 403
    finally:
        await other.close()
        await agent.close()


async def test_languages_direction_and_escaping(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake('<script>alert("x")</script> pas d\'eau à Oran', phone="0612345678")
    session, _ = await login(env, "omar")
    try:
        resp = await session.get("/console/lang/ar?next=/console/queue", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/console/queue"
        html = await (await session.get(f"/console/complaints/{reference}")).text()
        assert '<html lang="ar" dir="rtl">' in html and "المحادثة" in html
        assert "<script>alert" not in html and "&lt;script&gt;alert" in html
        await session.get("/console/lang/en?next=https://evil.example/")
        html = await (await session.get("/console/queue")).text()
        assert '<html lang="en" dir="ltr">' in html and "Inbox" in html
        resp = await session.get("/console/lang/fr?next=//evil.example/x", allow_redirects=False)
        assert resp.headers["Location"] == "/console/"
        live = await session.get(f"/console/complaints/{reference}/live")
        data = await live.json()
        assert data["version"] and "&lt;script&gt;" in data["timeline"]
        same = await (await session.get(f"/console/complaints/{reference}/live?v={data['version']}")).json()
        assert same == {"version": data["version"]}
        await env.call("officer", "POST", f"/api/v1/complaints/{reference}/notes", {"text": "nouvelle note"})
        changed = await (await session.get(f"/console/complaints/{reference}/live?v={data['version']}")).json()
        assert changed["version"] != data["version"] and "nouvelle note" in changed["timeline"]
        queue = await (await session.get("/console/queue/live?view=inbox")).json()
        assert reference in queue["html"] and queue["total"] == 1
    finally:
        await session.close()


async def test_intake_form_and_phone_lookup(api_env: ApiEnv, fake_twilio) -> None:  # type: ignore[no-untyped-def]
    env = api_env
    session, _ = await login(env, "amina")
    try:
        html = await (await session.get("/console/intake")).text()
        csrf = CSRF.search(html).group(1)
        form_id = re.search(r'name="form_id" value="([^"]+)"', html).group(1)
        bad = await session.post("/console/intake", data={"csrf_token": csrf, "form_id": form_id, "text": "x",
                                                          "phone": "12", "channel": "phone"})
        assert bad.status == 400 and 'data-field="phone"' in await bad.text()
        data = {"csrf_token": csrf, "form_id": form_id, "text": "Pas d'eau au robinet depuis trois jours à Oran",
                "phone": "0612345678", "channel": "walk_in", "kind": "complaint", "consent_sms": "on"}
        first = await session.post("/console/intake", data=data, allow_redirects=False)
        again = await session.post("/console/intake", data=data, allow_redirects=False)  # double click
        assert first.status == again.status == 303
        assert first.headers["Location"] == again.headers["Location"]
        assert first.headers["Location"].endswith("?done=intake_sent")
        status, page = await env.call("agent", "GET", "/api/v1/complaints")
        assert page["total"] == 1 and page["items"][0]["channel"] == "walk_in"
        html = await (await session.post("/console/search", data={"csrf_token": csrf, "phone": "+212612345678"})).text()
        assert page["items"][0]["reference"] in html
        html = await (await session.get("/console/queue")).text()  # the agent's queue: calls and callbacks
        assert 'id="calls-panel"' in html and 'id="callbacks-panel"' in html
    finally:
        await session.close()


async def test_secure_cookie_behind_https(api_factory) -> None:  # type: ignore[no-untyped-def]
    env = await api_factory()  # GATEWAY_PUBLIC_URL=https://gateway.example.org
    page = await env.client.get("/console/login")
    nonce = LOGIN_CSRF.search(await page.text()).group(1)
    resp = await env.client.post("/console/login", allow_redirects=False,
                                 data={"username": "omar", "password": PASSWORD, "login_csrf": nonce},
                                 headers={"Cookie": f"gw_login_csrf={nonce}"})
    assert resp.status == 303
    set_cookie = [h for h in resp.headers.getall("Set-Cookie") if h.startswith(SESSION_COOKIE + "=")][0]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
