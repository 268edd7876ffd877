"""The email dialogue: threads that hold, and no answers to machines.

A reply finds its complaint by In-Reply-To/References (against the Message-IDs we sent and
received), then by the reference in the subject (``[Réf 4821-3307-5]``), then by a plus-address
token (``complaints+482133075@…``) — each only when the complaint belongs to the sender; a
reply to someone else's thread opens its own complaint. New mail creates a complaint.
Auto-replies and bounces create nothing and get no answer; a bounce marks the message it
returns as failed. Mail from our own address is never answered, and a per-sender hourly limit
stops mail storms (the excess is stored, not answered).
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from conversations import clocks, satisfaction
from conversations import reference as refs
from conversations.complaints import add_event
from conversations.dialogue import follow_up, new_complaint
from conversations.ingest import DialogueContext
from conversations.messages import mask_urn, urn_path
from conversations.outbox import queue_message
from store.files import save_file
from store.models import Complaint, Identity, Message

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_PER_HOUR = 10
_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|tr|aw|wg|رد|إعادة توجيه|توجيه)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_REF_TAG = re.compile(r"\s*\[[^\[\]]{0,40}?\d{4}[\s\-./]?\d{4}[\s\-./]?\d\]\s*")


def clean_subject(subject: str | None) -> str:
    """The subject without Re:/Fwd:/TR: prefixes and without our ``[Réf …]`` tag."""
    return _REF_TAG.sub(" ", _PREFIX.sub("", subject or "")).strip()


def complaint_text(subject: str | None, body: str) -> str:
    """What the complaint says: the subject (when it adds something) and the body."""
    topic = clean_subject(subject)
    body = body.strip()
    if not topic:
        return body
    if not body:
        return topic
    if body.casefold().startswith(topic.casefold()):
        return body
    return f"{topic}\n\n{body}"


def _options(ctx: DialogueContext) -> dict[str, Any]:
    return dict(ctx.core.config.channel_options("email"))


def _prepare_replies(ctx: DialogueContext) -> None:
    """Every answer threads under the citizen's message, with "Re: <their subject>"."""
    topic = _PREFIX.sub("", ctx.inbound.subject or "").strip()
    ctx.reply_subject = f"Re: {topic}" if topic else None
    chain = list(reversed(ctx.inbound.references))  # oldest first, as References is written
    ctx.reply_meta = {"references": chain} if chain else {}


def _own(ctx: DialogueContext, complaint: Complaint | None) -> Complaint | None:
    if complaint is not None and complaint.contact_id == ctx.contact.id:
        return complaint
    if complaint is not None:
        log.info("email from %s refers to a complaint of another contact: not attached",
                 mask_urn(ctx.inbound.sender))
    return None


def _by_references(ctx: DialogueContext) -> Complaint | None:
    chain = [r for r in ctx.inbound.references if r]
    if not chain:
        return None
    rows = ctx.session.exec(
        select(Message.provider_message_id, Message.thread_ref, Message.complaint_id)
        .where(Message.channel == "email", Message.complaint_id.is_not(None),  # type: ignore[union-attr]
               (Message.provider_message_id.in_(chain)) | (Message.thread_ref.in_(chain)))  # type: ignore[union-attr]
    ).all()
    rank = {ref: i for i, ref in enumerate(chain)}
    best: tuple[int, int] | None = None
    for provider_id, thread_ref, complaint_id in rows:
        position = min(rank.get(provider_id or "", 10**6), rank.get(thread_ref or "", 10**6))
        if best is None or position < best[0]:
            best = (position, complaint_id)
    if best is None:
        return None
    return _own(ctx, ctx.session.get(Complaint, best[1]))


def _by_reference_digits(ctx: DialogueContext, candidates: list[str]) -> Complaint | None:
    for candidate in candidates:
        digits = refs.parse(candidate)
        if digits is None:
            continue
        complaint = ctx.session.exec(select(Complaint).where(Complaint.reference == digits)).first()
        found = _own(ctx, complaint)
        if found is not None:
            return found
    return None


def find_thread(ctx: DialogueContext) -> tuple[Complaint | None, str]:
    """The complaint this email continues, and how it was found."""
    complaint = _by_references(ctx)
    if complaint is not None:
        return complaint, "references"
    subject = ctx.inbound.subject or ""
    complaint = _by_reference_digits(ctx, [m.group(1) for m in refs.REFERENCE_PATTERN.finditer(subject)])
    if complaint is not None:
        return complaint, "subject"
    token = ctx.inbound.meta.get("plus_token")
    if token and _options(ctx).get("plus_addressing"):
        complaint = _by_reference_digits(ctx, [str(token)])
        if complaint is not None:
            return complaint, "plus_address"
    return None, ""


def _is_own_address(ctx: DialogueContext) -> bool:
    sender = urn_path(ctx.inbound.sender).lower()
    ours = {a.lower() for a in (ctx.core.settings.email_address, ctx.inbound.service_address) if a}
    for address in ours:
        local, _, domain = address.partition("@")
        s_local, _, s_domain = sender.partition("@")
        if sender == address or (s_domain == domain and s_local.split("+", 1)[0] == local):
            return True
    return False


def _rate_limited(ctx: DialogueContext) -> bool:
    limit = int(_options(ctx).get("rate_limit_per_hour", DEFAULT_RATE_LIMIT_PER_HOUR))
    if limit <= 0:
        return False
    since = ctx.now - timedelta(hours=1)
    recent = ctx.session.exec(
        select(func.count()).select_from(Message).where(
            Message.identity_id == ctx.identity.id, Message.direction == "in", Message.channel == "email",
            Message.created_at >= since, Message.id != ctx.message.id)
    ).one()
    return int(recent) >= limit


def _bounce(ctx: DialogueContext, info: dict[str, Any]) -> None:
    """Mark the returned outbound message failed; a permanent failure makes the address unreachable."""
    ctx.action = "bounce"
    original = info.get("original_message_id")
    if not original:
        log.info("bounce without the original Message-ID: stored only")
        return
    message = ctx.session.exec(select(Message).where(Message.channel == "email", Message.direction == "out",
                                                     Message.provider_message_id == original)).first()
    if message is None:
        log.info("bounce for a message we do not know: stored only")
        return
    code = str(info.get("status") or "bounce")[:64]
    reason = f"bounced: {info.get('diagnostic') or info.get('action') or 'delivery failed'}"
    if message.status != "failed":
        message.status, message.error_code, message.error_message = "failed", code, reason
        ctx.session.add(message)
        complaint = ctx.session.get(Complaint, message.complaint_id) if message.complaint_id else None
        if complaint is not None:
            add_event(ctx.session, complaint, "delivery", "delivery_failed", at=ctx.now,
                      data={"message_id": message.id, "channel": "email", "code": code, "reason": reason,
                            "bounce_message_id": ctx.message.id})
        identity = ctx.session.get(Identity, message.identity_id) if message.identity_id else None
        if identity is not None and info.get("permanent"):
            identity.unreachable, identity.unreachable_reason = True, reason[:500]
            ctx.session.add(identity)
            ctx.session.flush()
            # The citizen may have another way to be reached (their phone): tell them there.
            again = queue_message(ctx.session, identity=identity, text=message.text, language=message.language,
                                  intent_key=f"fallback:bounce:{message.id}", complaint=complaint,
                                  template=message.template, subject=message.subject,
                                  essential=bool((message.raw or {}).get("essential", True)))
            if again:
                ctx.queued.append(again)


def _store_files(ctx: DialogueContext) -> None:
    """The original .eml and every attachment, on disk, linked to the message (and complaint)."""
    data_dir = ctx.core.settings.data_dir
    complaint_id = ctx.complaint.id if ctx.complaint is not None else None
    eml = ctx.inbound.meta.get("eml")
    raw = dict(ctx.message.raw or {})
    if isinstance(eml, (bytes, bytearray)) and eml:
        row = save_file(ctx.session, data_dir, bytes(eml), content_type="message/rfc822", filename="message.eml",
                        message_id=ctx.message.id, complaint_id=complaint_id)
        raw["eml_file_id"] = row.id
    stored = [dict(a) for a in (ctx.message.attachments or [])]
    for i, attachment in enumerate(ctx.inbound.attachments):
        if attachment.content and i < len(stored):
            row = save_file(ctx.session, data_dir, attachment.content, content_type=attachment.content_type,
                            filename=attachment.filename, message_id=ctx.message.id, complaint_id=complaint_id)
            stored[i]["file_id"] = row.id
    ctx.message.attachments = stored
    ctx.message.raw = raw
    ctx.session.add(ctx.message)


def _oversize_notice(ctx: DialogueContext) -> None:
    dropped = ctx.inbound.meta.get("oversize") or []
    if not dropped:
        return
    limit = int(ctx.inbound.meta.get("max_attachment_bytes") or 0)
    names = ", ".join(str(d.get("filename") or d.get("content_type") or "?") for d in dropped)
    ctx.say("email.too_large", suffix="oversize", files=names, limit_mb=max(round(limit / 1_048_576), 1))


def email_dialogue(ctx: DialogueContext) -> None:
    """The email channel's dialogue (issue 4)."""
    meta = ctx.inbound.meta
    _prepare_replies(ctx)
    try:
        if meta.get("bounce"):
            _bounce(ctx, dict(meta["bounce"]))
            return
        if meta.get("auto_reply"):
            ctx.action = "auto_reply"
            return
        if _is_own_address(ctx):
            ctx.action = "own_address"
            return
        if _rate_limited(ctx):
            ctx.action = "rate_limited"
            log.info("email from %s over the hourly limit: stored, not answered", mask_urn(ctx.inbound.sender))
            return
        if satisfaction.rating_reply(ctx):
            return
        complaint, how = find_thread(ctx)
        if complaint is not None and clocks.reopen_complaint(ctx, complaint):
            return
        if complaint is not None:
            follow_up(ctx, complaint)
            ctx.action = f"follow_up:{how}"
            _oversize_notice(ctx)
            return
        text = complaint_text(ctx.inbound.subject, ctx.inbound.text)
        if not text and not ctx.inbound.attachments:
            ctx.action = "empty"
            ctx.say("empty")
            return
        files = ", ".join(a.filename or a.content_type for a in ctx.inbound.attachments)
        new_complaint(ctx, text or f"[{files}]")
        _oversize_notice(ctx)
    finally:
        _store_files(ctx)
