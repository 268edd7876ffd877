"""Work on complaints through the API reaches the citizen: replies and status changes on their
own channel (SMS through the fake Twilio API; Telegram and e-mail through recording doubles),
in their language, once per change, respecting opt-out and falling back to another channel."""
from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from sqlmodel import select

from conversations import reference as refs
from conversations.identities import link_identity
from conversations.messages import InboundMessage
from store.models import Complaint, ComplaintEvent, Contact, Identity, Message
from tests.api.conftest import ApiEnv
from tests.channels.sms.test_sms_flow import send
from tests.conftest import wait_until

CITIZEN = "+212612345678"
_ids = itertools.count(1)


async def ingest(env: ApiEnv, channel: str, sender: str, text: str) -> str:
    inbound = InboundMessage(channel=channel, provider_message_id=f"{channel}-{next(_ids)}", sender=sender,
                             service_address=None, text=text, received_at=env.gw.core.clock.now())
    result = await env.gw.core.ingest(inbound)
    assert result.complaint_reference, result
    return refs.format_reference(result.complaint_reference)


async def settle() -> None:
    await asyncio.sleep(0.3)  # give delivery a chance to send something it should not


async def test_reply_reaches_sms_in_the_citizens_language(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    await send(env.client, "السلام عليكم الماء مقطوع عندنا في وهران منذ ثلاثة أيام")
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    with env.gw.db.session() as s:
        reference = refs.format_reference(s.exec(select(Complaint)).one().reference)
    status, body = await env.call("branch_officer", "POST", f"/api/v1/complaints/{reference}/replies",
                                  {"text": "فرقنا في الطريق"})
    assert status == 201 and body["queued"] is True
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    answer = fake_twilio.to(CITIZEN)[1]["body"]
    assert "فرقنا في الطريق" in answer and reference in answer and "جواب" in answer
    status, detail = await env.call("officer", "GET", f"/api/v1/complaints/{reference}")
    out = [m for m in detail["messages"] if m["direction"] == "out"]
    assert [m["template"] for m in out] == ["ack_new", "reply"]
    await wait_until(lambda: _message_status(env, body["message_id"]) == "sent")
    status, detail = await env.call("officer", "GET", f"/api/v1/complaints/{reference}")
    assert detail["messages"][-1]["status"] == "sent"
    reply_event = [e for e in detail["events"] if e["type"] == "reply"][0]
    assert reply_event["actor"] == "user:olga" and reply_event["note"] == "فرقنا في الطريق"


def _message_status(env: ApiEnv, message_id: int) -> str:
    with env.gw.db.session() as s:
        return s.get(Message, message_id).status


async def test_reply_reaches_telegram_and_email(api_env: ApiEnv) -> None:
    env = api_env
    tg = await ingest(env, "telegram", "telegram:4242", "Hello, the street lamps in our street are off for a week")
    mail = await ingest(env, "email", "mailto:citizen@example.org",
                        "Bonjour, les ordures ne sont pas ramassées dans notre rue depuis dix jours")
    await wait_until(lambda: len(env.telegram.sent) == 1 and len(env.email.sent) == 1)
    for reference, text in ((tg, "A crew will fix the lamps on Monday"), (mail, "Le camion passera demain")):
        status, body = await env.call("supervisor", "POST", f"/api/v1/complaints/{reference}/replies", {"text": text})
        assert status == 201 and body["queued"]
    await wait_until(lambda: len(env.telegram.sent) == 2 and len(env.email.sent) == 2)
    tg_reply, mail_reply = env.telegram.sent[1], env.email.sent[1]
    assert tg_reply.to == "telegram:4242" and "A crew will fix the lamps on Monday" in tg_reply.text
    assert tg_reply.language == "en" and tg_reply.automatic is False
    assert mail_reply.to == "mailto:citizen@example.org" and "Le camion passera demain" in mail_reply.text
    assert mail_reply.language == "fr" and refs.clean(mail) in refs.clean(mail_reply.subject or "")


async def test_status_change_notifies_once(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran", phone="0612345678")
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    path = f"/api/v1/complaints/{reference}/status"
    first = await env.call("officer", "POST", path, {"status": "in_progress", "note": "équipe envoyée"})
    second = await env.call("officer", "POST", path, {"status": "in_progress", "note": "équipe envoyée"})
    assert first[0] == second[0] == 200
    assert first[1]["changed"] is True and first[1]["notified"] is True
    assert second[1]["changed"] is False and second[1]["notified"] is False
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    await settle()
    bodies = [m["body"] for m in fake_twilio.to(CITIZEN)]
    assert len(bodies) == 2 and "en cours de traitement" in bodies[1] and "équipe envoyée" in bodies[1]
    status, detail = await env.call("officer", "GET", f"/api/v1/complaints/{reference}")
    assert [e["type"] for e in detail["events"]].count("status_changed") == 1


async def test_opted_out_citizen_only_gets_essential_messages(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran", phone="0612345678")
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    await send(env.client, "STOP")
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    path = f"/api/v1/complaints/{reference}/status"
    status, body = await env.call("officer", "POST", path, {"status": "in_progress"})
    assert status == 200 and body["changed"] and not body["notified"]
    status, body = await env.call("officer", "POST", path, {"status": "answered", "note": "réparé"})
    assert body["notified"]  # the answer is essential
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 3)
    await settle()
    assert len(fake_twilio.to(CITIZEN)) == 3 and "répondue" in fake_twilio.to(CITIZEN)[2]["body"]


async def test_unreachable_channel_falls_back(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    reference = await ingest(env, "telegram", "telegram:777", "Hello, the garbage has not been collected for ten days")
    await wait_until(lambda: len(env.telegram.sent) == 1)
    with env.gw.db.session() as s:
        identity = s.exec(select(Identity).where(Identity.urn == "telegram:777")).one()
        identity.unreachable, identity.unreachable_reason = True, "bot blocked"
        s.add(identity)
        link_identity(s, s.get(Contact, identity.contact_id), f"tel:{CITIZEN}")
    status, body = await env.call("supervisor", "POST", f"/api/v1/complaints/{reference}/status",
                                  {"status": "in_progress"})
    assert status == 200 and body["notified"]
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    assert "being handled" in fake_twilio.to(CITIZEN)[0]["body"] and len(env.telegram.sent) == 1
    with env.gw.db.session() as s:
        types = [e.type for e in s.exec(select(ComplaintEvent).order_by(ComplaintEvent.id))]
    assert "channel_fallback" in types


async def test_idempotent_reply_sends_once(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran", phone="0612345678")
    path = f"/api/v1/complaints/{reference}/replies"
    headers = {"Idempotency-Key": "reply-7f3a"}
    r1 = await env.client.post(path, json={"text": "Intervention demain"}, headers=env.headers("officer", **headers))
    r2 = await env.client.post(path, json={"text": "Intervention demain"}, headers=env.headers("officer", **headers))
    assert r1.status == r2.status == 201
    assert await r1.json() == await r2.json() and r2.headers.get("Idempotent-Replayed") == "true"
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    await settle()
    assert len(fake_twilio.to(CITIZEN)) == 2
    other = await env.client.post(f"/api/v1/complaints/{reference}/notes", json={"text": "n"},
                                  headers=env.headers("officer", **headers))
    assert other.status == 422 and (await other.json())["error"]["field"] == "Idempotency-Key"


async def test_agent_logs_a_walk_in_complaint(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    status, body = await env.call("agent", "POST", "/api/v1/complaints", {
        "text": "Le citoyen signale une fuite d'eau importante devant la mairie d'Oran depuis ce matin",
        "phone": "06 12 34 56 78", "channel": "walk_in", "consent_sms": True})
    assert status == 201 and body["notified"] and body["category"] == "water"
    reference = body["reference"]
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    sms = fake_twilio.to(CITIZEN)[0]["body"]
    assert reference in sms and "réclamation" in sms
    with env.gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.created_by == "amina" and complaint.channel == "walk_in"
        events = s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id)).all()
        assert {e.actor for e in events} == {"user:amina"}
        inbound = s.exec(select(Message).where(Message.direction == "in")).one()
        assert inbound.channel == "walk_in" and inbound.raw["entered_by"] == "amina"
    # no consent: the agent reads the reference out, nothing is sent
    status, body = await env.call("agent", "POST", "/api/v1/complaints", {
        "text": "Route abîmée", "phone": "0698765432", "channel": "phone", "consent_sms": False})
    assert status == 201 and body["notified"] is False
    # e-mail only: the reference goes by e-mail
    status, body = await env.call("agent", "POST", "/api/v1/complaints", {
        "text": "Register entry: the school roof leaks", "email": "parent@example.org", "channel": "register"})
    assert status == 201 and body["notified"]
    await wait_until(lambda: len(env.email.sent) == 1)
    assert body["reference"] in env.email.sent[0].text and env.email.sent[0].to == "mailto:parent@example.org"
    await settle()
    assert len(fake_twilio.messages) == 1


async def test_intake_is_idempotent(api_env: ApiEnv, fake_twilio: Any) -> None:
    env = api_env
    body = {"text": "Nid de poule sur la route de Fès", "phone": "0612345678", "channel": "phone"}
    headers = env.headers("agent", **{"Idempotency-Key": "call-CA123"})
    r1 = await env.client.post("/api/v1/complaints", json=body, headers=headers)
    r2 = await env.client.post("/api/v1/complaints", json=body, headers=headers)
    assert r1.status == r2.status == 201 and (await r1.json()) == (await r2.json())
    status, page = await env.call("agent", "GET", "/api/v1/complaints")
    assert page["total"] == 1


async def test_transfers_and_routing_corrections(api_factory, fake_twilio: Any) -> None:
    env: ApiEnv = await api_factory(config_overrides={"transfers": {"reset_clock": True}})
    reference = await env.intake("Pas d'eau au robinet depuis trois jours à Oran", phone="0612345678")
    base = f"/api/v1/complaints/{reference}"
    status, body = await env.call("branch_officer", "POST", f"{base}/transfer",
                                  {"category": "roads", "reason": "it is the road"})
    assert status == 403 and body["error"]["field"] == "category"
    # an officer sends it back as not theirs: to triage
    status, body = await env.call("branch_officer", "POST", f"{base}/transfer",
                                  {"reason": "pas chez nous: canalisation privée"})
    assert status == 200 and body["status"] == "new" and body["administration"] is None
    assert (await env.call("branch_officer", "GET", base))[0] == 404  # no longer theirs
    status, page = await env.call("supervisor", "GET", "/api/v1/complaints?status=new")
    assert [i["reference"] for i in page["items"]] == [reference]
    # the supervisor corrects the routing
    status, body = await env.call("supervisor", "POST", f"{base}/transfer",
                                  {"category": "urbanism", "reason": "illegal connection: building permit"})
    assert status == 200 and body["status"] == "assigned" and body["category"] == "urbanism"
    assert body["administration"] == "urban_planning" and body["notified"]
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    assert "Agence urbaine" in fake_twilio.to(CITIZEN)[1]["body"]
    status, detail = await env.call("supervisor", "GET", base)
    transfers = [e for e in detail["events"] if e["type"] == "transferred"]
    assert [(e["actor"], e["note"]) for e in transfers] == [
        ("user:olga", "pas chez nous: canalisation privée"), ("user:sara", "illegal connection: building permit")]
    assert transfers[1]["data"]["from"]["category"] == "water" and transfers[1]["data"]["correction"] is True
    assert detail["clocks"]["answer_due_at"] > detail["received_at"]  # restarted under the configured rule
    resp = await env.client.get("/api/v1/routing/corrections?format=jsonl", headers=env.headers("supervisor"))
    assert resp.status == 200
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert lines == [{"id": reference, "text": "Pas d'eau au robinet depuis trois jours à Oran", "channel": "phone",
                      "category": "urbanism", "place": "oran"}]
    status, listing = await env.call("admin", "GET", "/api/v1/routing/corrections")
    assert listing["items"][0]["corrected_by"] == "user:sara" and listing["items"][0]["from_category"] == "water"
    # a closed complaint is not transferred
    await env.call("supervisor", "POST", f"{base}/status", {"status": "rejected", "note": "duplicate"})
    status, body = await env.call("supervisor", "POST", f"{base}/transfer", {"administration": "municipality",
                                                                               "reason": "x"})
    assert status == 409


async def test_suggest_while_typing(api_env: ApiEnv) -> None:
    status, body = await api_env.call("agent", "POST", "/api/v1/routing/suggest",
                                      {"text": "Pas d'eau au robinet depuis trois jours à Oran", "language": "fr"})
    assert status == 200 and body["category"] == "water" and body["administration"] == "water_utility.oran"
    assert body["category_name"] == "Eau et assainissement" and body["place"] == "oran"
    status, body = await api_env.call("agent", "POST", "/api/v1/routing/suggest", {"text": "bonjour"})
    assert status == 200 and body["category"] is None
