"""End to end through the fake Twilio: the answer, the rating by a digit, reopening by a reply, auto-close."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from conversations.clock import Clock
from conversations.scheduler import Scheduler
from conversations.workflow import set_status
from store.models import Complaint, ComplaintEvent
from tests.channels.sms.test_sms_flow import CITIZEN, REF, replies, send
from tests.clocks.helpers import count, events


def answer(gw: Any, cid: int, note: str) -> None:
    with gw.db.session() as s:
        outcome = set_status(gw.core, s, s.get(Complaint, cid), "answered", actor="officer:7", note=note)
    gw.core.outbox_committed(outcome.outbox_ids)


def only(gw: Any) -> Complaint:
    with gw.db.session() as s:
        return s.exec(select(Complaint)).one()


async def test_rating_then_reopen_then_auto_close(db_url: str, make_gateway: Any, start_client: Any,
                                                  fake_twilio: Any) -> None:
    clock = Clock()
    gw = make_gateway(db_url, clock=clock, config_overrides={"satisfaction": {"delay_seconds": 30}})
    client = await start_client(gw)
    await send(client, "Bonjour, il n'y a plus d'eau au robinet depuis trois jours dans notre quartier à Oran")
    [ack] = await replies(fake_twilio, CITIZEN, 1)
    ref = REF.search(ack).group(0)
    cid = only(gw).id

    answer(gw, cid, "La conduite a été réparée hier.")
    bodies = await replies(fake_twilio, CITIZEN, 2)
    assert ref in bodies[1] and "réparée" in bodies[1]
    assert len(fake_twilio.to(CITIZEN)) == 2
    clock.advance(timedelta(seconds=31))  # the question follows the answer, never overtakes it
    bodies = await replies(fake_twilio, CITIZEN, 3)
    assert ref in bodies[2] and "1" in bodies[2] and "5" in bodies[2] and "chiffre" in bodies[2]
    assert only(gw).satisfaction_asked_at is not None

    await send(client, "4")
    bodies = await replies(fake_twilio, CITIZEN, 4)
    assert "Merci" in bodies[3] and ref in bodies[3]
    assert only(gw).satisfaction == 4
    [rated] = events(gw, cid, "satisfaction")
    assert rated.data == {"value": 4} and rated.actor == "citizen"
    await send(client, "٥")  # a second rating (Arabic-Indic digit) does not replace the first
    bodies = await replies(fake_twilio, CITIZEN, 5)
    assert "déjà" in bodies[4]
    assert only(gw).satisfaction == 4 and only(gw).status == "answered"

    await send(client, "Toujours pas d'eau ce matin, rien n'a changé chez nous")
    bodies = await replies(fake_twilio, CITIZEN, 6)
    assert ref in bodies[5] and "rouverte" in bodies[5]
    c = only(gw)
    assert c.status == "in_progress" and c.reopened_count == 1 and c.answered_at is None
    [reopened] = events(gw, cid, "reopened")
    assert reopened.actor == "citizen" and reopened.from_status == "answered" and reopened.to_status == "in_progress"
    assert count(gw, Complaint) == 1

    answer(gw, cid, "Le réseau du quartier a été remplacé.")
    await replies(fake_twilio, CITIZEN, 7)
    await send(client, "Merci beaucoup !")  # thanks do not reopen
    clock.advance(timedelta(seconds=5))
    assert only(gw).status == "answered" and only(gw).reopened_count == 1
    assert len(fake_twilio.to(CITIZEN)) == 7
    clock.advance(timedelta(days=15, minutes=1))
    report = await Scheduler(gw.core).tick()
    assert report.closed == 1 and only(gw).status == "closed"
    await send(client, "Une nouvelle fuite d'eau devant l'école du quartier depuis ce matin")
    bodies = await replies(fake_twilio, CITIZEN, 8)
    assert count(gw, Complaint) == 2 and ref not in bodies[7]
    with gw.db.session() as s:
        assert s.exec(select(ComplaintEvent).where(ComplaintEvent.type == "reopened")).all().__len__() == 1


async def test_a_digit_without_a_question_is_not_a_rating(sqlite_url: str, make_gateway: Any, start_client: Any,
                                                          fake_twilio: Any) -> None:
    gw = make_gateway(sqlite_url)
    client = await start_client(gw)
    await send(client, "Les ordures ne sont pas ramassées depuis une semaine dans ma rue")
    await replies(fake_twilio, CITIZEN, 1)
    await send(client, "3")
    bodies = await replies(fake_twilio, CITIZEN, 2)
    assert "ajouté" in bodies[1]  # a follow-up of the open complaint, as before
    assert only(gw).satisfaction is None
