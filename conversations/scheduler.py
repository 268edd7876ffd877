"""The deadline scheduler: reminders, overdue marks, escalations, auto-close, satisfaction catch-up.

One pass ("tick") finds the complaints that need something (one SQL query, paged by id), then
handles them in small batches, each in its own transaction with the rows locked
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are serialised by
``BEGIN IMMEDIATE``), re-checking every condition on the locked row. Each action leaves a mark
in the same transaction (``reminded_at``, an ``ack_overdue``/``answer_overdue`` event,
``escalated_at``, the status, ``satisfaction_asked_at``) and every message has an intent key, so a
second scheduler running at the same time finds nothing left to do. On top of that, only the
holder of the ``scheduler`` lease (a ``kv`` row taken with a conditional UPDATE) runs ticks,
so several ``gateway serve`` processes do not even compete.

What a tick does, for each complaint:

- **overdue**: open and not acknowledged by ``ack_due_at`` -> event ``ack_overdue``; open and not
  answered by ``answer_due_at`` -> event ``answer_overdue`` (once per clock); the ``overdue`` flag
  follows the current state (cleared once acknowledged/answered/closed);
- **escalation**: overdue for ``escalate_after_days`` -> ``escalated_at`` and an ``escalated``
  event (supervisors' queue, and an email to ``escalation_email`` if set); the citizen is told
  once (template ``clocks.escalated``);
- **reminder**: a deadline within ``reminder_days`` and not met -> an email to the
  administration's ``email`` (``[administrations.X]``, or its branch's) through the outbox, and a
  ``reminder`` event; ``reminded_at`` records it (one reminder per deadline);
- **auto-close**: answered for ``auto_close_days`` without a reply -> ``closed`` by ``system``;
- **satisfaction**: an answered complaint whose citizen was not asked yet is asked.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, exists, not_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from conversations import reference as refs
from conversations import satisfaction
from conversations.clocks import ClockSettings, is_overdue
from conversations.complaints import OPEN_STATUSES, add_event
from conversations.core import Core
from conversations.identities import resolve
from conversations.outbox import queue_message
from conversations.workflow import notify_citizen, set_status
from store.models import Complaint, ComplaintEvent, KeyValue

log = logging.getLogger(__name__)

LEASE_KEY = "scheduler"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PAGE = 500
BATCH = 50
# Who the audit trail names for reminders, overdue marks and escalations; auto-close is "system".
ACTOR = "scheduler"
OVERDUE_EVENTS = {"acknowledge": "ack_overdue", "answer": "answer_overdue"}


@dataclass
class TickReport:
    """What one tick did (counts), and the outbox rows it queued."""

    ran: bool = True
    reminders: int = 0
    overdue: int = 0
    escalated: int = 0
    closed: int = 0
    asked: int = 0
    cleared: int = 0
    outbox_ids: list[int] = field(default_factory=list)

    def add(self, other: "TickReport") -> None:
        for f in fields(self):
            if f.name not in ("ran", "outbox_ids"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.outbox_ids += other.outbox_ids

    @property
    def reminded(self) -> int:
        return self.reminders

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("ran", "outbox_ids")}


class Scheduler:
    """Runs ticks against the database of ``core`` with ``core.clock``."""

    def __init__(self, core: Core, owner: str | None = None, settings: ClockSettings | None = None) -> None:
        self.core = core
        self.settings = settings or ClockSettings.from_config(core.config)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- the lease ------------------------------------------------------------------------------
    def acquire_lease_sync(self) -> bool:
        """Take or renew the ``scheduler`` lease; False while another owner holds an unexpired one.

        The row says who holds it; its ``updated_at`` is the lease's time stamp. Taking it is a
        compare-and-set on that stamp, so of two processes reading the same expired lease only
        one writes it.
        """
        now = self.core.clock.now()
        db = self.core.db
        try:
            with db.session() as session:
                if session.get(KeyValue, LEASE_KEY) is None:
                    session.add(KeyValue(key=LEASE_KEY, value={}, updated_at=EPOCH))
        except IntegrityError:
            pass  # another process created it at the same moment
        with db.session() as session:
            row = session.exec(select(KeyValue.value, KeyValue.updated_at).where(KeyValue.key == LEASE_KEY)).one()
            held_by, stamp = (row[0] or {}).get("owner"), row[1]
            expired = stamp <= now - timedelta(seconds=self.settings.lease_seconds)
            if held_by != self.owner and not expired:
                return False
            taken = session.execute(update(KeyValue).where(KeyValue.key == LEASE_KEY, KeyValue.updated_at == stamp)
                                    .values(value={"owner": self.owner, "at": now.isoformat()},
                                            updated_at=now)).rowcount  # type: ignore[attr-defined]
        return bool(taken)

    def release_lease_sync(self) -> None:
        with self.core.db.session() as session:
            row = session.get(KeyValue, LEASE_KEY)
            if row is not None and (row.value or {}).get("owner") == self.owner:
                session.execute(update(KeyValue).where(KeyValue.key == LEASE_KEY,
                                                       KeyValue.updated_at == row.updated_at)
                                .values(value={}, updated_at=EPOCH))

    # -- finding work ---------------------------------------------------------------------------
    def _needs_work(self, now: datetime) -> Any:
        s = self.settings
        c = Complaint
        is_open = c.status.in_(OPEN_STATUSES)  # type: ignore[attr-defined]
        ack_pending = and_(c.acknowledged_at.is_(None), c.ack_due_at.is_not(None))  # type: ignore[union-attr]
        answer_pending = and_(c.answered_at.is_(None), c.answer_due_at.is_not(None))  # type: ignore[union-attr]
        ack_late = and_(ack_pending, c.ack_due_at <= now)  # type: ignore[operator]
        answer_late = and_(answer_pending, c.answer_due_at <= now)  # type: ignore[operator]
        late = and_(is_open, or_(ack_late, answer_late))

        def no_event(kind: str) -> Any:
            return ~exists().where(ComplaintEvent.complaint_id == c.id, ComplaintEvent.type == kind)

        lead_end = now + s.reminder_lead
        reminder = and_(is_open, or_(c.reminded_at.is_(None), c.reminded_at <= now - s.reminder_lead),  # type: ignore[union-attr,operator]
                        or_(and_(ack_pending, c.ack_due_at > now, c.ack_due_at <= lead_end),  # type: ignore[operator]
                            and_(answer_pending, c.answer_due_at > now, c.answer_due_at <= lead_end)))  # type: ignore[operator]
        overdue_events = and_(is_open, or_(and_(ack_late, no_event("ack_overdue")),
                                           and_(answer_late, no_event("answer_overdue"))))
        flag = or_(and_(late, c.overdue == False), and_(c.overdue == True, not_(late)))  # noqa: E712
        grace = now - s.escalate_after
        escalate = and_(is_open, c.escalated_at.is_(None), or_(  # type: ignore[union-attr]
            and_(ack_pending, c.ack_due_at <= grace), and_(answer_pending, c.answer_due_at <= grace)))  # type: ignore[operator]
        answered = c.status == "answered"
        close = and_(answered, c.answered_at <= now - s.auto_close_after)  # type: ignore[operator]
        conditions = [reminder, overdue_events, flag, escalate, close]
        if satisfaction.SatisfactionSettings.from_config(self.core.config).enabled:
            conditions.append(and_(answered, c.satisfaction_asked_at.is_(None), c.satisfaction.is_(None),  # type: ignore[union-attr]
                                   c.identity_id.is_not(None), c.anonymous == False))  # type: ignore[union-attr]  # noqa: E712
        return or_(*conditions)

    def candidate_ids_sync(self, now: datetime, after_id: int = 0, limit: int = PAGE) -> list[int]:
        with self.core.db.session() as session:
            return list(session.exec(select(Complaint.id).where(Complaint.id > after_id, self._needs_work(now))
                                     .order_by(Complaint.id).limit(limit)).all())  # type: ignore[arg-type]

    # -- doing it -------------------------------------------------------------------------------
    def process_batch_sync(self, ids: list[int], now: datetime) -> TickReport:
        """Handle ``ids`` in one transaction, rows locked, every condition checked again."""
        report = TickReport()
        with self.core.db.session() as session:
            rows = session.exec(select(Complaint).where(Complaint.id.in_(ids))  # type: ignore[union-attr]
                                .order_by(Complaint.id).with_for_update()).all()
            done = set(session.exec(select(ComplaintEvent.complaint_id, ComplaintEvent.type).where(
                ComplaintEvent.complaint_id.in_(ids),  # type: ignore[attr-defined]
                ComplaintEvent.type.in_(tuple(OVERDUE_EVENTS.values())))).all())  # type: ignore[attr-defined]
            for complaint in rows:
                self._process(session, complaint, now, done, report)
        return report

    def _process(self, session: Session, c: Complaint, now: datetime, done: set[tuple[int, str]],
                 report: TickReport) -> None:
        s = self.settings
        is_open = c.status in OPEN_STATUSES
        late = {"acknowledge": c.acknowledged_at is None and c.ack_due_at is not None and c.ack_due_at <= now,
                "answer": c.answered_at is None and c.answer_due_at is not None and c.answer_due_at <= now}
        if is_open:
            for clock, is_late in late.items():
                kind = OVERDUE_EVENTS[clock]
                if is_late and (c.id, kind) not in done:
                    due = c.ack_due_at if clock == "acknowledge" else c.answer_due_at
                    add_event(session, c, ACTOR, kind, at=now, data={"clock": clock, "due_at": due.isoformat()})  # type: ignore[union-attr]
                    done.add((c.id, kind))  # type: ignore[arg-type]
                    report.overdue += 1
        overdue_now = is_overdue(c, now)
        if c.overdue != overdue_now:
            c.overdue = overdue_now
            session.add(c)
            if not overdue_now:
                report.cleared += 1
        if is_open and c.escalated_at is None:
            clock = self._late_for(c, now - s.escalate_after)
            if clock is not None:
                self._escalate(session, c, clock, now, report)
        if is_open:
            self._remind(session, c, now, report)
        if c.status == "answered" and c.answered_at is not None and c.answered_at <= now - s.auto_close_after:
            outcome = set_status(self.core, session, c, "closed", actor="system", now=now, notify=False,
                                 note=f"closed automatically: no reply within {s.auto_close_after.days} days "
                                      "of the answer")
            if outcome.event is not None:
                report.closed += 1
        if c.status == "answered" and c.satisfaction_asked_at is None and c.satisfaction is None:
            queued = satisfaction.ask(self.core, session, c, now)
            report.asked += 1 if c.satisfaction_asked_at is not None else 0
            report.outbox_ids += queued

    @staticmethod
    def _late_for(c: Complaint, cutoff: datetime) -> str | None:
        if c.acknowledged_at is None and c.ack_due_at is not None and c.ack_due_at <= cutoff:
            return "acknowledge"
        if c.answered_at is None and c.answer_due_at is not None and c.answer_due_at <= cutoff:
            return "answer"
        return None

    def _escalate(self, session: Session, c: Complaint, clock: str, now: datetime, report: TickReport) -> None:
        c.escalated_at = now
        c.updated_at = now
        session.add(c)
        add_event(session, c, ACTOR, "escalated", at=now, note=f"{clock} deadline missed",
                  data={"clock": clock, "to": "supervisors"})
        report.escalated += 1
        core = self.core
        lang = core.templates.language(c.language)
        reference = refs.format_reference(c.reference)
        text = core.templates.render(lang, "clocks.escalated", reference=reference)
        report.outbox_ids += notify_citizen(core, session, c, text, intent_key=f"escalated:{c.id}",
                                            template="clocks.escalated", essential=False, actor=ACTOR)
        if self.settings.escalation_email:
            report.outbox_ids += self._email(session, c, self.settings.escalation_email, f"escalation:{c.id}",
                                             "clocks.escalation_subject", "clocks.escalation_body", clock,
                                             c.ack_due_at if clock == "acknowledge" else c.answer_due_at)

    def _remind(self, session: Session, c: Complaint, now: datetime, report: TickReport) -> None:
        lead = self.settings.reminder_lead
        for clock, due, met in (("acknowledge", c.ack_due_at, c.acknowledged_at),
                                ("answer", c.answer_due_at, c.answered_at)):
            if met is not None or due is None or not (now < due <= now + lead):
                continue
            if c.reminded_at is not None and c.reminded_at >= due - lead:
                continue  # this deadline's reminder went out already
            address = self.administration_email(c.administration)
            queued: list[int] = []
            if address:
                queued = self._email(session, c, address, f"reminder:{c.id}:{clock}:{due.isoformat()}",
                                     "clocks.reminder_subject", "clocks.reminder_body", clock, due)
            c.reminded_at = now
            session.add(c)
            add_event(session, c, ACTOR, "reminder", at=now,
                      data={"clock": clock, "due_at": due.isoformat(), "administration": c.administration,
                            "emailed": bool(queued)})
            report.reminders += 1
            report.outbox_ids += queued
            return

    def administration_email(self, administration: str | None) -> str | None:
        """The branch's ``email`` if it has one, else its administration's."""
        if not administration:
            return None
        national, _, _ = administration.partition(".")
        raw = dict((self.core.config.raw or {}).get("administrations", {}).get(national, {}))
        for place, branch in dict(raw.get("branches", {})).items():
            if str(branch.get("id", f"{national}.{place}")) == administration and branch.get("email"):
                return str(branch["email"]).strip().lower()
        admin = self.core.config.administrations.get(national)
        return admin.email.strip().lower() if admin is not None and admin.email else None

    def _email(self, session: Session, c: Complaint, address: str, intent: str, subject_key: str, body_key: str,
               clock: str, due: datetime | None) -> list[int]:
        core = self.core
        lang = core.templates.language(self.settings.language or core.config.default_language)
        values = {"reference": refs.format_reference(c.reference),
                  "kind": core.templates.render(lang, f"kind.{c.kind}"),
                  "clock": core.templates.render(lang, f"clocks.clock_{clock}"),
                  "due": core.format_date(due, lang) if due else "",
                  "administration": core.config.administration_name(c.administration, lang),
                  "category": core.config.categories[c.category].name(lang) if c.category in core.config.categories
                  else (c.category or ""),
                  "received": core.format_date(c.received_at, lang)}
        _, identity = resolve(session, f"mailto:{address}", language=lang,
                              display_name=f"administration {c.administration or ''}".strip())
        queued = queue_message(session, identity=identity, text=core.templates.render(lang, body_key, **values),
                               intent_key=intent, complaint=c, language=lang, template=body_key, essential=True,
                               subject=core.templates.render(lang, subject_key, **values),
                               meta={"automatic": True, "internal": True}, fallback=False)
        return [queued.outbox_id] if queued else []

    # -- drivers ------------------------------------------------------------------------------------
    def _batches(self, now: datetime) -> Iterable[list[int]]:
        after = 0
        while True:
            ids = self.candidate_ids_sync(now, after)
            if not ids:
                return
            for i in range(0, len(ids), BATCH):
                yield ids[i:i + BATCH]
            after = ids[-1]
            if len(ids) < PAGE:
                return

    def run_once_sync(self, now: datetime | None = None) -> TickReport:
        """One pass without the lease (the actions are idempotent on their own)."""
        now = now or self.core.clock.now()
        report = TickReport()
        for batch in self._batches(now):
            part = self.process_batch_sync(batch, now)
            report.add(part)
            self.core.outbox_committed(part.outbox_ids)
        return report

    def tick_sync(self) -> TickReport:
        """Take the lease and run a pass; ``ran`` is False when another process holds the lease."""
        if not self.acquire_lease_sync():
            return TickReport(ran=False)
        return self.run_once_sync()

    async def tick(self) -> TickReport:
        """As :meth:`tick_sync`, each batch off the event loop (other database work interleaves)."""
        db = self.core.db
        if not await db.run(self.acquire_lease_sync):
            return TickReport(ran=False)
        now = self.core.clock.now()
        report = TickReport()
        after = 0
        while True:
            ids = await db.run(self.candidate_ids_sync, now, after)
            for i in range(0, len(ids), BATCH):
                part = await db.run(self.process_batch_sync, ids[i:i + BATCH], now)
                report.add(part)
                self.core.outbox_committed(part.outbox_ids)
            if len(ids) < PAGE:
                break
            after = ids[-1]
        if any(report.counts().values()):
            log.info("scheduler tick: %s", report.counts())
        return report


def run_once(core: Core, owner: str, settings: ClockSettings | None = None) -> TickReport:
    """One tick as ``owner`` (a process-wide name): with the lease, else ``ran`` is False."""
    return Scheduler(core, owner=owner, settings=settings).tick_sync()
