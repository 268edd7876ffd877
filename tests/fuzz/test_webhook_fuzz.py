"""Arbitrary forms and updates through the real webhooks, validly signed: the answer is 200 or 400
(never a 5xx, which would make the provider retry forever), on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from tests.conftest import twilio_signature
from tests.fuzz.test_pure_parsers import FORMS, JSON, telegram_updates
from tests.support.ivr import call_params, new_sid
from tests.support.telegram_updates import SECRET, fresh

WEB = settings(max_examples=120, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Served:
    """The gateway's app on its own event loop in a thread, for synchronous Hypothesis tests."""

    def __init__(self, gateway: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(create_app(gateway, background=False))
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def post_form(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        return self.post(path, urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_signature(path, form)})

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def served(db_url: str, make_tg: Any) -> Iterator[Served]:
    server = Served(make_tg(db_url))
    yield server
    server.stop()


def _ok(status: int, body: str) -> None:
    assert status in (200, 400), f"{status}: {body[:300]}"


SMS_BASE = {"MessageSid": "SM" + "1" * 32, "From": "+212612345678", "To": "+212522000000", "Body": "x",
            "NumMedia": "0", "AccountSid": "AC" + "1" * 32}
_counter = iter(range(10**9))


@WEB
@given(st.one_of(FORMS, FORMS.map(lambda extra: {**SMS_BASE, "MessageSid": f"SM{next(_counter):032d}", **extra})))
def test_sms_webhook_never_5xx(served: Served, form: dict[str, str]) -> None:
    _ok(*served.post_form("/webhooks/twilio/sms", form))
    _ok(*served.post_form("/webhooks/twilio/sms/status", form))


@WEB
@given(st.sampled_from(["", "/menu", "/language", "/category", "/record", "/recording", "/transcription",
                        "/status", "/nope"]), FORMS)
def test_voice_webhooks_never_5xx(served: Served, step: str, extra: dict[str, str]) -> None:
    form = {**call_params("incoming_call", new_sid("CA")), **extra}
    status, body = served.post_form("/webhooks/twilio/voice" + step, form)
    assert status in (200, 400, 404, 405), f"{status}: {body[:300]}"


@WEB
@given(st.one_of(telegram_updates(), JSON, st.sampled_from(["private_text", "photo", "callback_query", "voice",
                                                             "contact", "location", "document"]).map(fresh)))
def test_telegram_webhook_never_5xx(served: Served, update: Any) -> None:
    if isinstance(update, dict) and "update_id" in update and isinstance(update["update_id"], int):
        update["update_id"] = 10**6 + next(_counter)
    _ok(*served.post("/webhooks/telegram", json.dumps(update).encode(), {
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}))
