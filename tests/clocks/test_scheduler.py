"""The deadline scheduler with a controllable clock, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from conversations.clock import FixedClock
from conversations.scheduler import Scheduler
from conversations.workflow import set_status
from store.models import Complaint, ComplaintEvent, KeyValue
from tests.clocks.helpers import T0, complaint, count, events, intents, new_complaint, outbound

CITIZEN = "tel:+212612345678"
CONFIG = {"administrations": {"water_utility": {"email": "Eau-Oran@example.org"}},
          "clocks": {"reminder_days": 3, "escalate_after_days": 2, "auto_close_days": 15}}


def tick(gw: Any, clock: FixedClock, at: Any) -> dict[str, int]:
    clock.at = at
    return Scheduler(gw.core).run_once_sync().counts()


def test_reminders_overdue_escalation_in_order(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock, config_overrides=CONFIG)
    cid = new_complaint(gw)
    c = complaint(gw, cid)
    assert c.ack_due_at == T0 + timedelta(days=15) and c.answer_due_at == T0 + timedelta(days=60)

    assert not any(tick(gw, clock, T0 + timedelta(days=11, hours=23)).values())
    # 3 days before the acknowledgement deadline: one reminder, emailed to the administration
    assert tick(gw, clock, T0 + timedelta(days=12, hours=1))["reminders"] == 1
    assert not any(tick(gw, clock, T0 + timedelta(days=13)).values())  # not twice
    [reminder] = events(gw, cid, "reminder")
    assert reminder.actor == "scheduler" and reminder.data["clock"] == "acknowledge" and reminder.data["emailed"]
    [mail] = outbound(gw, "mailto:eau-oran@example.org")
    assert mail.channel == "email" and "accusé de réception" in (mail.subject or "") or "acknowledgement" in (mail.subject or "") \
        or "الإشعار" in (mail.subject or "")
    assert complaint(gw, cid).reminded_at == T0 + timedelta(days=12, hours=1)

    # the acknowledgement deadline passes: overdue, not yet escalated (2 days of grace)
    counts = tick(gw, clock, T0 + timedelta(days=15, minutes=1))
    assert counts["overdue"] == 1 and counts["escalated"] == 0
    assert complaint(gw, cid).overdue is True
    assert [e.type for e in events(gw, cid, "ack_overdue")] == ["ack_overdue"]
    assert not any(tick(gw, clock, T0 + timedelta(days=16)).values())

    # escalated once, the citizen told once
    assert tick(gw, clock, T0 + timedelta(days=17, minutes=1))["escalated"] == 1
    assert not any(tick(gw, clock, T0 + timedelta(days=17, hours=5)).values())
    c = complaint(gw, cid)
    assert c.escalated_at == T0 + timedelta(days=17, minutes=1)
    [escalated] = events(gw, cid, "escalated")
    assert escalated.actor == "scheduler" and escalated.data == {"clock": "acknowledge", "to": "supervisors"}
    [told] = outbound(gw, CITIZEN, "clocks.escalated")
    assert "superviseurs" in told.text and told.channel == "sms"

    # acknowledged late: no longer overdue
    clock.at = T0 + timedelta(days=18)
    with gw.db.session() as s:
        set_status(gw.core, s, s.get(Complaint, cid), "in_progress", actor="officer:1")
    assert tick(gw, clock, T0 + timedelta(days=18, hours=1))["cleared"] == 1
    assert complaint(gw, cid).overdue is False

    # the answer deadline: its own reminder, its own overdue event; no second escalation
    assert tick(gw, clock, T0 + timedelta(days=57, hours=1))["reminders"] == 1
    counts = tick(gw, clock, T0 + timedelta(days=60, hours=1))
    assert counts["overdue"] == 1 and counts["escalated"] == 0
    assert complaint(gw, cid).overdue is True
    assert [e.data["clock"] for e in events(gw, cid, "reminder")] == ["acknowledge", "answer"]
    assert len(outbound(gw, "mailto:eau-oran@example.org")) == 2
    assert len(outbound(gw, CITIZEN, "clocks.escalated")) == 1
    assert sorted(k.split(":")[0] for k in intents(gw)) == ["escalated", "reminder", "reminder", "status"]


def test_reminder_without_an_address_is_an_event(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock)
    cid = new_complaint(gw, category="waste", administration="municipality")
    assert tick(gw, clock, T0 + timedelta(days=13))["reminders"] == 1
    [reminder] = events(gw, cid, "reminder")
    assert reminder.data["emailed"] is False and reminder.data["administration"] == "municipality"
    assert intents(gw) == []


def test_branch_email_and_escalation_mailbox(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock, config_overrides={
        "administrations": {"water_utility": {"email": "national@example.org",
                                              "branches": {"oran": {"email": "oran@example.org"}}}},
        "clocks": {"escalation_email": "supervisors@example.org", "escalate_after_days": 0}})
    cid = new_complaint(gw, administration="water_utility.oran")
    tick(gw, clock, T0 + timedelta(days=13))
    tick(gw, clock, T0 + timedelta(days=15))
    assert len(outbound(gw, "mailto:oran@example.org")) == 1
    assert outbound(gw, "mailto:national@example.org") == []
    [escalation] = outbound(gw, "mailto:supervisors@example.org")
    assert escalation.complaint_id == cid and escalation.subject


def test_triage_complaints_are_escalated_too(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock)
    cid = new_complaint(gw, category=None, administration=None, place=None)
    counts = tick(gw, clock, T0 + timedelta(days=16))
    assert counts["overdue"] == 1 and counts["escalated"] == 1
    assert complaint(gw, cid).status == "new"


def test_auto_close_after_the_quiet_period(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock, config_overrides=CONFIG)
    cid = new_complaint(gw)
    clock.at = T0 + timedelta(days=3)
    with gw.db.session() as s:
        set_status(gw.core, s, s.get(Complaint, cid), "answered", actor="officer:1", note="Réparé")
    assert tick(gw, clock, T0 + timedelta(days=17, hours=23))["closed"] == 0
    assert tick(gw, clock, T0 + timedelta(days=18))["closed"] == 1
    c = complaint(gw, cid)
    assert c.status == "closed" and c.closed_at == T0 + timedelta(days=18)
    [closed] = [e for e in events(gw, cid, "status_changed") if e.to_status == "closed"]
    assert closed.actor == "system" and closed.from_status == "answered" and "15" in closed.note
    # the citizen was told "answered" (and asked to rate) but not bothered with "closed"
    assert [m.template for m in outbound(gw, CITIZEN)] == ["status_changed", "satisfaction.question_sms"]
    assert not any(tick(gw, clock, T0 + timedelta(days=40)).values())


def test_scheduler_asks_for_satisfaction_when_the_status_changed_elsewhere(db_url: str, make_gateway: Any) -> None:
    from conversations.complaints import change_status

    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock)
    cid = new_complaint(gw)
    anonymous = new_complaint(gw, urn=None)
    with gw.db.session() as s:
        for i in (cid, anonymous):
            change_status(s, s.get(Complaint, i), "answered", actor="officer:1", now=T0 + timedelta(days=1))
    assert tick(gw, clock, T0 + timedelta(days=1, hours=1))["asked"] == 1
    assert complaint(gw, cid).satisfaction_asked_at == T0 + timedelta(days=1, hours=1)
    assert complaint(gw, anonymous).satisfaction_asked_at is None
    assert Scheduler(gw.core).candidate_ids_sync(T0 + timedelta(days=2)) == []
    assert len(outbound(gw, CITIZEN, "satisfaction.question_sms")) == 1


def test_lease_one_holder_at_a_time(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw_a = make_gateway(db_url, clock=clock, config_overrides={"clocks": {"lease_seconds": 60}})
    gw_b = make_gateway(db_url, clock=clock, config_overrides={"clocks": {"lease_seconds": 60}})
    a, b = Scheduler(gw_a.core, owner="a"), Scheduler(gw_b.core, owner="b")
    assert a.tick_sync().ran is True
    assert b.tick_sync().ran is False
    clock.at = T0 + timedelta(seconds=30)
    assert a.tick_sync().ran is True  # renewed by its holder
    assert b.tick_sync().ran is False
    clock.at = T0 + timedelta(seconds=91)  # a stopped renewing 61 s ago
    assert b.tick_sync().ran is True
    assert a.tick_sync().ran is False
    with gw_a.db.session() as s:
        assert s.get(KeyValue, "scheduler").value["owner"] == "b"
    b.release_lease_sync()
    assert a.tick_sync().ran is True


def _race(gws: list[Any], work: str, rounds: int) -> list[Any]:
    barrier = threading.Barrier(len(gws))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(gw: Any, name: str) -> None:
        scheduler = Scheduler(gw.core, owner=name)
        try:
            barrier.wait(timeout=10)
            for _ in range(rounds):
                results.append(getattr(scheduler, work)())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(gw, f"s{i}")) for i, gw in enumerate(gws)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def test_two_schedulers_at_once_do_not_double_fire(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gws = [make_gateway(db_url, clock=clock, config_overrides=CONFIG) for _ in range(2)]
    ids = [new_complaint(gws[0], urn=f"tel:+2126123400{i:02d}") for i in range(20)]
    answered = new_complaint(gws[0], urn="tel:+212612349999")
    with gws[0].db.session() as s:
        from conversations.complaints import change_status
        change_status(s, s.get(Complaint, answered), "answered", actor="officer:1",
                      now=T0 + timedelta(days=10))
    clock.at = T0 + timedelta(days=17, hours=1)  # every complaint: overdue, escalated, answered one asked
    # without the lease: the actions alone must be idempotent
    _race(gws, "run_once_sync", 3)
    for cid in ids:
        assert [e.type for e in events(gws[0], cid, "ack_overdue", "escalated", "reminder")] == \
            ["ack_overdue", "escalated"]
    assert count(gws[0], ComplaintEvent, ComplaintEvent.type == "escalated") == 20
    assert len(outbound(gws[0], template="clocks.escalated")) == 20
    assert len({m.urn for m in outbound(gws[0], template="clocks.escalated")}) == 20
    assert len(outbound(gws[0], template="satisfaction.question_sms")) == 1
    assert count(gws[0], ComplaintEvent, ComplaintEvent.type == "satisfaction_asked") == 1

    # with the lease: one scheduler runs, the other waits
    clock.at = T0 + timedelta(days=57, hours=1)  # answer reminders are due for all
    results = _race(gws, "tick_sync", 2)
    assert sum(1 for r in results if r.ran) == 2 and len({id(r) for r in results}) == 4
    assert sum(r.reminders for r in results) == 20
    assert len(outbound(gws[0], "mailto:eau-oran@example.org")) == 20


async def test_serve_runs_the_scheduler(db_url: str, make_gateway: Any, start_client: Any) -> None:
    from tests.conftest import wait_until

    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock, config_overrides={"clocks": {"interval_seconds": 0.05}})
    cid = new_complaint(gw)
    clock.at = T0 + timedelta(days=16)
    await start_client(gw)
    await wait_until(lambda: complaint(gw, cid).escalated_at is not None, timeout=10)
    assert len(events(gw, cid, "escalated")) == 1


async def test_serve_without_the_scheduler(sqlite_url: str, make_gateway: Any, start_client: Any) -> None:
    import asyncio

    clock = FixedClock(T0)
    gw = make_gateway(sqlite_url, clock=clock, scheduler_enabled=False,
                      config_overrides={"clocks": {"interval_seconds": 0.05}})
    cid = new_complaint(gw)
    clock.at = T0 + timedelta(days=16)
    await start_client(gw)
    await asyncio.sleep(0.3)
    assert complaint(gw, cid).escalated_at is None
