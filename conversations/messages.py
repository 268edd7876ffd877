"""The normalised types every channel speaks, and the typed delivery errors.

Channels import this module only; ``conversations`` never imports a concrete channel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping, Protocol

MessageKind = Literal["text", "voice", "dtmf", "media", "location", "contact", "command", "callback"]


@dataclass(frozen=True)
class Attachment:
    """A file received or to be sent. ``content`` is set once fetched; ``url`` is provider-internal."""

    content_type: str
    filename: str | None = None
    url: str | None = None
    size: int | None = None
    content: bytes | None = field(default=None, repr=False)
    provider_id: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    provider_message_id: str
    sender: str  # URN: tel:+212612345678, mailto:name@example.org, telegram:123456789
    service_address: str | None
    text: str
    received_at: datetime
    kind: MessageKind = "text"
    attachments: tuple[Attachment, ...] = ()
    thread_ref: str | None = None
    references: tuple[str, ...] = ()
    subject: str | None = None
    language: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    sender_name: str | None = None
    # Channel-specific structured data the dialogue may use (callback data, shared phone, location).
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class OutboundMessage:
    """What a channel adapter is asked to send."""

    message_id: int
    channel: str
    to: str  # URN
    text: str
    service_address: str | None = None
    subject: str | None = None
    language: str | None = None
    thread_ref: str | None = None  # e.g. the email Message-ID we reply to
    references: tuple[str, ...] = ()
    reference: str | None = None  # the complaint reference, when there is one
    automatic: bool = True
    buttons: tuple[tuple[Button, ...], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    status: str = "sent"  # "sent" | "queued" | "sandbox"
    # Anything the adapter wants stored on the message (e.g. the Message-ID it generated).
    thread_ref: str | None = None


class DeliveryError(Exception):
    """Base of the typed errors ``send()`` raises."""


class TransientDeliveryError(DeliveryError):
    """Try again later (HTTP 429/5xx, timeouts, 4xx SMTP); ``retry_after`` in seconds if the provider said."""

    def __init__(self, reason: str, retry_after: float | None = None, code: str | None = None,
                 uncertain: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.code = code
        self._uncertain = uncertain

    @property
    def uncertain(self) -> bool:
        """The provider may have accepted the message anyway (a timeout, a dropped connection): the
        retry must first ask the provider (``reconcile``). Defaults from ``code``."""
        if self._uncertain is not None:
            return self._uncertain
        return self.code in ("timeout", "network", "adapter_error")


class PermanentDeliveryError(DeliveryError):
    """Never retry the same recipient. ``unreachable`` marks the identity unusable (blocked bot,
    invalid number), so the reply may fall back to another identity of the same contact."""

    def __init__(self, reason: str, code: str | None = None, unreachable: bool = False,
                 opted_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.unreachable = unreachable
        self.opted_out = opted_out


class ChannelAdapter(Protocol):
    """The protocol every channel adapter implements (see ``channels/base.py``)."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def close(self) -> None: ...


def urn_scheme(urn: str) -> str:
    return urn.split(":", 1)[0]


def urn_path(urn: str) -> str:
    return urn.split(":", 1)[1] if ":" in urn else urn


def mask_urn(urn: str) -> str:
    """A URN safe for info-level logs: ``tel:+2126****678``, ``mailto:n***@example.org``."""
    scheme, _, path = urn.partition(":")
    if scheme == "mailto":
        local, _, domain = path.partition("@")
        return f"mailto:{local[:1]}***@{domain}"
    if len(path) <= 4:
        return f"{scheme}:****"
    return f"{scheme}:{path[:5]}{'*' * max(len(path) - 8, 2)}{path[-3:]}"


# -- Voice (IVR) ---------------------------------------------------------------------------
# A voice channel's inbound step and the provider-neutral verbs a dialogue answers with; the
# channel's render module turns the verbs into its markup (TwiML for Twilio Voice).


@dataclass(frozen=True)
class VoiceStep:
    """One request of a call in progress: keys typed, a recording made, a queue or dial result."""

    call_sid: str
    caller: str | None  # tel: URN; None when the number is withheld
    service_address: str | None
    received_at: datetime
    digits: str | None = None
    recording: Attachment | None = None  # provider_id = the recording id; url is provider-internal
    recording_duration: int | None = None
    recording_status: str | None = None
    transcription_text: str | None = None
    transcription_status: str | None = None
    queue_result: str | None = None
    queue_time: int | None = None
    dial_status: str | None = None
    dial_duration: int | None = None


@dataclass(frozen=True)
class CallStatusUpdate:
    """A call status callback: one state of a call, possibly repeated or out of order."""

    call_sid: str
    status: str
    caller: str | None
    service_address: str | None
    timestamp: datetime | None
    sequence: int | None
    duration: int | None
    received_at: datetime


@dataclass(frozen=True)
class VoiceSay:
    """Speak ``text`` in ``language`` (a TTS locale such as ``fr-FR``), or play ``audio_url``."""

    text: str
    language: str | None = None
    voice: str | None = None
    audio_url: str | None = None


@dataclass(frozen=True)
class VoicePause:
    seconds: int = 1


@dataclass(frozen=True)
class VoiceGather:
    """Read keys while ``prompts`` play, then request step ``action``."""

    action: str
    prompts: tuple["VoiceSay | VoicePause", ...] = ()
    num_digits: int | None = None
    finish_on_key: str | None = None
    timeout: int = 6


@dataclass(frozen=True)
class VoiceRecord:
    action: str
    status_callback: str
    max_length: int = 120
    timeout: int = 5
    finish_on_key: str = "#"
    transcribe_callback: str | None = None


@dataclass(frozen=True)
class VoiceEnqueue:
    queue: str
    action: str
    wait_url: str


@dataclass(frozen=True)
class VoiceDial:
    number: str
    action: str
    timeout: int = 20


@dataclass(frozen=True)
class VoiceRedirect:
    step: str


@dataclass(frozen=True)
class VoiceLeave:
    pass


@dataclass(frozen=True)
class VoiceHangup:
    pass


VoiceVerb = (VoiceSay | VoicePause | VoiceGather | VoiceRecord | VoiceEnqueue | VoiceDial | VoiceRedirect
             | VoiceLeave | VoiceHangup)


_PHONE_LIKE = re.compile(r"\+?\d[\d .\-]{6,}\d")
_EMAIL_LIKE = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")


def redact(text: str) -> str:
    """Provider error texts for logs: phone-number-like digit runs and email addresses masked
    (providers quote the recipient, e.g. "The 'To' number +2126… is not valid")."""
    text = _EMAIL_LIKE.sub(lambda m: mask_urn("mailto:" + m.group(0)).split(":", 1)[1], text)
    return _PHONE_LIKE.sub(lambda m: mask_urn("tel:" + re.sub(r"[ .\-]", "", m.group(0))).split(":", 1)[1], text)
