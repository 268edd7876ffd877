"""The pure SMS parser, from recorded Twilio forms."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from channels.base import MalformedPayload
from channels.sms.parse import normalise_number, parse_inbound, parse_status

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def load(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_text_message() -> None:
    msg = parse_inbound(load("inbound_text.json"), "MA", NOW)
    assert msg.channel == "sms"
    assert msg.provider_message_id == "SM5f1b0c1e2d3a4b5c6d7e8f9a0b1c2d3e"
    assert msg.sender == "tel:+212612345678"
    assert msg.service_address == "+212522000000"
    assert msg.text.startswith("Salam, lma")
    assert msg.kind == "text" and msg.attachments == ()
    assert msg.received_at == NOW
    assert "Body" not in msg.raw


def test_mms_media_only() -> None:
    msg = parse_inbound(load("inbound_mms.json"), "MA", NOW)
    assert msg.kind == "media"
    assert len(msg.attachments) == 1
    assert msg.attachments[0].content_type == "image/jpeg"
    assert msg.attachments[0].url.startswith("https://api.twilio.com/")


def test_national_format_read_in_configured_country() -> None:
    msg = parse_inbound(load("inbound_arabic_national.json"), "DZ", NOW)
    assert msg.sender == "tel:+213551234567"
    assert msg.service_address == "1100"  # a short code stays as it is
    assert "الكهرباء" in msg.text


@pytest.mark.parametrize("raw,country,expected", [
    ("0612345678", "MA", "+212612345678"),
    ("+212 6 12 34 56 78", "DZ", "+212612345678"),
    ("00212612345678", "MA", "+212612345678"),
    ("0551 23 45 67", "DZ", "+213551234567"),
])
def test_normalise_number(raw: str, country: str, expected: str) -> None:
    assert normalise_number(raw, country) == expected


@pytest.mark.parametrize("form,reason", [
    ({"Body": "hi", "From": "+212612345678"}, "missing field SmsSid"),
    ({"MessageSid": "SM1", "Body": "hi"}, "missing field From"),
    ({"MessageSid": "SM1", "From": "not a number", "Body": "x"}, "not a phone number"),
    ({"MessageSid": "SM1", "From": "+212612345678", "NumMedia": "x"}, "NumMedia"),
    ({"MessageSid": "SM1", "From": "+212612345678", "NumMedia": "99"}, "NumMedia"),
    ({"MessageSid": "SM1", "From": "+212612345678", "NumMedia": "1"}, "MediaUrl0"),
    ({"MessageSid": "SM1", "From": "+212612345678", "Body": "eau\x00coupée"}, "Body.* contains a NUL"),
    ({"MessageSid": "SM1", "From": "+212612345678", "Body": "x", "FromCity": "\x00"}, "FromCity"),
])
def test_malformed(form: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_inbound(form, "MA", NOW)


def test_status_callbacks() -> None:
    delivered = parse_status(load("status_delivered.json"))
    assert (delivered.status, delivered.error_code) == ("delivered", None)
    undelivered = parse_status(load("status_undelivered.json"))
    assert (undelivered.status, undelivered.error_code) == ("undelivered", "30003")
    with pytest.raises(MalformedPayload):
        parse_status({"MessageSid": "SM1", "MessageStatus": "exploded"})
