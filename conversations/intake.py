"""Agent intake: a complaint told on the phone, at a desk or copied from a paper register."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from conversations import identities
from conversations.complaints import create_complaint
from conversations.core import Core
from conversations.dialogue import acknowledgement
from conversations.language import detect_language
from conversations.outbox import queue_message
from store.models import Complaint

INTAKE_CHANNELS = ("phone", "walk_in", "register")
# Complaints handed over by another system (Open311 POST) are created the same way.
SYSTEM_CHANNELS = ("open311",)


@dataclass(frozen=True)
class IntakeResult:
    complaint: Complaint
    outbox_ids: tuple[int, ...]


def intake(core: Core, session: Session, *, text: str, urn: str | None, channel: str, actor: str,
           kind: str = "complaint", category: str | None = None, place: str | None = None,
           language: str | None = None, consent_sms: bool = True) -> IntakeResult:
    """Create the complaint as the agent logged it; the citizen gets the reference on their channel
    (SMS to a phone number when they consented, email to an address)."""
    if channel not in INTAKE_CHANNELS + SYSTEM_CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(INTAKE_CHANNELS)}")
    now = core.clock.now()
    routed = core.router.route(text, channel=channel, category_hint=category)
    place = place or routed.place
    administration = core.config.administration_for(routed.category, place) if routed.category else None
    lang = core.templates.language(language or detect_language(text))
    contact = identity = None
    if urn:
        contact, identity = identities.resolve(session, urn, language=lang)
    complaint = create_complaint(
        session, core.config, now=now, text=text, channel=channel, actor=actor,
        contact_id=contact.id if contact else None, identity_id=identity.id if identity else None,
        kind=kind, category=routed.category, administration=administration, place=place, language=lang,
        confidence=routed.confidence, reasons=routed.reasons, created_by=actor, consent_sms=consent_sms,
        anonymous=urn is None,
    )
    outbox: tuple[int, ...] = ()
    if identity is not None and (identity.scheme != "tel" or consent_sms):
        key, body = acknowledgement(core, complaint, lang)
        queued = queue_message(session, identity=identity, text=body, intent_key=f"intake:{complaint.id}",
                               complaint=complaint, language=lang, template=key, essential=True, actor=actor)
        outbox = (queued.outbox_id,) if queued else ()
    return IntakeResult(complaint, outbox)
