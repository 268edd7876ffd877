"""One citizen's personal data: export it, and erase it while keeping the statistics.

Erasure anonymises the citizen's complaints: category, administration, place, kind, channel,
dates, statuses and clocks stay (the performance reports keep counting them); the text, the
coordinates, free-text notes and reasons, message bodies, addresses (URNs), names and attachments
are removed. The citizen's identities and conversations are deleted and the contact is kept as
a tombstone (``anonymised_at``), so a new message from the same number or address starts afresh
and is not linked to the erased history. Provider message ids stay (a provider retry after the
erasure must still be recognised as a duplicate); they hold no personal data themselves.

Other areas that keep personal data in their own tables register an eraser in ``ERASERS``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, select

from conversations.complaints import add_event
from conversations.messages import mask_urn
from store.models import Complaint, ComplaintEvent, Contact, Conversation, Identity, KeyValue, Message, Outbox, StoredFile

log = logging.getLogger(__name__)

ERASED = "[erased]"
# Event data keys that never hold personal data (ids, codes, channels, administrations, statuses).
_SAFE_EVENT_KEYS = frozenset({"message_id", "channel", "code", "from", "to", "status", "category", "administration",
                              "place", "intent", "confidence", "kind", "rating", "duplicate_of", "attempts"})


@dataclass
class Erasure:
    """What one erasure changed, by kind of row."""

    contact_id: int
    complaints: int = 0
    messages: int = 0
    identities: int = 0
    conversations: int = 0
    files: int = 0
    outbox_cancelled: int = 0
    other: dict[str, int] = field(default_factory=dict)
    orphan_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "complaints": self.complaints, "messages": self.messages,
                "identities": self.identities, "conversations": self.conversations, "files": self.files,
                "outbox_cancelled": self.outbox_cancelled, **self.other}


# (session, contact, its identities, the erasure so far) -> rows changed; registered by other areas.
Eraser = Callable[[Session, Contact, list[Identity], Erasure], int]
ERASERS: dict[str, Eraser] = {}


def find_contact(session: Session, urn: str) -> tuple[Contact, list[Identity]] | None:
    identity = session.exec(select(Identity).where(Identity.urn == urn)).first()
    if identity is None:
        return None
    contact = session.get(Contact, identity.contact_id)
    if contact is None:
        return None
    identities = list(session.exec(select(Identity).where(Identity.contact_id == contact.id).order_by(Identity.id)))
    return contact, identities


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _row(obj: Any, *skip: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.model_dump().items():
        if key in skip:
            continue
        out[key] = _iso(value) if isinstance(value, datetime) else value
    return out


def export_citizen(session: Session, urn: str) -> dict[str, Any] | None:
    """Everything stored about the person behind ``urn`` (their contact and all its identities)."""
    found = find_contact(session, urn)
    if found is None:
        return None
    contact, identities = found
    complaints = list(session.exec(select(Complaint).where(Complaint.contact_id == contact.id).order_by(Complaint.id)))
    complaint_ids = [c.id for c in complaints]
    messages = list(session.exec(select(Message).where(or_(
        Message.contact_id == contact.id, Message.complaint_id.in_(complaint_ids or [-1])))  # type: ignore[union-attr]
        .order_by(Message.id)))
    message_ids = [m.id for m in messages]
    events = list(session.exec(select(ComplaintEvent).where(
        ComplaintEvent.complaint_id.in_(complaint_ids or [-1])).order_by(ComplaintEvent.id)))  # type: ignore[attr-defined]
    files = list(session.exec(select(StoredFile).where(or_(
        StoredFile.message_id.in_(message_ids or [-1]), StoredFile.complaint_id.in_(complaint_ids or [-1])))  # type: ignore[union-attr]
        .order_by(StoredFile.id)))
    conversations = list(session.exec(select(Conversation).where(Conversation.contact_id == contact.id)))
    return {
        "contact": _row(contact),
        "identities": [_row(i) for i in identities],
        "conversations": [_row(c) for c in conversations],
        "complaints": [{**_row(c), "events": [_row(e) for e in events if e.complaint_id == c.id]}
                       for c in complaints],
        "messages": [_row(m, "raw") for m in messages],
        "files": [_row(f, "storage_path") for f in files],
    }


def _scrub_event_data(data: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (data or {}).items()
            if k in _SAFE_EVENT_KEYS and (v is None or isinstance(v, (int, float, bool))
                                          or (isinstance(v, str) and len(v) <= 64 and "@" not in v
                                              and not any(ch.isdigit() for ch in v.replace("_", ""))))}


def erase_citizen(session: Session, urn: str, *, now: datetime, actor: str) -> Erasure | None:
    """Anonymise everything about the person behind ``urn`` in the caller's transaction.

    Returns what changed, or None when the URN is unknown. Files no longer referenced are
    listed in ``orphan_files`` (paths relative to the data directory) for the caller to delete
    after the commit.
    """
    found = find_contact(session, urn)
    if found is None:
        return None
    contact, identities = found
    erasure = Erasure(contact_id=contact.id)  # type: ignore[arg-type]
    identity_ids = [i.id for i in identities]
    complaints = list(session.exec(select(Complaint).where(or_(
        Complaint.contact_id == contact.id, Complaint.identity_id.in_(identity_ids or [-1])))))  # type: ignore[union-attr]
    complaint_ids = [c.id for c in complaints]
    for complaint in complaints:
        complaint.text = ERASED
        complaint.latitude = complaint.longitude = None
        complaint.rejected_reason = ERASED if complaint.rejected_reason else None
        complaint.routing_reasons = []
        complaint.contact_id = complaint.identity_id = complaint.conversation_id = None
        complaint.anonymous = True
        complaint.extra = {"erased_at": now.isoformat()}
        complaint.updated_at = now
        session.add(complaint)
    for event in session.exec(select(ComplaintEvent).where(
            ComplaintEvent.complaint_id.in_(complaint_ids or [-1]))):  # type: ignore[attr-defined]
        event.note = ERASED if event.note else None
        event.data = _scrub_event_data(event.data)
        session.add(event)
    erasure.complaints = len(complaints)

    messages = list(session.exec(select(Message).where(or_(
        Message.contact_id == contact.id, Message.identity_id.in_(identity_ids or [-1]),  # type: ignore[union-attr]
        Message.complaint_id.in_(complaint_ids or [-1])))))  # type: ignore[union-attr]
    message_ids = [m.id for m in messages]
    for message in messages:
        message.text = ""
        message.subject = None
        message.urn = "erased:"
        message.attachments = []
        message.raw = {}
        message.thread_ref = None
        message.error_message = None
        message.contact_id = message.identity_id = message.conversation_id = None
        session.add(message)
    erasure.messages = len(messages)
    erasure.outbox_cancelled = session.execute(  # type: ignore[attr-defined]
        update(Outbox).where(Outbox.message_id.in_(message_ids or [-1]),  # type: ignore[attr-defined]
                             Outbox.status.in_(("pending", "sending")))  # type: ignore[attr-defined]
        .values(status="cancelled", last_error="the citizen's data was erased", updated_at=now)).rowcount

    files = list(session.exec(select(StoredFile).where(or_(
        StoredFile.message_id.in_(message_ids or [-1]), StoredFile.complaint_id.in_(complaint_ids or [-1])))))  # type: ignore[union-attr]
    for stored in files:
        session.delete(stored)
    session.flush()
    for stored in files:
        still_used = session.exec(select(StoredFile.id).where(StoredFile.storage_path == stored.storage_path)).first()
        if still_used is None:
            erasure.orphan_files.append(stored.storage_path)
    erasure.files = len(files)

    for name, eraser in ERASERS.items():
        erasure.other[name] = eraser(session, contact, identities, erasure)
    paths = [i.urn.split(":", 1)[-1] for i in identities]
    for kv in session.exec(select(KeyValue)):
        if any(path and path in kv.key for path in paths):
            session.delete(kv)
    for conversation in session.exec(select(Conversation).where(Conversation.contact_id == contact.id)):
        session.delete(conversation)
        erasure.conversations += 1
    session.flush()
    for identity in identities:
        session.delete(identity)
    erasure.identities = len(identities)
    contact.display_name = contact.language = None
    contact.opted_out, contact.opted_out_at = False, None
    contact.anonymised_at = now
    session.add(contact)
    for complaint in complaints:
        add_event(session, complaint, actor, "erased", at=now, data={"messages": len(messages)})
    session.flush()
    log.info("erased the personal data of contact %s (%s, %d complaints)", contact.id, mask_urn(urn),
             len(complaints))
    return erasure


def delete_orphan_files(data_dir: Path, paths: list[str]) -> int:
    """Remove erased attachments' bytes (after the erasure committed)."""
    removed = 0
    root = data_dir.resolve()
    for relative in paths:
        path = (root / relative).resolve()
        if root in path.parents and path.is_file():
            path.unlink()
            removed += 1
    return removed
