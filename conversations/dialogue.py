"""The text dialogue (SMS, and the basis of other text channels).

SMS is costly, so there is no questionnaire: a first message describing a problem creates a
complaint at once; keywords in Arabic, French and English give status, opt-out and opt-in.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, or_
from sqlalchemy import select as core_select
from sqlmodel import select

from conversations import clocks, satisfaction
from conversations import reference as refs
from conversations.complaints import OPEN_STATUSES, add_event, create_complaint
from conversations.ingest import DialogueContext
from conversations.messages import InboundMessage
from store import fast
from store.models import Complaint, Message

if TYPE_CHECKING:
    from conversations.core import Core

_complaints = Complaint.__table__  # type: ignore[attr-defined]
_LATEST_OPEN = core_select(_complaints.c.id).where(
    _complaints.c.contact_id == bindparam("contact_id"),
    or_(*(_complaints.c.status == status for status in OPEN_STATUSES)),  # no expanding IN: compiled once
).order_by(_complaints.c.received_at.desc()).limit(1)

STOP_WORDS = frozenset({"stop", "arret", "arrêt", "توقف", "قف", "unsubscribe", "stopall", "desabonner", "désabonner"})
START_WORDS = frozenset({"start", "unstop", "demarrer", "démarrer", "ابدا", "ابدأ", "بدء", "تشغيل"})
NEW_WORDS = ("new", "nouveau", "nouvelle", "جديد", "جديدة")
# Status keywords, and the language they are written in (used when we know no better).
STATUS_WORDS = {"status": "en", "statut": "fr", "etat": "fr", "état": "fr", "suivi": "fr", "حالة": "ar",
                "الحالة": "ar", "7ala": "ar", "hala": "ar"}
_WORD = re.compile(r"^\s*([^\s:,.!?؟-]+)[\s:,.!?؟-]*(.*)$", re.S)


def _first_word(text: str) -> tuple[str, str]:
    match = _WORD.match(text)
    if not match:
        return "", text
    return match.group(1).casefold(), match.group(2)


# A character for which str.isalnum() is true (re's \w is exactly that, plus "_").
_ALNUM = re.compile(r"[^\W_]")
# U+FFFD, or a control (Cc, but not \n \r \t), surrogate (Cs) or private-use (Co) character; these
# three general categories are fixed sets by Unicode's stability policy.
_JUNK = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff"
                   r"\U000f0000-\U000ffffd\U00100000-\U0010fffd]")


def _is_unreadable(text: str) -> bool:
    """No letter or digit at all, or mostly replacement/control characters: binary-only content."""
    if not text:
        return False
    if _ALNUM.search(text) is None:
        return True
    return len(_JUNK.findall(text)) > len(text) / 3


def status_text(ctx: DialogueContext, complaint: Complaint) -> str:
    core, lang = ctx.core, ctx.language
    admin = core.config.administration_name(complaint.administration, lang)
    status = core.templates.render(lang, f"status.{complaint.status}", administration=admin)
    if complaint.status == "rejected" and complaint.rejected_reason:
        detail = core.templates.render(lang, "rejected_detail", reason=complaint.rejected_reason)
    elif complaint.status in OPEN_STATUSES and complaint.answer_due_at:
        detail = core.templates.render(lang, "due_detail", answer_due=core.format_date(complaint.answer_due_at, lang))
    else:
        detail = ""
    return core.templates.render(lang, "status_reply", reference=refs.format_reference(complaint.reference),
                                 status=status, detail=detail)


def answer_status(ctx: DialogueContext, candidate: str) -> None:
    """Reply with the status of ``candidate`` if it is a valid reference of this contact's."""
    ctx.action = "status"
    digits = refs.clean(candidate)
    if not (len(digits) == refs.LENGTH and refs.is_valid(digits)):
        ctx.say("ref_invalid")
        return
    complaint = ctx.session.exec(select(Complaint).where(Complaint.reference == digits)).first()
    if complaint is None or complaint.contact_id != ctx.contact.id:
        ctx.say("ref_not_found")
        return
    ctx.reply(status_text(ctx, complaint), template="status_reply")


def _latest_open(ctx: DialogueContext) -> Complaint | None:
    # The id with a Core query (most first messages find none), the object only when there is one.
    if ctx.new_identity:
        return None
    found = fast.query(ctx.session, _LATEST_OPEN, {"contact_id": ctx.contact.id}).scalar()
    return ctx.session.get(Complaint, found) if found is not None else None


def new_complaint(ctx: DialogueContext, text: str, *, kind: str = "complaint",
                  category_hint: str | None = None) -> Complaint:
    """Route ``text`` and create the complaint with its acknowledgement in the outbox."""
    complaint = open_complaint(ctx, text, kind=kind, category_hint=category_hint)
    acknowledge(ctx, complaint)
    return complaint


def open_complaint(ctx: DialogueContext, text: str, *, kind: str = "complaint",
                   category_hint: str | None = None) -> Complaint:
    """Route ``text`` and create the complaint (no acknowledgement: the caller sends its own)."""
    core = ctx.core
    routed = core.router.route(text, channel=ctx.inbound.channel, category_hint=category_hint)
    complaint = create_complaint(
        ctx.session, core.config, now=ctx.now, text=text, channel=ctx.inbound.channel, actor="citizen",
        contact_id=ctx.contact.id, identity_id=ctx.identity.id, conversation_id=ctx.conversation.id, kind=kind,
        category=routed.category, administration=routed.administration, place=routed.place,
        language=ctx.language, confidence=routed.confidence, reasons=routed.reasons,
        opened_by=(ctx.message, ctx.conversation),
    )
    ctx.complaint = complaint
    ctx.created_complaint = True
    ctx.action = "new_complaint"
    return complaint


def acknowledgement(core: "Core", complaint: Complaint, lang: str) -> tuple[str, str]:
    """(template key, text) of the acknowledgement giving the citizen their reference."""
    values = {
        "reference": refs.format_reference(complaint.reference),
        "kind": core.templates.render(lang, f"kind.{complaint.kind}"),
        "administration": core.config.administration_name(complaint.administration, lang),
        "answer_due": core.format_date(complaint.answer_due_at, lang) if complaint.answer_due_at else "",
        "ack_days": core.config.deadlines.acknowledge_days,
    }
    key = "ack_new" if complaint.administration else "ack_new_triage"
    return key, core.templates.render(lang, key, **values)


def acknowledge(ctx: DialogueContext, complaint: Complaint) -> None:
    key, text = acknowledgement(ctx.core, complaint, ctx.language)
    if len(ctx.inbound.text) > ctx.core.config.max_text_length:
        text += " " + ctx.core.templates.render(ctx.language, "too_long")
    ctx.reply(text, template=key)


def follow_up(ctx: DialogueContext, complaint: Complaint) -> None:
    ctx.complaint = complaint
    ctx.action = "follow_up"
    add_event(ctx.session, complaint, "citizen", "citizen_message", at=ctx.now,
              data={"message_id": ctx.message.id, "channel": ctx.inbound.channel})
    ctx.say("followup_ack", reference=refs.format_reference(complaint.reference))


def complaint_text(inbound: InboundMessage) -> str | None:
    """The text :func:`text_dialogue` opens a complaint with, should it open one for ``inbound``
    (None when it certainly will not: a keyword, a reference, nothing written). Whether it is a
    follow-up instead, only the transaction can tell."""
    text = inbound.text.strip()
    word, rest = _first_word(text)
    if word in STOP_WORDS or word in START_WORDS or word in STATUS_WORDS or refs.looks_like_reference(text):
        return None
    text = rest.strip() if word in NEW_WORDS else text
    return text if text and not _is_unreadable(text) else None


def text_dialogue(ctx: DialogueContext) -> None:
    """The SMS dialogue (DESIGN.md and issue 2)."""
    text = ctx.inbound.text.strip()
    word, rest = _first_word(text)
    contact = ctx.contact

    if word in STOP_WORDS and not rest.strip():
        ctx.action = "opt_out"
        contact.opted_out, contact.opted_out_at = True, ctx.now
        ctx.session.add(contact)
        ctx.say("opted_out")
        return
    if word in START_WORDS and not rest.strip():
        ctx.action = "opt_in"
        contact.opted_out, contact.opted_out_at = False, None
        ctx.session.add(contact)
        ctx.say("opted_in")
        return
    if word in STATUS_WORDS:
        if contact.language is None:
            ctx.language = ctx.core.templates.language(STATUS_WORDS[word])
        candidate = rest.strip()
        if candidate:
            answer_status(ctx, candidate)
            return
        latest = _latest_open(ctx)
        ctx.action = "status"
        if latest is None:
            ctx.say("ref_not_found")
        else:
            ctx.reply(status_text(ctx, latest), template="status_reply")
        return
    if satisfaction.rating_reply(ctx):
        return
    if refs.looks_like_reference(text):
        answer_status(ctx, text)
        return
    if not text and not ctx.inbound.attachments:
        ctx.action = "empty"
        ctx.say("empty")
        return
    force_new = word in NEW_WORDS
    if force_new:
        text = rest.strip()
        if not text:
            ctx.action = "empty"
            ctx.say("empty")
            return
    recent = None if force_new else _latest_open(ctx)
    window = timedelta(hours=ctx.core.config.followup_window_hours)
    if recent is not None and ctx.now - _last_activity(ctx, recent) <= window:
        follow_up(ctx, recent)
        return
    if _is_unreadable(text) or not text:
        ctx.action = "unreadable"
        ctx.say("binary")
        return
    if not force_new and clocks.reopen_by_reply(ctx):
        return
    new_complaint(ctx, text)


def _last_activity(ctx: DialogueContext, complaint: Complaint) -> datetime:
    """When the citizen last wrote about ``complaint`` (or when it was received)."""
    last = ctx.session.exec(
        select(Message.created_at).where(Message.complaint_id == complaint.id, Message.direction == "in")
        .order_by(Message.created_at.desc())  # type: ignore[attr-defined]
    ).first()
    return max(last, complaint.received_at) if last else complaint.received_at
