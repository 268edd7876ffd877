"""The agent option (queue or dial, in and out of opening hours), callback tasks, call status
callbacks arriving repeated and out of order, and the agents' calls/callbacks API."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import select

from conversations.clock import FixedClock
from gateway.auth import issue_token
from gateway.users import create_user
from store.files import read_file
from store.models import User
from store.models_ivr import Call as CallRow
from store.models_ivr import CallbackTask, CallEvent
from tests.conftest import post_signed
from tests.support.ivr import CITIZEN, OTHER, VOICE, Call, call_params, new_sid, spoken, verbs

URL = "https://gateway.example.org/webhooks/twilio/voice"
# Casablanca is UTC+1 in November: 09:00 UTC is 10:00 on a Wednesday, 17:30 UTC is 18:30.
OPEN = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
EVENING = datetime(2026, 11, 18, 17, 30, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)


async def to_agent(call: Call, language: str = "2") -> Any:
    await call.start()
    await call.press("language", language)
    return await call.press("menu", "3")


def tasks(gw: Any) -> list[CallbackTask]:
    with gw.db.session() as s:
        return list(s.exec(select(CallbackTask).order_by(CallbackTask.id)).all())


def call_row(gw: Any, sid: str) -> CallRow:
    with gw.db.session() as s:
        return s.exec(select(CallRow).where(CallRow.call_sid == sid)).one()


async def test_agent_queue_in_opening_hours(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url, clock=FixedClock(OPEN))
    client = await start_client(gw, background=False)
    answered = Call(client)
    root = await to_agent(answered)
    assert verbs(root) == ["Say", "Enqueue"]
    enqueue = root.find("Enqueue")
    assert enqueue.text == "hotline" and enqueue.get("action") == f"{URL}/agent-result"
    assert enqueue.get("waitUrl") == f"{URL}/queue-wait"
    assert "Veuillez patienter" in spoken(root)
    hold = await answered.step("queue-wait", "queue_wait", QueueTime="12")
    assert verbs(hold) == ["Say", "Pause"] and "Merci de rester en ligne" in spoken(hold)
    done = await answered.step("agent-result", "queue_result", QueueResult="bridged", QueueTime="42")
    assert verbs(done) == ["Hangup"]
    row = call_row(gw, answered.sid)
    assert (row.agent_outcome, row.queue_seconds, row.wait_seconds) == ("answered", 42, 42)

    abandoned = Call(client, number=OTHER)
    await to_agent(abandoned)
    await abandoned.step("agent-result", "queue_result", QueueResult="hangup", QueueTime="37")

    left = Call(client)
    await to_agent(left)
    too_long = await left.step("queue-wait", "queue_wait", QueueTime="300")
    assert verbs(too_long) == ["Leave"]
    sorry = await left.step("agent-result", "queue_result", QueueResult="leave", QueueTime="300")
    assert "Aucun conseiller n'est disponible" in spoken(sorry) and verbs(sorry)[-1] == "Hangup"

    assert [(t.reason, t.caller, t.call_sid, t.status) for t in tasks(gw)] == [
        ("abandoned", "tel:" + OTHER, abandoned.sid, "open"), ("missed", "tel:" + CITIZEN, left.sid, "open")]


async def test_agent_out_of_hours_voicemail(db_url, make_gateway, start_client, fake_twilio, tmp_path) -> None:
    gw = make_gateway(db_url, clock=FixedClock(EVENING), data_dir=tmp_path)
    client = await start_client(gw, background=False)
    call = Call(client)
    root = await to_agent(call, language="4")
    assert root.find("Enqueue") is None
    text = spoken(root)
    assert "not available" in text and "Monday to Friday" in text and "leave your message" in text
    record = root.find("Record")
    assert record.get("action") == f"{URL}/voicemail" and record.get("finishOnKey") == "#"
    assert record.get("recordingStatusCallback") == f"{URL}/voicemail-recording"
    assert record.get("transcribe") is None
    assert [(t.reason, t.call_sid) for t in tasks(gw)] == [("out_of_hours", call.sid)]

    sid = new_sid("RE")
    url = fake_twilio.add_recording(sid, b"voicemail audio")
    thanks = await call.step("voicemail", "record_action", RecordingSid=sid, RecordingUrl=url)
    assert "your message was recorded" in spoken(thanks) and verbs(thanks)[-1] == "Hangup"
    await call.step("voicemail-recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    await call.step("voicemail-recording", "recording_status", RecordingSid=sid, RecordingUrl=url)
    [task] = tasks(gw)
    assert (task.reason, task.recording_sid) == ("voicemail", sid) and task.recording_file_id
    assert len(fake_twilio.recording_fetches) == 1
    from store.models import StoredFile

    with gw.db.session() as s:
        assert read_file(tmp_path, s.get(StoredFile, task.recording_file_id)) == b"voicemail audio"
    # the caller hung up in the queue earlier or later: still one task per call
    await post_signed(client, f"{VOICE}/status", call_params("call_status_completed", call.sid))
    assert len(tasks(gw)) == 1

    weekend = make_gateway(db_url, clock=FixedClock(SATURDAY))
    client2 = await start_client(weekend, background=False)
    closed = await to_agent(Call(client2, number=OTHER))
    assert closed.find("Record") is not None and closed.find("Enqueue") is None


async def test_agent_dial_and_configured_hours(db_url, make_gateway, start_client) -> None:
    overrides = {"channels": {"ivr": {"agent_number": "+212522000199", "timezone": "Africa/Algiers",
                                      "hours": {"sat": ["09:00-12:00"]}}}}
    gw = make_gateway(db_url, clock=FixedClock(SATURDAY), config_overrides=overrides)  # 10:00 in Algiers
    client = await start_client(gw, background=False)
    call = Call(client)
    root = await to_agent(call)
    dial = root.find("Dial")
    assert dial is not None and dial.text == "+212522000199" and dial.get("action") == f"{URL}/agent-result"
    sorry = await call.step("agent-result", "dial_result", DialCallStatus="no-answer")
    assert "Aucun conseiller" in spoken(sorry)
    assert [(t.reason, t.call_sid) for t in tasks(gw)] == [("missed", call.sid)]
    weekday = make_gateway(db_url, clock=FixedClock(OPEN), config_overrides=overrides)  # Wednesday: closed
    client2 = await start_client(weekday, background=False)
    assert (await to_agent(Call(client2, number=OTHER))).find("Dial") is None


def status_params(sid: str, status: str, seq: int, at: datetime, number: str = CITIZEN,
                  duration: int | None = None) -> dict[str, str]:
    extra: dict[str, Any] = {"CallStatus": status, "SequenceNumber": str(seq),
                             "Timestamp": at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                             "CallDuration": str(duration) if duration is not None else None}
    return call_params("call_status_completed", sid, number, **extra)


async def test_call_status_callbacks_repeated_and_out_of_order(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url, clock=FixedClock(OPEN))
    client = await start_client(gw, background=False)
    sid = new_sid("CA")
    t0 = OPEN - timedelta(minutes=5)
    posts = [
        status_params(sid, "completed", 3, t0 + timedelta(seconds=104), duration=95),
        status_params(sid, "ringing", 1, t0 + timedelta(seconds=2)),
        status_params(sid, "completed", 3, t0 + timedelta(seconds=104), duration=95),  # a retry
        status_params(sid, "in-progress", 2, t0 + timedelta(seconds=9)),
        status_params(sid, "initiated", 0, t0),
        status_params(sid, "ringing", 1, t0 + timedelta(seconds=2)),
    ]
    for params in posts:
        resp = await post_signed(client, f"{VOICE}/status", params)
        assert resp.status == 200 and resp.content_type == "text/xml"
    row = call_row(gw, sid)
    assert row.status == "completed" and row.caller == "tel:" + CITIZEN
    assert row.started_at == t0 and row.answered_at == t0 + timedelta(seconds=9)
    assert row.ended_at == t0 + timedelta(seconds=104)
    assert (row.wait_seconds, row.talk_seconds) == (9, 95)
    with gw.db.session() as s:
        events = s.exec(select(CallEvent).where(CallEvent.call_sid == sid).order_by(CallEvent.sequence)).all()
        assert [e.status for e in events] == ["initiated", "ringing", "in-progress", "completed"]
    assert tasks(gw) == []

    # a final state is never replaced: a late "busy" does not undo "completed"
    await post_signed(client, f"{VOICE}/status", status_params(sid, "busy", 4, t0 + timedelta(seconds=200)))
    assert call_row(gw, sid).status == "completed" and tasks(gw) == []


async def test_missed_and_abandoned_calls_open_callback_tasks(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url, clock=FixedClock(OPEN))
    client = await start_client(gw, background=False)
    busy, unanswered, canceled, anonymous = (new_sid("CA") for _ in range(4))
    await post_signed(client, f"{VOICE}/status", status_params(busy, "busy", 1, OPEN))
    await post_signed(client, f"{VOICE}/status", status_params(busy, "busy", 1, OPEN))
    await post_signed(client, f"{VOICE}/status", status_params(unanswered, "no-answer", 1, OPEN, number=OTHER))
    await post_signed(client, f"{VOICE}/status", status_params(canceled, "canceled", 2, OPEN))
    await post_signed(client, f"{VOICE}/status", status_params(anonymous, "no-answer", 1, OPEN, number="anonymous"))
    # hung up in the queue, and the queue's own callback was lost: the final status tells
    queued = Call(client)
    await to_agent(queued)
    await post_signed(client, f"{VOICE}/status", status_params(queued.sid, "completed", 5, OPEN, duration=80))
    assert [(t.call_sid, t.reason) for t in tasks(gw)] == [
        (busy, "missed"), (unanswered, "missed"), (canceled, "abandoned"), (queued.sid, "abandoned")]
    assert call_row(gw, busy).talk_seconds == 0
    assert call_row(gw, queued.sid).agent_outcome == "abandoned"
    assert call_row(gw, anonymous).caller is None


async def test_malformed_and_forged_status_callbacks(db_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    params = status_params(new_sid("CA"), "completed", 1, OPEN)
    assert (await post_signed(client, f"{VOICE}/status", params, token="wrong")).status == 403
    assert (await post_signed(client, f"{VOICE}/status", dict(params, CallStatus="exploded"))).status == 400
    assert (await post_signed(client, f"{VOICE}/status", dict(params, Timestamp="yesterday"))).status == 400


def _token(gw: Any, username: str, role: str) -> str:
    create_user(gw.db, username, role, "a-long-password-123",
                administration="municipality" if role == "officer" else None)
    with gw.db.session() as s:
        user = s.exec(select(User).where(User.username == username)).one()
        token, _ = issue_token(s, user, gw.core.clock.now())
    return token


async def test_calls_and_callbacks_api(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url, clock=FixedClock(OPEN))
    client = await start_client(gw, background=False)
    agent = {"Authorization": f"Bearer {_token(gw, 'amina', 'agent')}"}
    officer = {"Authorization": f"Bearer {_token(gw, 'omar', 'officer')}"}
    sids = []
    for i in range(3):
        gw.core.clock.advance(timedelta(minutes=1))
        call = Call(client, number=CITIZEN if i != 1 else OTHER)
        await call.start()
        sids.append(call.sid)
    await post_signed(client, f"{VOICE}/status", status_params(sids[1], "completed", 1, OPEN, number=OTHER,
                                                               duration=30))
    await post_signed(client, f"{VOICE}/status", status_params(new_sid("CA"), "no-answer", 1, OPEN))

    assert (await client.get("/api/v1/calls")).status == 401
    assert (await client.get("/api/v1/calls", headers=officer)).status == 403
    resp = await client.get("/api/v1/calls?limit=2", headers=agent)
    assert resp.status == 200
    page = await resp.json()
    assert page["total"] == 4 and page["limit"] == 2 and len(page["calls"]) == 2
    assert [c["call_sid"] for c in page["calls"]] == [sids[2], sids[1]]
    assert page["calls"][1]["caller"] == OTHER and page["calls"][1]["talk_seconds"] == 30
    second = await (await client.get("/api/v1/calls?limit=2&offset=2", headers=agent)).json()
    assert [c["call_sid"] for c in second["calls"]][0] == sids[0]
    assert (await client.get("/api/v1/calls?limit=0", headers=agent)).status == 400
    assert (await client.get("/api/v1/calls?limit=x", headers=agent)).status == 400

    callbacks = await (await client.get("/api/v1/callbacks?status=open", headers=agent)).json()
    [task] = callbacks["callbacks"]
    assert (task["reason"], task["caller"], task["status"]) == ("missed", CITIZEN, "open")
    done = await client.post(f"/api/v1/callbacks/{task['id']}/done", headers=agent, json={"note": "called back"})
    assert done.status == 200
    body = await done.json()
    assert (body["status"], body["done_by"], body["note"]) == ("done", "amina", "called back")
    assert (await (await client.get("/api/v1/callbacks", headers=agent)).json())["callbacks"] == []
    closed = await (await client.get("/api/v1/callbacks?status=done", headers=agent)).json()
    assert [t["id"] for t in closed["callbacks"]] == [task["id"]]
    assert (await client.get("/api/v1/callbacks?status=lost", headers=agent)).status == 400
    missing = await client.post("/api/v1/callbacks/999999/done", headers=agent)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    assert (await client.post(f"/api/v1/callbacks/{task['id']}/done", headers=officer)).status == 403
