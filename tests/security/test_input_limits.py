"""Input limits: body size (also after decompression), field lengths, media counts; each answered
with a clear error (413/400) and logged without personal data."""
from __future__ import annotations

import gzip
import logging
from urllib.parse import urlencode

import pytest

from channels.sms.parse import MAX_BODY, MAX_MEDIA
from gateway.app import MAX_BODY as MAX_REQUEST
from tests.channels.sms.test_sms_flow import CITIZEN, sms
from tests.conftest import post_signed, twilio_signature
from tests.support.telegram_updates import SECRET

SMS = "/webhooks/twilio/sms"


async def test_oversized_body_is_413_with_a_clear_message_and_logged(sqlite_url, make_gateway, start_client,
                                                                      caplog) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = sms("x" * (MAX_REQUEST + 10))
    with caplog.at_level(logging.WARNING):
        resp = await post_signed(client, SMS, params)
    assert resp.status == 413
    assert "too large" in await resp.text() and "KiB" in await resp.text()
    assert any("body larger than" in r.getMessage() for r in caplog.records)
    assert CITIZEN[4:] not in caplog.text


async def test_compressed_bomb_is_413(sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = sms("a" * 100)
    body = gzip.compress(urlencode(params).encode() + b"&Pad=" + b"0" * (8 * MAX_REQUEST))
    assert len(body) < 100_000
    resp = await client.post(SMS, data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip",
        "X-Twilio-Signature": twilio_signature(SMS, params)})
    assert resp.status == 413


async def test_telegram_oversized_update_is_413(sqlite_url, make_tg, start_client) -> None:
    client = await start_client(make_tg(sqlite_url), background=False)
    resp = await client.post("/webhooks/telegram", data=b'{"update_id": 1, "x": "' + b"y" * (MAX_REQUEST + 1) + b'"}',
                             headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert resp.status == 413


@pytest.mark.parametrize("field, value, reason", [
    ("Body", "x" * (MAX_BODY + 1), "Body is longer"),
    ("From", "+2126" + "1" * 70, "From is longer"),
    ("MessageSid", "SM" + "1" * 70, "MessageSid is longer"),
    ("NumMedia", str(MAX_MEDIA + 1), "NumMedia must be between"),
    ("NumMedia", "-1", "NumMedia must be between"),
    ("NumMedia", "many", "NumMedia must be a number"),
    ("From", "not a number", "not a phone number"),
])
async def test_field_limits_are_400_with_the_reason(field, value, reason, sqlite_url, make_gateway,
                                                    start_client, caplog) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = {**sms("Pas d'eau"), field: value}
    with caplog.at_level(logging.WARNING):
        resp = await post_signed(client, SMS, params)
    assert resp.status == 400
    assert reason in await resp.text()
    assert any("malformed SMS webhook" in r.getMessage() for r in caplog.records)


async def test_media_url_length_is_limited(sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = {**sms(""), "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/" + "a" * 3000,
              "MediaContentType0": "image/jpeg"}
    resp = await post_signed(client, SMS, params)
    assert resp.status == 400 and "MediaUrl0" in await resp.text()
