"""Telegram end to end: webhook Updates in, the fake Bot API out, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlmodel import func, select

from conversations import reference as refs
from store.models import Complaint, ComplaintEvent, Contact, Identity, Message, Outbox, StoredFile
from store.models_telegram import TelegramFile
from tests.conftest import wait_until
from tests.support.telegram_updates import fresh, post_update

SAMIRA = 5108342071
YOUSSEF = 6021887345
REF = re.compile(r"\d{4}-\d{4}-\d")


def count(gateway: Any, model: Any, *where: Any) -> int:
    with gateway.db.session() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


async def post(client: Any, update: dict[str, Any]) -> None:
    resp = await post_update(client, update)
    assert resp.status == 200, await resp.text()


async def messages_to(fake: Any, chat: int, n: int) -> list[dict[str, Any]]:
    await wait_until(lambda: len(fake.to(chat)) >= n)
    return fake.to(chat)


async def test_start_greets_in_telegram_language_and_offers_languages(db_url, make_tg, start_client,
                                                                      fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("start_command"))  # language_code fr
    [greeting] = await messages_to(fake_telegram, SAMIRA, 1)
    assert greeting["text"].startswith("Bonjour") and "Choisissez votre langue" in greeting["text"]
    assert fake_telegram.callback_data(greeting) == ["lang:ar", "lang:fr", "lang:en"]
    await post(client, fresh("callback_query", data="lang:en"))
    sent = await messages_to(fake_telegram, SAMIRA, 2)
    assert "in English" in sent[1]["text"]
    assert sent[1]["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    await wait_until(lambda: fake_telegram.of("answerCallbackQuery"))
    with gw.db.session() as s:
        contact = s.exec(select(Contact)).one()
        assert contact.language == "en"
        identity = s.exec(select(Identity)).one()
        assert identity.urn == f"telegram:{SAMIRA}" and identity.extra["language"] == "en"
    # An Arabic /start greets in Arabic; an unknown language code falls back to the default (Arabic).
    await post(client, fresh("start_command", user=YOUSSEF, **{"from": {"id": YOUSSEF, "is_bot": False,
                                                                        "first_name": "Y", "language_code": "ar"}}))
    [arabic] = await messages_to(fake_telegram, YOUSSEF, 1)
    assert "مرحبا" in arabic["text"]


async def test_darija_complaint_confirmed_then_corrected_with_buttons(db_url, make_tg, start_client,
                                                                     fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("private_text_darija"))
    [ack] = await messages_to(fake_telegram, YOUSSEF, 1)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
    assert (complaint.category, complaint.administration, complaint.language) == ("water", "water_utility", "ar")
    assert complaint.channel == "telegram" and complaint.status == "assigned"
    assert refs.format_reference(complaint.reference) in ack["text"]
    assert "الماء والتطهير" in ack["text"] and "الوكالة المستقلة لتوزيع الماء" in ack["text"]
    assert fake_telegram.callback_data(ack) == [f"cat:{complaint.id}:water", f"cats:{complaint.id}"]

    confirm = fresh("callback_query", user=YOUSSEF, data=f"cat:{complaint.id}:water")
    await post(client, confirm)
    sent = await messages_to(fake_telegram, YOUSSEF, 2)
    assert "شكرا" in sent[1]["text"]
    await post(client, fresh("callback_query", user=YOUSSEF, data=f"cats:{complaint.id}"))
    sent = await messages_to(fake_telegram, YOUSSEF, 3)
    choices = fake_telegram.callback_data(sent[2])
    assert len(choices) == len(gw.config.categories) and f"cat:{complaint.id}:electricity" in choices
    correct = fresh("callback_query", user=YOUSSEF, data=f"cat:{complaint.id}:electricity")
    await post(client, correct)
    sent = await messages_to(fake_telegram, YOUSSEF, 4)
    assert "الكهرباء" in sent[3]["text"] and "مصلحة توزيع الكهرباء" in sent[3]["text"]
    await wait_until(lambda: len(fake_telegram.of("answerCallbackQuery")) == 3)
    with gw.db.session() as s:
        complaint = s.get(Complaint, complaint.id)
        assert (complaint.category, complaint.administration) == ("electricity", "electricity_utility")
        assert complaint.status == "assigned" and complaint.reference  # same complaint, same reference
        events = s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id)
                        .order_by(ComplaintEvent.id)).all()
        assert [e.type for e in events] == ["created", "routed", "category_confirmed", "transferred"]
        assert events[-1].actor == "citizen"
        assert events[-1].data["from"] == {"administration": "water_utility", "category": "water"}
    # The same callback redelivered, and the same button pressed again: answered, nothing more.
    await post(client, correct)
    await post(client, fresh("callback_query", user=YOUSSEF, data=f"cat:{complaint.id}:electricity"))
    await wait_until(lambda: len(fake_telegram.of("answerCallbackQuery")) == 4)
    await asyncio.sleep(0.3)
    assert len(fake_telegram.to(YOUSSEF)) == 4
    assert count(gw, ComplaintEvent, ComplaintEvent.complaint_id == complaint.id) == 4
    # Someone else's complaint cannot be re-routed by forging button data.
    await post(client, fresh("callback_query", data=f"cat:{complaint.id}:roads"))
    await wait_until(lambda: len(fake_telegram.of("answerCallbackQuery")) == 5)
    assert fake_telegram.of("answerCallbackQuery")[-1]["text"] == "Ce bouton n'est plus valable."
    with gw.db.session() as s:
        assert s.get(Complaint, complaint.id).category == "electricity"


async def test_same_update_posted_three_times(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    update = fresh("private_text")
    results = await asyncio.gather(*(post_update(client, update) for _ in range(2)))
    results.append(await post_update(client, update))
    assert [r.status for r in results] == [200, 200, 200]
    await messages_to(fake_telegram, SAMIRA, 1)
    await asyncio.sleep(0.3)
    assert count(gw, Message, Message.direction == "in") == 1
    assert count(gw, Complaint) == 1
    assert len(fake_telegram.to(SAMIRA)) == 1


async def test_wrong_and_missing_secret_and_malformed(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    update = fresh("private_text")
    wrong = await post_update(client, update, secret="not-the-secret")
    missing = await post_update(client, update, secret=None)
    assert (wrong.status, missing.status) == (403, 403)
    # The secret is checked before parsing: garbage without it is 403, not 400.
    assert (await post_update(client, b"{garbage", secret=None)).status == 403
    bad = await post_update(client, b"{garbage")
    assert bad.status == 400 and "not JSON" in await bad.text()
    no_id = await post_update(client, b'{"message": {"text": "hi"}}')
    assert no_id.status == 400 and "update_id" in await no_id.text()
    assert count(gw, Message) == 0 and count(gw, Contact) == 0


async def test_group_message_gets_one_line_and_creates_nothing(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    group = fresh("group_message")
    chat_id = group["message"]["chat"]["id"]
    await post(client, group)
    await post(client, group)  # redelivered
    [line] = await messages_to(fake_telegram, chat_id, 1)
    assert "private chat" not in line["text"] and "محادثة خاصة" in line["text"]  # the sender's language: ar
    await post(client, fresh("group_message"))  # the group chats on: not answered every time
    await asyncio.sleep(0.3)
    assert len(fake_telegram.to(chat_id)) == 1
    assert count(gw, Contact) == 0 and count(gw, Identity) == 0 and count(gw, Complaint) == 0
    assert count(gw, Message, Message.direction == "in") == 0
    await post(client, fresh("channel_post"))
    await wait_until(lambda: fake_telegram.to(-1002119830442))
    assert count(gw, Contact) == 0


async def test_edited_message_updates_the_stored_one(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    original = fresh("private_text")
    await post(client, original)
    await messages_to(fake_telegram, SAMIRA, 1)
    edit = fresh("edited_message")
    edit["edited_message"]["message_id"] = original["message"]["message_id"]
    await post(client, edit)
    await post(client, edit)  # redelivered
    with gw.db.session() as s:
        [stored] = s.exec(select(Message).where(Message.direction == "in")).all()
        assert "quatre jours" in stored.text and stored.edited_at is not None
        complaint = s.exec(select(Complaint)).one()
        assert "quatre jours" in complaint.text
        [event] = s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "message_edited")).all()
        assert "trois jours" in event.data["previous_text"] and event.actor == "citizen"
    await asyncio.sleep(0.2)
    assert len(fake_telegram.to(SAMIRA)) == 1  # an edit is not a new message: no new answer
    assert count(gw, Complaint) == 1


PHOTO_BYTES = b"\xff\xd8\xff\xe0" + b"JFIF-photo-of-the-leak" * 4000  # 88 kB, like the recorded photo's largest size


async def test_photo_under_and_over_the_size_limit(db_url, make_tg, start_client, fake_telegram, tmp_path) -> None:
    gw = make_tg(db_url, data_dir=tmp_path, options={"max_file_bytes": 100_000})
    client = await start_client(gw)
    await post(client, fresh("private_text"))
    await messages_to(fake_telegram, SAMIRA, 1)
    photo = fresh("photo")
    largest = photo["message"]["photo"][-1]
    largest["file_size"] = len(PHOTO_BYTES)
    fake_telegram.add_file(largest["file_id"], PHOTO_BYTES, "photos/file_12.jpg")
    await post(client, photo)
    sent = await messages_to(fake_telegram, SAMIRA, 2)
    assert "fichier a été ajouté" in sent[1]["text"]
    stored_id = await wait_until(lambda: _stored(gw))
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        stored = s.get(StoredFile, stored_id)
        assert stored.complaint_id == complaint.id and stored.size == len(PHOTO_BYTES)
        assert (tmp_path / stored.storage_path).read_bytes() == PHOTO_BYTES
        message = s.exec(select(Message).where(Message.kind == "media")).one()
        assert message.complaint_id == complaint.id and message.attachments[0]["stored_file_id"] == stored_id
        assert [e.type for e in s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id))
                ][-1] == "attachment_added"
    assert fake_telegram.of("getFile")[0]["file_id"] == largest["file_id"]
    assert fake_telegram.downloads == ["photos/file_12.jpg"]

    # Over the limit, known from the update: the citizen is told at once, nothing is fetched.
    big = fresh("photo")
    big["message"]["photo"][-1]["file_size"] = 150_000
    await post(client, big)
    sent = await messages_to(fake_telegram, SAMIRA, 3)
    assert "trop volumineux" in sent[2]["text"] and "0.1 Mo" in sent[2]["text"]
    # Over the limit, learnt only from getFile (the update gave no size): told after the attempt.
    doc = fresh("document", caption="")
    del doc["message"]["document"]["file_size"]
    fake_telegram.add_file(doc["message"]["document"]["file_id"], b"%PDF" + b"0" * 120_000, "documents/file_3.pdf")
    await post(client, doc)
    sent = await messages_to(fake_telegram, SAMIRA, 5)
    assert "fichier a été ajouté" in sent[3]["text"] and "trop volumineux" in sent[4]["text"]
    with gw.db.session() as s:
        statuses = sorted(r.status for r in s.exec(select(TelegramFile)))
        assert statuses == ["stored", "too_big", "too_big"]
    assert count(gw, StoredFile) == 1
    assert len(fake_telegram.downloads) == 1


def _stored(gw: Any) -> int | None:
    with gw.db.session() as s:
        row = s.exec(select(TelegramFile).where(TelegramFile.status == "stored")).first()
        return row.stored_file_id if row else None


async def test_status_lists_and_shows_complaints(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("start_command", text="/status"))
    [none] = await messages_to(fake_telegram, SAMIRA, 1)
    assert "aucune réclamation" in none["text"]
    await post(client, fresh("private_text"))
    await post(client, fresh("start_command", text="/new"))
    await post(client, fresh("private_text", text="Les lampadaires de notre rue sont éteints depuis une semaine"))
    sent = await messages_to(fake_telegram, SAMIRA, 4)
    first, second = REF.search(sent[1]["text"]).group(0), REF.search(sent[3]["text"]).group(0)
    assert first != second and count(gw, Complaint) == 2  # /new: a second complaint within 24 hours
    await post(client, fresh("start_command", text="/status"))
    listing = (await messages_to(fake_telegram, SAMIRA, 5))[4]["text"]
    assert listing.startswith("Vos réclamations") and first in listing and second in listing
    await post(client, fresh("start_command", text=f"/status {first}"))
    digits = refs.clean(first)
    await post(client, fresh("start_command", text=f"/status {digits[:-1]}{(int(digits[-1]) + 1) % 10}"))
    sent = await messages_to(fake_telegram, SAMIRA, 7)
    assert first in sent[5]["text"] and second not in sent[5]["text"]
    assert "n'est pas valide" in sent[6]["text"] or "pas valide" in sent[6]["text"]
    # Another citizen asking for this reference learns nothing.
    await post(client, fresh("start_command", user=YOUSSEF, text=f"/status {first}"))
    [other] = await messages_to(fake_telegram, YOUSSEF, 1)
    assert first not in other["text"]


async def test_blocked_bot_falls_back_to_sms(db_url, make_tg, start_client, fake_telegram, fake_twilio) -> None:
    from conversations.workflow import reply

    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("start_command"))
    await post(client, fresh("contact"))  # the contact button: +212612345678 becomes hers
    await post(client, fresh("private_text"))
    sent = await messages_to(fake_telegram, SAMIRA, 3)
    assert "numéro est lié" in sent[1]["text"] and sent[1]["reply_markup"] == {"remove_keyboard": True}
    with gw.db.session() as s:
        assert {i.urn for i in s.exec(select(Identity))} == {f"telegram:{SAMIRA}", "tel:+212612345678"}
        complaint = s.exec(select(Complaint)).one()
    fake_telegram.block_next()
    with gw.db.session() as s:
        outcome = reply(gw.core, s, s.get(Complaint, complaint.id), "La conduite a été réparée ce matin.",
                        actor="officer:1")
    gw.core.outbox_committed(outcome.outbox_ids)
    await wait_until(lambda: fake_twilio.to("+212612345678"))
    [sms] = fake_twilio.to("+212612345678")
    assert "La conduite a été réparée ce matin." in sms["body"]
    with gw.db.session() as s:
        telegram = s.exec(select(Identity).where(Identity.scheme == "telegram")).one()
        assert telegram.unreachable and "blocked" in telegram.unreachable_reason
        failed = s.exec(select(Message).where(Message.status == "failed")).one()
        assert failed.channel == "telegram" and failed.error_code == "403"
        types = [e.type for e in s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id)
                                        .order_by(ComplaintEvent.id))]
        assert types[-3:] == ["reply", "delivery_failed", "channel_fallback"]
        fallback = s.exec(select(Outbox).where(Outbox.channel == "sms")).one()
        assert fallback.intent_key.startswith("fallback:") and fallback.status in ("sent", "sending", "pending")
    # She unblocks the bot and writes again: Telegram is her channel again.
    await post(client, fresh("start_command"))
    await wait_until(lambda: len(fake_telegram.to(SAMIRA)) == 4)
    with gw.db.session() as s:
        assert not s.exec(select(Identity).where(Identity.scheme == "telegram")).one().unreachable


async def test_retry_after_is_honoured_and_sent_once(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    client = await start_client(gw)
    await post(client, fresh("private_text"))
    await messages_to(fake_telegram, SAMIRA, 1)
    await asyncio.sleep(0.3)
    calls = [c for c in fake_telegram.calls if c.method == "sendMessage"]
    assert len(calls) == 2 and len(fake_telegram.sent) == 1
    assert calls[1].at - calls[0].at >= 0.95  # not before Telegram said
    with gw.db.session() as s:
        row = s.exec(select(Outbox)).one()
        assert row.status == "sent" and row.attempts == 2
        assert s.exec(select(Message).where(Message.direction == "out")).one().status == "sent"


async def test_shared_phone_joins_an_earlier_sms_complaint(db_url, make_tg, start_client, fake_telegram,
                                                           fake_twilio) -> None:
    from tests.conftest import post_signed

    gw = make_tg(db_url)
    client = await start_client(gw)
    form = {"MessageSid": "SM" + "4" * 32, "From": "+212612345678", "To": "+212522000000",
            "Body": "Les ordures ne sont pas ramassées depuis une semaine", "NumMedia": "0"}
    assert (await post_signed(client, "/webhooks/twilio/sms", form)).status == 200
    [sms_ack] = [m["body"] for m in await _sms(fake_twilio, 1)]
    sms_ref = REF.search(sms_ack).group(0)
    contact = fresh("contact")
    contact["message"]["contact"]["phone_number"] = "+212 612-345678"
    await post(client, contact)
    await post(client, fresh("start_command", text="/status"))
    sent = await messages_to(fake_telegram, SAMIRA, 2)
    assert sms_ref in sent[1]["text"]  # the SMS complaint is hers on Telegram too
    with gw.db.session() as s:
        identities = s.exec(select(Identity)).all()
        assert len({i.contact_id for i in identities}) == 1
        assert s.exec(select(Complaint)).one().contact_id == identities[0].contact_id
    # Someone else's contact card is not linked.
    other = fresh("contact", user=YOUSSEF)
    other["message"]["contact"]["user_id"] = SAMIRA
    await post(client, other)
    [refused] = await messages_to(fake_telegram, YOUSSEF, 1)
    assert refused["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert count(gw, Identity) == 3


async def _sms(fake: Any, n: int) -> list[dict[str, Any]]:
    await wait_until(lambda: len(fake.messages) >= n)
    return fake.messages


async def test_location_place_name_stop_and_start(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("location"))  # before any description: kept for the complaint to come
    await post(client, fresh("private_text_darija", user=SAMIRA))
    sent = await messages_to(fake_telegram, SAMIRA, 2)
    assert "localisation" in sent[0]["text"] or "location" in sent[0]["text"] or "الموقع" in sent[0]["text"]
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert (complaint.latitude, complaint.longitude) == (35.697071, -0.630799) and complaint.place is None
    await post(client, fresh("private_text", text="f Casablanca, hay Sidi Moumen"))
    sent = await messages_to(fake_telegram, SAMIRA, 3)
    assert "Casablanca" in sent[2]["text"]
    with gw.db.session() as s:
        complaint = s.get(Complaint, complaint.id)
        assert complaint.place == "casablanca"
        types = [e.type for e in s.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id))]
        assert "location_added" in types and "place_added" in types
    await post(client, fresh("start_command", text="/stop"))
    await wait_until(lambda: len(fake_telegram.to(SAMIRA)) == 4)
    with gw.db.session() as s:
        assert s.exec(select(Contact)).one().opted_out
    await post(client, fresh("start_command"))
    sent = await messages_to(fake_telegram, SAMIRA, 5)
    assert "/start" in sent[3]["text"]
    with gw.db.session() as s:
        assert not s.exec(select(Contact)).one().opted_out
    assert sent[4]["text"].split(" ")[0] in ("Vous", "ستتوصلون", "You")  # welcome back, then the greeting


async def test_sandbox_without_bot_token(db_url, make_tg, start_client, fake_telegram) -> None:
    gw = make_tg(db_url, token=None)
    client = await start_client(gw)
    await post(client, fresh("private_text"))
    await post(client, fresh("photo"))
    await wait_until(lambda: count(gw, Message, Message.direction == "out", Message.status == "sandbox") == 2)
    assert fake_telegram.calls == []  # recorded, not sent
    assert count(gw, Complaint) == 1
    with gw.db.session() as s:
        assert s.exec(select(TelegramFile)).one().status == "pending"  # fetched once a token is configured


async def test_user_blocking_the_bot_is_noticed_before_sending(db_url, make_tg, start_client, fake_telegram,
                                                               fake_twilio) -> None:
    from conversations.workflow import set_status

    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("contact"))
    await post(client, fresh("private_text"))
    await messages_to(fake_telegram, SAMIRA, 2)
    await post(client, fresh("my_chat_member_kicked"))
    with gw.db.session() as s:
        assert s.exec(select(Identity).where(Identity.scheme == "telegram")).one().unreachable
        complaint = s.exec(select(Complaint)).one()
        outcome = set_status(gw.core, s, complaint, "in_progress", actor="officer:1")
    gw.core.outbox_committed(outcome.outbox_ids)
    [sms] = await _sms(fake_twilio, 1)
    assert sms["to"] == "+212612345678"
    assert len(fake_telegram.to(SAMIRA)) == 2  # Telegram was not even tried


async def test_other_buttons_go_to_the_action_registry(db_url, make_tg, start_client, fake_telegram,
                                                       monkeypatch) -> None:
    from conversations import actions

    seen: list[str] = []

    def rate(ctx: Any, rest: str) -> None:
        seen.append(rest)
        ctx.say("telegram.location_pending")  # a handler may answer in the chat, too

    monkeypatch.setitem(actions.ACTION_HANDLERS, "rate", rate)
    gw = make_tg(db_url)
    client = await start_client(gw)
    await post(client, fresh("callback_query", data="rate:12:5"))
    await post(client, fresh("callback_query", data="zzz:1"))
    await wait_until(lambda: len(fake_telegram.of("answerCallbackQuery")) == 2)
    assert seen == ["12:5"]
    answers = fake_telegram.of("answerCallbackQuery")
    assert {a.get("text") for a in answers} == {None, "Ce bouton n'est plus valable."}
    await messages_to(fake_telegram, SAMIRA, 1)


async def test_tamazight_is_offered_once_configured(sqlite_url, make_tg, start_client, fake_telegram) -> None:
    tzm = {"welcome": "ⴰⵣⵓⵍ!", "language_set": "ⵜⴰⵎⴰⵣⵉⵖⵜ"}
    gw = make_tg(sqlite_url, config_overrides={"templates": {"tzm": {"telegram": tzm}}})
    client = await start_client(gw)
    start = fresh("start_command")
    start["message"]["from"]["language_code"] = "zgh"  # Standard Moroccan Tamazight
    await post(client, start)
    [greeting] = await messages_to(fake_telegram, SAMIRA, 1)
    assert greeting["text"] == "ⴰⵣⵓⵍ!" and fake_telegram.callback_data(greeting)[-1] == "lang:tzm"
