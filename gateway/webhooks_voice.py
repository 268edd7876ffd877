"""``POST /webhooks/twilio/voice`` (and one sub-path per IVR step) and ``/webhooks/twilio/voice/status``.

Every request is verified (403 when forged) and parsed (400 when malformed); after that, no step
ever answers a 5xx to Twilio: a failure is logged and the caller hears an apology.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from channels.base import ForgedRequest, MalformedPayload
from channels.ivr.adapter import IvrAdapter, RecordingRefused, RecordingUnavailable
from channels.ivr.parse import parse_call_status, parse_step
from channels.ivr.render import VOICE_PATH, apology, empty, render
from conversations import ivr_dialogue
from conversations.calls import record_call_status
from conversations.ivr_dialogue import RecordingTarget
from conversations.ivr_options import ivr_options
from conversations.messages import VoiceStep
from gateway.context import Gateway
from gateway.http import GATEWAY, read_form
from gateway.metrics import MESSAGES_IN, WEBHOOK_LATENCY, WEBHOOK_REJECTED

log = logging.getLogger(__name__)

FALLBACK_APOLOGY = "Sorry, a technical problem occurred. Please call again later. Goodbye."


def _xml(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, content_type="text/xml", status=status)


def _apology(gw: Gateway) -> str:
    try:
        options = ivr_options(gw.config)
        speaker = ivr_dialogue.Speaker(gw.core, options, gw.config.default_language)
        say = speaker.say("error")
        return apology(say.text, say.language, say.voice)
    except Exception:  # the apology itself must never fail
        log.exception("could not render the IVR apology")
        return apology(FALLBACK_APOLOGY, "en-US", None)


async def _fetch_and_store(gw: Gateway, adapter: IvrAdapter, target: RecordingTarget | None) -> None:
    if target is None:
        return
    try:
        fetched = await adapter.fetch_recording(target.url, target.recording_sid)
    except RecordingRefused as exc:
        log.warning("recording %s not fetched: %s", target.recording_sid, exc)
        await gw.db.run(ivr_dialogue.recording_failed, gw.core, target, f"refused: {exc}")
        return
    except RecordingUnavailable as exc:
        log.warning("recording %s could not be fetched: %s", target.recording_sid, exc)
        await gw.db.run(ivr_dialogue.recording_failed, gw.core, target, f"unavailable: {exc}")
        return
    file_id = await gw.db.run(ivr_dialogue.store_recording, gw.core, target, fetched)
    if file_id is not None:
        log.info("recording %s stored as file %s (%d bytes)", target.recording_sid, file_id,
                 len(fetched.content or b""))


async def _recording(gw: Gateway, adapter: IvrAdapter, event: VoiceStep) -> str:
    target = await ivr_dialogue.complaint_recording(gw.core, event)
    await _fetch_and_store(gw, adapter, target)
    return empty()


async def _voicemail_recording(gw: Gateway, adapter: IvrAdapter, event: VoiceStep) -> str:
    target = await gw.db.run(ivr_dialogue.voicemail_target, gw.core, event)
    await _fetch_and_store(gw, adapter, target)
    return empty()


async def _transcription(gw: Gateway, adapter: IvrAdapter, event: VoiceStep) -> str:
    outcome = await ivr_dialogue.transcription(gw.core, event)
    log.info("call %s: transcription %s", event.call_sid, outcome)
    return empty()


CALLBACKS: dict[str, Callable[[Gateway, IvrAdapter, VoiceStep], Awaitable[str]]] = {
    "recording": _recording,
    "voicemail-recording": _voicemail_recording,
    "transcription": _transcription,
}


def _handler(step: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        gw = request.app[GATEWAY]
        adapter: IvrAdapter = gw.adapters["ivr"]  # type: ignore[assignment]
        form = await read_form(request)
        try:
            adapter.verify(request.path_qs, form, request.headers.get("X-Twilio-Signature"))
        except ForgedRequest as exc:
            WEBHOOK_REJECTED.labels("ivr", "forged").inc()
            log.warning("refused voice webhook %s: %s", step, exc)
            return web.Response(status=403, text=f"forbidden: {exc}\n")
        try:
            event = parse_step(form, gw.settings.country, gw.core.clock.now())
        except MalformedPayload as exc:
            WEBHOOK_REJECTED.labels("ivr", "malformed").inc()
            log.warning("malformed voice webhook %s: %s", step, exc)
            return web.Response(status=400, text=f"bad request: {exc}\n")
        try:
            if step in CALLBACKS:
                twiml = await CALLBACKS[step](gw, adapter, event)
            else:
                twiml = render(await ivr_dialogue.answer(gw.core, step, event), gw.settings.public_url)
            if step == "record" and event.recording is not None:
                MESSAGES_IN.labels("ivr", "stored").inc()
        except Exception:
            log.exception("voice step %s failed for call %s; the caller hears an apology", step, event.call_sid)
            twiml = _apology(gw) if step not in CALLBACKS else empty()
        WEBHOOK_LATENCY.labels("ivr").observe(time.perf_counter() - started)
        return _xml(twiml)
    return handle


async def call_status(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    adapter: IvrAdapter = gw.adapters["ivr"]  # type: ignore[assignment]
    form = await read_form(request)
    try:
        adapter.verify(request.path_qs, form, request.headers.get("X-Twilio-Signature"))
    except ForgedRequest as exc:
        WEBHOOK_REJECTED.labels("ivr_status", "forged").inc()
        log.warning("refused call status callback: %s", exc)
        return web.Response(status=403, text=f"forbidden: {exc}\n")
    try:
        update = parse_call_status(form, gw.settings.country, gw.core.clock.now())
    except MalformedPayload as exc:
        WEBHOOK_REJECTED.labels("ivr_status", "malformed").inc()
        log.warning("malformed call status callback: %s", exc)
        return web.Response(status=400, text=f"bad request: {exc}\n")
    try:
        outcome = await gw.db.run(record_call_status, gw.core, update)
        log.info("call %s: status %s (%s)", update.call_sid, update.status, outcome)
    except Exception:
        log.exception("could not record the status of call %s", update.call_sid)
    return _xml(empty())


def setup(app: web.Application) -> None:
    ivr_options(app[GATEWAY].config)  # a bad [channels.ivr] stops start-up here
    app.router.add_post(VOICE_PATH, _handler("start"))
    app.router.add_post(f"{VOICE_PATH}/status", call_status)
    for step in sorted(ivr_dialogue.STEPS - {"start"}):
        app.router.add_post(f"{VOICE_PATH}/{step}", _handler(step))
