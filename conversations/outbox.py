"""Queueing outbound messages: a message row plus an outbox row, in the caller's transaction.

``intent_key`` names the intent ("ack of inbound 42", "status change event 7"); queueing the
same intent twice queues nothing, so a retried request never sends twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session

from conversations.identities import CHANNEL_FOR_SCHEME, reachable_identities
from store import fast
from store.models import Complaint, ComplaintEvent, Contact, Identity, Message, Outbox
from store.types import utcnow

_outbox = Outbox.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]
_INTENT = select(_outbox.c.id).where(_outbox.c.intent_key == bindparam("key"))


# Channels whose messages thread on each other (email In-Reply-To/References): a message about a
# complaint that names no parent replies to the complaint's latest message on that channel.
THREADED_CHANNELS = frozenset({"email"})
MAX_REFERENCES = 20


def _complaint_thread(session: Session, complaint_id: int, channel: str) -> tuple[str | None, list[str]]:
    refs = session.execute(
        select(Message.thread_ref).where(Message.complaint_id == complaint_id, Message.channel == channel,
                                         Message.thread_ref.is_not(None))  # type: ignore[union-attr]
        .order_by(Message.id.desc()).limit(MAX_REFERENCES)  # type: ignore[union-attr]
    ).scalars().all()
    chain: list[str] = []
    for ref in reversed(refs):
        if ref and ref not in chain:
            chain.append(ref)
    return (refs[0] if refs else None), chain


@dataclass(frozen=True)
class Queued:
    message_id: int
    outbox_id: int


def queue_message(
    session: Session,
    *,
    identity: Identity,
    text: str,
    intent_key: str,
    language: str | None = None,
    complaint: Complaint | None = None,
    conversation_id: int | None = None,
    template: str | None = None,
    essential: bool = True,
    subject: str | None = None,
    thread_ref: str | None = None,
    service_address: str | None = None,
    meta: dict[str, Any] | None = None,
    actor: str = "system",
    fallback: bool = True,
    intent_is_new: bool = False,
) -> Queued | None:
    """Queue ``text`` to ``identity`` (or, if it is unreachable, another identity of the contact).

    Returns None when nothing is queued: the intent was already queued, the contact opted out
    and the message is not essential, or no identity can be reached. ``intent_is_new``: the
    caller knows no outbox row can have ``intent_key`` yet (it names a row of this transaction),
    so it is not looked up; the unique index still stands behind it.
    """
    if not intent_is_new and fast.query(session, _INTENT, {"key": intent_key}):
        return None
    contact = session.get(Contact, identity.contact_id)
    if contact is not None and contact.opted_out and not essential:
        return None
    target = identity
    if target.unreachable or target.scheme not in CHANNEL_FOR_SCHEME:
        if not fallback:
            return None
        candidates = reachable_identities(session, identity.contact_id)
        if not candidates:
            return None
        target = candidates[0]
        if complaint is not None:
            session.add(ComplaintEvent(complaint_id=complaint.id, actor=actor, type="channel_fallback",  # type: ignore[arg-type]
                                       data={"from": identity.scheme, "to": target.scheme,
                                             "intent": intent_key}))
    channel = CHANNEL_FOR_SCHEME[target.scheme]
    if thread_ref is None and complaint is not None and complaint.id is not None and channel in THREADED_CHANNELS:
        thread_ref, chain = _complaint_thread(session, complaint.id, channel)
        if chain and not (meta or {}).get("references"):
            meta = {**(meta or {}), "references": chain}
    now = utcnow()
    # Core INSERTs (the rows the ORM would write, defaults spelled out), one statement on
    # PostgreSQL: callers get ids only.
    session.flush()
    message_id, outbox_id = fast.insert_chain(session, [(_messages, dict(
        direction="out", channel=channel, provider_message_id=None, conversation_id=conversation_id,
        contact_id=target.contact_id, identity_id=target.id, complaint_id=complaint.id if complaint else None,
        urn=target.urn, service_address=service_address, kind="text", text=text, subject=subject, attachments=[],
        thread_ref=thread_ref, language=language, status="queued", error_code=None, error_message=None,
        template=template, raw={"meta": meta or {}, "essential": essential}, created_at=now, received_at=None,
        sent_at=None, delivered_at=None, edited_at=None,
    ), {}), (_outbox, dict(
        channel=channel, intent_key=intent_key, status="pending", attempts=0,
        next_attempt_at=now, locked_until=None, locked_by=None, enqueued_at=None, last_error=None,
        created_at=now, updated_at=now,
    ), {"message_id": 0})])
    return Queued(message_id, outbox_id)
