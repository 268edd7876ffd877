"""Follow-up settings (``[clocks]``) and the citizen's reopening of an answered complaint.

``[clocks]`` in the configuration (all optional)::

    reminder_days = 3          # remind the administration this many days before a deadline
                               # (``reminder_lead_days`` is read too)
    escalate_after_days = 0    # escalate a complaint this many days after it missed a deadline
    auto_close_days = 15       # close an answered complaint after this quiet period (``quiet_period_days``)
    escalation_email = ""      # also email escalations there (supervisors' mailbox)
    language = ""              # language of the reminders to administrations (default language)
    interval_seconds = 60      # how often the scheduler runs
    lease_seconds = 300        # how long one process holds the scheduler before another may take over

This module imports nothing of the workflow, so the dialogue can use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from conversations import reference as refs
from conversations.complaints import add_event, change_status
from store.models import Complaint

if TYPE_CHECKING:
    from config.loader import GatewayConfig
    from conversations.ingest import DialogueContext


@dataclass(frozen=True)
class ClockSettings:
    reminder_lead: timedelta = timedelta(days=3)
    escalate_after: timedelta = timedelta(0)
    auto_close_after: timedelta = timedelta(days=15)
    escalation_email: str | None = None
    language: str | None = None
    interval_seconds: float = 60.0
    lease_seconds: float = 300.0

    @classmethod
    def from_config(cls, config: "GatewayConfig") -> "ClockSettings":
        table: dict[str, Any] = dict((config.raw or {}).get("clocks", {}))
        try:
            return cls(
                reminder_lead=timedelta(days=float(table.get("reminder_days", table.get("reminder_lead_days", 3)))),
                escalate_after=timedelta(days=float(table.get("escalate_after_days", 0))),
                auto_close_after=timedelta(days=float(table.get("auto_close_days",
                                                               table.get("quiet_period_days", 15)))),
                escalation_email=str(table.get("escalation_email") or "").strip() or None,
                language=str(table.get("language") or "").strip() or None,
                interval_seconds=float(table.get("interval_seconds", 60)),
                lease_seconds=float(table.get("lease_seconds", 300)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[clocks]: {exc}; numbers of days/seconds are expected") from exc


COURTESY = frozenset("""merci beaucoup bien recu reçu ok okay d'accord daccord thanks thank you thx very much
much good great شكرا جزيلا بزاف شكرًا بارك الله فيك فيكم مشكور مشكورين يعطيك الصحة saha sahit chokran choukran
shukran barak allah fik lah ok""".split())


def is_courtesy(text: str) -> bool:
    """Only words of thanks or acknowledgement (``Merci beaucoup``, ``شكرا``, ``ok thanks``)."""
    words = [w.strip(".,!?؟:;-()'\"").casefold() for w in text.split()]
    words = [w for w in words if w]
    return 0 < len(words) <= 6 and all(w in COURTESY for w in words)


def answered_in_quiet_period(ctx: "DialogueContext") -> Complaint | None:
    """The contact's most recent complaint answered within the quiet period, if any."""
    if ctx.new_identity:
        return None
    settings = ClockSettings.from_config(ctx.core.config)
    return ctx.session.exec(
        select(Complaint).where(Complaint.contact_id == ctx.contact.id, Complaint.status == "answered",
                                Complaint.answered_at > ctx.now - settings.auto_close_after)  # type: ignore[operator]
        .order_by(Complaint.answered_at.desc())  # type: ignore[union-attr]
    ).first()


def reopen_by_reply(ctx: "DialogueContext") -> bool:
    """A citizen's message about a complaint answered within the quiet period reopens it.

    The complaint goes back to ``in_progress`` (a ``reopened`` event; ``reopened_count`` + 1), the
    message is attached to it and the citizen gets a short acknowledgement. False when there is
    no such complaint (the dialogue goes on as usual).
    """
    complaint = answered_in_quiet_period(ctx)
    return complaint is not None and reopen_complaint(ctx, complaint)


def reopen_complaint(ctx: "DialogueContext", complaint: Complaint) -> bool:
    """Reopen ``complaint`` (the one the citizen's message is about, e.g. by its email thread) when it
    was answered within the quiet period; False otherwise."""
    settings = ClockSettings.from_config(ctx.core.config)
    if complaint.status != "answered" or complaint.answered_at is None or not complaint.administration \
            or complaint.answered_at <= ctx.now - settings.auto_close_after:
        return False
    if is_courtesy(ctx.inbound.text):
        # "Thank you" after an answer is not a reason to reopen (nor to file a new complaint).
        add_event(ctx.session, complaint, "citizen", "citizen_message", at=ctx.now,
                  data={"message_id": ctx.message.id, "channel": ctx.inbound.channel})
        ctx.complaint = complaint
        ctx.action = "thanks"
        return True
    change_status(ctx.session, complaint, "in_progress", actor="citizen", now=ctx.now,
                  note="reopened by the citizen's reply")
    add_event(ctx.session, complaint, "citizen", "citizen_message", at=ctx.now,
              data={"message_id": ctx.message.id, "channel": ctx.inbound.channel})
    ctx.complaint = complaint
    ctx.action = "reopened"
    ctx.say("clocks.reopened", reference=refs.format_reference(complaint.reference))
    return True


def is_overdue(complaint: Complaint, now: datetime) -> bool:
    """Open and past a deadline: not acknowledged by ``ack_due_at``, or not answered by ``answer_due_at``."""
    if complaint.status not in ("new", "assigned", "in_progress"):
        return False
    ack_late = complaint.acknowledged_at is None and complaint.ack_due_at is not None and complaint.ack_due_at <= now
    answer_late = complaint.answered_at is None and complaint.answer_due_at is not None \
        and complaint.answer_due_at <= now
    return ack_late or answer_late
