"""Complaints: creation with a fresh reference and legal clocks, status changes, the audit trail."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, select

from config.loader import GatewayConfig
from conversations import reference as refs
from conversations import text_features
from conversations.deadlines import due_dates
from store import fast
from store.models import Complaint, ComplaintEvent

_events = ComplaintEvent.__table__  # type: ignore[attr-defined]

KINDS = ("complaint", "observation", "suggestion")
STATUSES = ("new", "assigned", "in_progress", "answered", "closed", "rejected")
OPEN_STATUSES = ("new", "assigned", "in_progress")
# Allowed moves; answered/closed/rejected -> in_progress or assigned is a reopen.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"assigned", "in_progress", "rejected", "answered"}),
    "assigned": frozenset({"new", "assigned", "in_progress", "answered", "rejected"}),
    "in_progress": frozenset({"new", "assigned", "answered", "rejected"}),
    "answered": frozenset({"closed", "in_progress", "assigned"}),
    "closed": frozenset({"in_progress", "assigned"}),
    "rejected": frozenset({"new", "assigned", "in_progress"}),
}
REOPEN_FROM = frozenset({"answered", "closed", "rejected"})


@event.listens_for(Complaint.text, "set")
def _features_follow_the_text(complaint: Complaint, text: str | None, _old: Any, _initiator: Any) -> None:
    """A complaint's stored features always describe its text (and keep nothing of an erased one)."""
    complaint.text_features = text_features.encode(text or "")


class TransitionError(ValueError):
    """A status change the workflow does not allow."""


def add_event(session: Session, complaint: Complaint, actor: str, type_: str, *, at: datetime,
              note: str | None = None, from_status: str | None = None, to_status: str | None = None,
              data: dict[str, Any] | None = None) -> ComplaintEvent:
    return fast.new(session, ComplaintEvent, complaint_id=complaint.id, actor=actor, type=type_, at=at, note=note,
                    from_status=from_status, to_status=to_status, data=data or {})


def _event_row(actor: str, type_: str, *, at: datetime, from_status: str | None = None,
               to_status: str | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event row for callers that need no ORM object back (Core INSERT; the complaint's id is
    added by the insert)."""
    return dict(at=at, actor=actor, type=type_, from_status=from_status, to_status=to_status, note=None,
                data=data or {})


def create_complaint(
    session: Session,
    config: GatewayConfig,
    *,
    now: datetime,
    text: str,
    channel: str,
    actor: str,
    contact_id: int | None,
    identity_id: int | None,
    conversation_id: int | None = None,
    kind: str = "complaint",
    category: str | None = None,
    administration: str | None = None,
    place: str | None = None,
    language: str | None = None,
    confidence: float | None = None,
    reasons: tuple[str, ...] | list[str] = (),
    created_by: str | None = None,
    consent_sms: bool = True,
    anonymous: bool = False,
    extra: dict[str, Any] | None = None,
    opened_by: tuple[Any, ...] = (),
) -> Complaint:
    """A new complaint, with its clocks and its first events (created; routed if routed;
    probable_duplicate, with ``probable_duplicate_of_id`` set, if it resembles an open one).

    ``opened_by``: rows that get the complaint's id in their ``complaint_id`` in the same
    statement (the message that opened it and its conversation).
    """
    from conversations.duplicates import probable_duplicate, probable_duplicate_event  # duplicates imports this module

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    ack_due, answer_due = due_dates(now, config.deadlines, kind, administration)
    status = "assigned" if administration else "new"
    features = text_features.encoded(text)
    events = [_event_row(actor, "created", at=now, to_status="new", data={"channel": channel, "kind": kind})]
    if administration:
        events.append(_event_row(actor if created_by else "router", "routed", at=now,
                                 from_status="new", to_status="assigned",
                                 data={"category": category, "administration": administration, "place": place,
                                       "confidence": confidence, "reasons": list(reasons)}))
    # Looked for before the complaint is written, so it is written flagged, with its event:
    # no second write of a row just inserted.
    duplicate = probable_duplicate(session, config, category=category, place=place, text=text, features=features,
                                   now=now)
    if duplicate is not None:
        events.append(_event_row("system", "probable_duplicate", at=now, data=probable_duplicate_event(duplicate)))
    for _ in range(20):
        # A random reference, written with the first events unless another complaint has it
        # (then the next draw).
        complaint = fast.new_with_children_unless_taken(
            session, Complaint, ("reference",), dict(
                reference=refs.generate(), kind=kind, text=text, category=category, administration=administration,
                place=place, status=status, language=language, channel=channel, contact_id=contact_id,
                identity_id=identity_id, conversation_id=conversation_id, created_by=created_by,
                consent_sms=consent_sms, anonymous=anonymous, routing_confidence=confidence,
                routing_reasons=list(reasons), received_at=now, updated_at=now, ack_due_at=ack_due,
                answer_due_at=answer_due, assigned_at=now if administration else None, extra=extra or {},
                text_features=features, probable_duplicate_of_id=duplicate.id if duplicate else None),
            _events, events, link="complaint_id", pointing=opened_by)
        if complaint is not None:
            break
    else:
        raise RuntimeError("could not draw a free complaint reference")
    return complaint


def change_status(session: Session, complaint: Complaint, to_status: str, *, actor: str, now: datetime,
                  note: str | None = None, reason: str | None = None) -> ComplaintEvent | None:
    """Move ``complaint`` to ``to_status``; None when it already is there (nothing happens)."""
    if to_status not in STATUSES:
        raise TransitionError(f"unknown status {to_status!r}; one of {', '.join(STATUSES)}")
    from_status = complaint.status
    if to_status == from_status:
        return None
    if to_status not in TRANSITIONS[from_status]:
        raise TransitionError(f"a complaint cannot go from {from_status} to {to_status}")
    if to_status == "rejected" and not (reason or note):
        raise TransitionError("a rejection needs a reason")
    if to_status in ("assigned", "in_progress") and not complaint.administration:
        raise TransitionError("assign the complaint to an administration first")
    reopened = from_status in REOPEN_FROM and to_status in OPEN_STATUSES  # answered -> closed is no reopen
    complaint.status = to_status
    complaint.updated_at = now
    if to_status == "assigned" and complaint.assigned_at is None:
        complaint.assigned_at = now
    if to_status == "in_progress" and complaint.acknowledged_at is None:
        complaint.acknowledged_at = now
        complaint.assigned_at = complaint.assigned_at or now
    if to_status == "answered":
        complaint.answered_at = now
        complaint.acknowledged_at = complaint.acknowledged_at or now
    if to_status == "closed":
        complaint.closed_at = now
    if to_status == "rejected":
        complaint.rejected_reason = reason or note
        complaint.closed_at = now
    if reopened:
        complaint.reopened_count += 1
        complaint.closed_at = None
        complaint.answered_at = None if to_status != "answered" else complaint.answered_at
    session.add(complaint)
    return add_event(session, complaint, actor, "reopened" if reopened else "status_changed", at=now,
                     from_status=from_status, to_status=to_status, note=note,
                     data={"reason": reason} if reason else {})


def find_by_reference(session: Session, reference: str) -> Complaint | None:
    digits = refs.parse(reference)
    if digits is None:
        return None
    return session.exec(select(Complaint).where(Complaint.reference == digits)).first()
