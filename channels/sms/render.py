"""Outbound SMS formatting: TwiML for webhook answers, and the text of an outbound SMS."""
from __future__ import annotations

from functools import cache

from twilio.twiml.messaging_response import MessagingResponse


@cache
def empty_twiml() -> str:
    """The webhook's answer: replies go through the outbox, not the response (the same text
    every time: built once, as ElementTree's serialisation cost 1 % of the server's CPU)."""
    return str(MessagingResponse())


def sms_body(text: str) -> str:
    """SMS bodies are sent whole; Twilio splits segments (up to 1600 characters per message).
    Line endings are normalised, nothing is truncated."""
    return text.replace("\r\n", "\n").strip()
