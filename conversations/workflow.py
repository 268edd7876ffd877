"""What people do to complaints (API, console, scheduler), each with its audit event and,
where the citizen must know, a message on their own channel in their language.

Every function runs inside the caller's session/transaction and returns the outbox ids it
queued, so the caller can wake delivery after commit (``Core.outbox_committed``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from conversations import reference as refs
from conversations import satisfaction
from conversations.complaints import add_event, change_status
from conversations.core import Core
from conversations.deadlines import due_dates
from conversations.duplicates import linked_duplicates
from conversations.outbox import queue_message
from store.models import Complaint, ComplaintEvent, Identity


@dataclass
class Outcome:
    event: ComplaintEvent | None = None
    outbox_ids: list[int] = field(default_factory=list)


def citizen_identity(session: Session, complaint: Complaint) -> Identity | None:
    if complaint.anonymous or complaint.identity_id is None:
        return None
    return session.get(Identity, complaint.identity_id)


def notify_citizen(core: Core, session: Session, complaint: Complaint, text: str, *, intent_key: str,
                   template: str, essential: bool, actor: str = "system") -> list[int]:
    """Queue ``text`` to the complaint's citizen (falls back to another of their identities)."""
    identity = citizen_identity(session, complaint)
    if identity is None or (identity.scheme == "tel" and not complaint.consent_sms):
        return []
    queued = queue_message(session, identity=identity, text=text, intent_key=intent_key, complaint=complaint,
                           language=complaint.language, template=template, essential=essential, actor=actor,
                           conversation_id=complaint.conversation_id,
                           subject=_subject(core, complaint), meta={"automatic": template != "reply"})
    return [queued.outbox_id] if queued else []


def _subject(core: Core, complaint: Complaint) -> str:
    lang = core.templates.language(complaint.language)
    return f"[{core.templates.render(lang, 'kind.' + complaint.kind).capitalize()} {refs.format_reference(complaint.reference)}]"


def status_message(core: Core, complaint: Complaint, note: str | None) -> str:
    lang = core.templates.language(complaint.language)
    admin = core.config.administration_name(complaint.administration, lang)
    status = core.templates.render(lang, f"status.{complaint.status}", administration=admin)
    if complaint.status == "rejected" and complaint.rejected_reason:
        note = core.templates.render(lang, "rejected_detail", reason=complaint.rejected_reason)
    return core.templates.render(lang, "status_changed", reference=refs.format_reference(complaint.reference),
                                 status=status, note=note or "")


def set_status(core: Core, session: Session, complaint: Complaint, to_status: str, *, actor: str,
               note: str | None = None, reason: str | None = None, now: datetime | None = None,
               notify: bool = True) -> Outcome:
    """Change status; the citizen is told once per change (a repeat of the same status sends nothing)."""
    now = now or core.clock.now()
    event = change_status(session, complaint, to_status, actor=actor, now=now, note=note, reason=reason)
    if event is None:
        return Outcome()
    outbox: list[int] = []
    if notify:
        outbox = notify_citizen(core, session, complaint, status_message(core, complaint, note),
                                intent_key=f"status:{complaint.id}:{event.id}", template="status_changed",
                                essential=to_status in ("answered", "rejected"), actor=actor)
        outbox += notify_duplicates(core, session, complaint, event, note, actor=actor)
        if to_status == "answered":
            outbox += satisfaction.ask(core, session, complaint, now)
    return Outcome(event, outbox)


def notify_duplicates(core: Core, session: Session, original: Complaint, event: ComplaintEvent,
                      note: str | None, *, actor: str) -> list[int]:
    """The citizens of complaints linked as duplicates of ``original`` learn its new status, once each,
    in their own language and under their own reference."""
    outbox: list[int] = []
    for duplicate in linked_duplicates(session, original):
        lang = core.templates.language(duplicate.language)
        admin = core.config.administration_name(original.administration, lang)
        status = core.templates.render(lang, f"status.{original.status}", administration=admin)
        if original.status == "rejected" and original.rejected_reason:
            note = core.templates.render(lang, "rejected_detail", reason=original.rejected_reason)
        text = core.templates.render(lang, "status_changed", reference=refs.format_reference(duplicate.reference),
                                     status=status, note=note or "")
        outbox += notify_citizen(core, session, duplicate, text, intent_key=f"status:{duplicate.id}:{event.id}",
                                 template="status_changed", essential=original.status in ("answered", "rejected"),
                                 actor=actor)
    return outbox


def reply(core: Core, session: Session, complaint: Complaint, text: str, *, actor: str,
          now: datetime | None = None, request_key: str | None = None) -> Outcome:
    """An officer's answer, sent to the citizen on their channel and recorded as an event.

    ``request_key`` (e.g. an idempotency key of the API call) makes a retried request send once.
    """
    now = now or core.clock.now()
    lang = core.templates.language(complaint.language)
    admin = core.config.administration_name(complaint.administration, lang)
    body = core.templates.render(lang, "reply", reference=refs.format_reference(complaint.reference),
                                 administration=admin, text=text)
    event = add_event(session, complaint, actor, "reply", at=now, note=text)
    key = f"reply-officer:{complaint.id}:{request_key or event.id}"
    outbox = notify_citizen(core, session, complaint, body, intent_key=key, template="reply", essential=True,
                            actor=actor)
    if outbox:
        event.data = {"outbox_id": outbox[0]}
        session.add(event)
    complaint.updated_at = now
    if complaint.acknowledged_at is None:
        complaint.acknowledged_at = now
    session.add(complaint)
    return Outcome(event, outbox)


def add_note(session: Session, complaint: Complaint, text: str, *, actor: str, now: datetime) -> Outcome:
    """An internal note: never sent to the citizen."""
    return Outcome(add_event(session, complaint, actor, "note", at=now, note=text))


def transfer(core: Core, session: Session, complaint: Complaint, *, actor: str, administration: str | None,
             reason: str, category: str | None = None, now: datetime | None = None,
             reset_clock: bool = False, notify: bool = True) -> Outcome:
    """Move a complaint to another administration (or back to triage when ``administration`` is None).

    The complaint keeps its reference; an event records who, why, from and to. The answer clock
    restarts only when ``reset_clock`` (the configured rule) says so. ``notify=False`` leaves
    telling the citizen to the caller (e.g. the chat dialogue, which answers in its own words).
    """
    now = now or core.clock.now()
    before = {"administration": complaint.administration, "category": complaint.category}
    if category is not None:
        if category not in core.config.categories:
            raise ValueError(f"unknown category {category!r}")
        complaint.category = category
        if administration is None:
            administration = core.config.administration_for(category, complaint.place)
    complaint.administration = administration
    complaint.transfer_count += 1
    complaint.updated_at = now
    if reset_clock and administration:
        complaint.ack_due_at, complaint.answer_due_at = due_dates(now, core.config.deadlines, complaint.kind,
                                                                  administration)
    from_status = complaint.status
    complaint.status = "assigned" if administration else "new"
    if administration:
        complaint.assigned_at = now
    session.add(complaint)
    event = add_event(session, complaint, actor, "transferred", at=now, note=reason, from_status=from_status,
                      to_status=complaint.status,
                      data={"from": before, "to": {"administration": administration, "category": complaint.category},
                            "reset_clock": reset_clock})
    outbox = []
    if administration and notify:
        outbox = notify_citizen(core, session, complaint, status_message(core, complaint, None),
                                intent_key=f"status:{complaint.id}:{event.id}", template="status_changed",
                                essential=False, actor=actor)
    return Outcome(event, outbox)
