"""The work side's operations, shared by the REST API and the console.

Every function runs inside the caller's session (one transaction) and takes the acting user;
officers are scoped to their administration here, so neither the API nor the console can
forget it. Mutations go through ``conversations.workflow`` (audit events, citizen messages
in the outbox in the same transaction).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import and_, delete, false, func, or_, true
from sqlmodel import Session, select

from conversations import reference as refs
from conversations import workflow
from conversations.complaints import KINDS, OPEN_STATUSES, STATUSES, TransitionError, create_complaint
from conversations.core import Core
from conversations.identities import CHANNEL_FOR_SCHEME, find_identity, resolve
from conversations.language import detect_language
from conversations.messages import mask_urn
from conversations.outbox import queue_message
from gateway.api.common import CAN, ApiError, forbidden, invalid, iso, not_found
from gateway.auth import visible_to
from store.models import Complaint, ComplaintEvent, Contact, Identity, Message, User
from store.models_api import IdempotentRequest

INTAKE_CHANNELS = ("phone", "walk_in", "register")
# How long a stored answer is replayed for a repeated Idempotency-Key.
IDEMPOTENCY_TTL = timedelta(days=2)
_EMAIL = re.compile(r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\"]+$")


def actor(user: User) -> str:
    """How a person appears in the audit trail."""
    return f"user:{user.username}"


# -- scoping -----------------------------------------------------------------------------------
def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def scope_condition(user: User) -> Any:
    """SQL twin of ``gateway.auth.visible_to``: an officer sees their administration and its branches."""
    if user.role != "officer":
        return true()
    mine = user.administration or ""
    if not mine:
        return false()
    return or_(Complaint.administration == mine,
               Complaint.administration.like(_like_escape(mine) + ".%", escape="\\"))  # type: ignore[union-attr]


def load_complaint(session: Session, user: User, reference: str, *, for_update: bool = False) -> Complaint:
    """The complaint the user may see, by reference with or without separators; else 404."""
    digits = refs.parse(reference)
    if digits is None:
        raise not_found()
    query = select(Complaint).where(Complaint.reference == digits)
    if for_update and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    complaint = session.exec(query).first()
    if complaint is None or not visible_to(user, complaint):
        raise not_found()
    return complaint


def allowed(user: User, action: str) -> bool:
    return user.role in CAN[action]


def require_role(user: User, action: str) -> None:
    if not allowed(user, action):
        raise forbidden(f"this action needs one of the roles: {', '.join(CAN[action])}")


# -- citizens' addresses -------------------------------------------------------------------------
def phone_urn(raw: str, country: str, field_name: str = "phone") -> str:
    """``tel:+E164`` from a number typed in national or international form, else 400 naming the field."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise invalid(field_name, f"{field_name} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid(field_name, f"{field_name} is not a valid phone number for {country} or in +international form")
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_urn(raw: str, field_name: str = "email") -> str:
    value = raw.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise invalid(field_name, f"{field_name} is not an e-mail address")
    return "mailto:" + value


def contact_for(session: Session, urn: str) -> int | None:
    identity = find_identity(session, urn)
    return identity.contact_id if identity else None


# -- search ------------------------------------------------------------------------------------
@dataclass
class Filters:
    status: tuple[str, ...] = ()
    category: str | None = None
    administration: str | None = None
    place: str | None = None
    channel: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    overdue: bool | None = None
    q: str | None = None
    urn: str | None = None
    created_by: str | None = None
    sort: str = "-received_at"


SORTS = {
    "-received_at": (Complaint.received_at.desc(), Complaint.id.desc()),  # type: ignore[attr-defined]
    "received_at": (Complaint.received_at, Complaint.id),
    "answer_due_at": (Complaint.answer_due_at, Complaint.id),
    "-updated_at": (Complaint.updated_at.desc(), Complaint.id.desc()),  # type: ignore[attr-defined]
}


def overdue_condition(now: datetime) -> Any:
    """Open and past a due date: acknowledgement not given in time, or no answer by the answer date."""
    late_ack = and_(Complaint.acknowledged_at.is_(None), Complaint.ack_due_at < now)  # type: ignore[union-attr]
    late_answer = Complaint.answer_due_at < now  # type: ignore[operator]
    return and_(Complaint.status.in_(OPEN_STATUSES),  # type: ignore[attr-defined]
                or_(Complaint.overdue == True, late_ack, late_answer))  # noqa: E712


def is_overdue(complaint: Complaint, now: datetime) -> bool:
    if complaint.status not in OPEN_STATUSES:
        return False
    late_ack = complaint.acknowledged_at is None and complaint.ack_due_at is not None and complaint.ack_due_at < now
    late_answer = complaint.answer_due_at is not None and complaint.answer_due_at < now
    return bool(complaint.overdue or late_ack or late_answer)


def search(session: Session, core: Core, user: User, filters: Filters, limit: int, offset: int) -> dict[str, Any]:
    now = core.clock.now()
    where: list[Any] = [scope_condition(user)]
    if filters.status:
        where.append(Complaint.status.in_(filters.status))  # type: ignore[attr-defined]
    for name in ("category", "place", "channel", "kind"):
        value = getattr(filters, name)
        if value:
            where.append(getattr(Complaint, name) == value)
    if filters.administration:
        admin = filters.administration
        where.append(or_(Complaint.administration == admin,
                         Complaint.administration.like(_like_escape(admin) + ".%", escape="\\")))  # type: ignore[union-attr]
    if filters.since:
        where.append(Complaint.received_at >= filters.since)
    if filters.until:
        where.append(Complaint.received_at < filters.until)
    if filters.overdue is not None:
        cond = overdue_condition(now)
        where.append(cond if filters.overdue else ~cond)
    if filters.created_by:
        where.append(Complaint.created_by == filters.created_by)
    if filters.q:
        text_match = Complaint.text.icontains(filters.q, autoescape=True)  # type: ignore[attr-defined]
        digits = refs.clean(filters.q)
        if digits.isdigit() and len(digits) >= 4:
            where.append(or_(text_match, Complaint.reference.contains(digits, autoescape=True)))  # type: ignore[attr-defined]
        else:
            where.append(text_match)
    if filters.urn is not None:
        contact_id = contact_for(session, filters.urn)
        where.append(Complaint.contact_id == contact_id if contact_id is not None else false())
    total = session.exec(select(func.count()).select_from(Complaint).where(*where)).one()
    rows = session.exec(select(Complaint).where(*where).order_by(*SORTS[filters.sort])
                        .limit(limit).offset(offset)).all()
    items = [summary(core, row, now) for row in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None}


# -- serialisation -------------------------------------------------------------------------------
def summary(core: Core, c: Complaint, now: datetime | None = None) -> dict[str, Any]:
    now = now or core.clock.now()
    excerpt = c.text if len(c.text) <= 160 else c.text[:157] + "…"
    return {
        "reference": refs.format_reference(c.reference),
        "status": c.status, "kind": c.kind, "category": c.category, "administration": c.administration,
        "place": c.place, "channel": c.channel, "language": c.language, "excerpt": excerpt,
        "received_at": iso(c.received_at), "updated_at": iso(c.updated_at), "created_by": c.created_by,
        "overdue": is_overdue(c, now),
        "clocks": {
            "ack_due_at": iso(c.ack_due_at), "answer_due_at": iso(c.answer_due_at),
            "assigned_at": iso(c.assigned_at), "acknowledged_at": iso(c.acknowledged_at),
            "answered_at": iso(c.answered_at), "closed_at": iso(c.closed_at),
        },
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "direction": m.direction, "channel": m.channel, "kind": m.kind, "text": m.text,
        "subject": m.subject, "language": m.language, "status": m.status, "error_code": m.error_code,
        "address": mask_urn(m.urn), "template": m.template,
        "author": (m.raw or {}).get("entered_by"),
        "attachments": [{k: a.get(k) for k in ("content_type", "filename", "size")} for a in m.attachments or []],
        "created_at": iso(m.created_at), "sent_at": iso(m.sent_at), "delivered_at": iso(m.delivered_at),
    }


def event_json(e: ComplaintEvent) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "type": e.type, "from_status": e.from_status,
            "to_status": e.to_status, "note": e.note, "data": e.data or {}}


def detail(session: Session, core: Core, c: Complaint) -> dict[str, Any]:
    body = summary(core, c)
    body.pop("excerpt")
    messages = session.exec(select(Message).where(Message.complaint_id == c.id)
                            .order_by(Message.created_at, Message.id)).all()
    events = session.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == c.id)
                          .order_by(ComplaintEvent.at, ComplaintEvent.id)).all()
    citizen: dict[str, Any] | None = None
    if c.identity_id is not None and not c.anonymous:
        identity = session.get(Identity, c.identity_id)
        contact = session.get(Contact, c.contact_id) if c.contact_id else None
        if identity is not None:
            citizen = {"address": mask_urn(identity.urn), "channel": CHANNEL_FOR_SCHEME.get(identity.scheme),
                       "reachable": not identity.unreachable,
                       "opted_out": bool(contact and contact.opted_out),
                       "language": contact.language if contact else None}
    body.update({
        "text": c.text, "consent_sms": c.consent_sms, "anonymous": c.anonymous,
        "routing": {"confidence": c.routing_confidence, "reasons": list(c.routing_reasons or [])},
        "rejected_reason": c.rejected_reason, "transfer_count": c.transfer_count,
        "reopened_count": c.reopened_count, "citizen": citizen,
        "messages": [message_json(m) for m in messages],
        "events": [event_json(e) for e in events],
    })
    return body


# -- idempotency -------------------------------------------------------------------------------
def replay(session: Session, user: User, key: str | None, scope: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer to an earlier request with this ``Idempotency-Key``, if any."""
    if not key:
        return None
    row = session.exec(select(IdempotentRequest).where(IdempotentRequest.user_id == user.id,
                                                       IdempotentRequest.key == key)).first()
    if row is None:
        return None
    if row.scope != scope:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another request",
                       field="Idempotency-Key")
    return row.status, dict(row.body)


def remember(session: Session, user: User, key: str | None, scope: str, status: int, body: dict[str, Any],
             now: datetime) -> None:
    if key:
        session.exec(delete(IdempotentRequest).where(IdempotentRequest.created_at < now - IDEMPOTENCY_TTL))  # type: ignore[call-overload]
        session.add(IdempotentRequest(user_id=user.id, key=key, scope=scope, status=status, body=body,  # type: ignore[arg-type]
                                      created_at=now))
        session.flush()


# -- intake --------------------------------------------------------------------------------------
@dataclass
class Intake:
    text: str
    channel: str
    phone: str | None = None
    email: str | None = None
    kind: str = "complaint"
    category: str | None = None
    place: str | None = None
    language: str | None = None
    consent_sms: bool = True


@dataclass
class Result:
    body: dict[str, Any]
    outbox_ids: list[int] = field(default_factory=list)
    status: int = 200


def validate_intake(core: Core, data: dict[str, Any]) -> Intake:
    """Check an intake body; every problem is a 400 naming the field."""
    from gateway.api.common import bool_field, text_field

    text = text_field(data, "text", required=True, max_length=core.config.max_text_length)
    channel = text_field(data, "channel", required=True, max_length=16)
    if channel not in INTAKE_CHANNELS:
        raise invalid("channel", f"channel must be one of: {', '.join(INTAKE_CHANNELS)}")
    phone = text_field(data, "phone", max_length=40)
    email = text_field(data, "email", max_length=254)
    if not phone and not email:
        raise invalid("phone", "give the citizen's phone or email, so they receive the reference and the answer")
    kind = text_field(data, "kind", max_length=16) or "complaint"
    if kind not in KINDS:
        raise invalid("kind", f"kind must be one of: {', '.join(KINDS)}")
    category = text_field(data, "category", max_length=64)
    if category is not None and category not in core.config.categories:
        raise invalid("category", "unknown category; see the configured taxonomy")
    place = text_field(data, "place", max_length=64)
    if place is not None and place not in core.config.places:
        raise invalid("place", "unknown place; see the configured places")
    language = text_field(data, "language", max_length=16)
    if language is not None and language not in core.config.templates:
        raise invalid("language", f"language must be one of: {', '.join(sorted(core.config.templates))}")
    return Intake(text=text or "", channel=channel, phone=phone, email=email, kind=kind, category=category,
                  place=place, language=language, consent_sms=bool_field(data, "consent_sms", True))


def intake(core: Core, session: Session, user: User, data: Intake) -> Result:
    """An agent logs what a caller or visitor says: a complaint, routed, with the reference sent
    to the citizen (SMS to the phone when they consent, else e-mail)."""
    now = core.clock.now()
    urns = []
    if data.phone:
        urns.append(phone_urn(data.phone, core.settings.country))
    if data.email:
        urns.append(email_urn(data.email))
    contact, identity = resolve(session, urns[0])
    for other in urns[1:]:
        from conversations.identities import link_identity

        link_identity(session, contact, other)
    language = core.templates.language(data.language or detect_language(data.text) or contact.language)
    if contact.language != language:
        contact.language = language
        session.add(contact)
    routed = core.router.route(data.text, channel=data.channel, category_hint=data.category)
    place = data.place or routed.place
    category = data.category or routed.category
    administration = core.config.administration_for(category, place) if category else None
    complaint = create_complaint(
        session, core.config, now=now, text=data.text, channel=data.channel, actor=actor(user),
        contact_id=contact.id, identity_id=identity.id, kind=data.kind, category=category,
        administration=administration, place=place, language=language,
        confidence=1.0 if data.category else routed.confidence,
        reasons=("chosen by the agent",) if data.category else routed.reasons,
        created_by=user.username, consent_sms=data.consent_sms,
        extra={"intake": {"by": user.username, "router_category": routed.category,
                          "router_confidence": routed.confidence}},
    )
    inbound = Message(direction="in", channel=data.channel, contact_id=contact.id, identity_id=identity.id,
                      complaint_id=complaint.id, urn=identity.urn, kind="text", text=data.text,
                      language=language, status="received", raw={"entered_by": user.username},
                      created_at=now, received_at=now)
    session.add(inbound)
    session.flush()
    outbox = _send_reference(core, session, complaint, contact.id, urns, data.consent_sms)  # type: ignore[arg-type]
    body = {"reference": refs.format_reference(complaint.reference), "status": complaint.status,
            "category": complaint.category, "administration": complaint.administration, "place": complaint.place,
            "language": language, "notified": bool(outbox),
            "routing": {"confidence": complaint.routing_confidence, "reasons": list(complaint.routing_reasons)}}
    return Result(body, outbox, 201)


def _send_reference(core: Core, session: Session, complaint: Complaint, contact_id: int, urns: list[str],
                    consent_sms: bool) -> list[int]:
    lang = core.templates.language(complaint.language)
    values = {
        "reference": refs.format_reference(complaint.reference),
        "kind": core.templates.render(lang, f"kind.{complaint.kind}"),
        "administration": core.config.administration_name(complaint.administration, lang),
        "answer_due": core.format_date(complaint.answer_due_at, lang) if complaint.answer_due_at else "",
        "ack_days": core.config.deadlines.acknowledge_days,
    }
    key = "ack_new" if complaint.administration else "ack_new_triage"
    text = core.templates.render(lang, key, **values)
    for urn in urns:
        if urn.startswith("tel:") and not consent_sms:
            continue
        identity = find_identity(session, urn)
        if identity is None or identity.unreachable:
            continue
        subject = f"[{core.templates.render(lang, 'kind.' + complaint.kind).capitalize()} {values['reference']}]"
        queued = queue_message(session, identity=identity, text=text, intent_key=f"intake:{complaint.id}",
                               language=lang, complaint=complaint, template=key, essential=True,
                               subject=subject, fallback=False, actor=f"user:{complaint.created_by}")
        if queued:
            return [queued.outbox_id]
    return []


# -- actions -------------------------------------------------------------------------------------
def change_status(core: Core, session: Session, user: User, complaint: Complaint, status: str,
                  note: str | None) -> Result:
    if status not in STATUSES:
        raise invalid("status", f"status must be one of: {', '.join(STATUSES)}")
    if status == "rejected" and not note:
        raise ApiError(422, "reason_required", "a rejection needs a reason: give it in note", field="note")
    try:
        outcome = workflow.set_status(core, session, complaint, status, actor=actor(user), note=note,
                                      reason=note if status == "rejected" else None)
    except TransitionError as exc:
        raise ApiError(409, "invalid_transition", str(exc), field="status") from None
    return Result({"reference": refs.format_reference(complaint.reference), "status": complaint.status,
                   "changed": outcome.event is not None, "notified": bool(outcome.outbox_ids)},
                  outcome.outbox_ids)


def reply(core: Core, session: Session, user: User, complaint: Complaint, text: str,
          request_key: str | None) -> Result:
    outcome = workflow.reply(core, session, complaint, text, actor=actor(user), request_key=request_key)
    message_id = None
    if outcome.outbox_ids:
        from store.models import Outbox

        row = session.get(Outbox, outcome.outbox_ids[0])
        message_id = row.message_id if row else None
    return Result({"reference": refs.format_reference(complaint.reference), "event_id": outcome.event.id,  # type: ignore[union-attr]
                   "message_id": message_id, "queued": bool(outcome.outbox_ids)}, outcome.outbox_ids, 201)


def add_note(core: Core, session: Session, user: User, complaint: Complaint, text: str) -> Result:
    outcome = workflow.add_note(session, complaint, text, actor=actor(user), now=core.clock.now())
    return Result({"reference": refs.format_reference(complaint.reference), "event_id": outcome.event.id}, [], 201)  # type: ignore[union-attr]


def known_administrations(core: Core) -> set[str]:
    ids = set(core.config.administrations)
    for admin in core.config.administrations.values():
        ids.update(branch.id for branch in admin.branches.values())
    return ids


def transfer(core: Core, session: Session, user: User, complaint: Complaint, *, administration: str | None,
             category: str | None, reason: str) -> Result:
    """Send elsewhere (or back to triage); with a category it is a routing correction, kept as
    labelled data. Officers may send back ("not ours") but not re-categorise."""
    if category is not None:
        if not allowed(user, "recategorise"):
            raise forbidden("only supervisors correct a category; send it back with a reason instead",
                            field="category")
        if category not in core.config.categories:
            raise invalid("category", "unknown category; see the configured taxonomy")
    if administration is not None and administration not in known_administrations(core):
        raise invalid("administration", "unknown administration; see the administrations directory")
    if complaint.status in ("closed", "rejected"):
        raise ApiError(409, "invalid_transition", f"a {complaint.status} complaint cannot be transferred; "
                       "reopen it first", field="status")
    reset = bool(core.config.raw.get("transfers", {}).get("reset_clock", False))
    outcome = workflow.transfer(core, session, complaint, actor=actor(user), administration=administration,
                                reason=reason, category=category, reset_clock=reset)
    event = outcome.event
    assert event is not None
    if category is not None:
        event.data = {**(event.data or {}), "correction": True, "by_role": user.role}
    else:
        event.data = {**(event.data or {}), "by_role": user.role}
    session.add(event)
    return Result({"reference": refs.format_reference(complaint.reference), "status": complaint.status,
                   "category": complaint.category, "administration": complaint.administration,
                   "notified": bool(outcome.outbox_ids)}, outcome.outbox_ids)


# -- routing data --------------------------------------------------------------------------------
def corrections(session: Session, since: datetime | None = None) -> list[dict[str, Any]]:
    """Routing corrections (transfers naming a category), the latest per complaint, oldest first."""
    query = select(ComplaintEvent).where(ComplaintEvent.type == "transferred").order_by(ComplaintEvent.id)
    if since is not None:
        query = query.where(ComplaintEvent.at >= since)
    latest: dict[int, ComplaintEvent] = {}
    for event in session.exec(query).all():
        if (event.data or {}).get("correction"):
            latest.pop(event.complaint_id, None)
            latest[event.complaint_id] = event
    out = []
    for complaint_id, event in latest.items():
        c = session.get(Complaint, complaint_id)
        if c is None or not c.category:
            continue
        data = event.data or {}
        out.append({"id": refs.format_reference(c.reference), "text": c.text, "channel": c.channel,
                    "category": c.category, "place": c.place,
                    "from_category": (data.get("from") or {}).get("category"),
                    "corrected_by": event.actor, "reason": event.note, "at": iso(event.at)})
    return out


def suggest(core: Core, text: str, place: str | None, language: str) -> dict[str, Any]:
    routed = core.router.route(text)
    place = place or routed.place
    administration = core.config.administration_for(routed.category, place) if routed.category else None
    category = core.config.categories.get(routed.category) if routed.category else None
    return {"category": routed.category, "category_name": category.name(language) if category else None,
            "administration": administration,
            "administration_name": core.config.administration_name(administration, language) or None,
            "place": routed.place, "confidence": round(routed.confidence, 3), "reasons": list(routed.reasons)}
