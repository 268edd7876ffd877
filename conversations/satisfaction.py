"""Satisfaction: once a complaint is answered, the citizen is asked once, on their channel, to
rate the answer from 1 to 5.

- SMS: a reply that is a single digit 1-5 (``text_dialogue`` calls :func:`rating_reply`);
- Telegram: inline buttons whose data is ``rate:<complaint id>:<value>`` (the ``rate`` action);
- email: the digit alone on the first line of the reply (no link to click);
- phone line: the IVR calls :func:`record_rating` with the keypad digit.

``[satisfaction]`` in the configuration: ``enabled`` (true); ``delay_seconds`` (0: the question is
queued with the answer; a few seconds make sure it never overtakes it); ``window_days`` (30: how
long a bare digit still counts as a rating).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, select

from conversations import reference as refs
from conversations.actions import register_action
from conversations.complaints import add_event
from conversations.outbox import queue_message
from store.models import Complaint, Identity, Outbox

if TYPE_CHECKING:
    from conversations.core import Core
    from conversations.ingest import DialogueContext

VALUES = range(1, 6)
_DIGITS = str.maketrans("١٢٣٤٥٦٧٨٩٠۱۲۳۴۵۶۷۸۹۰", "12345678901234567890")


@dataclass(frozen=True)
class SatisfactionSettings:
    enabled: bool = True
    delay: timedelta = timedelta(0)
    window: timedelta = timedelta(days=30)

    @classmethod
    def from_config(cls, config: Any) -> "SatisfactionSettings":
        table = dict((config.raw or {}).get("satisfaction", {}))
        return cls(enabled=bool(table.get("enabled", True)),
                   delay=timedelta(seconds=float(table.get("delay_seconds", 0))),
                   window=timedelta(days=float(table.get("window_days", 30))))


def _identity(session: Session, complaint: Complaint) -> Identity | None:
    if complaint.anonymous or complaint.identity_id is None:
        return None
    identity = session.get(Identity, complaint.identity_id)
    if identity is None or (identity.scheme == "tel" and not complaint.consent_sms):
        return None
    return identity


def buttons(complaint_id: int) -> list[list[dict[str, str]]]:
    """One row of five inline buttons, ``rate:<complaint id>:<value>``."""
    return [[{"label": str(v), "data": f"rate:{complaint_id}:{v}"} for v in VALUES]]


def ask(core: "Core", session: Session, complaint: Complaint, now: datetime | None = None) -> list[int]:
    """Queue the question to the citizen (once: ``satisfaction_asked_at`` and the intent key say so).

    Returns the outbox ids queued (none for an anonymous citizen, or when already asked).
    """
    settings = SatisfactionSettings.from_config(core.config)
    if not settings.enabled or complaint.satisfaction_asked_at is not None or complaint.satisfaction is not None:
        return []
    now = now or core.clock.now()
    identity = _identity(session, complaint)
    if identity is None:
        return []
    lang = core.templates.language(complaint.language)
    reference = refs.format_reference(complaint.reference)
    scheme = identity.scheme
    key = {"telegram": "satisfaction.question_telegram", "mailto": "satisfaction.question_email"}.get(
        scheme, "satisfaction.question_sms")
    meta: dict[str, Any] = {"automatic": True}
    if scheme == "telegram":
        meta["buttons"] = buttons(complaint.id)  # type: ignore[arg-type]
    queued = queue_message(session, identity=identity, text=core.templates.render(lang, key, reference=reference),
                           intent_key=f"satisfaction:{complaint.id}", complaint=complaint, language=lang,
                           conversation_id=complaint.conversation_id, template=key, essential=False, meta=meta,
                           subject=core.templates.render(lang, "satisfaction.subject", reference=reference),
                           fallback=False)
    complaint.satisfaction_asked_at = now
    session.add(complaint)
    if queued is None:
        return []
    if settings.delay > timedelta(0):
        session.execute(update(Outbox).where(Outbox.id == queued.outbox_id)
                        .values(next_attempt_at=now + settings.delay))
    add_event(session, complaint, "system", "satisfaction_asked", at=now, data={"channel": scheme})
    return [queued.outbox_id]


def record_rating(session: Session, complaint: Complaint, value: int, actor: str,
                  now: datetime | None = None) -> bool:
    """Store a 1-5 rating on ``complaint`` (and a ``satisfaction`` event); the first rating counts.

    Returns False when the complaint was already rated. ``ValueError`` for a value outside 1-5.
    The IVR calls this with the keypad digit (``actor`` e.g. ``"citizen"``).
    """
    if int(value) not in VALUES:
        raise ValueError("a rating is a whole number from 1 to 5")
    now = now or datetime.now(timezone.utc)
    taken = session.execute(update(Complaint).where(Complaint.id == complaint.id, Complaint.satisfaction.is_(None))  # type: ignore[union-attr]
                            .values(satisfaction=int(value))).rowcount
    if not taken:
        session.refresh(complaint)
        return False
    complaint.satisfaction = int(value)
    add_event(session, complaint, actor, "satisfaction", at=now, data={"value": int(value)})
    return True


# A character that counts: not white space (re's \s is exactly str.isspace()), nor one of ".!/-".
_KEPT = re.compile(r"[^\s.!/\-]")


def rating_from_text(text: str, first_line_only: bool = False) -> int | None:
    """The rating when the text is a single digit 1-5 (Arabic-Indic digits too); else None.

    Email replies carry the quoted message below, so only their first non-empty line counts.
    """
    if first_line_only:
        text = next((stripped for line in text.splitlines() if (stripped := line.strip())), "")
    # Exactly one character must count. The digits are translated afterwards: no key or value of
    # _DIGITS is white space or one of ".!/-", and each maps to a single character.
    normalised = unicodedata.normalize("NFKC", text)
    first = _KEPT.search(normalised)
    if first is None or _KEPT.search(normalised, first.end()) is not None:
        return None
    cleaned = first.group().translate(_DIGITS)
    if cleaned.isdigit() and int(cleaned) in VALUES:
        return int(cleaned)
    return None


def last_question(session: Session, contact_id: int, now: datetime, window: timedelta) -> Complaint | None:
    """The contact's complaint most recently asked about within ``window`` (rated or not)."""
    return session.exec(
        select(Complaint).where(Complaint.contact_id == contact_id, Complaint.satisfaction_asked_at.is_not(None),  # type: ignore[union-attr]
                                Complaint.satisfaction_asked_at > now - window)  # type: ignore[operator]
        .order_by(Complaint.satisfaction_asked_at.desc(), Complaint.id.desc())  # type: ignore[union-attr]
    ).first()


def rating_reply(ctx: "DialogueContext") -> bool:
    """In a text dialogue: a bare digit 1-5 answers the last question asked (a repeat is thanked
    again, not taken for a new complaint). False when the message is not such a digit."""
    value = rating_from_text(ctx.inbound.text, first_line_only=ctx.inbound.channel == "email")
    if value is None:
        return False
    settings = SatisfactionSettings.from_config(ctx.core.config)
    complaint = last_question(ctx.session, ctx.contact.id, ctx.now, settings.window)  # type: ignore[arg-type]
    if complaint is None:
        return False
    _thank(ctx, complaint, value)
    return True


def _thank(ctx: "DialogueContext", complaint: Complaint, value: int) -> None:
    ctx.complaint = complaint
    ctx.action = "satisfaction"
    recorded = record_rating(ctx.session, complaint, value, "citizen", now=ctx.now)
    reference = refs.format_reference(complaint.reference)
    ctx.say("satisfaction.thanks" if recorded else "satisfaction.already", reference=reference)


@register_action("rate")
def rate_action(ctx: "DialogueContext", data: str) -> None:
    """Telegram button ``rate:<complaint id>:<value>`` (``data`` is what follows ``rate:``)."""
    ctx.action = "satisfaction"
    complaint_id, _, raw_value = data.partition(":")
    try:
        cid, value = int(complaint_id), int(raw_value)
    except ValueError:
        ctx.say("satisfaction.invalid")
        return
    complaint = ctx.session.get(Complaint, cid)
    if complaint is None or complaint.contact_id != ctx.contact.id or value not in VALUES:
        ctx.say("satisfaction.invalid")
        return
    _thank(ctx, complaint, value)
