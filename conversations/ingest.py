"""Ingest: persist an inbound message exactly once, then let the channel's dialogue act on it.

Everything (the message, the complaint it creates or continues, the replies in the outbox)
commits in one transaction, before the webhook is acknowledged. A provider retry of the same
message id finds the stored row and creates nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from conversations import identities
from conversations.messages import InboundMessage, mask_urn
from conversations.outbox import Queued, queue_message
from conversations.ratelimit import ReplyLimits, limit_reached, record_suppressed
from store import fast
from store.models import Complaint, Contact, Conversation, Identity, Message

if TYPE_CHECKING:
    from conversations.core import Core

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    message_id: int
    duplicate: bool = False
    complaint_id: int | None = None
    complaint_reference: str | None = None
    created_complaint: bool = False
    outbox_ids: tuple[int, ...] = ()
    action: str = ""


@dataclass
class DialogueContext:
    """What a dialogue handler gets: the stored message and who sent it, in an open transaction."""

    core: "Core"
    session: Session
    inbound: InboundMessage
    message: Message
    contact: Contact
    identity: Identity
    conversation: Conversation
    now: datetime
    language: str
    queued: list[Queued] = field(default_factory=list)
    complaint: Complaint | None = None
    created_complaint: bool = False
    action: str = ""
    # Defaults a channel's dialogue sets for every reply (e.g. the email subject and References).
    reply_subject: str | None = None
    reply_meta: dict[str, Any] = field(default_factory=dict)
    # A first message from a new identity (and so a new contact): it has no history to look up.
    new_identity: bool = False
    # The intents of this message's replies: the message is new, so no other transaction has them.
    intents: set[str] = field(default_factory=set)

    def reply(self, text: str, *, template: str | None = None, essential: bool = True, suffix: str = "",
              meta: dict[str, Any] | None = None, subject: str | None = None) -> Queued | None:
        """Queue an answer to this inbound message on the channel it came from (unless a limit on
        automatic replies is reached: then it is recorded as suppressed and not sent)."""
        limit = limit_reached(self.session, ReplyLimits.from_config(self.core.config), self.identity, self.now,
                              no_replies_yet=self.new_identity and not self.queued,
                              newest_message_id=max([self.message.id, *(q.message_id for q in self.queued)]))
        if limit is not None:
            record_suppressed(self.session, identity=self.identity, text=text, limit=limit, now=self.now,
                              language=self.language, complaint_id=self.complaint.id if self.complaint else None,
                              conversation_id=self.conversation.id, template=template)
            return None
        intent_key = f"reply:{self.message.id}{':' + suffix if suffix else ''}"
        if intent_key in self.intents:
            return None
        self.intents.add(intent_key)
        queued = queue_message(
            self.session, identity=self.identity, text=text, language=self.language, intent_key=intent_key,
            intent_is_new=True, complaint=self.complaint,
            conversation_id=self.conversation.id, template=template, essential=essential,
            service_address=self.inbound.service_address, thread_ref=self.inbound.thread_ref,
            subject=subject if subject is not None else self.reply_subject,
            meta={**self.reply_meta, **(meta or {})} or None,
        )
        if queued:
            self.queued.append(queued)
        return queued

    def say(self, key: str, *, essential: bool = True, suffix: str = "", **values: Any) -> Queued | None:
        return self.reply(self.core.templates.render(self.language, key, **values), template=key,
                          essential=essential, suffix=suffix)


Dialogue = Callable[[DialogueContext], None]


_messages = Message.__table__  # type: ignore[attr-defined]
_conversations = Conversation.__table__  # type: ignore[attr-defined]
_identities = Identity.__table__  # type: ignore[attr-defined]
_contacts = Contact.__table__  # type: ignore[attr-defined]
_LATEST_CONVERSATION = select(_conversations.c.id).where(
    _conversations.c.identity_id == bindparam("identity_id"), _conversations.c.channel == bindparam("channel"),
).order_by(_conversations.c.id.desc()).limit(1)
_SET_MESSAGE_COMPLAINT = update(_messages).where(_messages.c.id == bindparam("mid")).values(
    complaint_id=bindparam("cid"))
_SET_CONVERSATION_COMPLAINT = update(_conversations).where(_conversations.c.id == bindparam("vid")).values(
    complaint_id=bindparam("cid"))
# PostgreSQL runs both in one statement (a data-modifying WITH): one round trip fewer per message.
_SET_BOTH_COMPLAINT = _SET_CONVERSATION_COMPLAINT.add_cte(_SET_MESSAGE_COMPLAINT.cte("set_message"))


# What an inbound message needs first, in one round trip: the stored message with its provider
# id (a provider retry), else its sender's identity and contact (or NULLs: a new sender).
_FIRST_LOOK = select(
    _messages.c.id.label("existing_id"), _messages.c.complaint_id.label("existing_complaint_id"),
    *identities.IDENTITY_AND_CONTACT,
).select_from(
    select(literal(1).label("one")).subquery("one")
    .outerjoin(_messages, and_(_messages.c.channel == bindparam("channel"),
                               _messages.c.provider_message_id == bindparam("pid")))
    .outerjoin(_identities, _identities.c.urn == bindparam("urn"))
    .outerjoin(_contacts, _contacts.c.id == _identities.c.contact_id)
)


def _first_look(session: Session, inbound: InboundMessage) -> Mapping[str, Any]:
    """The :data:`_FIRST_LOOK` row for ``inbound``."""
    found = fast.query(session, _FIRST_LOOK, {"channel": inbound.channel, "pid": inbound.provider_message_id,
                                              "urn": inbound.sender}).mapping()
    assert found is not None  # outer joins from a one-row subquery: always one row
    return found


def _duplicate(first: Mapping[str, Any]) -> IngestResult | None:
    """A provider retry of a stored message: its result, nothing new written."""
    if first["existing_id"] is None:
        return None
    return IngestResult(message_id=int(first["existing_id"]), duplicate=True,
                        complaint_id=first["existing_complaint_id"])


def _message_values(inbound: InboundMessage, now: datetime) -> dict[str, Any]:
    """The stored inbound message's columns, but its conversation, contact and identity."""
    return dict(
        direction="in", channel=inbound.channel, provider_message_id=inbound.provider_message_id,
        urn=inbound.sender, service_address=inbound.service_address, kind=inbound.kind,
        text=inbound.text, subject=inbound.subject, thread_ref=inbound.thread_ref,
        attachments=[_attachment_json(a) for a in inbound.attachments], language=inbound.language,
        status="received", raw=dict(inbound.raw), created_at=now, received_at=inbound.received_at,
    )


def _conversation_values(inbound: InboundMessage, now: datetime) -> dict[str, Any]:
    """A new conversation's columns, but its contact and identity."""
    return dict(channel=inbound.channel, service_address=inbound.service_address, state={}, created_at=now,
                last_message_at=now)


def _stored_message(session: Session, contact: Contact, identity: Identity, inbound: InboundMessage,
                    now: datetime) -> tuple[Conversation, Message]:
    """The inbound message of a known sender, stored in their latest conversation on this channel,
    or in a new one written with it (one statement on PostgreSQL)."""
    values = {**_message_values(inbound, now), "contact_id": contact.id, "identity_id": identity.id}
    found = fast.query(session, _LATEST_CONVERSATION, {"identity_id": identity.id, "channel": inbound.channel}).scalar()
    if found is None:
        conversation, message = fast.new_chain(session, [
            (Conversation, {**_conversation_values(inbound, now), "contact_id": contact.id, "identity_id": identity.id},
             {}),
            (Message, values, {"conversation_id": 0})])
        return conversation, message  # type: ignore[return-value]
    conversation = session.get(Conversation, found)
    assert conversation is not None
    conversation.last_message_at = now
    return conversation, fast.new(session, Message, conversation_id=conversation.id, **values)


def _stored_with_new_sender(session: Session, inbound: InboundMessage, now: datetime, language: str | None
                            ) -> tuple[Contact, Identity, Conversation, Message]:
    """The inbound message of a sender never seen: their contact and identity, a conversation
    and the message, written together (one statement on PostgreSQL)."""
    contact, identity, conversation, message = fast.new_chain(session, [
        *identities.new_identity_rows(inbound.sender, language, inbound.sender_name),
        (Conversation, _conversation_values(inbound, now), {"contact_id": 0, "identity_id": 1}),
        (Message, _message_values(inbound, now), {"contact_id": 0, "identity_id": 1, "conversation_id": 2}),
    ])
    return contact, identity, conversation, message  # type: ignore[return-value]


def _ingest_one(core: "Core", session: Session, inbound: InboundMessage, dialogue: Dialogue,
                detected: str | None) -> IngestResult:
    """Store ``inbound`` and run ``dialogue`` on it in ``session``'s open transaction
    (``detected``: its language, from ``Core.prepare``)."""
    first = _first_look(session, inbound)
    duplicate = _duplicate(first)
    if duplicate is not None:
        return duplicate
    now = core.clock.now()
    new_identity = first["id"] is None
    if new_identity:
        contact, identity, conversation, message = _stored_with_new_sender(session, inbound, now, detected)
    else:
        contact, identity, _ = identities.resolved(session, first, inbound.sender)
        conversation, message = _stored_message(session, contact, identity, inbound, now)
    language = core.reply_language(contact, detected)
    ctx = DialogueContext(core, session, inbound, message, contact, identity, conversation, now, language,
                          new_identity=new_identity)
    dialogue(ctx)
    if ctx.complaint is not None:
        _link_complaint(session, message, conversation, ctx.complaint.id)  # type: ignore[arg-type]
    return IngestResult(
        message_id=message.id, complaint_id=ctx.complaint.id if ctx.complaint else None,  # type: ignore[arg-type]
        complaint_reference=ctx.complaint.reference if ctx.complaint else None,
        created_complaint=ctx.created_complaint, outbox_ids=tuple(q.outbox_id for q in ctx.queued),
        action=ctx.action,
    )


def _logged(inbound: InboundMessage, result: IngestResult) -> IngestResult:
    log.info("ingested %s message %s from %s: %s", inbound.channel, result.message_id,
             mask_urn(inbound.sender), result.action)
    return result


def ingest_sync(core: "Core", inbound: InboundMessage, dialogue: Dialogue) -> IngestResult:
    """Store ``inbound`` once and run ``dialogue`` on it, all in one transaction."""
    detected = core.prepare(inbound)
    for attempt in range(3):
        try:
            with core.db.session() as session:
                result = _ingest_one(core, session, inbound, dialogue, detected)
            return result if result.duplicate else _logged(inbound, result)
        except IntegrityError:
            # A concurrent delivery of the same message, or a race creating the same identity.
            with core.db.session() as session:
                duplicate = _duplicate(_first_look(session, inbound))
                if duplicate is not None:
                    return duplicate
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def ingest_batch_sync(core: "Core", batch: list[tuple[InboundMessage, Dialogue]]) -> list[IngestResult | BaseException]:
    """Group commit: ingest every message of ``batch`` in one transaction, in order.

    Under load the commit (and the session around it) is paid once per batch instead of once
    per message. Should any message fail, the whole transaction is rolled back and each
    message is ingested on its own, so one bad message costs the others nothing but time, and
    its error is returned in its place.
    """
    if len(batch) > 1:
        detected = [core.prepare(inbound) for inbound, _ in batch]
        try:
            with core.db.session() as session:
                results = [_ingest_one(core, session, inbound, dialogue, language)
                           for (inbound, dialogue), language in zip(batch, detected)]
        except Exception as exc:  # noqa: BLE001  (each message is retried alone below)
            # The error's text may quote message data: only its type at warning level.
            log.warning("a batch of %d messages was rolled back (%s); ingesting them one by one", len(batch),
                        type(exc).__name__)
            log.debug("batch rollback", exc_info=True)
        else:
            return [r if r.duplicate else _logged(inbound, r) for (inbound, _), r in zip(batch, results)]
    outcomes: list[IngestResult | BaseException] = []
    for inbound, dialogue in batch:
        try:
            outcomes.append(ingest_sync(core, inbound, dialogue))
        except Exception as exc:  # noqa: BLE001  (handed to that message's caller)
            outcomes.append(exc)
    return outcomes


def _link_complaint(session: Session, message: Message, conversation: Conversation, complaint_id: int) -> None:
    """Point the message and its conversation at the complaint (Core UPDATEs, no flush)."""
    session.flush()
    conn = session.connection()
    both = message.complaint_id != complaint_id and conversation.complaint_id != complaint_id
    if both and conn.dialect.name == "postgresql":
        conn.execute(_SET_BOTH_COMPLAINT, {"mid": message.id, "vid": conversation.id, "cid": complaint_id})
    else:
        if message.complaint_id != complaint_id:
            conn.execute(_SET_MESSAGE_COMPLAINT, {"mid": message.id, "cid": complaint_id})
        if conversation.complaint_id != complaint_id:
            conn.execute(_SET_CONVERSATION_COMPLAINT, {"vid": conversation.id, "cid": complaint_id})
    set_committed_value(message, "complaint_id", complaint_id)
    set_committed_value(conversation, "complaint_id", complaint_id)


def _attachment_json(att: Any) -> dict[str, Any]:
    return {k: v for k, v in {
        "content_type": att.content_type, "filename": att.filename, "url": att.url, "size": att.size,
        "provider_id": att.provider_id,
    }.items() if v is not None}
