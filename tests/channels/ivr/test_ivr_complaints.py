"""A complaint by phone, end to end: the category by keypad, the recording (fetched from the fake
Twilio, only from Twilio), the reference read digit by digit and sent by SMS, transcripts, and the
status of a complaint by keypad."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from sqlmodel import func, select

from conversations import reference as refs
from store.files import read_file
from store.models import Complaint, ComplaintEvent, Message, Outbox, StoredFile
from store.models_ivr import Call as CallRow
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, post_signed, wait_until
from tests.support.ivr import CITIZEN, OTHER, Call, new_sid, says, spoken, verbs

URL = "https://gateway.example.org/webhooks/twilio/voice"
AUDIO = b"ID3\x04\x00fake mp3 frames " + bytes(range(256)) * 40


def count(gw: Any, model: Any, *where: Any) -> int:
    with gw.db.session() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


async def record_call(call: Call, fake: Any, *, language: str, category: str) -> tuple[str, str, Any]:
    """Language, menu 1, category, then the Record action; returns (recording sid, url, TwiML)."""
    await call.start()
    await call.press("language", language)
    await call.press("menu", "1")
    await call.press("category", category)
    sid = new_sid("RE")
    url = fake.add_recording(sid, AUDIO)
    root = await call.step("record", "record_action", RecordingSid=sid, RecordingUrl=url, RecordingDuration="14")
    return sid, url, root


def spoken_digits(root: Any) -> str:
    return "".join(s.text for s in says(root) if s.text and len(s.text) == 1 and s.text.isdigit())


async def test_full_new_complaint_call(db_url, make_gateway, start_client, fake_twilio, tmp_path) -> None:
    gw = make_gateway(db_url, data_dir=tmp_path)
    client = await start_client(gw)
    call = Call(client)
    sid, url, root = await record_call(call, fake_twilio, language="2", category="1")

    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert (complaint.channel, complaint.kind, complaint.category) == ("ivr", "complaint", "water")
        assert complaint.administration == "water_utility" and complaint.status == "assigned"
        assert complaint.place is None and complaint.language == "fr" and complaint.text == ""
        assert complaint.extra["ivr"]["category_choice"] == "water"
        message = s.exec(select(Message).where(Message.direction == "in")).one()
        assert (message.channel, message.kind, message.provider_message_id) == ("ivr", "voice", sid)
        assert message.thread_ref == call.sid and message.urn == "tel:" + CITIZEN
        assert s.exec(select(CallRow)).one().complaint_id == complaint.id
    # the reference, digit by digit, in French, then the SMS notice and goodbye
    assert spoken_digits(root) == complaint.reference
    digit_says = [s for s in says(root) if s.text and len(s.text) == 1]
    assert len(digit_says) == 9 and {s.get("language") for s in digit_says} == {"fr-FR"}
    assert "Votre réclamation est enregistrée" in spoken(root) and "par SMS" in spoken(root)
    assert verbs(root)[-1] == "Hangup"
    # ... and by SMS, through the outbox and the fake Twilio Messages API
    await wait_until(lambda: fake_twilio.to(CITIZEN))
    [sms] = fake_twilio.to(CITIZEN)
    assert refs.format_reference(complaint.reference) in sms["body"] and "ETAT" in sms["body"]

    # the recording status callback: fetched from (fake) Twilio with the account's credentials
    status = await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    assert verbs(status) == []
    [fetch] = fake_twilio.recording_fetches
    assert (fetch["sid"], fetch["ext"], fetch["user"], fetch["password"]) == (sid, "mp3", TWILIO_SID, TWILIO_TOKEN)
    with gw.db.session() as s:
        stored = s.exec(select(StoredFile)).one()
        assert stored.complaint_id == complaint.id and stored.content_type == "audio/mpeg"
        assert read_file(tmp_path, stored) == AUDIO
        message = s.exec(select(Message).where(Message.direction == "in")).one()
        assert message.attachments[0]["file_id"] == stored.id
        assert "recording_stored" in [e.type for e in s.exec(select(ComplaintEvent))]

    # provider retries of both callbacks change nothing
    again = await call.step("record", "record_action", RecordingSid=sid, RecordingUrl=url, RecordingDuration="14")
    assert spoken_digits(again) == complaint.reference
    await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    await asyncio.sleep(0.2)
    assert count(gw, Complaint) == 1 and count(gw, StoredFile) == 1 and count(gw, Outbox) == 1
    assert len(fake_twilio.recording_fetches) == 1 and len(fake_twilio.to(CITIZEN)) == 1


async def test_recording_callback_before_the_record_action(db_url, make_gateway, start_client, fake_twilio,
                                                           tmp_path) -> None:
    gw = make_gateway(db_url, data_dir=tmp_path)
    client = await start_client(gw, background=False)
    call = Call(client)
    await call.start()
    await call.press("language", "4")
    await call.press("menu", "1")
    await call.press("category", "4")
    sid = new_sid("RE")
    url = fake_twilio.add_recording(sid, AUDIO)
    await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    root = await call.step("record", "record_action", RecordingSid=sid, RecordingUrl=url)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
    assert complaint.category == "waste" and spoken_digits(root) == complaint.reference
    assert {s.get("language") for s in says(root)} == {"en-US"}
    assert count(gw, Complaint) == 1 and count(gw, StoredFile) == 1 and count(gw, Outbox) == 1


async def test_nothing_recorded_reprompts(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    call = Call(client)
    await call.start()
    await call.press("language", "4")
    await call.press("menu", "1")
    await call.press("category", "1")
    root = await call.step("record", "gather_digits", Digits=None)  # Twilio followed the <Redirect>
    assert "We did not hear your message." in spoken(root) and root.find("Record") is not None
    assert count(gw, Complaint) == 0


async def test_transcript_routes_an_other_complaint(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    call = Call(client)
    sid, url, _ = await record_call(call, fake_twilio, language="4", category="6")  # 6 = other
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.category is None and complaint.status == "new"
    await call.step("transcription", "transcription", RecordingSid=sid, RecordingUrl=url)
    await call.step("transcription", "transcription", RecordingSid=sid, RecordingUrl=url)  # a retry
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.text.startswith("Hello there has been no water")
        assert (complaint.category, complaint.administration, complaint.place) == ("water", "water_utility", "oran")
        assert complaint.status == "assigned"
        events = [e.type for e in s.exec(select(ComplaintEvent).order_by(ComplaintEvent.id))]
        assert events == ["created", "transcribed", "routed"]
        assert s.exec(select(Message).where(Message.direction == "in")).one().text == complaint.text


async def test_transcript_keeps_the_chosen_category(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    call = Call(client)
    sid, url, _ = await record_call(call, fake_twilio, language="4", category="3")  # roads
    await call.step("transcription", "transcription", RecordingSid=sid, RecordingUrl=url)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.category == "roads" and complaint.administration == "public_works"
        assert complaint.place == "oran" and complaint.text.startswith("Hello")
        assert [e.type for e in s.exec(select(ComplaintEvent).order_by(ComplaintEvent.id))] == \
            ["created", "routed", "transcribed"]
    failed = Call(client, number=OTHER)
    sid2, url2, _ = await record_call(failed, fake_twilio, language="4", category="1")
    await failed.step("transcription", "transcription", RecordingSid=sid2, RecordingUrl=url2,
                      TranscriptionStatus="failed", TranscriptionText="")
    with gw.db.session() as s:
        assert "transcription_failed" in [e.type for e in s.exec(select(ComplaintEvent))]


async def test_recording_url_on_another_host_is_never_fetched(db_url, make_gateway, start_client, fake_twilio,
                                                              tmp_path) -> None:
    hits: list[str] = []

    async def trap(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"secret", content_type="audio/mpeg")
    app = web.Application()
    app.router.add_get("/{tail:.*}", trap)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        gw = make_gateway(db_url, data_dir=tmp_path)
        client = await start_client(gw, background=False)
        call = Call(client)
        sid = new_sid("RE")
        evil = f"http://127.0.0.1:{port}/2010-04-01/Accounts/{TWILIO_SID}/Recordings/{sid}"
        await call.start()
        await call.press("language", "4")
        await call.press("menu", "1")
        await call.press("category", "1")
        await call.step("record", "record_action", RecordingSid=sid, RecordingUrl=evil)
        await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=evil)
        other_account = fake_twilio.add_recording(sid, AUDIO).replace(TWILIO_SID, "AC" + "9" * 32)
        await call.step("recording", "recording_status", RecordingSid=sid, RecordingUrl=other_account)
        assert hits == [] and fake_twilio.recording_fetches == []
        assert count(gw, Complaint) == 1 and count(gw, StoredFile) == 0
        with gw.db.session() as s:
            events = s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "recording_unavailable")).all()
            assert events and all(e.data["reason"].startswith("refused") for e in events)
            assert all("127.0.0.1" not in str(e.data) for e in events)
    finally:
        await runner.cleanup()


async def _sms_complaint(client: Any, number: str, text: str) -> None:
    sid = new_sid("SM")
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_SID, "From": number, "To": "+212522000000",
            "Body": text, "NumMedia": "0", "ApiVersion": "2010-04-01"}
    assert (await post_signed(client, "/webhooks/twilio/sms", form)).status == 200


async def test_status_by_keypad(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    await _sms_complaint(client, CITIZEN, "Bonjour, il n'y a plus d'eau au robinet depuis trois jours à Oran")
    await _sms_complaint(client, OTHER, "Les ordures ne sont pas ramassées depuis une semaine dans ma rue")
    with gw.db.session() as s:
        mine = s.exec(select(Complaint).where(Complaint.category == "water")).one().reference
        theirs = s.exec(select(Complaint).where(Complaint.category == "waste")).one().reference

    call = Call(client)
    await call.start()
    await call.press("language", "2")
    prompt = await call.press("menu", "2")
    gather = prompt.find("Gather")
    assert gather.get("action") == f"{URL}/status-ref" and gather.get("finishOnKey") == "#"
    assert "Tapez les neuf chiffres" in spoken(prompt)

    good = await call.press("status-ref", mine)
    assert "Votre réclamation est transmise à Régie de distribution d'eau" in spoken(good)
    assert good.find("Gather").get("action") == f"{URL}/menu"

    typo = mine[:3] + str((int(mine[3]) + 1) % 10) + mine[4:]
    bad = await call.press("status-ref", typo)
    assert "Cette référence n'est pas valide" in spoken(bad)
    assert bad.find("Gather").get("action") == f"{URL}/status-ref"
    swapped = mine[:4] + mine[5] + mine[4] + mine[6:]
    if swapped != mine:
        assert "pas valide" in spoken(await call.press("status-ref", swapped))

    foreign = await call.press("status-ref", theirs)
    assert "Aucune réclamation avec cette référence" in spoken(foreign)
    assert "ramassées" not in spoken(foreign) and "Municipality" not in spoken(foreign)
    unknown = await call.press("status-ref", refs.generate())
    assert "Aucune réclamation" in spoken(unknown)

    # three bad references in a row: a polite goodbye
    patient = Call(client)
    await patient.start()
    await patient.press("menu", "2")
    assert (await patient.press("status-ref", "12345")).find("Gather") is not None
    assert (await patient.press("status-ref", typo)).find("Gather") is not None
    last = await patient.press("status-ref", typo)
    assert verbs(last)[-1] == "Hangup" and "Au revoir" in spoken(last)


async def test_status_in_english_reads_the_due_date(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    await _sms_complaint(client, CITIZEN, "Hello, the street lights in our street have been off for a week, it is dark at night")
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
    call = Call(client)
    await call.start()
    await call.press("language", "4")
    await call.press("menu", "2")
    root = await call.press("status-ref", refs.format_reference(complaint.reference).replace("-", ""))
    text = spoken(root)
    assert "The status of your complaint is: assigned to Municipality." in text
    assert complaint.answer_due_at.strftime("%d/%m/%Y") in text
    assert re.search(r"press 1", text)
