"""Email end to end: a real Dovecot (IMAP in) and an aiosmtpd listener (SMTP out), on SQLite and PostgreSQL.

Messages are APPENDed to the gateway's mailbox; the gateway's IMAP fetcher (a background service
of the served app) ingests them; answers leave through the outbox to the SMTP listener.
"""
from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlmodel import func, select

from conftest import MAILBOX_ADDRESS, fixture_bytes
from channels.email.imap import imap_utf7
from conversations import reference as refs
from conversations.email_mailbox import load_checkpoint
from gateway.email_poller import DEAD_LETTERS
from store.models import Complaint, ComplaintEvent, Identity, KeyValue, Message, Outbox, StoredFile
from store.models_email import EmailDeadLetter
from tests.conftest import wait_until

FIXTURE_OURS = b"<gw-41-5f2c9a1e7b3d@chikaya.example.org>"
FIXTURE_REF = b"4821-3307-1"
REF = re.compile(r"\d{4}-\d{4}-\d")


def eml(sender: str, subject: str, body: str, *, message_id: str | None = None, in_reply_to: str | None = None,
        headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = MAILBOX_ADDRESS
    msg["Subject"] = subject
    msg["Date"] = "Mon, 3 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = message_id or make_msgid(domain="citizen.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def count(gw: Any, model: Any, *where: Any) -> int:
    with gw.db.session() as s:
        return int(s.exec(select(func.count()).select_from(model).where(*where)).one())


def inbound_count(gw: Any) -> int:
    return count(gw, Message, Message.direction == "in", Message.channel == "email")


async def serve(make_email_gateway: Any, start_client: Any, db_url: str, **kwargs: Any) -> tuple[Any, Any]:
    gw = make_email_gateway(db_url, **kwargs)
    client = await start_client(gw)
    fetcher = gw.extras["email_fetcher"]
    await wait_until(lambda: fetcher.syncs >= 1, timeout=15)
    return gw, client


async def mail_to(smtp: Any, address: str, n: int = 1, gw: Any = None) -> list[EmailMessage]:
    """The mails ``address`` received, once there are ``n`` (and, with ``gw``, recorded as sent)."""
    await wait_until(lambda: len(smtp.sink.to(address)) >= n, timeout=15)
    if gw is not None:
        await wait_until(lambda: count(gw, Message, Message.direction == "out", Message.status == "sent",
                                       Message.urn == f"mailto:{address}") >= n)
    return smtp.sink.to(address)


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


async def test_new_complaint_in_arabic_windows_1256(db_url, make_email_gateway, start_client, mailbox,
                                                    smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(fixture_bytes("new_ar_windows1256.eml"))
    [ack] = await mail_to(smtp_server, "karim.alaoui@menara.example", gw=gw)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.channel == "email" and complaint.language == "ar"
        assert complaint.text.startswith("انقطاع الماء في حي النصر\n\nالسلام عليكم")
        assert "بمدينة وجدة منذ خمسة أيام" in complaint.text
        message = s.exec(select(Message).where(Message.direction == "in")).one()
        assert message.urn == "mailto:karim.alaoui@menara.example"
        assert message.subject == "انقطاع الماء في حي النصر"
        assert message.provider_message_id == "<000001db8c1e$3f5a2b10$be0e8130$@menara.example>"
        eml_file = s.get(StoredFile, message.raw["eml_file_id"])
        assert eml_file is not None and eml_file.content_type == "message/rfc822"
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        assert out.status == "sent" and out.provider_message_id == ack["Message-ID"] == out.thread_ref
    reference = refs.format_reference(complaint.reference)
    assert ack["Subject"] == f"Re: انقطاع الماء في حي النصر [مرجع {reference}]"
    assert ack["In-Reply-To"] == "<000001db8c1e$3f5a2b10$be0e8130$@menara.example>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["To"] == "karim.alaoui@menara.example"
    assert reference in text_of(ack) and "المرجع" in text_of(ack)
    assert 'dir="rtl"' in ack.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    await wait_until(lambda: _seen(mailbox))


async def _seen(mailbox: Any) -> bool:
    flags = await mailbox.flags()
    return bool(flags) and all("\\Seen" in f for f in flags.values())


async def test_new_complaint_in_french_quoted_printable(db_url, make_email_gateway, start_client, mailbox,
                                                       smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(fixture_bytes("new_fr_qp_latin1.eml"))
    [ack] = await mail_to(smtp_server, "severine.benard@laposte.example")
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
    assert complaint.language == "fr"
    assert complaint.text.startswith("Éclairage public en panne rue des Écoles\n\nBonjour,")
    assert "les élèves rentrent dans le noir" in complaint.text
    assert ack["Subject"] == f"Re: Éclairage public en panne rue des Écoles [Réf " \
                             f"{refs.format_reference(complaint.reference)}]"
    assert "enregistrée sous la référence" in text_of(ack)


async def test_html_only_email(db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(fixture_bytes("html_only.eml"))
    await mail_to(smtp_server, "youssef.b@webmail.example")
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
    assert "Un nid de poule très profond s'est formé sur la route nationale 6" in complaint.text
    assert "<" not in complaint.text and "alert" not in complaint.text and "&nbsp;" not in complaint.text


async def _first_complaint(gw: Any, mailbox: Any, smtp: Any, raw: bytes, address: str) -> tuple[Complaint, str]:
    await mailbox.append(raw)
    [ack] = await mail_to(smtp, address, gw=gw)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint).order_by(Complaint.id.desc())).first()  # type: ignore[union-attr]
    return complaint, ack["Message-ID"]


async def test_reply_threaded_by_in_reply_to(db_url, make_email_gateway, start_client, mailbox,
                                             smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    citizen = "severine.benard@gmail.example"
    complaint, ack_id = await _first_complaint(
        gw, mailbox, smtp_server, eml(f"Séverine <{citizen}>", "Lampadaires éteints",
                                      "Les lampadaires de la rue des Écoles à Oran sont éteints depuis une semaine."),
        citizen)
    # The subject carries a reference that exists nowhere: only In-Reply-To can thread it.
    reply = fixture_bytes("gmail_fr_reply.eml").replace(FIXTURE_OURS, ack_id.encode())
    await mailbox.append(reply)
    [_, followup_ack] = await mail_to(smtp_server, citizen, 2)
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 1
        message = s.exec(select(Message).where(Message.direction == "in").order_by(Message.id.desc())).first()
        assert message.complaint_id == complaint.id
        assert message.text == "Merci. Les lampadaires sont toujours éteints ce soir, j'ajoute une photo demain."
        events = [e.type for e in s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id))]
        assert events[-1] == "citizen_message"
    assert "ajouté à la réclamation" in text_of(followup_ack)
    assert followup_ack["In-Reply-To"] == "<CAFx8k2Lq0rT+ZgY7m3=pX9WbN0uQe4sV1dH6jK@mail.gmail.com>"
    assert ack_id in followup_ack["References"]
    assert refs.format_reference(complaint.reference) in followup_ack["Subject"]


async def test_outlook_reply_threaded_by_subject_reference_with_quote_stripped(
        db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    lawyer = "m.tazi@cabinet-avocats.example"
    complaint, _ = await _first_complaint(
        gw, mailbox, smtp_server, eml(f"Mohamed Tazi <{lawyer}>", "Réclamation pour mon client",
                                      "Mon client attend depuis six mois une décision du tribunal de Rabat."),
        lawyer)
    reference = refs.format_reference(complaint.reference).encode()
    await mailbox.append(fixture_bytes("outlook_fr_reply.eml").replace(FIXTURE_REF, reference))
    [_, followup_ack] = await mail_to(smtp_server, lawyer, 2)
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 1
        message = s.exec(select(Message).where(Message.direction == "in").order_by(Message.id.desc())).first()
        assert message.complaint_id == complaint.id
        assert message.text.startswith("Madame, Monsieur,")
        assert message.text.endswith("Avocat au barreau de Rabat")
        for quoted in ("De :", "Envoyé :", "Objet :", "Votre réclamation est enregistrée"):
            assert quoted not in message.text
    assert "ajouté à la réclamation" in text_of(followup_ack)


async def test_reply_from_another_sender_opens_its_own_complaint(db_url, make_email_gateway, start_client,
                                                                  mailbox, smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    owner = "karim.alaoui@menara.example"
    complaint, ack_id = await _first_complaint(gw, mailbox, smtp_server,
                                               fixture_bytes("new_ar_windows1256.eml"), owner)
    reference = refs.format_reference(complaint.reference).encode()
    # Sarah replies to Karim's thread (In-Reply-To) and even names his reference in the subject.
    await mailbox.append(fixture_bytes("outlook_en_original_message.eml").replace(FIXTURE_OURS, ack_id.encode())
                         .replace(FIXTURE_REF, reference))
    [ack] = await mail_to(smtp_server, "sarah.mitchell@ngo.example")
    with gw.db.session() as s:
        complaints = s.exec(select(Complaint).order_by(Complaint.id)).all()
        assert len(complaints) == 2 and complaints[1].contact_id != complaints[0].contact_id
        sarah = s.exec(select(Message).where(Message.urn == "mailto:sarah.mitchell@ngo.example",
                                                Message.direction == "in")).one()
        assert sarah.complaint_id == complaints[1].id
    assert refs.format_reference(complaints[1].reference) in ack["Subject"]


async def test_out_of_office_and_bounce(db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    lawyer = "m.tazi@cabinet-avocats.example"
    complaint, ack_id = await _first_complaint(
        gw, mailbox, smtp_server, eml(f"Mohamed Tazi <{lawyer}>", "Dossier 2025/114",
                                      "Aucune réponse de l'administration des impôts depuis trois mois."), lawyer)
    await mailbox.append(fixture_bytes("out_of_office_fr.eml").replace(FIXTURE_OURS, ack_id.encode()),
                         fixture_bytes("out_of_office_ar_subject.eml"),
                         fixture_bytes("dsn_bounce_postfix.eml").replace(FIXTURE_OURS, ack_id.encode()))
    await wait_until(lambda: inbound_count(gw) == 4)
    await wait_until(lambda: count(gw, ComplaintEvent, ComplaintEvent.type == "delivery_failed") == 1)
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 1  # nothing new
        out = s.exec(select(Message).where(Message.provider_message_id == ack_id)).one()
        assert out.status == "failed" and out.error_code == "5.1.1"
        assert "User unknown" in out.error_message
        event = s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "delivery_failed")).one()
        assert event.complaint_id == complaint.id and event.data["code"] == "5.1.1"
        identity = s.exec(select(Identity).where(Identity.urn == f"mailto:{lawyer}")).one()
        assert identity.unreachable
        auto = s.exec(select(Message).where(Message.direction == "in", Message.complaint_id.is_(None))).all()  # type: ignore[union-attr]
        assert len(auto) == 3
        assert s.exec(select(func.count()).select_from(Message).where(Message.direction == "out")).one() == 1
    assert len(smtp_server.sink.messages) == 1  # no answer to the out-of-office replies nor to the bounce


async def test_gateway_down_while_20_messages_arrive(db_url, make_email_gateway, start_client, mailbox,
                                                     smtp_server) -> None:
    gw, client = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(eml("first@citizen.example", "Eau coupée", "Pas d'eau depuis hier dans mon quartier."))
    await wait_until(lambda: inbound_count(gw) == 1)
    await client.close()  # the gateway stops
    await mailbox.append(*[eml(f"citizen{i}@citizen.example", f"Problème {i}",
                               f"Les ordures ne sont pas ramassées dans la rue numéro {i} depuis une semaine.")
                           for i in range(20)])
    gw2, client2 = await serve(make_email_gateway, start_client, db_url)
    await wait_until(lambda: inbound_count(gw2) == 21, timeout=30)
    await wait_until(lambda: len(smtp_server.sink.messages) == 21, timeout=30)
    await client2.close()
    gw3, _ = await serve(make_email_gateway, start_client, db_url)  # a third start re-ingests nothing
    assert inbound_count(gw3) == 21
    assert count(gw3, Complaint) == 21
    with gw3.db.session() as s:
        ids = s.exec(select(Message.provider_message_id).where(Message.direction == "in")).all()
        assert len(set(ids)) == 21
        [row] = s.exec(select(KeyValue).where(KeyValue.key.startswith("imap-checkpoint:"))).all()  # type: ignore[attr-defined]
        assert row.value["last_uid"] == 21 and row.value["uidvalidity"] == await mailbox.uidvalidity()
    assert len(smtp_server.sink.messages) == 21
    assert sorted(len(smtp_server.sink.to(f"citizen{i}@citizen.example")) for i in range(20)) == [1] * 20


async def test_uidvalidity_change_reads_the_folder_again_without_duplicates(
        db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    await mailbox.command("create", "Complaints")
    old = [eml(f"old{i}@citizen.example", "Route", f"Nid de poule numéro {i} sur la route de Fès.") for i in range(3)]
    await mailbox.append(*old, folder="Complaints")
    gw, client = await serve(make_email_gateway, start_client, db_url, email={"folder": "Complaints"})
    await wait_until(lambda: inbound_count(gw) == 3)
    first_validity = await mailbox.uidvalidity("Complaints")
    await client.close()
    # The folder is recreated (a restore, a migration to another server): new UIDVALIDITY, same mail.
    await mailbox.command("delete", "Complaints")
    await mailbox.command("create", "Complaints")
    new = [eml(f"new{i}@citizen.example", "Déchets", f"Dépôt sauvage numéro {i} près du marché.") for i in range(2)]
    await mailbox.append(*old, *new, folder="Complaints")
    assert await mailbox.uidvalidity("Complaints") != first_validity
    gw2, _ = await serve(make_email_gateway, start_client, db_url, email={"folder": "Complaints"})
    await wait_until(lambda: inbound_count(gw2) == 5)
    key = next(iter(_checkpoints(gw2)))
    await wait_until(lambda: load_checkpoint(gw2.db, key)["last_uid"] == 5)
    assert load_checkpoint(gw2.db, key)["uidvalidity"] == await mailbox.uidvalidity("Complaints")
    assert inbound_count(gw2) == 5 and count(gw2, Complaint) == 5
    await wait_until(lambda: len(smtp_server.sink.messages) == 5)
    assert len(smtp_server.sink.messages) == 5  # the three old ones were not answered twice


def _checkpoints(gw: Any) -> list[str]:
    with gw.db.session() as s:
        return [row.key for row in s.exec(select(KeyValue)) if row.key.startswith("imap-checkpoint:")]


async def test_malformed_message_is_dead_lettered_and_the_others_processed(
        db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    before = DEAD_LETTERS.labels("malformed")._value.get()
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    broken = fixture_bytes("malformed_no_sender.eml")
    await mailbox.append(eml("a@citizen.example", "Eau", "Pas d'eau à Oujda depuis deux jours."), broken,
                         eml("b@citizen.example", "Route", "La route de Fès est pleine de trous."))
    await wait_until(lambda: count(gw, Complaint) == 2)
    await wait_until(lambda: count(gw, EmailDeadLetter) == 1)
    with gw.db.session() as s:
        dead = s.exec(select(EmailDeadLetter)).one()
        assert dead.raw == broken and dead.uid == 2 and "sender" in dead.error
    assert DEAD_LETTERS.labels("malformed")._value.get() == before + 1
    flags = await mailbox.flags()
    assert "\\Seen" in flags[1] and "\\Seen" in flags[3]
    assert "\\Seen" not in flags[2]  # left unread on the server for a human to look at
    key = next(iter(_checkpoints(gw)))
    await wait_until(lambda: load_checkpoint(gw.db, key)["last_uid"] == 3)


async def test_smtp_451_then_250_is_retried_and_sent_once(db_url, make_email_gateway, start_client, mailbox,
                                                         smtp_server) -> None:
    smtp_server.sink.plan = ["451 4.3.0 Temporary lookup failure"]
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(eml("patient@citizen.example", "Électricité", "Coupure d'électricité depuis ce matin à Oran."))
    [ack] = await mail_to(smtp_server, "patient@citizen.example", gw=gw)
    assert smtp_server.sink.attempts == 2
    with gw.db.session() as s:
        row = s.exec(select(Outbox)).one()
        assert row.status == "sent" and row.attempts == 2
        out = s.get(Message, row.message_id)
        assert out.status == "sent" and out.provider_message_id == ack["Message-ID"]
    assert len(smtp_server.sink.messages) == 1


async def test_smtp_permanent_refusal_marks_the_message_failed(db_url, make_email_gateway, start_client, mailbox,
                                                               smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url)
    await mailbox.append(eml("ghost@refused.example", "Eau", "Pas d'eau depuis trois jours à Oujda."))
    await wait_until(lambda: count(gw, Outbox, Outbox.status == "failed") == 1)
    with gw.db.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        assert out.status == "failed" and out.error_code == "550"
        assert s.exec(select(Identity).where(Identity.urn == "mailto:ghost@refused.example")).one().unreachable
    assert smtp_server.sink.messages == []


async def test_lost_connection_reconnects_and_misses_nothing(db_url, make_email_gateway, start_client, mailbox,
                                                            smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url, email={"poll_seconds": 30})
    fetcher = gw.extras["email_fetcher"]
    await wait_until(lambda: fetcher._waiting)
    fetcher._client.protocol.transport.close()  # the server goes away in the middle of IDLE
    await mailbox.append(eml("late@citizen.example", "Bruit", "Un chantier fait du bruit toute la nuit à Oran."))
    await wait_until(lambda: fetcher.connections >= 2, timeout=10)
    await wait_until(lambda: inbound_count(gw) == 1, timeout=10)


async def test_polling_without_idle(db_url, make_email_gateway, start_client, mailbox, smtp_server) -> None:
    gw, _ = await serve(make_email_gateway, start_client, db_url, email={"idle": False, "poll_seconds": 0.2,
                                                                         "move_to": "Traités"})
    await mailbox.append(eml("poll@citizen.example", "Eau", "Pas d'eau à Oujda depuis trois jours."))
    await wait_until(lambda: inbound_count(gw) == 1, timeout=10)
    await wait_until(lambda: _moved(mailbox), timeout=10)


async def _moved(mailbox: Any) -> bool:
    moved = await mailbox.flags(imap_utf7("Traités"))
    return not await mailbox.flags() and bool(moved) and all("\\Seen" in f for f in moved.values())
