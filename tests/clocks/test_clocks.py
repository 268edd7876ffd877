"""Legal clocks, the scheduler (reminders, overdue, escalation, auto-close), reopening,
satisfaction and duplicates, with a controllable clock."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import select

from config.loader import Deadlines
from conversations.actions import dispatch_action
from conversations.clock import Clock
from conversations.deadlines import add_days, due_dates
from conversations.duplicates import link_duplicate
from conversations.text_features import similarity
from conversations.ingest import ingest_sync
from conversations.messages import InboundMessage
from conversations.scheduler import run_once
from conversations.workflow import set_status
from store.models import Complaint, ComplaintEvent, Message
from tests.channels.sms.test_sms_flow import CITIZEN, OTHER, REF, replies, send
from tests.conftest import wait_until

D = timezone.utc


def test_calendar_days() -> None:
    start = datetime(2026, 11, 20, 10, 0, tzinfo=D)  # a Friday
    ack, answer = due_dates(start, Deadlines())
    assert ack == start + timedelta(days=15) and answer == start + timedelta(days=60)


def test_working_days_skip_weekends_and_holidays() -> None:
    friday = datetime(2026, 11, 20, 10, 0, tzinfo=D)
    plain = Deadlines(working_days=True)
    assert add_days(friday, 1, plain) == datetime(2026, 11, 23, 10, 0, tzinfo=D)  # Monday
    assert add_days(friday, 5, plain) == datetime(2026, 11, 27, 10, 0, tzinfo=D)
    holidays = Deadlines(working_days=True, holidays=("2026-11-23", "2026-11-24"))
    assert add_days(friday, 1, holidays) == datetime(2026, 11, 25, 10, 0, tzinfo=D)
    ack, answer = due_dates(friday, Deadlines(acknowledge_days=15, answer_days=60, working_days=True))
    assert ack == datetime(2026, 12, 11, 10, 0, tzinfo=D)  # 15 working days = 3 weeks
    assert answer.weekday() < 5


def test_overrides_per_kind_and_administration() -> None:
    start = datetime(2026, 1, 1, tzinfo=D)
    rules = Deadlines(per_kind={"suggestion": {"answer_days": 90}},
                      per_administration={"national_police": {"acknowledge_days": 3, "answer_days": 30}})
    assert due_dates(start, rules, "suggestion")[1] == start + timedelta(days=90)
    assert due_dates(start, rules, "complaint", "national_police") == (start + timedelta(days=3),
                                                                       start + timedelta(days=30))
    assert due_dates(start, rules, "complaint", "national_police.oran")[0] == start + timedelta(days=3)


def events(gw: Any, kind: str) -> list[ComplaintEvent]:
    with gw.db.session() as s:
        return list(s.exec(select(ComplaintEvent).where(ComplaintEvent.type == kind)).all())


async def test_reminder_overdue_escalation(db_url, make_gateway, start_client, fake_twilio) -> None:
    clock = Clock()
    gw = make_gateway(db_url, clock=clock, config_overrides={
        "administrations": {"water_utility": {"email": "Bureau-Ordre@eau.example.org"}}})
    client = await start_client(gw)
    await send(client, "Bonjour, pas d'eau au robinet depuis trois jours dans notre quartier")
    await replies(fake_twilio, CITIZEN, 1)
    assert not run_once(gw.core, "a").reminded
    clock.advance(timedelta(days=13, hours=12))  # acknowledgement due in 1.5 days
    report = run_once(gw.core, "a")
    assert report.ran and report.reminded == 1 and report.escalated == 0
    with gw.db.session() as s:
        mail = s.exec(select(Message).where(Message.urn == "mailto:bureau-ordre@eau.example.org")).one()
        assert "rappel" in mail.text.lower() or "تذكير" in mail.text or "reminder" in mail.text.lower()
    assert run_once(gw.core, "a").reminded == 0  # once
    clock.advance(timedelta(days=2))  # past the acknowledgement deadline
    report = run_once(gw.core, "a")
    assert report.overdue == 1 and report.escalated == 1
    gw.core.outbox_committed(report.outbox_ids)
    bodies = await replies(fake_twilio, CITIZEN, 2)
    assert "délai" in bodies[1] or "deadline" in bodies[1] or "الأجل" in bodies[1]
    assert run_once(gw.core, "a").escalated == 0
    with gw.db.session() as s:
        c = s.exec(select(Complaint)).one()
        assert c.overdue and c.escalated_at is not None
    assert [e.actor for e in events(gw, "escalated")] == ["scheduler"]


def test_no_double_firing_with_two_schedulers(db_url, make_gateway) -> None:
    gw1 = make_gateway(db_url)
    gw2 = make_gateway(db_url)
    with gw1.db.session() as s:
        past = datetime.now(D) - timedelta(days=70)
        for i in range(20):
            s.add(Complaint(reference=f"10000000{i:02d}"[-9:], status="assigned", administration="municipality",
                            channel="sms", received_at=past, ack_due_at=past + timedelta(days=15),
                            answer_due_at=past + timedelta(days=60)))
    results: list[Any] = []
    done_by: list[str] = []
    barrier = threading.Barrier(2)
    lock = threading.Lock()

    def run(gw: Any, owner: str) -> None:
        barrier.wait()
        report = run_once(gw.core, owner)
        with lock:
            results.append(report)
            done_by.append(owner)

    threads = [threading.Thread(target=run, args=(gw1, "one")), threading.Thread(target=run, args=(gw2, "two"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.ran for r in results) == [False, True]
    assert sum(r.escalated for r in results) == 20
    assert len(events(gw1, "escalated")) == 20
    owners = {"one": gw1, "two": gw2}
    results_by_owner = dict(zip(done_by, results))
    winner = next(o for o, r in results_by_owner.items() if r.ran)
    loser = "two" if winner == "one" else "one"
    assert run_once(owners[loser].core, loser).ran is False  # the lease is still held by the winner
    again = run_once(owners[winner].core, winner)
    assert again.ran and again.escalated == 0  # idempotent: nothing fires twice
    assert len(events(gw1, "escalated")) == 20


async def test_answer_asks_satisfaction_reply_digit_then_auto_close(db_url, make_gateway, start_client,
                                                                    fake_twilio) -> None:
    clock = Clock()
    gw = make_gateway(db_url, clock=clock)
    client = await start_client(gw)
    await send(client, "Les ordures ne sont pas ramassées dans notre rue depuis dix jours")
    await replies(fake_twilio, CITIZEN, 1)
    with gw.db.session() as s:
        c = s.exec(select(Complaint)).one()
        outcome = set_status(gw.core, s, c, "answered", actor="user:officer", note="Collecte faite ce matin.")
    gw.core.outbox_committed(outcome.outbox_ids)
    bodies = await replies(fake_twilio, CITIZEN, 3)
    assert "1" in bodies[2] and "5" in bodies[2]
    with gw.db.session() as s:
        asked = s.exec(select(Message).where(Message.template == "satisfaction.question_sms")).one()
        assert "buttons" not in asked.raw["meta"]  # inline buttons go to Telegram only
    await send(client, "4")
    await replies(fake_twilio, CITIZEN, 4)
    with gw.db.session() as s:
        c = s.exec(select(Complaint)).one()
        assert c.satisfaction == 4 and c.status == "answered"
    clock.advance(timedelta(days=16))
    assert run_once(gw.core, "x").closed == 1
    with gw.db.session() as s:
        assert s.exec(select(Complaint)).one().status == "closed"


async def test_reply_within_quiet_period_reopens(db_url, make_gateway, start_client, fake_twilio) -> None:
    clock = Clock()
    gw = make_gateway(db_url, clock=clock)
    client = await start_client(gw)
    await send(client, "Coupure d'électricité dans tout l'immeuble depuis hier soir")
    await replies(fake_twilio, CITIZEN, 1)
    with gw.db.session() as s:
        set_status(gw.core, s, s.exec(select(Complaint)).one(), "answered", actor="user:o")
    clock.advance(timedelta(days=3))
    await send(client, "Non, toujours pas de courant chez nous, rien n'a été réparé")
    await wait_until(lambda: _status(gw) == "in_progress")
    with gw.db.session() as s:
        c = s.exec(select(Complaint)).one()
        assert c.reopened_count == 1
    assert len(events(gw, "reopened")) == 1


def _status(gw: Any) -> str:
    with gw.db.session() as s:
        return s.exec(select(Complaint.status)).one()


def test_rate_action_for_telegram_buttons(db_url, make_gateway) -> None:
    gw = make_gateway(db_url)

    def inbound(text: str, sid: str) -> InboundMessage:
        return InboundMessage(channel="sms", provider_message_id=sid, sender="tel:" + CITIZEN, service_address=None,
                              text=text, received_at=gw.core.clock.now())

    result = gw.core.ingest_in_session(inbound("Les lampadaires de notre rue sont éteints depuis un mois", "A1"))
    cid = result.complaint_id
    ingest_sync(gw.core, inbound("", "A2"), lambda ctx: dispatch_action(ctx, f"rate:{cid}:5"))
    ingest_sync(gw.core, inbound("", "A3"), lambda ctx: dispatch_action(ctx, f"rate:{cid}:1"))  # once only
    with gw.db.session() as s:
        assert s.get(Complaint, cid).satisfaction == 5
    other = InboundMessage(channel="sms", provider_message_id="B1", sender="tel:" + OTHER, service_address=None,
                           text="", received_at=gw.core.clock.now())
    ingest_sync(gw.core, other, lambda ctx: dispatch_action(ctx, f"rate:{cid}:2"))
    with gw.db.session() as s:
        assert s.get(Complaint, cid).satisfaction == 5  # someone else cannot rate it


def test_similarity() -> None:
    assert similarity("Pas d'eau au robinet depuis trois jours à Oran, quartier Hai Sabah",
                      "pas d'eau au robinet depuis 3 jours a Oran quartier hai sabah !") > 0.5
    assert similarity("Pas d'eau au robinet depuis trois jours", "Fuite d'eau sur la route nationale") < 0.5


async def test_duplicates_flagged_linked_and_followed(db_url, make_gateway, start_client, fake_twilio) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw)
    await send(client, "Pas d'eau au robinet depuis trois jours à Oran, quartier Hai Sabah, personne ne répond")
    await replies(fake_twilio, CITIZEN, 1)
    await send(client, "pas d'eau au robinet depuis 3 jours a Oran quartier hai sabah, personne ne repond !", OTHER)
    [ack] = await replies(fake_twilio, OTHER, 1)
    with gw.db.session() as s:
        first, second = s.exec(select(Complaint).order_by(Complaint.id)).all()
        assert second.probable_duplicate_of_id == first.id and first.probable_duplicate_of_id is None
        link_duplicate(s, second, first, actor="user:officer", now=gw.core.clock.now())
    with gw.db.session() as s:
        first = s.exec(select(Complaint).order_by(Complaint.id)).first()
        outcome = set_status(gw.core, s, first, "in_progress", actor="user:officer")
    gw.core.outbox_committed(outcome.outbox_ids)
    mine = await replies(fake_twilio, CITIZEN, 2)
    theirs = await replies(fake_twilio, OTHER, 2)
    assert REF.search(theirs[1]).group(0) == REF.search(ack).group(0)  # told under their own reference
    assert REF.search(mine[1]).group(0) != REF.search(ack).group(0)
