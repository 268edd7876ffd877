"""Helpers for the clocks, satisfaction and duplicates tests: complaints with a citizen, counts."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlmodel import func, select

from conversations.complaints import create_complaint
from conversations.identities import resolve
from store.models import Complaint, ComplaintEvent, Message, Outbox

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


def new_complaint(gw: Any, *, urn: str | None = "tel:+212612345678", at: datetime = T0, text: str = "Pas d'eau",
                  category: str | None = "water", administration: str | None = "water_utility",
                  place: str | None = "oran", language: str = "fr", channel: str = "sms") -> int:
    with gw.db.session() as s:
        contact = identity = None
        if urn:
            contact, identity = resolve(s, urn, language=language)
        c = create_complaint(s, gw.config, now=at, text=text, channel=channel, actor="citizen",
                             contact_id=contact.id if contact else None, identity_id=identity.id if identity else None,
                             category=category, administration=administration, place=place, language=language,
                             anonymous=urn is None)
        return c.id  # type: ignore[return-value]


def complaint(gw: Any, cid: int) -> Complaint:
    with gw.db.session() as s:
        c = s.get(Complaint, cid)
        assert c is not None
        return c


def events(gw: Any, cid: int, *types: str) -> list[ComplaintEvent]:
    with gw.db.session() as s:
        q = select(ComplaintEvent).where(ComplaintEvent.complaint_id == cid)
        if types:
            q = q.where(ComplaintEvent.type.in_(types))  # type: ignore[attr-defined]
        return list(s.exec(q.order_by(ComplaintEvent.id)).all())


def outbound(gw: Any, urn: str | None = None, template: str | None = None) -> list[Message]:
    with gw.db.session() as s:
        q = select(Message).where(Message.direction == "out")
        if urn:
            q = q.where(Message.urn == urn)
        if template:
            q = q.where(Message.template == template)
        return list(s.exec(q.order_by(Message.id)).all())


def intents(gw: Any) -> list[str]:
    with gw.db.session() as s:
        return list(s.exec(select(Outbox.intent_key).order_by(Outbox.id)).all())


def count(gw: Any, model: Any, *where: Any) -> int:
    with gw.db.session() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()
