"""Twilio SMS webhooks -> normalised types. Pure: no I/O, testable from recorded forms."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import phonenumbers

from channels.base import MalformedPayload
from conversations.messages import Attachment, InboundMessage

MAX_BODY = 20_000
MAX_MEDIA = 10
# Delivery statuses in the order they can happen; a callback never moves a message backwards.
STATUS_RANK = {"accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
               "undelivered": 4, "failed": 4, "delivered": 4, "canceled": 4, "read": 5}


def _field(form: Mapping[str, str], name: str, *, required: bool = True, limit: int = 255) -> str:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing field {name}")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"field {name} must be text")
    if len(value) > limit:
        raise MalformedPayload(f"field {name} is longer than {limit} characters")
    if "\x00" in value:
        raise MalformedPayload(f"field {name} contains a NUL character")
    return value


def _check_form(form: Mapping[str, str]) -> None:
    """Every field is kept (as the raw payload): none may hold a NUL, which no database stores."""
    for name, value in form.items():
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise MalformedPayload(f"field {name!r} contains a NUL character")


def normalise_number(raw: str, country: str) -> str:
    """E.164 for a number in international or national format (read in ``country``)."""
    try:
        number = phonenumbers.parse(raw.strip(), country)
    except phonenumbers.NumberParseException as exc:
        raise MalformedPayload(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise MalformedPayload("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def tel_urn(raw: str, country: str) -> str:
    return "tel:" + normalise_number(raw, country)


def parse_inbound(form: Mapping[str, str], country: str, received_at: datetime) -> InboundMessage:
    """A Twilio inbound-SMS form -> ``InboundMessage`` (channel ``sms``)."""
    _check_form(form)
    sid = _field(form, "MessageSid", required=False, limit=64) or _field(form, "SmsSid", limit=64)
    sender = tel_urn(_field(form, "From", limit=64), country)
    to = _field(form, "To", required=False, limit=64)
    body = _field(form, "Body", required=False, limit=MAX_BODY)
    try:
        num_media = int(form.get("NumMedia") or 0)
    except ValueError as exc:
        raise MalformedPayload("NumMedia must be a number") from exc
    if not 0 <= num_media <= MAX_MEDIA:
        raise MalformedPayload(f"NumMedia must be between 0 and {MAX_MEDIA}")
    attachments = tuple(
        Attachment(content_type=_field(form, f"MediaContentType{i}", required=False, limit=255)
                   or "application/octet-stream", url=_field(form, f"MediaUrl{i}", limit=2048))
        for i in range(num_media)
    )
    service = None
    if to:
        try:
            service = normalise_number(to, country)
        except MalformedPayload:
            service = to  # a short code is not a phone number in phonenumbers' sense
    return InboundMessage(
        channel="sms", provider_message_id=sid, sender=sender, service_address=service, text=body,
        received_at=received_at, kind="media" if attachments and not body.strip() else "text",
        attachments=attachments, raw={k: v for k, v in form.items() if k not in ("Body",)},
    )


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: str
    error_code: str | None


def parse_status(form: Mapping[str, str]) -> StatusUpdate:
    sid = _field(form, "MessageSid", required=False, limit=64) or _field(form, "SmsSid", limit=64)
    status = (_field(form, "MessageStatus", required=False, limit=32)
              or _field(form, "SmsStatus", limit=32)).lower()
    if status not in STATUS_RANK:
        raise MalformedPayload(f"unknown MessageStatus {status!r}")
    code = _field(form, "ErrorCode", required=False, limit=16) or None
    return StatusUpdate(sid, status, code)
