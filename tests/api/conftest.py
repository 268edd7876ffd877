"""An API test environment: a gateway on the test database, its HTTP client, one user per role
(and officers of two administrations and of a regional branch), each with a bearer token."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.auth import issue_token
from gateway.context import Gateway
from gateway.users import hash_password
from store.models import User
from tests.support.recording_adapter import RecordingAdapter

# Water in Oran goes to the Oran branch of the water utility.
BRANCHES = {"administrations": {"water_utility": {"branches": {"oran": {
    "name": {"fr": "Régie de l'eau - Oran", "en": "Water utility - Oran", "ar": "الماء - وهران"}}}}}}
USERS = {
    "agent": ("amina", "agent", None),
    "officer": ("omar", "officer", "water_utility"),  # national: sees its branches too
    "branch_officer": ("olga", "officer", "water_utility.oran"),
    "other_officer": ("malik", "officer", "municipality"),
    "supervisor": ("sara", "supervisor", None),
    "admin": ("adam", "admin", None),
}
PASSWORD = "correct horse battery"


@dataclass
class ApiEnv:
    gw: Gateway
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    telegram: RecordingAdapter | None = None
    email: RecordingAdapter | None = None

    def headers(self, who: str | None, **extra: str) -> dict[str, str]:
        out = dict(extra)
        if who is not None:
            out["Authorization"] = f"Bearer {self.tokens[who]}"
        return out

    async def call(self, who: str | None, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        resp = await self.client.request(method, path, json=json, headers=self.headers(who, **(headers or {})))
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()

    async def intake(self, text: str, phone: str = "0612345678", who: str = "agent", **extra: Any) -> str:
        status, body = await self.call(who, "POST", "/api/v1/complaints",
                                       {"text": text, "phone": phone, "channel": "phone", **extra})
        assert status == 201, body
        return body["reference"]


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is deliberately slow: hash once per test session


def add_users(gw: Gateway) -> dict[str, str]:
    tokens = {}
    with gw.db.session() as session:
        for key, (username, role, admin) in USERS.items():
            user = User(username=username, role=role, administration=admin, password_hash=password_hash(),
                        language="fr")
            session.add(user)
            session.flush()
            tokens[key], _ = issue_token(session, user, gw.core.clock.now(), name="test")
    return tokens


@pytest.fixture
def api_factory(db_url, make_gateway, start_client):  # type: ignore[no-untyped-def]
    """Build an ``ApiEnv``; keyword arguments go to ``make_gateway`` (clock, config_overrides…)."""

    async def build(config_overrides: dict[str, Any] | None = None, **kwargs: Any) -> ApiEnv:
        telegram, email = RecordingAdapter("telegram"), RecordingAdapter("email")
        overrides = {**BRANCHES, **(config_overrides or {})}
        gw = make_gateway(db_url, config_overrides=overrides, adapters={"telegram": telegram, "email": email},
                          **kwargs)
        client = await start_client(gw)
        return ApiEnv(gw, client, add_users(gw), telegram, email)

    return build


@pytest.fixture
async def api_env(api_factory) -> ApiEnv:  # type: ignore[no-untyped-def]
    return await api_factory()
