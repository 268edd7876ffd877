"""Shared fixtures: both databases, the fake Twilio API, a running gateway app, signed requests."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from config.loader import load_config
from config.settings import load_settings
from conversations.clock import Clock
from gateway.app import create_app
from gateway.context import Gateway, build_gateway
from tests.support.db import SqliteTemplate, create_pg_database, drop_pg_database, service_missing, truncate_all
from tests.support.fake_twilio import FakeTwilio

PUBLIC_URL = "https://gateway.example.org"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "test-auth-token-0123456789abcdef"
SMS_NUMBER = "+212522000000"



@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def pg_database() -> Any:
    from store.migrate import upgrade

    try:
        url = create_pg_database()
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: SqliteTemplate) -> str:
    """A migrated, empty database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_template.fresh(tmp_path / "gateway.sqlite3")
    url = request.getfixturevalue("pg_database")
    truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: SqliteTemplate) -> str:
    """For tests that are not about the database: SQLite only."""
    return sqlite_template.fresh(tmp_path / "gateway.sqlite3")


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = await FakeTwilio(TWILIO_SID).start()
    yield fake
    await fake.stop()


@pytest.fixture
def make_gateway(fake_twilio: FakeTwilio) -> Callable[..., Gateway]:
    """Build a gateway on a given database with the fake Twilio; keyword overrides go to Settings."""
    built: list[Gateway] = []

    def make(database_url: str, clock: Clock | None = None, config_overrides: dict[str, Any] | None = None,
             adapters: dict[str, Any] | None = None, **overrides: Any) -> Gateway:
        """``adapters`` (e.g. test doubles for channels not built here) are added to the registry's."""
        values: dict[str, Any] = dict(
            database_url=database_url, public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
            twilio_auth_token=TWILIO_TOKEN, twilio_api_base=fake_twilio.base_url, sms_number=SMS_NUMBER,
            country="MA",
        )
        values.update(overrides)
        settings = load_settings(**values)
        config = load_config(settings.config, overrides=config_overrides)
        if adapters:
            from channels.registry import build_adapters

            adapters = {**build_adapters(settings, config), **adapters}
        gateway = build_gateway(settings, config, clock=clock, adapters=adapters)
        built.append(gateway)
        return gateway

    yield make  # type: ignore[misc]
    for gateway in built:
        gateway.db.close()


@pytest.fixture
async def start_client() -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """Serve a gateway's app (with its background tasks) on 127.0.0.1 and return a client."""
    clients: list[TestClient] = []

    async def start(gateway: Gateway, background: bool = True) -> TestClient:
        client = TestClient(TestServer(create_app(gateway, background=background), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def twilio_signature(path: str, params: dict[str, str], token: str = TWILIO_TOKEN, base: str = PUBLIC_URL) -> str:
    return RequestValidator(token).compute_signature(base + path, params)


async def post_signed(client: TestClient, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN,
                      signature: str | None = None, base: str = PUBLIC_URL) -> Any:
    """POST a form as Twilio does, signed with Twilio's own validator."""
    sig = signature if signature is not None else twilio_signature(path, params, token, base)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sig:
        headers["X-Twilio-Signature"] = sig
    return await client.post(path, data=urlencode(params), headers=headers)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
