"""Outbound email: MIME structure, threading headers, header-injection safety, SMTP error mapping."""
from __future__ import annotations

import pytest

from channels.email.adapter import EmailAdapter, EmailOptions
from channels.email.render import build_email, tagged_subject
from conversations.messages import OutboundMessage, PermanentDeliveryError, TransientDeliveryError

FROM = "reclamations@chikaya.example.org"


def outbound(**kwargs) -> OutboundMessage:  # type: ignore[no-untyped-def]
    values = dict(message_id=7, channel="email", to="mailto:citizen@example.net",
                  text="Votre réclamation est enregistrée.\n\nMerci <b>&</b>", language="fr",
                  thread_ref="<abc@mail.example.net>", references=("<root@example.net>",),
                  reference="482133071", subject="Re: Coupure d'eau", automatic=True)
    values.update(kwargs)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def test_multipart_alternative_with_threading_headers() -> None:
    msg = build_email(outbound(), from_address=FROM, from_name="Service des réclamations")
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert text.get_content_type() == "text/plain" and "Merci <b>&</b>" in text.get_content()
    assert html.get_content_type() == "text/html"
    assert "Merci &lt;b&gt;&amp;&lt;/b&gt;" in html.get_content() and "<p>" in html.get_content()
    assert msg["Subject"] == "Re: Coupure d'eau [Réf 4821-3307-1]"
    assert msg["In-Reply-To"] == "<abc@mail.example.net>"
    assert msg["References"] == "<root@example.net> <abc@mail.example.net>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"].endswith("@chikaya.example.org>")
    assert msg["From"].addresses[0].display_name == "Service des réclamations"
    again = build_email(outbound(), from_address=FROM)
    assert again["Message-ID"] == msg["Message-ID"]  # stable across retries


def test_officer_reply_is_not_marked_automatic_and_arabic_is_rtl() -> None:
    msg = build_email(outbound(automatic=False, language="ar", subject=None, text="شكرا"), from_address=FROM,
                      default_subject="شكايتكم")
    assert msg["Auto-Submitted"] is None
    assert msg["Subject"] == "شكايتكم [مرجع 4821-3307-1]"
    assert 'dir="rtl"' in msg.get_payload()[1].get_content()


def test_reference_is_not_repeated_when_already_in_the_subject() -> None:
    assert tagged_subject("[Réclamation 4821-3307-1]", "482133071", "fr") == "[Réclamation 4821-3307-1]"


@pytest.mark.parametrize("evil", ["Hello\r\nBcc: victim@example.org", "x\nContent-Type: text/html", "a\rb\x00c"])
def test_no_header_injection_from_subjects_or_names(evil: str) -> None:
    msg = build_email(outbound(subject=evil), from_address=FROM, from_name=evil)
    data = msg.as_bytes()
    header_block = data.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in header_block and b"\nContent-Type: text/html" not in header_block.split(b"MIME")[0]
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
    assert msg["Bcc"] is None


def test_thread_ref_that_is_not_a_message_id_is_ignored() -> None:
    msg = build_email(outbound(thread_ref="<a@b>\r\nBcc: x@y", references=()), from_address=FROM)
    assert msg["In-Reply-To"] is None and msg["Bcc"] is None


def test_invalid_recipient_is_refused() -> None:
    with pytest.raises(ValueError):
        build_email(outbound(to="mailto:not an address"), from_address=FROM)


async def test_sandbox_records_and_returns_its_message_id() -> None:
    adapter = EmailAdapter(address=FROM, host=None)
    result = await adapter.send(outbound())
    assert result.status == "sandbox" and result.thread_ref == result.provider_message_id
    assert adapter.sandbox_outbox[-1]["Message-ID"] == result.provider_message_id


async def test_plus_addressing_sets_reply_to() -> None:
    adapter = EmailAdapter(address=FROM, host=None, options=EmailOptions(plus_addressing=True))
    await adapter.send(outbound())
    assert adapter.sandbox_outbox[-1]["Reply-To"] == "reclamations+482133071@chikaya.example.org"


async def test_smtp_codes_map_to_delivery_errors(smtp_server) -> None:  # type: ignore[no-untyped-def]
    adapter = EmailAdapter(address=FROM, host="127.0.0.1", port=smtp_server.port, tls=False)
    smtp_server.sink.plan = ["451 4.3.0 Try again later"]
    with pytest.raises(TransientDeliveryError) as transient:
        await adapter.send(outbound())
    assert transient.value.code == "451"
    smtp_server.sink.plan = ["554 5.7.1 Message refused"]
    with pytest.raises(PermanentDeliveryError) as permanent:
        await adapter.send(outbound())
    assert permanent.value.code == "554" and not permanent.value.unreachable
    with pytest.raises(PermanentDeliveryError) as refused:
        await adapter.send(outbound(to="mailto:nobody@refused.example"))
    assert refused.value.code == "550" and refused.value.unreachable
    result = await adapter.send(outbound())
    assert result.status == "sent"
    [received] = smtp_server.sink.messages
    assert received["Message-ID"] == result.provider_message_id
    assert smtp_server.sink.envelopes[0] == (FROM, ["citizen@example.net"])


async def test_unreachable_smtp_server_is_transient() -> None:
    from servers import free_port

    adapter = EmailAdapter(address=FROM, host="127.0.0.1", port=free_port(), tls=False,
                           options=EmailOptions(timeout=2))
    with pytest.raises(TransientDeliveryError):
        await adapter.send(outbound())
