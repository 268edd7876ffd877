"""SMS end to end: signed webhooks in, the fake Twilio REST API out, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from conversations import reference as refs
from conversations.clock import Clock
from store.models import Complaint, ComplaintEvent, Contact, Message, Outbox
from tests.conftest import post_signed, wait_until

CITIZEN = "+212612345678"
OTHER = "+212698765432"
_sid = iter(range(1, 10_000))


def sms(text: str, sender: str = CITIZEN, sid: str | None = None) -> dict[str, str]:
    sid = sid or f"SM{next(_sid):032d}"
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "1" * 32, "From": sender,
            "To": "+212522000000", "Body": text, "NumMedia": "0", "ApiVersion": "2010-04-01"}


def count(gateway: Any, model: Any, *where: Any) -> int:
    with gateway.db.session() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


async def send(client: Any, text: str, sender: str = CITIZEN, sid: str | None = None) -> Any:
    resp = await post_signed(client, "/webhooks/twilio/sms", sms(text, sender, sid))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/xml"
    assert "<Response" in await resp.text()
    return resp


async def replies(fake: Any, number: str, n: int) -> list[str]:
    await wait_until(lambda: len(fake.to(number)) >= n)
    await asyncio.sleep(0.1)
    return [m["body"] for m in fake.to(number)]


REF = re.compile(r"\d{4}-\d{4}-\d")


async def test_new_complaint_gets_reference_by_sms(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "Bonjour, il n'y a plus d'eau au robinet depuis trois jours dans notre quartier à Oran")
    [body] = await replies(fake_twilio, CITIZEN, 1)
    ref = REF.search(body).group(0)
    assert refs.parse(ref) is not None
    assert "Régie de distribution d'eau" in body  # routed administration, in French
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.reference == refs.clean(ref)
        assert complaint.category == "water" and complaint.place == "oran"
        assert complaint.status == "assigned" and complaint.language == "fr" and complaint.channel == "sms"
        assert (complaint.answer_due_at - complaint.received_at) == timedelta(days=60)
        assert (complaint.ack_due_at - complaint.received_at) == timedelta(days=15)
        assert complaint.answer_due_at.strftime("%d/%m/%Y") in body
        events = [e.type for e in s.exec(select(ComplaintEvent).order_by(ComplaintEvent.id))]
        assert events == ["created", "routed"]
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        assert out.status == "sent" and out.provider_message_id.startswith("SM")
    assert fake_twilio.messages[0]["from"] == "+212522000000"
    assert fake_twilio.requests[0]["StatusCallback"] == "https://gateway.example.org/webhooks/twilio/sms/status"


async def test_reply_in_the_language_written(db_url, make_gateway, start_client, fake_twilio) -> None:
    client = await start_client(make_gateway(db_url))
    await send(client, "السلام عليكم الماء مقطوع عندنا في الحي منذ يومين", sender=CITIZEN)
    await send(client, "Hello, the street lamps in our street have been off for a week", sender=OTHER)
    [arabic] = await replies(fake_twilio, CITIZEN, 1)
    [english] = await replies(fake_twilio, OTHER, 1)
    assert "المرجع" in arabic
    assert "reference" in english and "Your complaint" in english


async def test_follow_up_within_24_hours_then_new(db_url, make_gateway, start_client, fake_twilio) -> None:
    clock = Clock()
    gw = make_gateway(db_url, clock=clock)
    client = await start_client(gw)
    await send(client, "Les ordures ne sont pas ramassées depuis une semaine dans ma rue")
    await send(client, "Et ça sent très mauvais maintenant")
    bodies = await replies(fake_twilio, CITIZEN, 2)
    ref = REF.search(bodies[0]).group(0)
    assert ref in bodies[1] and "ajouté" in bodies[1]
    assert count(gw, Complaint) == 1
    await send(client, "NOUVEAU Un lampadaire est tombé devant l'école")
    await replies(fake_twilio, CITIZEN, 3)
    assert count(gw, Complaint) == 2
    clock.advance(timedelta(hours=25))
    await send(client, "Il y a un nid de poule énorme sur la route principale")
    await replies(fake_twilio, CITIZEN, 4)
    assert count(gw, Complaint) == 3
    with gw.db.session() as s:
        first = s.exec(select(Complaint).order_by(Complaint.id)).first()
        follow = s.exec(select(Message).where(Message.complaint_id == first.id, Message.direction == "in")).all()
        assert len(follow) == 2
        assert [e.type for e in s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == first.id))] \
            == ["created", "routed", "citizen_message"]


async def test_status_queries(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "The garbage has not been collected in our street for ten days")
    [ack] = await replies(fake_twilio, CITIZEN, 1)
    ref = REF.search(ack).group(0)
    digits = refs.clean(ref)
    bad = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    unknown = refs.generate()
    await send(client, f"STATUS {ref}")
    await send(client, f"status {bad}")
    await send(client, f"حالة {unknown}")
    await send(client, digits)  # a bare reference, no separators
    bodies = await replies(fake_twilio, CITIZEN, 5)
    assert ref in bodies[1] and "assigned to Municipality" in bodies[1]
    assert "not valid" in bodies[2]
    assert "لم يتم العثور" in bodies[3]
    assert ref in bodies[4]
    # another number asking about this reference learns nothing
    await send(client, f"ETAT {ref}", sender=OTHER)
    [other] = await replies(fake_twilio, OTHER, 1)
    assert "Aucune réclamation" in other and ref not in other


async def test_stop_and_start(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "STOP")
    [body] = await replies(fake_twilio, CITIZEN, 1)
    assert "START" in body
    with gw.db.session() as s:
        assert s.exec(select(Contact)).one().opted_out is True
    await send(client, "توقف", sender=OTHER)
    await send(client, "START")
    bodies = await replies(fake_twilio, CITIZEN, 2)
    assert "again" in bodies[1] or "nouveau" in bodies[1] or "من جديد" in bodies[1]
    with gw.db.session() as s:
        contacts = {c.id: c.opted_out for c in s.exec(select(Contact))}
        assert sorted(contacts.values()) == [False, True]
    assert count(gw, Complaint) == 0


async def test_empty_unreadable_and_long_messages(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "   ")
    await send(client, "\ufffd\ufffd\ufffd\x01\x02", sender=OTHER)
    bodies = await replies(fake_twilio, CITIZEN, 1)
    assert "empty" in bodies[0] or "vide" in bodies[0] or "فارغة" in bodies[0]
    [unreadable] = await replies(fake_twilio, OTHER, 1)
    assert "فهم" in unreadable or "read" in unreadable or "lire" in unreadable or "قراءة" in unreadable
    assert count(gw, Message, Message.direction == "in") == 2  # stored all the same
    assert count(gw, Complaint) == 0
    long_text = "Les coupures d'électricité dans notre quartier sont quotidiennes. " * 120
    await send(client, long_text, sender="+212611111111")
    [ack] = await replies(fake_twilio, "+212611111111", 1)
    assert "très long" in ack
    with gw.db.session() as s:
        assert s.exec(select(Complaint)).one().text == long_text.strip()


async def test_same_message_sid_five_times(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    form = sms("Pas d'électricité depuis hier soir dans tout le quartier", sid="SM" + "9" * 32)
    results = await asyncio.gather(*(post_signed(client, "/webhooks/twilio/sms", form) for _ in range(3)))
    for _ in range(2):
        results.append(await post_signed(client, "/webhooks/twilio/sms", form))
    assert [r.status for r in results] == [200] * 5
    await replies(fake_twilio, CITIZEN, 1)
    await asyncio.sleep(0.5)
    assert count(gw, Message, Message.direction == "in") == 1
    assert count(gw, Complaint) == 1
    assert len(fake_twilio.to(CITIZEN)) == 1


async def test_forged_and_unsigned_webhooks(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    form = sms("Il n'y a pas d'eau")
    assert (await post_signed(client, "/webhooks/twilio/sms", form, token="wrong-token")).status == 403
    assert (await post_signed(client, "/webhooks/twilio/sms", form, signature="")).status == 403
    tampered = dict(form, Body="something else")
    sig = (await _sig(form))
    assert (await post_signed(client, "/webhooks/twilio/sms", tampered, signature=sig)).status == 403
    other_host = await post_signed(client, "/webhooks/twilio/sms", form, base="https://evil.example.org")
    assert other_host.status == 403
    assert (await post_signed(client, "/webhooks/twilio/sms/status", {"MessageSid": "SM1", "MessageStatus": "sent"},
                              token="nope")).status == 403
    assert count(gw, Message) == 0


async def _sig(form: dict[str, str]) -> str:
    from tests.conftest import twilio_signature

    return twilio_signature("/webhooks/twilio/sms", form)


async def test_malformed_webhook_is_400_with_reason(sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url))
    resp = await post_signed(client, "/webhooks/twilio/sms", {"Body": "hello", "From": "+212612345678"})
    assert resp.status == 400 and "SmsSid" in await resp.text()
    resp = await post_signed(client, "/webhooks/twilio/sms", {"MessageSid": "SM1", "From": "garbage", "Body": "x"})
    assert resp.status == 400 and "phone number" in await resp.text()


async def test_status_callbacks_out_of_order(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "Hello, no electricity in our building since yesterday")
    await replies(fake_twilio, CITIZEN, 1)
    sid = fake_twilio.messages[0]["sid"]
    await wait_until(lambda: count(gw, Message, Message.provider_message_id == sid, Message.status == "sent"))

    async def callback(status: str, code: str | None = None) -> None:
        form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status}
        if code:
            form["ErrorCode"] = code
        assert (await post_signed(client, "/webhooks/twilio/sms/status", form)).status == 200

    await callback("delivered")
    await callback("sent")
    await callback("queued")
    with gw.db.session() as s:
        msg = s.exec(select(Message).where(Message.provider_message_id == sid)).one()
        assert msg.status == "delivered" and msg.delivered_at is not None
    unknown = {"MessageSid": "SM" + "7" * 32, "MessageStatus": "delivered"}
    assert (await post_signed(client, "/webhooks/twilio/sms/status", unknown)).status == 200


async def test_undelivered_callback_records_error(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "Hello, the road to the school is full of potholes")
    await replies(fake_twilio, CITIZEN, 1)
    sid = fake_twilio.messages[0]["sid"]
    await wait_until(lambda: count(gw, Message, Message.provider_message_id == sid, Message.status == "sent"))
    form = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert (await post_signed(client, "/webhooks/twilio/sms/status", form)).status == 200
    with gw.db.session() as s:
        msg = s.exec(select(Message).where(Message.provider_message_id == sid)).one()
        assert (msg.status, msg.error_code) == ("undelivered", "30003")
        assert s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "delivery_failed")).one()


async def test_twilio_500_then_201_is_retried_and_sent_once(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    fake_twilio.fail_next(500, message="internal error")
    fake_twilio.fail_next(429, code=20429, message="Too Many Requests", retry_after=0)
    client = await start_client(gw)
    await send(client, "Bonjour, coupure d'électricité depuis ce matin")
    await replies(fake_twilio, CITIZEN, 1)
    await asyncio.sleep(0.3)
    assert len(fake_twilio.requests) == 3 and len(fake_twilio.messages) == 1
    with gw.db.session() as s:
        row = s.exec(select(Outbox)).one()
        assert row.status == "sent" and row.attempts == 3
        assert s.exec(select(Message).where(Message.direction == "out")).one().status == "sent"


async def test_twilio_400_invalid_number_fails_and_is_recorded(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    fake_twilio.fail_next(400, code=21211, message="The 'To' number is not a valid phone number.")
    client = await start_client(gw)
    await send(client, "Bonjour, pas d'eau depuis hier")
    await wait_until(lambda: count(gw, Outbox, Outbox.status == "failed"))
    await asyncio.sleep(0.3)
    assert len(fake_twilio.requests) == 1 and fake_twilio.messages == []
    with gw.db.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        assert out.status == "failed" and out.error_code == "21211" and "not a valid" in out.error_message
        event = s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "delivery_failed")).one()
        assert event.data["code"] == "21211"


async def test_healthz_and_metrics(sqlite_url, make_gateway, start_client, fake_twilio) -> None:
    client = await start_client(make_gateway(sqlite_url))
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["checks"]["database"] == "ok"
    await send(client, "Hello, the water is brown and smells bad")
    await replies(fake_twilio, CITIZEN, 1)
    text = await (await client.get("/metrics")).text()
    assert 'gateway_messages_in_total{channel="sms",outcome="stored"}' in text
    assert "gateway_webhook_seconds_bucket" in text
    assert "gateway_outbox_backlog" in text
    assert 'gateway_messages_out_total{channel="sms",status="sent"}' in text
