"""``POST /webhooks/twilio/sms`` and ``/webhooks/twilio/sms/status``."""
from __future__ import annotations

import logging
import time

from aiohttp import web

from channels.base import ForgedRequest, MalformedPayload
from channels.sms.adapter import SmsAdapter
from channels.sms.parse import STATUS_RANK, parse_inbound, parse_status
from channels.sms.render import empty_twiml
from conversations.core import IngestBacklogFull
from conversations.receipts import record_status
from gateway.http import GATEWAY, overloaded, read_form, unavailable
from gateway.metrics import DELIVERY_STATUS, MESSAGES_IN, WEBHOOK_LATENCY, WEBHOOK_REJECTED

log = logging.getLogger(__name__)


def _twiml(status: int = 200) -> web.Response:
    return web.Response(text=empty_twiml(), content_type="text/xml", status=status)


async def inbound(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    adapter: SmsAdapter = gw.adapters["sms"]  # type: ignore[assignment]
    form = await read_form(request)
    try:
        adapter.verify(request.path_qs, form, request.headers.get("X-Twilio-Signature"))
    except ForgedRequest as exc:
        WEBHOOK_REJECTED.labels("sms", "forged").inc()
        log.warning("refused SMS webhook: %s", exc)
        return web.Response(status=403, text=f"forbidden: {exc}\n")
    try:
        message = parse_inbound(form, gw.settings.country, gw.core.clock.now())
    except MalformedPayload as exc:
        WEBHOOK_REJECTED.labels("sms", "malformed").inc()
        log.warning("malformed SMS webhook: %s", exc)
        return web.Response(status=400, text=f"bad request: {exc}\n")
    try:
        result = await gw.core.ingest(message, shed=True)
    except IngestBacklogFull as exc:
        WEBHOOK_REJECTED.labels("sms", "overloaded").inc()
        log.warning("SMS webhook shed: %s", exc)
        return overloaded()
    except Exception as exc:
        log.exception("could not store an inbound SMS; Twilio will retry")
        return unavailable(exc)
    MESSAGES_IN.labels("sms", "duplicate" if result.duplicate else "stored").inc()
    WEBHOOK_LATENCY.labels("sms").observe(time.perf_counter() - started)
    return _twiml()


async def status(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    adapter: SmsAdapter = gw.adapters["sms"]  # type: ignore[assignment]
    form = await read_form(request)
    try:
        adapter.verify(request.path_qs, form, request.headers.get("X-Twilio-Signature"))
    except ForgedRequest as exc:
        WEBHOOK_REJECTED.labels("sms_status", "forged").inc()
        return web.Response(status=403, text=f"forbidden: {exc}\n")
    try:
        update = parse_status(form)
    except MalformedPayload as exc:
        WEBHOOK_REJECTED.labels("sms_status", "malformed").inc()
        return web.Response(status=400, text=f"bad request: {exc}\n")
    try:
        outcome = await gw.db.run(record_status, gw.core, "sms", update.provider_message_id, update.status,
                                  update.error_code, STATUS_RANK)
    except Exception as exc:
        log.exception("could not record an SMS status callback")
        return unavailable(exc)
    DELIVERY_STATUS.labels("sms", update.status).inc()
    if outcome == "unknown":
        log.info("status callback for an unknown SMS %s ignored", update.provider_message_id)
    return _twiml()


def setup(app: web.Application) -> None:
    app.router.add_post("/webhooks/twilio/sms", inbound)
    app.router.add_post("/webhooks/twilio/sms/status", status)
