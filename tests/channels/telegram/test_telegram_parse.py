"""The pure Update parser, from recorded payloads (no I/O)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from channels.base import MalformedPayload
from channels.telegram.parse import parse_update
from tests.support.telegram_updates import load

NOW = datetime(2024, 11, 22, 13, 0, tzinfo=timezone.utc)
SAMIRA = "telegram:5108342071"


def parse(name: str):  # type: ignore[no-untyped-def]
    return parse_update(json.dumps(load(name)).encode(), received_at=NOW, service_address="bot7000000001")


def test_private_text() -> None:
    parsed = parse("private_text")
    msg = parsed.message
    assert parsed.kind == "message" and parsed.update_id == 731540210
    assert (msg.channel, msg.provider_message_id, msg.sender) == ("telegram", "5108342071:412", SAMIRA)
    assert msg.kind == "text" and msg.text.startswith("Bonjour") and msg.service_address == "bot7000000001"
    assert msg.meta["update_id"] == 731540210 and msg.raw["update_id"] == 731540210
    assert msg.meta["language_code"] == "fr" and msg.language is None
    assert msg.sender_name == "Samira B." and msg.received_at == NOW
    assert "text" not in msg.raw  # the text is stored once, in the message


def test_darija_text() -> None:
    msg = parse("private_text_darija").message
    assert msg.kind == "text" and "lma" in msg.text and msg.sender == "telegram:6021887345"


def test_start_command() -> None:
    msg = parse("start_command").message
    assert msg.kind == "command" and msg.meta["command"] == "start" and msg.meta["command_args"] == ""
    payload = load("start_command")
    payload["message"]["text"] = "/status@PlaintesCitoyennesBot 4821-3307-5"
    payload["message"]["entities"][0]["length"] = 28
    msg = parse_update(payload, received_at=NOW).message
    assert (msg.meta["command"], msg.meta["command_args"]) == ("status", "4821-3307-5")


def test_callback_query() -> None:
    parsed = parse("callback_query")
    msg = parsed.message
    assert parsed.kind == "message" and msg.kind == "callback"
    assert msg.provider_message_id == "cb:2194710383904827301"
    assert msg.meta["callback_data"] == "lang:en" and msg.text == "lang:en"
    assert msg.meta["callback_query_id"] == "2194710383904827301" and msg.meta["message_id"] == 406


def test_edited_message_keeps_the_original_key() -> None:
    parsed = parse("edited_message")
    assert parsed.kind == "edit"
    assert parsed.message.provider_message_id == "5108342071:412"  # the message it edits
    assert "quatre jours" in parsed.message.text and parsed.message.meta["edit_date"] == 1732281790


@pytest.mark.parametrize("name, chat_type", [("group_message", "supergroup"), ("channel_post", "channel")])
def test_group_and_channel(name: str, chat_type: str) -> None:
    parsed = parse(name)
    assert parsed.kind == "group" and parsed.chat_type == chat_type and parsed.chat_id < 0
    assert parsed.message is None  # nothing to store


def test_photo_takes_the_largest_size() -> None:
    msg = parse("photo").message
    assert msg.kind == "media" and msg.text == ""
    [att] = msg.attachments
    assert att.provider_id.endswith("AAN4AAM2BA") and att.size == 88213 and att.content_type == "image/jpeg"


def test_document_with_caption_and_voice() -> None:
    doc = parse("document").message
    assert doc.kind == "media" and doc.text.startswith("La facture")
    [att] = doc.attachments
    assert (att.content_type, att.filename, att.size) == ("application/pdf", "facture_eau_octobre.pdf", 48311)
    voice = parse("voice").message
    [att] = voice.attachments
    assert voice.kind == "media" and att.content_type == "audio/ogg" and att.provider_id.startswith("AwAC")


def test_contact_and_location() -> None:
    contact = parse("contact").message
    assert contact.kind == "contact" and contact.meta["contact_phone"] == "212612345678"
    assert contact.meta["contact_user_id"] == 5108342071 and contact.text == ""
    assert contact.thread_ref == "5108342071:429"
    loc = parse("location").message
    assert loc.kind == "location" and (loc.meta["latitude"], loc.meta["longitude"]) == (35.697071, -0.630799)


def test_blocked_bot_and_sticker() -> None:
    member = parse("my_chat_member_kicked")
    assert member.kind == "member" and member.meta["status"] == "kicked" and member.sender == SAMIRA
    sticker = parse("sticker").message
    assert sticker.kind == "text" and sticker.text == "" and sticker.meta["unsupported"] == "sticker"


def test_unsupported_update_type_is_ignored_not_refused() -> None:
    inline = {"id": "884", "from": {"id": 5108342071, "is_bot": False, "first_name": "Samira"}, "query": "eau",
              "offset": ""}
    parsed = parse_update({"update_id": 5, "inline_query": inline}, received_at=NOW)
    assert parsed.kind == "ignored" and "inline_query" in parsed.reason


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"message": {}}', "update_id"),
    (b'{"update_id": "12"}', "update_id"),
    (b'{"update_id": 12, "message": {"message_id": 3}}', "not a readable Telegram Update"),
    (json.dumps({"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"},
                                             "text": "hi"}}).encode(), "without a sender"),
])
def test_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_update(body, received_at=NOW)
