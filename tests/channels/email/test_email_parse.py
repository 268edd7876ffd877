"""The pure email parser, from recorded .eml fixtures (no server, no database)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from channels.base import MalformedPayload
from channels.email.html import html_to_text
from channels.email.parse import parse_email
from channels.email.quotes import strip_reply
from conftest import MAILBOX_ADDRESS, fixture_bytes

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)
OURS = "<gw-41-5f2c9a1e7b3d@chikaya.example.org>"


def parse(name: str, **kwargs):  # type: ignore[no-untyped-def]
    return parse_email(fixture_bytes(name), mailbox=MAILBOX_ADDRESS, received_at=NOW, **kwargs)


def test_arabic_windows_1256_with_encoded_subject_and_name() -> None:
    msg = parse("new_ar_windows1256.eml")
    assert msg.channel == "email"
    assert msg.sender == "mailto:karim.alaoui@menara.example"  # lower-cased
    assert msg.sender_name == "كريم العلوي"
    assert msg.subject == "انقطاع الماء في حي النصر"
    assert "بانقطاع الماء الصالح للشرب عن حي النصر بمدينة وجدة" in msg.text
    assert "\ufffd" not in msg.text
    assert msg.provider_message_id == msg.thread_ref == "<000001db8c1e$3f5a2b10$be0e8130$@menara.example>"
    assert msg.service_address == MAILBOX_ADDRESS and msg.references == ()
    assert not msg.meta.get("auto_reply") and not msg.meta.get("bounce")


def test_arabic_iso_8859_6() -> None:
    msg = parse("new_ar_iso8859_6.eml")
    assert msg.subject == "طريق مقطوعة"
    assert msg.text == "الطريق بين القرية والمدرسة مقطوعة بسبب الفيضانات منذ أسبوع."


def test_french_quoted_printable_latin1_with_encoded_subject() -> None:
    msg = parse("new_fr_qp_latin1.eml")
    assert msg.subject == "Éclairage public en panne rue des Écoles"
    assert msg.sender_name == "Séverine Bénard"
    assert "les élèves rentrent dans le noir" in msg.text
    assert msg.text.endswith("Séverine Bénard")  # "Cordialement, Name" is not a delimited signature: kept


def test_html_only_is_converted_to_clean_text() -> None:
    msg = parse("html_only.eml")
    assert msg.meta["body_source"] == "html"
    assert msg.text == ("Bonjour,\n\nUn nid de poule très profond s'est formé sur la route nationale 6 à "
                        "l'entrée de Tlemcen.\nDeux accidents cette semaine.\n\nMerci d'avance")


def test_attachments_are_kept_with_names_and_bytes() -> None:
    msg = parse("gmail_en_attachments.eml")
    assert [(a.filename, a.content_type) for a in msg.attachments] == [
        ("street.png", "image/png"), ("lettre régie.pdf", "application/pdf")]
    assert msg.attachments[0].content.startswith(b"\x89PNG")
    assert msg.attachments[1].content.startswith(b"%PDF")
    assert msg.text.startswith("Hello,") and "<div" not in msg.text


def test_oversize_attachments_are_dropped_and_reported() -> None:
    msg = parse("gmail_en_attachments.eml", max_attachment_bytes=100)
    assert [a.filename for a in msg.attachments] == ["street.png"]
    assert msg.meta["oversize"] == [{"filename": "lettre régie.pdf", "content_type": "application/pdf",
                                     "size": 125}]


@pytest.mark.parametrize("name, expected", [
    ("gmail_fr_reply.eml", "Merci. Les lampadaires sont toujours éteints ce soir, j'ajoute une photo demain."),
    ("outlook_en_original_message.eml", "Thank you. The street lights are still off tonight.\n\nRegards,\nSarah"),
    ("apple_mail_en_reply.eml", "The garbage truck came today but skipped our street again."),
    ("thunderbird_ar_reply.eml", "شكرا على الرد. ما زال الماء مقطوعا في الحي حتى اليوم."),
])
def test_replies_lose_quote_and_signature(name: str, expected: str) -> None:
    msg = parse(name)
    assert msg.text == expected
    assert msg.meta["quote_stripped"] is True
    assert msg.references == (OURS,)


def test_outlook_french_reply_without_in_reply_to() -> None:
    msg = parse("outlook_fr_reply.eml")
    assert msg.subject == "RE: Réclamation [Réf 4821-3307-1]"
    assert msg.references == ()
    assert msg.text.startswith("Madame, Monsieur,")
    assert msg.text.endswith("Avocat au barreau de Rabat")
    for quoted in ("De :", "Envoyé :", "Objet :", "Votre réclamation est enregistrée", "_____"):
        assert quoted not in msg.text


def test_references_are_most_recent_first() -> None:
    raw = (b"From: a@b.example\r\nMessage-ID: <3@b.example>\r\nIn-Reply-To: <2@gw.example>\r\n"
           b"References: <1@b.example>\r\n <2@gw.example>\r\nSubject: x\r\n\r\ntext\r\n")
    msg = parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW)
    assert msg.references == ("<2@gw.example>", "<1@b.example>")


@pytest.mark.parametrize("name, reason", [
    ("out_of_office_fr.eml", "Auto-Submitted: auto-generated"),
    ("out_of_office_ar_subject.eml", "out-of-office subject"),
])
def test_out_of_office(name: str, reason: str) -> None:
    assert parse(name).meta["auto_reply"] == reason


@pytest.mark.parametrize("header", ["X-Autoreply: yes", "X-Autorespond: yes", "Precedence: bulk",
                                    "Precedence: junk", "Precedence: list", "Auto-Submitted: auto-replied"])
def test_auto_reply_headers(header: str) -> None:
    raw = f"From: a@b.example\r\n{header}\r\nSubject: hello\r\nMessage-ID: <x@b>\r\n\r\nhi\r\n".encode()
    assert parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).meta.get("auto_reply")


@pytest.mark.parametrize("subject", ["Out of Office: your complaint", "Automatic reply: RE: x", "Réponse automatique : x",
                                     "Absence du bureau", "رد تلقائي", "RE: خارج المكتب"])
def test_out_of_office_subjects(subject: str) -> None:
    raw = f"From: a@b.example\r\nSubject: {subject}\r\nMessage-ID: <x@b>\r\n\r\nhi\r\n".encode()
    assert parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).meta.get("auto_reply")


@pytest.mark.parametrize("subject", ["Enseignant absent depuis deux mois", "Auto-entrepreneur: facture",
                                     "Auto-Submitted: no", "Office closed on Monday"])
def test_ordinary_subjects_are_not_auto_replies(subject: str) -> None:
    raw = (f"From: a@b.example\r\nAuto-Submitted: no\r\nSubject: {subject}\r\nMessage-ID: <x@b>\r\n\r\n"
           f"hi\r\n").encode()
    assert "auto_reply" not in parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).meta


def test_dsn_bounce_gives_the_original_message_id() -> None:
    msg = parse("dsn_bounce_postfix.eml")
    bounce = msg.meta["bounce"]
    assert bounce["original_message_id"] == OURS
    assert bounce["status"] == "5.1.1" and bounce["action"] == "failed" and bounce["permanent"] is True
    assert bounce["recipient"] == "nobody@invalid-domain.example"
    assert msg.sender == "mailto:mailer-daemon@chikaya.example.org"
    assert msg.attachments == ()


def test_non_standard_bounce_from_mailer_daemon() -> None:
    raw = (b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\r\nSubject: Mail delivery failed\r\n"
           b"Message-ID: <b1@mx.example>\r\n\r\nThis message was created automatically by mail delivery software.\r\n"
           b"A message that you sent could not be delivered. 550 5.1.1 user unknown\r\n\r\n"
           b"------ This is a copy of the message, including all the headers. ------\r\n"
           b"Message-ID: <gw.7.abc@chikaya.example.org>\r\nSubject: x\r\n")
    bounce = parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).meta["bounce"]
    assert bounce["original_message_id"] == "<gw.7.abc@chikaya.example.org>"
    assert bounce["status"] == "5.1.1" and bounce["permanent"] is True


def test_missing_message_id_gets_a_stable_hash_id() -> None:
    raw = b"From: A <A@B.example>\r\nSubject: no id\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\nhello\r\n"
    first = parse_email(b"Received: by mx1\r\n" + raw, mailbox=MAILBOX_ADDRESS, received_at=NOW)
    again = parse_email(b"Received: by mx2\r\n" + raw, mailbox=MAILBOX_ADDRESS, received_at=NOW)
    assert first.provider_message_id == again.provider_message_id
    assert first.provider_message_id.endswith("@no-message-id.invalid>")
    other = parse_email(raw.replace(b"hello", b"bye"), mailbox=MAILBOX_ADDRESS, received_at=NOW)
    assert other.provider_message_id != first.provider_message_id


def test_plus_address_token() -> None:
    raw = (b"From: a@b.example\r\nTo: Reclamations <reclamations+482133071@chikaya.example.org>\r\n"
           b"Subject: x\r\nMessage-ID: <p@b>\r\n\r\nhi\r\n")
    msg = parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW, plus_addressing=True)
    assert msg.meta["plus_token"] == "482133071"
    assert "plus_token" not in parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).meta


@pytest.mark.parametrize("raw", [
    b"", b"   \r\n", b"\x00\x01\x02 binary junk", b"just some text without headers\r\n",
    b"Subject: no sender\r\n\r\nbody\r\n", b"From: not-an-address\r\nSubject: x\r\n\r\nbody\r\n",
])
def test_malformed_messages_are_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW)


def test_malformed_fixture() -> None:
    with pytest.raises(MalformedPayload, match="sender"):
        parse("malformed_no_sender.eml")


def test_undeclared_8bit_charset_is_guessed() -> None:
    raw = b"From: a@b.example\r\nSubject: x\r\nMessage-ID: <c@b>\r\nContent-Type: text/plain\r\n\r\n" + \
        "الماء مقطوع".encode("cp1256") + b"\r\n"
    assert parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).text == "الماء مقطوع"
    raw = b"From: a@b.example\r\nSubject: x\r\nMessage-ID: <c@b>\r\n\r\n" + "Électricité coupée".encode("latin-1")
    assert parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW).text == "Électricité coupée"


def test_html_to_text_quotes_and_entities() -> None:
    text = html_to_text('<div>Merci&nbsp;!</div><div class="gmail_quote">Le lun. a écrit&nbsp;:'
                        '<blockquote type="cite"><p>Ancien</p></blockquote></div><style>x{}</style>')
    assert text.splitlines()[0] == "Merci !"
    assert "> Ancien" in text and "x{}" not in text
    assert strip_reply(text) == "Merci !"


def test_strip_reply_keeps_text_that_only_looks_like_an_attribution() -> None:
    text = "Le maire a écrit : nous réparerons la route.\nMais rien n'a été fait depuis."
    assert strip_reply(text) == text


def test_strip_reply_mobile_footer_and_signature() -> None:
    assert strip_reply("Toujours pas d'eau.\n\nEnvoyé de mon iPhone") == "Toujours pas d'eau."
    assert strip_reply("Le courant est coupé.\n-- \nAhmed\n0612345678") == "Le courant est coupé."
    assert strip_reply("ما زال الماء مقطوعا\n\nأرسلت من iPhone") == "ما زال الماء مقطوعا"
