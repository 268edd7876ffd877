"""The role matrix: every /api/v1 endpoint for every role — allowed, 404 for another
administration's officer, 403 for a role that may not, 401 without credentials."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.api.openapi import served
from gateway.auth import issue_token
from store.models import User
from tests.api.conftest import PASSWORD, USERS, ApiEnv, password_hash

ROLES = list(USERS)
EVERYONE = set(ROLES)
CASEWORK = {"officer", "branch_officer", "supervisor", "admin"}  # other_officer: 404 on this complaint
CALL_CENTRE = {"agent", "supervisor", "admin"}


@dataclass
class Endpoint:
    method: str
    path: str  # the route as the app declares it
    allowed: set[str]
    ok: int = 200
    body: Any = None
    complaint: bool = False  # scoped to the seeded complaint: other administrations get 404
    fresh: bool = False  # mutates the complaint: a new one per role
    public: bool = False
    query: str = ""


ENDPOINTS = [
    Endpoint("GET", "/api/v1/openapi.json", EVERYONE, public=True),
    Endpoint("POST", "/api/v1/auth/token", EVERYONE, body={"username": "sara", "password": PASSWORD}, public=True),
    Endpoint("DELETE", "/api/v1/auth/token", EVERYONE, ok=204),
    Endpoint("GET", "/api/v1/me", EVERYONE),
    Endpoint("GET", "/api/v1/tokens", EVERYONE),
    Endpoint("POST", "/api/v1/tokens", EVERYONE, ok=201, body={"name": "script"}),
    Endpoint("DELETE", "/api/v1/tokens/{id}", EVERYONE, ok=204),
    Endpoint("GET", "/api/v1/users", {"admin"}),
    Endpoint("POST", "/api/v1/users", {"admin"}, ok=201, body={"username": "new-{role}", "role": "agent"}),
    Endpoint("POST", "/api/v1/users/{username}/deactivate", {"admin"}),
    Endpoint("POST", "/api/v1/users/{username}/activate", {"admin"}),
    Endpoint("GET", "/api/v1/complaints", EVERYONE),
    Endpoint("POST", "/api/v1/complaints", CALL_CENTRE, ok=201,
             body={"text": "Coupure d'eau à Oran depuis hier", "phone": "0661000000", "channel": "walk_in"}),
    Endpoint("POST", "/api/v1/complaints/lookup", EVERYONE, body={"phone": "0612345678"}),
    Endpoint("GET", "/api/v1/complaints/{reference}", EVERYONE - {"other_officer"}, complaint=True),
    Endpoint("POST", "/api/v1/complaints/{reference}/status", CASEWORK, body={"status": "in_progress"},
             complaint=True, fresh=True),
    Endpoint("POST", "/api/v1/complaints/{reference}/replies", CASEWORK, ok=201, body={"text": "Nous intervenons"},
             complaint=True),
    Endpoint("POST", "/api/v1/complaints/{reference}/transfer", CASEWORK, complaint=True, fresh=True,
             body={"administration": "municipality", "reason": "not ours: the network in this street is communal"}),
    Endpoint("POST", "/api/v1/complaints/{reference}/notes", EVERYONE - {"other_officer"}, ok=201,
             body={"text": "called back, no answer"}, complaint=True),
    Endpoint("GET", "/api/v1/routing/corrections", {"supervisor", "admin"}),
    Endpoint("POST", "/api/v1/routing/suggest", EVERYONE, body={"text": "pas d'eau au robinet"}),
    Endpoint("GET", "/api/v1/calls", CALL_CENTRE),
    Endpoint("GET", "/api/v1/callbacks", CALL_CENTRE),
    Endpoint("POST", "/api/v1/complaints/{reference}/link", CASEWORK, complaint=True, fresh=True,
             body={"original": "{seed}"}),
    # Every officer sees the report of their own administration; agents do not see reports.
    Endpoint("GET", "/api/v1/reports/performance", EVERYONE - {"agent"}, query="?from=2026-01-01&to=2026-12-31"),
    Endpoint("POST", "/api/v1/citizens/export", {"admin"}, body={"phone": "0612345678"}),
    # Last: it erases the seeded citizen's personal data.
    Endpoint("POST", "/api/v1/citizens/erase", {"admin"}, body={"phone": "0612345678", "confirm": True}),
]


async def _seed(env: ApiEnv) -> str:
    return await env.intake("Pas d'eau au robinet depuis trois jours à Oran", who="supervisor", category="water",
                            place="oran")


async def _path(env: ApiEnv, ep: Endpoint, role: str | None, reference: str) -> tuple[str, dict[str, str]]:
    """The concrete path, and extra headers (a throwaway token for endpoints that revoke)."""
    path, headers = ep.path, {}
    if ep.complaint:
        path = path.replace("{reference}", reference)
    if "{username}" in path:
        path = path.replace("{username}", "spare")
    if "{id}" in path or (ep.path == "/api/v1/auth/token" and ep.method == "DELETE"):
        username = USERS[role or "agent"][0]
        with env.gw.db.session() as session:
            from sqlmodel import select

            from store.models import User

            user = session.exec(select(User).where(User.username == username)).one()
            token, row = issue_token(session, user, env.gw.core.clock.now(), name="throwaway")
        path = path.replace("{id}", str(row.id))
        if ep.method == "DELETE" and "{id}" not in ep.path and role is not None:
            headers["Authorization"] = f"Bearer {token}"
    return path, headers


async def test_role_matrix(api_env: ApiEnv) -> None:
    env = api_env
    with env.gw.db.session() as session:
        session.add(User(username="spare", role="agent", password_hash=password_hash()))
    covered = {(ep.path, ep.method.lower()) for ep in ENDPOINTS}
    missing = {pair for pair in served(env.client.server.app) if pair not in covered}
    callbacks_done = ("/api/v1/callbacks/{id}/done", "post")  # needs a callback task: see test_callback_done_roles
    assert missing - {callbacks_done} == set(), f"endpoints missing from the role matrix: {missing}"

    reference = await _seed(env)
    problems = []
    for ep in ENDPOINTS:
        for role in [None, *ROLES]:
            if role is None and ep.public:
                continue
            ref_for = await _seed(env) if ep.fresh and role is not None else reference
            path, headers = await _path(env, ep, role, ref_for)
            path += ep.query
            body = ep.body
            if isinstance(body, dict) and body.get("original") == "{seed}":
                body = {"original": reference}
            if isinstance(body, dict) and "username" in body and "{role}" in str(body.get("username")):
                body = {**body, "username": body["username"].replace("{role}", role or "none")}
            resp = await env.client.request(ep.method, path, json=body,
                                            headers={**env.headers(role), **headers} if role else headers)
            if role is None:
                expected = 401
            elif role in ep.allowed:
                expected = ep.ok
            elif ep.complaint and role == "other_officer" and "officer" in ep.allowed:
                expected = 404  # officers may do this, but not on another administration's complaint
            else:
                expected = 403
            if resp.status != expected:
                problems.append(f"{ep.method} {ep.path} as {role}: {resp.status} (expected {expected}) "
                                f"{(await resp.text())[:160]}")
            if resp.status >= 400 and resp.status != 204:
                data = await resp.json()
                assert set(data["error"]) >= {"code", "message"}, data
    assert not problems, "\n".join(problems)


async def test_callback_done_roles(api_env: ApiEnv) -> None:
    from conversations import calls

    env = api_env
    with env.gw.db.session() as session:
        task = calls.open_callback(session, caller="tel:+212612345678", reason="missed", now=env.gw.core.clock.now(),
                                   call_sid="CA1", language="fr")
        task_id = task.id
    path = f"/api/v1/callbacks/{task_id}/done"
    assert (await env.call(None, "POST", path))[0] == 401
    for role in ("officer", "other_officer"):
        assert (await env.call(role, "POST", path))[0] == 403
    status, body = await env.call("agent", "POST", path, {"note": "called back"})
    assert status == 200 and body["done_by"] == "amina"
