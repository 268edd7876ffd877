"""Hostile email: MIME bombs (parts, depth), arbitrary bytes and structures through the pure parser,
and CR/LF header injection in the replies we build."""
from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import MalformedPayload
from channels.email.parse import MAX_MIME_DEPTH, MAX_MIME_PARTS, parse_email
from channels.email.render import build_email
from conversations.messages import OutboundMessage

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MAILBOX = "complaints@example.org"
HEAD = (b"From: Citizen <citizen@example.net>\r\nTo: complaints@example.org\r\nSubject: Fuite d'eau\r\n"
        b"Message-ID: <m1@example.net>\r\nMIME-Version: 1.0\r\n")


def nested(depth: int) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                       for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return HEAD + opening + b"Content-Type: text/plain\r\n\r\nPas d'eau depuis trois jours\r\n" + closing


def many_parts(n: int) -> bytes:
    part = (b'--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; '
            b'filename="a.bin"\r\n\r\nxx\r\n')
    return HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + part * n + b"--B--\r\n"


@pytest.mark.parametrize("raw, reason", [
    (nested(MAX_MIME_DEPTH + 5), "nested deeper"),
    (nested(3000), "MIME boundaries"),
    (many_parts(MAX_MIME_PARTS + 1), "MIME parts"),
    (many_parts(20_000), "MIME boundaries"),
])
def test_mime_bombs_are_refused_quickly(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_email(raw, mailbox=MAILBOX, received_at=NOW)


def test_ordinary_structures_still_parse() -> None:
    assert parse_email(nested(3), mailbox=MAILBOX, received_at=NOW).text.startswith("Pas d'eau")
    assert len(parse_email(many_parts(5), mailbox=MAILBOX, received_at=NOW).attachments) == 5


HEADER_LINES = st.lists(st.tuples(st.sampled_from(["From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
                                                   "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted",
                                                   "X-Other", "Date"]),
                                  st.text(max_size=80)), max_size=10)


@st.composite
def emails(draw):  # type: ignore[no-untyped-def]
    headers = b"".join(f"{k}: {v}".encode("utf-8", "surrogatepass") + b"\r\n"
                       for k, v in draw(HEADER_LINES) if "\n" not in v and "\r" not in v)
    body = draw(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode())))
    return headers + b"\r\n" + body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(emails(), st.binary(max_size=600)))
def test_email_parser_returns_or_refuses(raw: bytes) -> None:
    try:
        message = parse_email(raw, mailbox=MAILBOX, received_at=NOW)
    except MalformedPayload:
        return
    assert message.channel == "email" and message.sender.startswith("mailto:")
    assert len(message.provider_message_id) <= 255


@pytest.mark.parametrize("evil", ["Suivi\r\nBcc: victim@example.com", "Suivi\nBcc: victim@example.com",
                                  "Suivi\rBcc: victim@example.com", "Suivi\x00\r\n\r\n<script>x</script>"])
def test_no_header_injection_in_replies(evil: str) -> None:
    message = OutboundMessage(message_id=1, channel="email", to="mailto:citizen@example.net", text="Bonjour",
                              subject=evil, reference="482133075", thread_ref=f"<a@b>\r\nBcc: x@evil.example",
                              language="fr")
    built = build_email(message, from_address=MAILBOX, from_name=evil)
    raw = built.as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and b"\nBcc:" not in raw
    assert parsed["To"] == "citizen@example.net"
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    with pytest.raises(ValueError):
        build_email(OutboundMessage(message_id=2, channel="email", to="mailto:a@b.org\r\nBcc: c@d.org", text="x"),
                    from_address=MAILBOX)
