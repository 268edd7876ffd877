"""The satisfaction question on each channel: Telegram buttons, email first line, IVR keypad, SMS digit."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conversations.actions import ACTION_HANDLERS, dispatch_action
from conversations.clock import FixedClock
from conversations.delivery import _outbound
from conversations.dialogue import text_dialogue
from conversations.ingest import ingest_sync
from conversations.messages import Button, InboundMessage
from conversations.satisfaction import rating_from_text, record_rating
from conversations.workflow import set_status
from store.models import Complaint, Outbox
from tests.clocks.helpers import T0, complaint, events, new_complaint, outbound

_ids = iter(range(1, 100_000))


def answered(gw: Any, cid: int) -> list[int]:
    with gw.db.session() as s:
        return set_status(gw.core, s, s.get(Complaint, cid), "answered", actor="officer:1", note="Fait").outbox_ids


def inbound(channel: str, sender: str, text: str, **meta: Any) -> InboundMessage:
    return InboundMessage(channel=channel, provider_message_id=f"{channel}-{next(_ids)}", sender=sender,
                          service_address=None, text=text, received_at=T0, meta=meta)


def test_telegram_question_has_buttons_and_the_rate_action_records(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock, config_overrides={"satisfaction": {"delay_seconds": 30}})
    cid = new_complaint(gw, urn="telegram:424242", channel="telegram", language="en")
    queued = answered(gw, cid)
    assert len(queued) == 2  # the status change and the question
    [question] = outbound(gw, "telegram:424242", "satisfaction.question_telegram")
    assert question.raw["meta"]["buttons"] == [[{"label": str(v), "data": f"rate:{cid}:{v}"} for v in range(1, 6)]]
    message = _outbound(question, complaint(gw, cid))
    assert message.buttons == (tuple(Button(str(v), f"rate:{cid}:{v}") for v in range(1, 6)),)
    assert "Tap 1" in message.text
    with gw.db.session() as s:
        row = s.exec(Outbox.__table__.select().where(Outbox.message_id == question.id)).one()
        assert row.next_attempt_at == T0 + timedelta(seconds=30)  # after the answer

    assert "rate" in ACTION_HANDLERS

    def tap(data: str) -> Any:
        return ingest_sync(gw.core, inbound("telegram", "telegram:424242", "", callback_data=data),
                           lambda ctx: dispatch_action(ctx, ctx.inbound.meta["callback_data"]))

    result = tap(f"rate:{cid}:5")
    assert result.action == "satisfaction" and result.complaint_id == cid
    assert complaint(gw, cid).satisfaction == 5
    assert tap(f"rate:{cid}:2").action == "satisfaction"  # a second tap does not change it
    assert complaint(gw, cid).satisfaction == 5
    texts = [m.text for m in outbound(gw, "telegram:424242") if m.template and m.template.startswith("satisfaction.")]
    assert any("Thank you" in t for t in texts) and any("already" in t for t in texts)
    # another person's complaint, or nonsense, is refused without effect
    other = new_complaint(gw, urn="telegram:777", channel="telegram", language="en")
    answered(gw, other)
    tap(f"rate:{other}:1")
    tap("rate:abc:1")
    tap(f"rate:{cid}:9")
    assert complaint(gw, other).satisfaction is None
    assert len(outbound(gw, "telegram:424242", "satisfaction.invalid")) == 3
    assert [e.data for e in events(gw, cid, "satisfaction")] == [{"value": 5}]


def test_email_reply_with_the_digit_on_the_first_line(db_url: str, make_gateway: Any) -> None:
    gw = make_gateway(db_url, clock=FixedClock(T0))
    cid = new_complaint(gw, urn="mailto:citoyen@example.org", channel="email")
    answered(gw, cid)
    [question] = outbound(gw, "mailto:citoyen@example.org", "satisfaction.question_email")
    assert "première ligne" in question.text and "http" not in question.text
    assert question.subject and question.channel == "email"
    reply = "2\n\nLe 02/03/2026, Plateforme a écrit :\n> Êtes-vous satisfait de la réponse ? 5 = très satisfait\n"
    result = ingest_sync(gw.core, inbound("email", "mailto:citoyen@example.org", reply), text_dialogue)
    assert result.action == "satisfaction"
    assert complaint(gw, cid).satisfaction == 2


def test_ivr_keypad_digit(db_url: str, make_gateway: Any) -> None:
    gw = make_gateway(db_url, clock=FixedClock(T0))
    cid = new_complaint(gw, channel="phone")
    answered(gw, cid)
    at = datetime(2026, 3, 5, tzinfo=timezone.utc)
    with gw.db.session() as s:
        c = s.get(Complaint, cid)
        assert record_rating(s, c, 3, "citizen", now=at) is True
        assert record_rating(s, c, 1, "citizen", now=at) is False
        with pytest.raises(ValueError):
            record_rating(s, c, 6, "citizen")
    assert complaint(gw, cid).satisfaction == 3
    [event] = events(gw, cid, "satisfaction")
    assert event.at == at and event.data == {"value": 3}


def test_asked_once_and_never_when_anonymous(db_url: str, make_gateway: Any) -> None:
    gw = make_gateway(db_url, clock=FixedClock(T0))
    cid = new_complaint(gw)
    anonymous = new_complaint(gw, urn=None)
    answered(gw, cid)
    with gw.db.session() as s:  # reopened and answered again: no second question
        set_status(gw.core, s, s.get(Complaint, cid), "in_progress", actor="citizen")
    answered(gw, cid)
    answered(gw, anonymous)
    assert len(outbound(gw, template="satisfaction.question_sms")) == 1
    assert complaint(gw, anonymous).satisfaction_asked_at is None


def test_disabled_by_configuration(sqlite_url: str, make_gateway: Any) -> None:
    gw = make_gateway(sqlite_url, clock=FixedClock(T0), config_overrides={"satisfaction": {"enabled": False}})
    cid = new_complaint(gw)
    answered(gw, cid)
    assert outbound(gw, template="satisfaction.question_sms") == []


@pytest.mark.parametrize("text, first_line, value", [
    ("4", False, 4), (" 5 ", False, 5), ("١", False, 1), ("5.", False, 5), ("0", False, None), ("6", False, None),
    ("45", False, None), ("4 stars", False, None), ("3\n> quoted 5", True, 3), ("\n\n2\nmerci", True, 2),
    ("merci\n4", True, None), ("", True, None)])
def test_rating_from_text(text: str, first_line: bool, value: int | None) -> None:
    assert rating_from_text(text, first_line) == value


def test_email_dialogue_rating_and_reopen_by_thread(db_url: str, make_gateway: Any) -> None:
    from conversations import reference as refs

    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock)
    cid = new_complaint(gw, urn="mailto:citoyen@example.org", channel="email")
    answered(gw, cid)
    ref = refs.format_reference(complaint(gw, cid).reference)

    def email(text: str) -> Any:
        message = InboundMessage(channel="email", provider_message_id=f"<{next(_ids)}@example.org>",
                                 sender="mailto:citoyen@example.org", service_address="plaintes@example.gov",
                                 text=text, subject=f"Re: [Réclamation {ref}] Votre avis", received_at=T0)
        return gw.core.ingest_in_session(message)

    assert email("5\n\nMerci pour la réparation").action == "satisfaction"
    assert complaint(gw, cid).satisfaction == 5
    clock.at = T0 + timedelta(days=2)
    assert email("Finalement l'eau est de nouveau coupée depuis ce matin.").action == "reopened"
    c = complaint(gw, cid)
    assert c.status == "in_progress" and c.reopened_count == 1
