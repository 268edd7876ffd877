"""``POST /webhooks/telegram``: Telegram Updates, authenticated by the secret token.

The secret is checked before anything is parsed (403 otherwise); a body that is not an Update
is refused with 400 and the reason; a genuine but unsupported Update is answered 200 and
logged, so Telegram does not redeliver it. Everything is persisted before the 200.
"""
from __future__ import annotations

import logging
import time

from aiohttp import web

from channels.base import ForgedRequest, MalformedPayload
from channels.telegram.adapter import TelegramAdapter
from channels.telegram.parse import ParsedUpdate, parse_update
from conversations.chat_dialogue import answer_group, apply_edit, is_duplicate_update, set_reachability
from conversations.core import IngestBacklogFull
from gateway.http import GATEWAY, overloaded, unavailable
from gateway.metrics import MESSAGES_IN, WEBHOOK_LATENCY, WEBHOOK_REJECTED

log = logging.getLogger(__name__)

ROUTE = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FETCHER = "telegram_fetcher"


def _ok() -> web.Response:
    return web.Response(status=200, text="ok\n")


async def updates(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    adapter: TelegramAdapter | None = gw.adapters.get("telegram")  # type: ignore[assignment]
    if adapter is None:
        return web.Response(status=404, text="the Telegram channel is not configured\n")
    try:
        adapter.verify(request.headers.get(SECRET_HEADER))
    except ForgedRequest as exc:
        WEBHOOK_REJECTED.labels(ROUTE, "forged").inc()
        log.warning("refused Telegram webhook: %s", exc)
        return web.Response(status=403, text=f"forbidden: {exc}\n")
    body = await request.read()
    try:
        parsed = parse_update(body, received_at=gw.core.clock.now(), service_address=adapter.service_address)
    except MalformedPayload as exc:
        WEBHOOK_REJECTED.labels(ROUTE, "malformed").inc()
        log.warning("malformed Telegram update: %s", exc)
        return web.Response(status=400, text=f"bad request: {exc}\n")
    try:
        outcome = await _handle(request, parsed)
    except IngestBacklogFull as exc:
        WEBHOOK_REJECTED.labels(ROUTE, "overloaded").inc()
        log.warning("Telegram update %s shed: %s", parsed.update_id, exc)
        return overloaded()
    except Exception as exc:
        log.exception("could not store Telegram update %s; Telegram will redeliver it", parsed.update_id)
        return unavailable(exc)
    MESSAGES_IN.labels(ROUTE, outcome).inc()
    WEBHOOK_LATENCY.labels(ROUTE).observe(time.perf_counter() - started)
    return _ok()


async def _handle(request: web.Request, parsed: ParsedUpdate) -> str:
    gw = request.app[GATEWAY]
    core = gw.core
    if parsed.kind == "ignored":
        log.info("Telegram update %s ignored: %s", parsed.update_id, parsed.reason)
        return "ignored"
    if await gw.db.run(is_duplicate_update, core, parsed.update_id):
        return "duplicate"
    if parsed.kind == "group":
        assert parsed.chat_id is not None
        ids = await gw.db.run(answer_group, core, parsed.update_id, parsed.chat_id, parsed.message_id,
                              parsed.language_code)
        core.outbox_committed(ids)
        log.info("Telegram message in a %s chat: answered with a pointer to a private chat", parsed.chat_type)
        return "group"
    if parsed.kind == "member":
        assert parsed.sender is not None
        return await gw.db.run(set_reachability, core, parsed.update_id, parsed.sender,
                               str(parsed.meta.get("status")))
    assert parsed.message is not None
    if parsed.kind == "edit":
        edited = await gw.db.run(apply_edit, core, parsed.message)
        if edited.outcome != "unknown":
            return "edit_" + edited.outcome
        # We never stored the original: the edited text is a message like any other.
    result = await core.ingest(parsed.message, shed=True)
    if parsed.message.attachments and not result.duplicate:
        fetcher = gw.extras.get(FETCHER)
        if fetcher is not None:
            fetcher.wake()
    return "duplicate" if result.duplicate else "stored"


def setup(app: web.Application) -> None:
    app.router.add_post("/webhooks/telegram", updates)
