"""The email dialogue through Core.ingest (no mail server): loop protection, limits, threading rules."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from channels.email.parse import parse_email
from conftest import MAILBOX_ADDRESS, fixture_bytes
from conversations import reference as refs
from store.files import read_file
from store.models import Complaint, ComplaintEvent, Message, StoredFile

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)


def gateway(make_gateway: Any, db_url: str, tmp_path: Path, **email: Any) -> Any:
    return make_gateway(db_url, email_address=MAILBOX_ADDRESS, data_dir=tmp_path / "data",
                        config_overrides={"channels": {"email": email}} if email else None)


def parsed(raw: bytes, **kwargs: Any) -> Any:
    return parse_email(raw, mailbox=MAILBOX_ADDRESS, received_at=NOW, **kwargs)


def simple(sender: str, subject: str, body: str, n: int, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {MAILBOX_ADDRESS}\r\nSubject: {subject}\r\nMessage-ID: <m{n}.{sender}>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


def outgoing(gw: Any) -> list[Message]:
    with gw.db.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "out").order_by(Message.id)).all())


async def test_rate_limit_stores_but_does_not_answer(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path, rate_limit_per_hour=2)
    results = [await gw.core.ingest(parsed(simple("storm@citizen.example", f"Plainte {i}",
                                                  f"Les ordures de la rue {i} ne sont pas ramassées.", i)))
               for i in range(5)]
    assert [r.action for r in results] == ["new_complaint", "new_complaint", "rate_limited", "rate_limited",
                                           "rate_limited"]
    assert len(outgoing(gw)) == 2
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one() == 5


async def test_never_answers_our_own_address(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path)
    for n, sender in enumerate((MAILBOX_ADDRESS, "Reclamations+123@chikaya.example.org")):
        result = await gw.core.ingest(parsed(simple(sender, "Test", "Un message qui revient vers nous.", n)))
        assert result.action == "own_address" and result.complaint_id is None
    assert outgoing(gw) == []


async def test_duplicate_message_id_is_ingested_once(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path)
    raw = fixture_bytes("new_fr_qp_latin1.eml")
    first = await gw.core.ingest(parsed(raw))
    again = await gw.core.ingest(parsed(b"Received: by another.mx\r\n" + raw))
    assert again.duplicate and again.message_id == first.message_id
    assert len(outgoing(gw)) == 1


async def test_ack_threads_under_the_citizen_message(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path)
    raw = simple("c@citizen.example", "RE: Coupure", "Pas d'électricité depuis hier à Oran.", 1,
                 "References: <a@x> <b@x>\r\n")
    await gw.core.ingest(parsed(raw))
    [ack] = outgoing(gw)
    assert ack.subject == "Re: Coupure" and ack.thread_ref == "<m1.c@citizen.example>"
    assert ack.raw["meta"]["references"] == ["<a@x>", "<b@x>"]


async def test_plus_address_threads_when_enabled(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path, plus_addressing=True)
    first = await gw.core.ingest(parsed(simple("p@citizen.example", "Eau", "Pas d'eau à Oran depuis hier.", 1),
                                        plus_addressing=True))
    with gw.db.session() as s:
        reference = s.get(Complaint, first.complaint_id).reference
    reply = (f"From: p@citizen.example\r\nTo: reclamations+{reference}@chikaya.example.org\r\nSubject: encore\r\n"
             f"Message-ID: <m2@citizen.example>\r\n\r\nToujours rien.\r\n").encode()
    result = await gw.core.ingest(parsed(reply, plus_addressing=True))
    assert result.complaint_id == first.complaint_id and result.action == "follow_up:plus_address"
    # Someone else using the same plus-address gets their own complaint.
    other = reply.replace(b"p@citizen.example", b"intruder@citizen.example").replace(b"<m2@", b"<m3@")
    result = await gw.core.ingest(parsed(other, plus_addressing=True))
    assert result.created_complaint and result.complaint_id != first.complaint_id


async def test_reply_to_a_closed_complaint_of_any_age_is_added(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path)
    first = await gw.core.ingest(parsed(simple("old@citizen.example", "Route", "Route de Fès défoncée.", 1)))
    with gw.db.session() as s:
        complaint = s.get(Complaint, first.complaint_id)
        complaint.status = "closed"
        complaint.received_at = datetime(2023, 1, 1, tzinfo=timezone.utc)
        s.add(complaint)
        reference = refs.format_reference(complaint.reference)
    result = await gw.core.ingest(parsed(simple("old@citizen.example", f"Re: Route [Réf {reference}]",
                                                "Toujours pas réparée.", 2)))
    assert result.complaint_id == first.complaint_id and result.action == "follow_up:subject"


async def test_attachments_are_stored_and_oversize_gets_a_polite_answer(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path, max_attachment_bytes=100)
    result = await gw.core.ingest(parsed(fixture_bytes("gmail_en_attachments.eml"), max_attachment_bytes=100))
    assert result.created_complaint
    with gw.db.session() as s:
        message = s.get(Message, result.message_id)
        [kept] = message.attachments
        assert kept["filename"] == "street.png"
        stored = s.get(StoredFile, kept["file_id"])
        assert stored.complaint_id == result.complaint_id
        assert read_file(gw.settings.data_dir, stored).startswith(b"\x89PNG")
    texts = [m.text for m in outgoing(gw)]
    assert len(texts) == 2
    assert "lettre régie.pdf" in texts[1] and "larger than" in texts[1]


async def test_unknown_bounce_and_bounce_without_id_are_stored_only(db_url, make_gateway, tmp_path) -> None:
    gw = gateway(make_gateway, db_url, tmp_path)
    result = await gw.core.ingest(parsed(fixture_bytes("dsn_bounce_postfix.eml")))
    assert result.action == "bounce" and result.complaint_id is None
    assert outgoing(gw) == []
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(ComplaintEvent)).one() == 0


async def test_officer_reply_and_status_change_thread_on_the_complaint(db_url, make_gateway, tmp_path) -> None:
    from conversations.workflow import reply, set_status

    gw = gateway(make_gateway, db_url, tmp_path)
    first = await gw.core.ingest(parsed(simple("t@citizen.example", "Eau", "Pas d'eau à Oran depuis hier.", 1)))
    with gw.db.session() as s:
        complaint = s.get(Complaint, first.complaint_id)
        ack = s.exec(select(Message).where(Message.direction == "out")).one()
        ack.status, ack.provider_message_id, ack.thread_ref = "sent", "<gw.1.x@chikaya.example.org>", \
            "<gw.1.x@chikaya.example.org>"
        s.add(ack)
        s.flush()
        reply(gw.core, s, complaint, "Une équipe passera demain.", actor="officer")
        set_status(gw.core, s, complaint, "answered", actor="officer")
    answer, status, rating = outgoing(gw)[1:]
    assert rating.template.startswith("satisfaction.")  # an answer asks, once, for a rating
    for message in (answer, status, rating):
        assert message.thread_ref == "<gw.1.x@chikaya.example.org>"
        assert refs.format_reference(complaint.reference) in message.subject
    assert answer.raw["meta"]["references"] == ["<m1.t@citizen.example>", "<gw.1.x@chikaya.example.org>"]
    assert answer.raw["meta"]["automatic"] is False
