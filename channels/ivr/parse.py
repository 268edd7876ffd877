"""Twilio Voice webhooks -> normalised voice types. Pure: no I/O, testable from recorded forms."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from channels.base import MalformedPayload
from channels.sms.parse import _field, normalise_number
from conversations.messages import Attachment, CallStatusUpdate, VoiceStep

# Call states in the order they can happen; a final state is never replaced by an earlier one.
CALL_STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "completed": 4, "busy": 4,
                    "no-answer": 4, "failed": 4, "canceled": 4}
FINAL_STATUSES = frozenset(s for s, rank in CALL_STATUS_RANK.items() if rank == 4)
# Twilio's spellings for a withheld caller ID (and the pseudo-number it sends for one).
WITHHELD = frozenset({"anonymous", "restricted", "unknown", "unavailable", "private", "+266696687", "266696687"})
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
_DIGITS = re.compile(r"^[0-9*#]{0,64}$")
_RECORDING_STATUSES = frozenset({"in-progress", "completed", "absent", "failed"})
_TRANSCRIPTION_STATUSES = frozenset({"completed", "failed"})
MAX_TRANSCRIPT = 20_000


def _sid(form: Mapping[str, str], name: str, *, required: bool = True) -> str | None:
    value = _field(form, name, required=required, limit=64)
    if not value:
        return None
    if not _SID.match(value):
        raise MalformedPayload(f"field {name} is not a Twilio id")
    return value


def _int(form: Mapping[str, str], name: str) -> int | None:
    value = _field(form, name, required=False, limit=16).strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise MalformedPayload(f"field {name} must be a whole number") from exc


def caller_urn(raw: str, country: str) -> str | None:
    """``tel:`` URN of the caller in E.164, or None for a withheld or unreadable number."""
    raw = raw.strip()
    if not raw or raw.lower() in WITHHELD:
        return None
    try:
        return "tel:" + normalise_number(raw, country)
    except MalformedPayload:
        return None


def _service(form: Mapping[str, str], country: str) -> str | None:
    to = _field(form, "To", required=False, limit=64)
    if not to:
        return None
    try:
        return normalise_number(to, country)
    except MalformedPayload:
        return to


def parse_step(form: Mapping[str, str], country: str, received_at: datetime) -> VoiceStep:
    """A Twilio Voice request (call start, Gather, Record, Enqueue/Dial action, recording or
    transcription callback) -> ``VoiceStep``."""
    call_sid = _sid(form, "CallSid")
    assert call_sid is not None
    digits = _field(form, "Digits", required=False, limit=64)
    if digits and digits != "hangup" and not _DIGITS.match(digits):
        raise MalformedPayload("field Digits must hold keypad keys only")
    recording = None
    recording_sid = _sid(form, "RecordingSid", required=False)
    if recording_sid:
        url = _field(form, "RecordingUrl", limit=2048)
        recording = Attachment(content_type="audio/wav", url=url, provider_id=recording_sid,
                               filename=f"{recording_sid}.wav")
    recording_status = _field(form, "RecordingStatus", required=False, limit=32).lower() or None
    if recording_status and recording_status not in _RECORDING_STATUSES:
        raise MalformedPayload(f"unknown RecordingStatus {recording_status!r}")
    transcription_status = _field(form, "TranscriptionStatus", required=False, limit=32).lower() or None
    if transcription_status and transcription_status not in _TRANSCRIPTION_STATUSES:
        raise MalformedPayload(f"unknown TranscriptionStatus {transcription_status!r}")
    transcript = _field(form, "TranscriptionText", required=False, limit=MAX_TRANSCRIPT)
    dial_status = _field(form, "DialCallStatus", required=False, limit=32).lower() or None
    queue_result = _field(form, "QueueResult", required=False, limit=32).lower() or None
    return VoiceStep(
        call_sid=call_sid,
        caller=caller_urn(_field(form, "From", required=False, limit=64), country),
        service_address=_service(form, country),
        received_at=received_at,
        digits=digits or None,
        recording=recording,
        recording_duration=_int(form, "RecordingDuration"),
        recording_status=recording_status,
        transcription_text=transcript.strip() or None,
        transcription_status=transcription_status,
        queue_result=queue_result,
        queue_time=_int(form, "QueueTime"),
        dial_status=dial_status,
        dial_duration=_int(form, "DialCallDuration"),
    )


def _timestamp(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise MalformedPayload("field Timestamp is not an RFC 2822 date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_call_status(form: Mapping[str, str], country: str, received_at: datetime) -> CallStatusUpdate:
    """A call status callback -> ``CallStatusUpdate`` (``answered`` is read as ``in-progress``)."""
    call_sid = _sid(form, "CallSid")
    assert call_sid is not None
    status = _field(form, "CallStatus", limit=32).lower()
    if status == "answered":
        status = "in-progress"
    if status not in CALL_STATUS_RANK:
        raise MalformedPayload(f"unknown CallStatus {status!r}")
    sequence = _int(form, "SequenceNumber")
    if sequence is not None and sequence < 0:
        raise MalformedPayload("field SequenceNumber must not be negative")
    duration = _int(form, "CallDuration")
    return CallStatusUpdate(
        call_sid=call_sid, status=status,
        caller=caller_urn(_field(form, "From", required=False, limit=64), country),
        service_address=_service(form, country),
        timestamp=_timestamp(_field(form, "Timestamp", required=False, limit=64)),
        sequence=sequence, duration=duration if duration is None or duration >= 0 else None,
        received_at=received_at,
    )
