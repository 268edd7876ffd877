"""The chat dialogue (Telegram): short, with buttons.

``/start`` greets in the user's language and offers a language choice; a description creates
the complaint at once and shows the routed category and administration with buttons to confirm
it or pick another; a location, a place name and photos complete it; ``/status [ref]``,
``/new``, ``/stop`` and ``/start`` do what they say; the contact button links the citizen's
phone number to the same contact. Inline-button callbacks are always answered, and pressing a
button twice changes nothing more.

This module never imports a channel: it reads ``InboundMessage.meta`` as the Telegram parser
fills it (command, callback data, shared phone, location, ``update_id``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from conversations import reference as refs
from conversations.actions import dispatch_action
from conversations.complaints import OPEN_STATUSES, add_event
from conversations.dialogue import (
    _is_unreadable,
    _last_activity,
    _latest_open,
    answer_status,
    follow_up,
    open_complaint,
    status_text,
)
from conversations.identities import find_identity, link_identity
from conversations.ingest import DialogueContext
from conversations.messages import InboundMessage, mask_urn
from conversations.outbox import Queued, queue_message
from store.models import Complaint, Identity, Message, Outbox, StoredFile
from store.models_telegram import TelegramFile, TelegramUpdate

if TYPE_CHECKING:
    from conversations.core import Core

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ANSWER_CALLBACK = "answer_callback_query"  # the adapter answers the callback query instead of sending
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
LANGUAGE_NAMES = {"ar": "العربية", "fr": "Français", "en": "English", "tzm": "ⵜⴰⵎⴰⵣⵉⵖⵜ"}
# Telegram language codes (IETF tags) that mean Tamazight.
TAMAZIGHT_CODES = frozenset({"tzm", "zgh", "ber", "kab", "shi", "rif"})
GROUP_REPLY_EVERY = timedelta(minutes=10)
STATUS_LIST_LIMIT = 10


# -- handled updates ---------------------------------------------------------------------------
def update_seen(session: Session, update_id: int | None) -> bool:
    return update_id is not None and session.get(TelegramUpdate, update_id) is not None


def record_update(session: Session, update_id: int | None, kind: str) -> None:
    """Remember ``update_id`` in the caller's transaction (a redelivery then does nothing)."""
    if update_id is None or update_seen(session, update_id):
        return
    session.add(TelegramUpdate(update_id=update_id, kind=kind[:32]))
    session.flush()


def is_duplicate_update(core: Core, update_id: int) -> bool:
    with core.db.session() as session:
        return update_seen(session, update_id)


# -- languages -----------------------------------------------------------------------------------
def supported_languages(core: "Core") -> list[str]:
    """ar, fr, en; and tzm when it is configured: listed in ``languages`` and with a ``[telegram]``
    table in its templates (else the chat would answer a Tamazight choice in the fallback language)."""
    langs = [lang for lang in ("ar", "fr", "en") if lang in core.config.templates]
    tzm = core.config.templates.get("tzm") or {}
    if "tzm" in core.config.languages and isinstance(tzm.get("telegram"), dict):
        langs.append("tzm")
    return langs


def telegram_language(core: Core, code: str | None) -> str | None:
    """Our language for a Telegram ``language_code`` (``fr-FR`` -> ``fr``), or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-", 1)[0].casefold()
    base = "tzm" if base in TAMAZIGHT_CODES else base
    return base if base in supported_languages(core) else None


def _settle_language(ctx: DialogueContext) -> None:
    """An explicit choice (language button) wins; else what the text said; else Telegram's language."""
    chosen = (ctx.identity.extra or {}).get("language")
    if chosen in supported_languages(ctx.core):
        ctx.language = chosen
        ctx.contact.language = chosen
        return
    if ctx.contact.language is None:
        hinted = telegram_language(ctx.core, ctx.inbound.meta.get("language_code"))
        if hinted:
            ctx.language = hinted
            ctx.contact.language = hinted


# -- replies ---------------------------------------------------------------------------------------
def _t(ctx: DialogueContext, key: str, **values: Any) -> str:
    return ctx.core.templates.render(ctx.language, f"telegram.{key}", **values)


def _buttons(rows: list[list[tuple[str, str]]]) -> list[list[dict[str, str]]]:
    return [[{"label": label, "data": data} for label, data in row] for row in rows if row]


def _send(ctx: DialogueContext, text: str, *, template: str, buttons: list[list[tuple[str, str]]] | None = None,
          keyboard: str | None = None, notes: list[str] | None = None) -> Queued | None:
    """Queue one chat message answering this inbound (one per inbound, so they arrive in order)."""
    meta: dict[str, Any] = {}
    if buttons:
        meta["buttons"] = _buttons(buttons)
    elif keyboard:
        meta["keyboard"] = keyboard
        meta["keyboard_labels"] = {"contact": _t(ctx, "button_share_phone"),
                                   "location": _t(ctx, "button_share_location")}
    if notes:
        text = " ".join([text, *notes])
    return ctx.reply(text, template=f"telegram.{template}", meta=meta or None)


def _answer_callback(ctx: DialogueContext, toast: str = "") -> None:
    """Answer the callback query (Telegram stops the button's spinner); queued like any message."""
    query_id = ctx.inbound.meta.get("callback_query_id")
    if not query_id:
        return
    queued = queue_message(ctx.session, identity=ctx.identity, text=toast, intent_key=f"tg-answer:{query_id}",
                           language=ctx.language, conversation_id=ctx.conversation.id, essential=True,
                           template="telegram.answer_callback", fallback=False,
                           meta={"method": ANSWER_CALLBACK, "callback_query_id": str(query_id)})
    if queued:
        ctx.queued.append(queued)


def _has_phone(ctx: DialogueContext) -> bool:
    return ctx.session.exec(select(Identity.id).where(Identity.contact_id == ctx.contact.id,
                                                      Identity.scheme == "tel")).first() is not None


def _language_buttons(ctx: DialogueContext) -> list[list[tuple[str, str]]]:
    pairs = [(LANGUAGE_NAMES.get(lang, lang), f"lang:{lang}") for lang in supported_languages(ctx.core)]
    return [pairs[i:i + 2] for i in range(0, len(pairs), 2)]


def _category_name(ctx: DialogueContext, category: str | None) -> str:
    if category and category in ctx.core.config.categories:
        return ctx.core.config.categories[category].name(ctx.language)
    return category or ""


def _category_buttons(ctx: DialogueContext, complaint: Complaint) -> list[list[tuple[str, str]]]:
    pairs = [(cat.name(ctx.language), f"cat:{complaint.id}:{cat.id}") for cat in ctx.core.config.categories.values()]
    return [pairs[i:i + 2] for i in range(0, len(pairs), 2)]


def _values(ctx: DialogueContext, complaint: Complaint) -> dict[str, Any]:
    core, lang = ctx.core, ctx.language
    return {
        "reference": refs.format_reference(complaint.reference),
        "kind": core.templates.render(lang, f"kind.{complaint.kind}"),
        "category": _category_name(ctx, complaint.category),
        "administration": core.config.administration_name(complaint.administration, lang),
        "answer_due": core.format_date(complaint.answer_due_at, lang) if complaint.answer_due_at else "",
    }


# -- the dialogue --------------------------------------------------------------------------------
def chat_dialogue(ctx: DialogueContext) -> None:
    """The Telegram dialogue; ``ctx`` holds the stored inbound message, in an open transaction."""
    inbound = ctx.inbound
    record_update(ctx.session, inbound.meta.get("update_id"), inbound.kind)
    if ctx.identity.unreachable:
        # They write to us again, so they unblocked the bot: replies may go here again.
        ctx.identity.unreachable, ctx.identity.unreachable_reason = False, None
        ctx.session.add(ctx.identity)
    _settle_language(ctx)
    handler = {"command": _command, "callback": _callback, "contact": _contact, "location": _location,
               "media": _media}.get(inbound.kind, _text)
    handler(ctx)
    ctx.session.add(ctx.contact)


def _command(ctx: DialogueContext) -> None:
    name = str(ctx.inbound.meta.get("command") or "")
    args = str(ctx.inbound.meta.get("command_args") or "").strip()
    contact = ctx.contact
    if name == "start":
        ctx.action = "start"
        notes = []
        if contact.opted_out:
            contact.opted_out, contact.opted_out_at = False, None
            ctx.action = "opt_in"
            notes.append(_t(ctx, "welcome_back"))
        text = " ".join([*notes, _t(ctx, "welcome")])
        _send(ctx, text, template="welcome", buttons=_language_buttons(ctx))
    elif name == "stop":
        ctx.action = "opt_out"
        contact.opted_out, contact.opted_out_at = True, ctx.now
        _send(ctx, _t(ctx, "opted_out"), template="opted_out", keyboard="remove")
    elif name in ("language", "lang", "langue"):
        ctx.action = "language"
        _send(ctx, _t(ctx, "choose_language"), template="choose_language", buttons=_language_buttons(ctx))
    elif name in ("status", "etat", "statut"):
        if args:
            answer_status(ctx, args)
        else:
            _status_list(ctx)
    elif name in ("new", "nouveau", "nouvelle"):
        if args:
            _set_state(ctx, force_new=None)
            _new_complaint(ctx, args)
        else:
            ctx.action = "new_prompt"
            _set_state(ctx, force_new=True)
            _send(ctx, _t(ctx, "new_prompt"), template="new_prompt")
    else:
        ctx.action = "help"
        _send(ctx, _t(ctx, "help"), template="help")


def _set_state(ctx: DialogueContext, **changes: Any) -> None:
    state = dict(ctx.conversation.state or {})
    for key, value in changes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    ctx.conversation.state = state  # a new dict, so the JSON column is written
    ctx.session.add(ctx.conversation)


def _status_list(ctx: DialogueContext) -> None:
    ctx.action = "status"
    complaints = ctx.session.exec(
        select(Complaint).where(Complaint.contact_id == ctx.contact.id)
        .order_by(Complaint.received_at.desc()).limit(STATUS_LIST_LIMIT)  # type: ignore[attr-defined]
    ).all()
    if not complaints:
        _send(ctx, _t(ctx, "no_complaints"), template="no_complaints")
        return
    lines = [_t(ctx, "status_header"), *(status_text(ctx, c) for c in complaints)]
    ctx.reply("\n".join(lines), template="telegram.status_list")


def _recent_open(ctx: DialogueContext) -> Complaint | None:
    """The open complaint a message without a description belongs to (within the follow-up window)."""
    if (ctx.conversation.state or {}).get("force_new"):
        return None
    recent = _latest_open(ctx)
    window = timedelta(hours=ctx.core.config.followup_window_hours)
    if recent is not None and ctx.now - _last_activity(ctx, recent) <= window:
        return recent
    return None


def chat_complaint_text(inbound: InboundMessage) -> str | None:
    """The text :func:`chat_dialogue` opens a complaint with, should it open one for a text
    message (None when it certainly will not: a reference, nothing written)."""
    text = inbound.text.strip()
    return None if not text or refs.looks_like_reference(text) or _is_unreadable(text) else text


def _text(ctx: DialogueContext, notes: list[str] | None = None) -> None:
    text = ctx.inbound.text.strip()
    if not text:
        ctx.action = "unsupported"
        _send(ctx, _t(ctx, "unsupported"), template="unsupported", notes=notes)
        return
    if refs.looks_like_reference(text):
        answer_status(ctx, text)
        return
    recent = _recent_open(ctx)
    if recent is not None:
        _follow_up(ctx, recent, text, notes)
        return
    if _is_unreadable(text):
        ctx.action = "unreadable"
        ctx.say("binary")
        return
    _new_complaint(ctx, text, notes)


def _follow_up(ctx: DialogueContext, complaint: Complaint, text: str, notes: list[str] | None = None) -> None:
    place = _detect_place(ctx, text) if complaint.place is None else None
    if place is None and not notes:
        follow_up(ctx, complaint)
        return
    ctx.complaint = complaint
    ctx.action = "follow_up"
    add_event(ctx.session, complaint, "citizen", "citizen_message", at=ctx.now,
              data={"message_id": ctx.message.id, "channel": ctx.inbound.channel})
    if place is not None:
        _add_place(ctx, complaint, place)
        _send(ctx, _t(ctx, "place_added", place=_place_name(ctx, place), reference=refs.format_reference(
            complaint.reference)), template="place_added", notes=notes)
    else:
        _send(ctx, ctx.core.templates.render(ctx.language, "followup_ack",
                                             reference=refs.format_reference(complaint.reference)),
              template="followup_ack", notes=notes)


def _detect_place(ctx: DialogueContext, text: str) -> str | None:
    detect = getattr(ctx.core.router, "detect_place", None)
    if detect is not None:
        return detect(text)
    return getattr(ctx.core.router.route(text, channel=CHANNEL), "place", None)


def _place_name(ctx: DialogueContext, place: str) -> str:
    known = ctx.core.config.places.get(place)
    return known.names[0] if known and known.names else place


def _add_place(ctx: DialogueContext, complaint: Complaint, place: str) -> None:
    from conversations.workflow import transfer  # workflow imports core, which imports this module

    complaint.place = place
    complaint.updated_at = ctx.now
    ctx.session.add(complaint)
    add_event(ctx.session, complaint, "citizen", "place_added", at=ctx.now, data={"place": place})
    branch = ctx.core.config.administration_for(complaint.category, place)
    if branch and branch != complaint.administration and _before_acknowledgement(complaint):
        transfer(ctx.core, ctx.session, complaint, actor="citizen", administration=branch,
                 reason="place given by the citizen", now=ctx.now, notify=False)


def _before_acknowledgement(complaint: Complaint) -> bool:
    return complaint.acknowledged_at is None and complaint.status in ("new", "assigned")


def _new_complaint(ctx: DialogueContext, text: str, notes: list[str] | None = None) -> Complaint:
    complaint = open_complaint(ctx, text)
    _set_state(ctx, force_new=None)
    _attach_pending(ctx, complaint)
    notes = list(notes or [])
    if len(text) > ctx.core.config.max_text_length:
        notes.append(ctx.core.templates.render(ctx.language, "too_long"))
    values = _values(ctx, complaint)
    if complaint.category and complaint.administration:
        _send(ctx, _t(ctx, "ack_new", **values), template="ack_new", notes=notes, buttons=[
            [(_t(ctx, "button_confirm"), f"cat:{complaint.id}:{complaint.category}")],
            [(_t(ctx, "button_other_category"), f"cats:{complaint.id}")],
        ])
    else:
        _send(ctx, _t(ctx, "ack_triage", **values), template="ack_triage", notes=notes,
              buttons=_category_buttons(ctx, complaint))
    return complaint


def _attach_pending(ctx: DialogueContext, complaint: Complaint) -> None:
    """A location or files sent before the description belong to the complaint it creates."""
    state = ctx.conversation.state or {}
    pending = state.get("pending_location")
    if pending and complaint.latitude is None:
        complaint.latitude, complaint.longitude = float(pending[0]), float(pending[1])
        add_event(ctx.session, complaint, "citizen", "location_added", at=ctx.now,
                  data={"latitude": complaint.latitude, "longitude": complaint.longitude})
        _set_state(ctx, pending_location=None)
    since = ctx.now - timedelta(hours=ctx.core.config.followup_window_hours)
    rows = ctx.session.exec(select(TelegramFile).where(
        TelegramFile.conversation_id == ctx.conversation.id, TelegramFile.complaint_id.is_(None),  # type: ignore[union-attr]
        TelegramFile.created_at >= since)).all()
    for row in rows:
        _link_file(ctx.session, row, complaint)


def _link_file(session: Session, row: TelegramFile, complaint: Complaint) -> None:
    row.complaint_id = complaint.id
    session.add(row)
    message = session.get(Message, row.message_id)
    if message is not None and message.complaint_id is None:
        message.complaint_id = complaint.id
        session.add(message)
    for stored in session.exec(select(StoredFile).where(StoredFile.message_id == row.message_id,
                                                        StoredFile.complaint_id.is_(None))):  # type: ignore[union-attr]
        stored.complaint_id = complaint.id
        session.add(stored)


# -- buttons -----------------------------------------------------------------------------------
def _callback(ctx: DialogueContext) -> None:
    data = str(ctx.inbound.meta.get("callback_data") or ctx.inbound.text or "")
    prefix, _, rest = data.partition(":")
    ctx.action = f"button:{prefix}"
    toast = ""
    if prefix == "lang":
        _choose_language(ctx, rest)
    elif prefix == "cat":
        complaint_id, _, category = rest.partition(":")
        toast = _choose_category(ctx, complaint_id, category)
    elif prefix == "cats":
        toast = _show_categories(ctx, rest)
    elif not dispatch_action(ctx, data):
        log.info("telegram: no handler for button data with prefix %r", prefix[:16])
        toast = _t(ctx, "button_expired")
    _answer_callback(ctx, toast)


def _choose_language(ctx: DialogueContext, lang: str) -> None:
    if lang not in supported_languages(ctx.core):
        return
    ctx.identity.extra = {**(ctx.identity.extra or {}), "language": lang}
    ctx.session.add(ctx.identity)
    ctx.contact.language = ctx.language = lang
    _send(ctx, _t(ctx, "language_set"), template="language_set", keyboard=None if _has_phone(ctx) else "contact")


def _own_complaint(ctx: DialogueContext, complaint_id: str) -> Complaint | None:
    try:
        complaint = ctx.session.get(Complaint, int(complaint_id))
    except ValueError:
        return None
    if complaint is None or complaint.contact_id != ctx.contact.id:
        return None
    return complaint


def _choose_category(ctx: DialogueContext, complaint_id: str, category: str) -> str:
    """Confirm the routed category (the same one) or re-route to another; the toast to show."""
    from conversations.workflow import transfer  # workflow imports core, which imports this module

    complaint = _own_complaint(ctx, complaint_id)
    if complaint is None or category not in ctx.core.config.categories:
        return _t(ctx, "button_expired")
    ctx.complaint = complaint
    if not _before_acknowledgement(complaint):
        _send(ctx, _t(ctx, "category_locked", **_values(ctx, complaint)), template="category_locked")
        return ""
    extra = dict(complaint.extra or {})
    keyboard = "contact_location" if not _has_phone(ctx) else "location"
    if category == complaint.category:
        if extra.get("category_confirmed_at"):
            return "✓"  # pressed again: nothing more
        extra["category_confirmed_at"] = ctx.now.isoformat()
        complaint.extra = extra
        ctx.session.add(complaint)
        add_event(ctx.session, complaint, "citizen", "category_confirmed", at=ctx.now,
                  data={"category": category, "administration": complaint.administration})
        ctx.action = "category_confirmed"
        _send(ctx, _t(ctx, "category_confirmed", **_values(ctx, complaint)), template="category_confirmed",
              keyboard=keyboard)
        return "✓"
    transfer(ctx.core, ctx.session, complaint, actor="citizen", administration=None, category=category,
             reason="category chosen by the citizen", now=ctx.now, notify=False)
    extra["category_confirmed_at"] = ctx.now.isoformat()
    complaint.extra = extra
    ctx.session.add(complaint)
    ctx.action = "category_changed"
    _send(ctx, _t(ctx, "category_changed", **_values(ctx, complaint)), template="category_changed",
          keyboard=keyboard)
    return "✓"


def _show_categories(ctx: DialogueContext, complaint_id: str) -> str:
    complaint = _own_complaint(ctx, complaint_id)
    if complaint is None:
        return _t(ctx, "button_expired")
    ctx.complaint = complaint
    if not _before_acknowledgement(complaint):
        _send(ctx, _t(ctx, "category_locked", **_values(ctx, complaint)), template="category_locked")
        return ""
    _send(ctx, _t(ctx, "pick_category", **_values(ctx, complaint)), template="pick_category",
          buttons=_category_buttons(ctx, complaint))
    return ""


# -- contact, location, media ----------------------------------------------------------------
def e164(raw: str, country: str) -> str | None:
    """A shared phone number in E.164 (Telegram sends international digits, often without '+')."""
    raw = raw.strip()
    candidate = raw if raw.startswith("+") or raw.startswith("0") else "+" + raw
    try:
        number = phonenumbers.parse(candidate, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _contact(ctx: DialogueContext) -> None:
    meta = ctx.inbound.meta
    owner = meta.get("contact_user_id")
    if owner is None or f"{CHANNEL}:{owner}" != ctx.inbound.sender:
        ctx.action = "contact_not_own"
        _send(ctx, _t(ctx, "contact_not_own"), template="contact_not_own", keyboard="contact")
        return
    number = e164(str(meta.get("contact_phone") or ""), ctx.core.settings.country)
    if number is None:
        ctx.action = "contact_invalid"
        _send(ctx, _t(ctx, "contact_invalid"), template="contact_invalid")
        return
    link_identity(ctx.session, ctx.contact, "tel:" + number)
    ctx.action = "phone_linked"
    log.info("telegram: %s linked a phone number %s", mask_urn(ctx.inbound.sender), mask_urn("tel:" + number))
    _send(ctx, _t(ctx, "phone_linked"), template="phone_linked", keyboard="remove")


def _location(ctx: DialogueContext) -> None:
    meta = ctx.inbound.meta
    try:
        lat, lon = float(meta["latitude"]), float(meta["longitude"])
    except (KeyError, TypeError, ValueError):
        _text(ctx)
        return
    target = _recent_open(ctx)
    if target is None:
        ctx.action = "location_pending"
        _set_state(ctx, pending_location=[lat, lon])
        _send(ctx, _t(ctx, "location_pending"), template="location_pending", keyboard="remove")
        return
    ctx.complaint = target
    ctx.action = "location_added"
    target.latitude, target.longitude, target.updated_at = lat, lon, ctx.now
    ctx.session.add(target)
    add_event(ctx.session, target, "citizen", "location_added", at=ctx.now,
              data={"latitude": lat, "longitude": lon, "message_id": ctx.message.id})
    _send(ctx, _t(ctx, "location_added", reference=refs.format_reference(target.reference)),
          template="location_added", keyboard="remove")


def max_file_bytes(core: Core) -> int:
    """``[channels.telegram] max_file_bytes`` (default 20 MB, what the Bot API lets a bot download)."""
    value = core.config.channel_options(CHANNEL).get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_FILE_BYTES


def too_big_note(core: Core, language: str, size: int | None) -> str:
    limit = max_file_bytes(core)
    return core.templates.render(language, "telegram.file_too_big", size=_mb(size) if size else "?", limit=_mb(limit))


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


def _media(ctx: DialogueContext) -> None:
    limit = max_file_bytes(ctx.core)
    notes: list[str] = []
    rows: list[TelegramFile] = []
    for att in ctx.inbound.attachments:
        if not att.provider_id:
            continue
        too_big = att.size is not None and att.size > limit
        row = TelegramFile(message_id=ctx.message.id, conversation_id=ctx.conversation.id, file_id=att.provider_id,
                           content_type=att.content_type, filename=att.filename, size=att.size,
                           language=ctx.language, status="too_big" if too_big else "pending",
                           created_at=ctx.now, updated_at=ctx.now, next_attempt_at=ctx.now)
        ctx.session.add(row)
        rows.append(row)
        if too_big:
            notes.append(too_big_note(ctx.core, ctx.language, att.size))
    ctx.session.flush()
    kept = any(row.status == "pending" for row in rows)
    if ctx.inbound.text.strip():
        _text(ctx, notes)  # the caption describes the problem (or follows one up)
    else:
        target = _recent_open(ctx)
        if target is not None:
            ctx.complaint = target
            ctx.action = "attachment"
            if kept:
                add_event(ctx.session, target, "citizen", "attachment_added", at=ctx.now,
                          data={"message_id": ctx.message.id, "files": sum(r.status == "pending" for r in rows)})
                _send(ctx, _t(ctx, "file_received", reference=refs.format_reference(target.reference)),
                      template="file_received", notes=notes)
            else:
                _send(ctx, " ".join(notes), template="file_too_big")
        elif kept:
            ctx.action = "attachment_pending"
            _send(ctx, _t(ctx, "file_pending"), template="file_pending", notes=notes)
        else:
            ctx.action = "attachment_too_big"
            _send(ctx, " ".join(notes) or _t(ctx, "unsupported"), template="file_too_big")
    if ctx.complaint is not None:
        for row in rows:
            _link_file(ctx.session, row, ctx.complaint)


# -- updates that are not new messages --------------------------------------------------------
@dataclass(frozen=True)
class EditResult:
    outcome: str  # "edited", "unchanged", "duplicate", "unknown"
    message_id: int | None = None
    complaint_id: int | None = None


def apply_edit(core: Core, inbound: InboundMessage) -> EditResult:
    """An edited message updates the stored one (text, ``edited_at``), with an event on its complaint.

    ``unknown`` when the original was never stored: the caller ingests it as a new message.
    """
    update_id = inbound.meta.get("update_id")
    try:
        with core.db.session() as session:
            if update_seen(session, update_id):
                return EditResult("duplicate")
            message = session.exec(select(Message).where(
                Message.channel == inbound.channel, Message.provider_message_id == inbound.provider_message_id,
                Message.direction == "in")).first()
            if message is None:
                return EditResult("unknown")
            record_update(session, update_id, "edit")
            new_text = inbound.text
            if message.text == new_text or inbound.kind not in ("text", "media", "command"):
                return EditResult("unchanged", message.id, message.complaint_id)
            now = core.clock.now()
            previous = message.text
            message.text, message.edited_at = new_text, now
            message.raw = {**(message.raw or {}), "edit_date": inbound.meta.get("edit_date"),
                           "edit_update_id": update_id}
            session.add(message)
            if message.complaint_id:
                complaint = session.get(Complaint, message.complaint_id)
                if complaint is not None:
                    if complaint.text == previous:
                        complaint.text = new_text
                    complaint.updated_at = now
                    session.add(complaint)
                    add_event(session, complaint, "citizen", "message_edited", at=now,
                              data={"message_id": message.id, "previous_text": previous})
            return EditResult("edited", message.id, message.complaint_id)
    except IntegrityError:
        return EditResult("duplicate")


def answer_group(core: Core, update_id: int, chat_id: int, message_id: int | None,
                 language_code: str | None) -> tuple[int, ...]:
    """One polite line pointing to a private chat; no contact, no complaint, the text not kept."""
    urn = f"{CHANNEL}:{chat_id}"
    now = core.clock.now()
    language = telegram_language(core, language_code) or core.config.default_language
    try:
        with core.db.session() as session:
            if update_seen(session, update_id):
                return ()
            record_update(session, update_id, "group")
            recent = session.exec(select(Message.id).where(
                Message.channel == CHANNEL, Message.urn == urn, Message.direction == "out",
                Message.created_at >= now - GROUP_REPLY_EVERY)).first()
            if recent is not None:
                return ()  # a busy group gets the line once in a while, not on every message
            intent = f"tg-group:{chat_id}:{message_id if message_id is not None else update_id}"
            if session.exec(select(Outbox.id).where(Outbox.intent_key == intent)).first() is not None:
                return ()
            message = Message(direction="out", channel=CHANNEL, urn=urn, text=core.templates.render(
                language, "telegram.group_only"), language=language, status="queued", template="telegram.group_only",
                raw={"meta": {}, "essential": True}, created_at=now)
            session.add(message)
            session.flush()
            outbox = Outbox(message_id=message.id, channel=CHANNEL, intent_key=intent,  # type: ignore[arg-type]
                            next_attempt_at=now, created_at=now, updated_at=now)
            session.add(outbox)
            session.flush()
            return (outbox.id,)  # type: ignore[return-value]
    except IntegrityError:
        return ()


def set_reachability(core: Core, update_id: int, urn: str, status: str) -> str:
    """``my_chat_member``: the user blocked (``kicked``) or unblocked (``member``) the bot."""
    try:
        with core.db.session() as session:
            if update_seen(session, update_id):
                return "duplicate"
            record_update(session, update_id, "member")
            identity = find_identity(session, urn)
            if identity is None:
                return "unknown"
            if status == "kicked":
                identity.unreachable, identity.unreachable_reason = True, "the user blocked the bot"
            elif status == "member":
                identity.unreachable, identity.unreachable_reason = False, None
            else:
                return "ignored"
            session.add(identity)
            return "blocked" if identity.unreachable else "unblocked"
    except IntegrityError:
        return "duplicate"


__all__ = ["chat_dialogue", "apply_edit", "answer_group", "set_reachability", "is_duplicate_update", "OPEN_STATUSES",
           "too_big_note", "max_file_bytes", "e164", "ANSWER_CALLBACK"]
