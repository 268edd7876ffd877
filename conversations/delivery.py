"""Delivering the outbox: claim, send through the channel adapter, record, retry.

Only this module decides about retries. A claim is an atomic conditional UPDATE, so any
number of workers (in-process or RQ, on any machine) never send the same row concurrently.
A row whose lease expired while ``sending`` (a worker died mid-send) is reclaimed; the adapter
is first asked whether the provider already has it (``reconcile``), so it is not sent twice.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import BigInteger, String, and_, any_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from conversations.complaints import add_event
from conversations.core import Core
from conversations.messages import (
    Attachment,
    Button,
    ChannelAdapter,
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_urn,
    redact,
)
from conversations.outbox import queue_message
from store.models import Complaint, Contact, Identity, Message, Outbox

log = logging.getLogger(__name__)

MESSAGES_OUT = Counter("gateway_messages_out_total", "Outbound messages by channel and result",
                       ["channel", "status"])
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Outbox rows not yet sent or failed")

MAX_ATTEMPTS = 10


# The share of the delivery lease a send (with its reconcile) may take before it is given up.
SEND_SHARE_OF_LEASE = 0.8


def backoff_seconds(attempts: int) -> float:
    """1, 2, 4 … seconds, capped at an hour, with jitter so retries do not stampede."""
    return min(2 ** max(attempts - 1, 0), 3600) * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Claim:
    outbox_id: int
    attempts: int
    was_in_flight: bool
    message: OutboundMessage
    since: datetime


def _outbound(message: Message, complaint: Complaint | None) -> OutboundMessage:
    return _outbound_from(message, complaint.reference if complaint else None)


def _outbound_from(message: object, reference: str | None) -> OutboundMessage:
    """An ``OutboundMessage`` from a ``Message`` or a row with the same columns."""
    m: Message = message  # type: ignore[assignment]
    meta = dict((m.raw or {}).get("meta", {}))
    buttons = tuple(tuple(Button(b["label"], b["data"]) for b in row) for row in meta.pop("buttons", []))
    attachments = tuple(Attachment(**a) for a in (m.attachments or []))
    return OutboundMessage(
        message_id=m.id, channel=m.channel, to=m.urn, text=m.text,  # type: ignore[arg-type]
        service_address=m.service_address, subject=m.subject, language=m.language,
        thread_ref=m.thread_ref, references=tuple(meta.pop("references", ())), reference=reference,
        automatic=bool(meta.pop("automatic", True)), buttons=buttons, attachments=attachments, meta=meta,
    )


_outbox = Outbox.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]
_complaints = Complaint.__table__  # type: ignore[attr-defined]
_CLAIMED_MESSAGES = select(_messages, _complaints.c.reference).select_from(
    _messages.outerjoin(_complaints, _complaints.c.id == _messages.c.complaint_id)
).where(_messages.c.id.in_(bindparam("ids", expanding=True)))
_MARK_SENT = update(_messages).where(_messages.c.id == bindparam("mid")).values(
    provider_message_id=func.coalesce(bindparam("pid"), _messages.c.provider_message_id),
    thread_ref=func.coalesce(bindparam("thread"), _messages.c.thread_ref),
    status=case((or_(_messages.c.status == "queued", _messages.c.status == "failed"), bindparam("new_status")),
                else_=_messages.c.status),
    sent_at=func.coalesce(_messages.c.sent_at, bindparam("now")),
)
# The claim and record statements are built once, their values bound on each call: building and
# caching a statement anew cost more than running it (a worker's job often holds a single row).
_CLAIMABLE = or_(
    and_(_outbox.c.status == "pending", _outbox.c.next_attempt_at <= bindparam("now")),
    and_(_outbox.c.status == "sending", _outbox.c.locked_until < bindparam("now")),
)
_CANDIDATES_BY_ID = select(_outbox.c.id, _outbox.c.status).where(
    _CLAIMABLE, _outbox.c.id.in_(bindparam("ids", expanding=True)))
_CANDIDATES_DUE = select(_outbox.c.id, _outbox.c.status).where(_CLAIMABLE).order_by(
    _outbox.c.next_attempt_at).limit(bindparam("limit"))
_CLAIM = update(_outbox).where(_outbox.c.id.in_(bindparam("ids", expanding=True)), _CLAIMABLE).values(
    status="sending", locked_until=bindparam("until"), locked_by=bindparam("worker"),
    attempts=_outbox.c.attempts + 1, updated_at=bindparam("now"),
).returning(_outbox.c.id, _outbox.c.attempts, _outbox.c.message_id, _outbox.c.created_at)
_RECORD_SENT = update(_outbox).where(
    _outbox.c.id.in_(bindparam("ids", expanding=True)), _outbox.c.locked_by == bindparam("worker"),
    _outbox.c.status == "sending",
).values(status="sent", locked_until=None, updated_at=bindparam("now"), last_error=None).returning(
    _outbox.c.id, _outbox.c.message_id)


def _claim_in_one_statement(candidates: Any) -> Any:
    """PostgreSQL: lock ``candidates`` (a SELECT of claimable outbox ids and statuses, rows locked
    in id order so that claimers never deadlock; a row changed meanwhile is checked again once
    its lock is free, as the conditional UPDATE does), claim them and read their messages, all in
    one statement: one round trip instead of five."""
    locked = candidates.with_for_update().cte("candidates")
    taken = update(_outbox).where(_outbox.c.id == locked.c.id).values(
        status="sending", locked_until=bindparam("until"), locked_by=bindparam("worker"),
        attempts=_outbox.c.attempts + 1, updated_at=bindparam("now"),
    ).returning(_outbox.c.id.label("outbox_id"), _outbox.c.attempts.label("outbox_attempts"),
                _outbox.c.created_at.label("outbox_created_at"), locked.c.status.label("outbox_status"),
                _outbox.c.message_id.label("outbox_message_id")).cte("taken")
    return select(taken.c.outbox_id, taken.c.outbox_attempts, taken.c.outbox_created_at, taken.c.outbox_status,
                  _messages, _complaints.c.reference).select_from(
        taken.join(_messages, _messages.c.id == taken.c.outbox_message_id)
        .outerjoin(_complaints, _complaints.c.id == _messages.c.complaint_id))


_IDS = bindparam("ids", type_=ARRAY(BigInteger))
_CLAIM_BY_ID_PG = _claim_in_one_statement(
    select(_outbox.c.id, _outbox.c.status).where(_outbox.c.id == any_(_IDS), _CLAIMABLE).order_by(_outbox.c.id))
_CLAIM_DUE_PG = _claim_in_one_statement(
    select(_outbox.c.id, _outbox.c.status).where(_CLAIMABLE).order_by(_outbox.c.next_attempt_at, _outbox.c.id)
    .limit(bindparam("limit")))
# PostgreSQL: the outbox rows this worker still holds marked sent and their messages updated
# with what the provider answered, in one statement (one row of the arrays per send).
_SENT = func.unnest(bindparam("oids", type_=ARRAY(BigInteger)), bindparam("pids", type_=ARRAY(String)),
                    bindparam("threads", type_=ARRAY(String)), bindparam("statuses", type_=ARRAY(String))
                    ).table_valued("outbox_id", "pid", "thread", "new_status").render_derived(name="sent")
_OWNED = update(_outbox).where(
    _outbox.c.id == _SENT.c.outbox_id, _outbox.c.locked_by == bindparam("worker"), _outbox.c.status == "sending",
).values(status="sent", locked_until=None, updated_at=bindparam("now"), last_error=None).returning(
    _outbox.c.id.label("outbox_id"), _outbox.c.message_id.label("message_id"), _SENT.c.pid, _SENT.c.thread,
    _SENT.c.new_status).cte("owned")
_RECORD_SENT_PG = update(_messages).where(_messages.c.id == _OWNED.c.message_id).values(
    provider_message_id=func.coalesce(_OWNED.c.pid, _messages.c.provider_message_id),
    thread_ref=func.coalesce(_OWNED.c.thread, _messages.c.thread_ref),
    status=case((or_(_messages.c.status == "queued", _messages.c.status == "failed"), _OWNED.c.new_status),
                else_=_messages.c.status),
    sent_at=func.coalesce(_messages.c.sent_at, bindparam("now", type_=_messages.c.sent_at.type)),
).returning(_OWNED.c.outbox_id)


class Delivery:
    """Sends outbox rows with the registered adapters and records what happened."""

    def __init__(self, core: Core, adapters: Mapping[str, ChannelAdapter], worker_id: str | None = None) -> None:
        self.core = core
        self.adapters = adapters
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = timedelta(seconds=core.settings.delivery_lease_seconds)

    # -- claiming ---------------------------------------------------------------------------
    def claim_sync(self, ids: list[int] | None = None, limit: int = 50) -> list[Claim]:
        """Claim ``ids`` (or up to ``limit`` due rows); rows someone else holds are skipped.

        One conditional UPDATE claims the whole batch (a row another worker took in between
        no longer matches it) and the claimed messages are read with it: on PostgreSQL in one
        statement, on SQLite in one transaction of three."""
        now = self.core.clock.now()
        if ids is not None and not ids:
            return []
        params = {"now": now, "until": now + self.lease, "worker": self.worker_id}
        if not self.core.db.is_sqlite:
            with self.core.db.autocommit() as conn:
                claimed = conn.execute(*((_CLAIM_BY_ID_PG, {**params, "ids": ids}) if ids is not None else
                                         (_CLAIM_DUE_PG, {**params, "limit": limit}))).all()
            return self._claims(now, [(row.outbox_id, row.outbox_attempts, row.outbox_created_at, row.outbox_status,
                                       row) for row in claimed])
        with self.core.db.session() as session:
            conn = session.connection()
            if ids is not None:
                candidates = dict(conn.execute(_CANDIDATES_BY_ID, {"now": now, "ids": ids}).all())
            else:
                candidates = dict(conn.execute(_CANDIDATES_DUE, {"now": now, "limit": limit}).all())
            if not candidates:
                return []
            taken = conn.execute(_CLAIM, {**params, "ids": list(candidates)}).all()
            if not taken:
                return []
            rows = {row.id: row for row in conn.execute(_CLAIMED_MESSAGES, {"ids": [t.message_id for t in taken]})}
        return self._claims(now, [(outbox_id, attempts, created_at, candidates[outbox_id], rows[message_id])
                                  for outbox_id, attempts, message_id, created_at in taken if message_id in rows])

    @staticmethod
    def _claims(now: datetime, taken: list[tuple[int, int, datetime, str, Any]]) -> list[Claim]:
        """Claims of ``(outbox id, attempts, row created at, status before the claim, message row
        with its complaint's reference)``, in outbox id order."""
        claims = []
        for outbox_id, attempts, created_at, status_before, row in taken:
            # An earlier attempt may have reached the provider (died mid-send, or timed out).
            maybe_sent = bool((row.raw or {}).get("maybe_sent"))
            claims.append(Claim(outbox_id, attempts, status_before == "sending" or maybe_sent,
                                _outbound_from(row, row.reference), min(now, created_at) if maybe_sent else now))
        claims.sort(key=lambda c: c.outbox_id)
        return claims

    def due_count_sync(self) -> int:
        with self.core.db.session() as session:
            count = session.execute(select(func.count()).select_from(Outbox).where(
                Outbox.status.in_(("pending", "sending")))).scalar_one()  # type: ignore[attr-defined]
        OUTBOX_BACKLOG.set(count)
        return int(count)

    # -- recording --------------------------------------------------------------------------
    def _finish(self, session: Session, claim: Claim) -> tuple[Outbox, Message] | None:
        row = session.get(Outbox, claim.outbox_id)
        if row is None or row.locked_by != self.worker_id or row.status != "sending":
            return None  # lease lost to another worker; it owns the outcome now
        message = session.get(Message, row.message_id)
        assert message is not None
        return row, message

    def record_sent_sync(self, claim: Claim, result: SendResult) -> None:
        self.record_sent_many_sync([(claim, result)])

    def record_sent_many_sync(self, sent: list[tuple[Claim, SendResult]]) -> None:
        """Record successful sends at once: the outbox rows this worker still holds marked sent and
        their messages updated (one statement on PostgreSQL, one transaction of two on SQLite).
        A row whose lease was lost is left to the worker that owns it now."""
        if not sent:
            return
        now = self.core.clock.now()
        new_status = ["sandbox" if result.status == "sandbox" else "sent" for _, result in sent]
        if not self.core.db.is_sqlite:
            with self.core.db.autocommit() as conn:
                owned = set(conn.execute(_RECORD_SENT_PG, {
                    "oids": [c.outbox_id for c, _ in sent], "pids": [r.provider_message_id or None for _, r in sent],
                    "threads": [r.thread_ref or None for _, r in sent], "statuses": new_status, "now": now,
                    "worker": self.worker_id}).scalars())
        else:
            with self.core.db.session() as session:
                conn = session.connection()
                message_ids = dict(conn.execute(_RECORD_SENT, {"ids": [c.outbox_id for c, _ in sent], "now": now,
                                                               "worker": self.worker_id}).all())
                params = [{"mid": message_ids[claim.outbox_id], "pid": result.provider_message_id or None,
                           "thread": result.thread_ref or None, "now": now, "new_status": status}
                          for (claim, result), status in zip(sent, new_status) if claim.outbox_id in message_ids]
                if params:
                    conn.execute(_MARK_SENT, params)
            owned = set(message_ids)
        for (claim, _), status in zip(sent, new_status):
            if claim.outbox_id in owned:
                MESSAGES_OUT.labels(claim.message.channel, status).inc()

    def record_transient_sync(self, claim: Claim, error: TransientDeliveryError) -> None:
        now = self.core.clock.now()
        with self.core.db.session() as session:
            found = self._finish(session, claim)
            if found is None:
                return
            row, message = found
            row.last_error = f"{error.code or ''} {error.reason}".strip()
            row.locked_until, row.updated_at = None, now
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                self._mark_failed(session, message, error.code or "transient", f"gave up after {row.attempts} "
                                  f"attempts: {error.reason}", now)
            else:
                delay = max(error.retry_after or 0.0, backoff_seconds(row.attempts))
                if error.uncertain:
                    # Give the provider the time a dead worker's lease gets before asking it.
                    delay = max(delay, self.lease.total_seconds())
                    message.raw = {**(message.raw or {}), "maybe_sent": True}
                    session.add(message)
                row.status, row.next_attempt_at, row.enqueued_at = "pending", now + timedelta(seconds=delay), None
            session.add(row)
        MESSAGES_OUT.labels(claim.message.channel, "retry").inc()

    def record_permanent_sync(self, claim: Claim, error: PermanentDeliveryError) -> tuple[int, ...]:
        """Mark the message failed; when the identity is unreachable, fall back to another one."""
        now = self.core.clock.now()
        queued: tuple[int, ...] = ()
        with self.core.db.session() as session:
            found = self._finish(session, claim)
            if found is None:
                return ()
            row, message = found
            row.status, row.locked_until, row.updated_at = "failed", None, now
            row.last_error = f"{error.code or ''} {error.reason}".strip()
            session.add(row)
            self._mark_failed(session, message, error.code or "permanent", error.reason, now)
            identity = session.get(Identity, message.identity_id) if message.identity_id else None
            if identity is not None and (error.unreachable or error.opted_out):
                identity.unreachable = True
                identity.unreachable_reason = error.reason[:500]
                session.add(identity)
                if error.opted_out:
                    contact = session.get(Contact, identity.contact_id)
                    if contact is not None:
                        contact.opted_out, contact.opted_out_at = True, now
                        session.add(contact)
            if identity is not None and error.unreachable:
                complaint = session.get(Complaint, message.complaint_id) if message.complaint_id else None
                again = queue_message(
                    session, identity=identity, text=message.text, language=message.language,
                    intent_key=f"fallback:{row.intent_key}", complaint=complaint, template=message.template,
                    essential=bool((message.raw or {}).get("essential", True)), subject=message.subject,
                )
                if again:
                    queued = (again.outbox_id,)
        MESSAGES_OUT.labels(claim.message.channel, "failed").inc()
        return queued

    def _mark_failed(self, session: Session, message: Message, code: str, reason: str, now: datetime) -> None:
        message.status, message.error_code, message.error_message = "failed", code[:64], reason
        session.add(message)
        if message.complaint_id:
            complaint = session.get(Complaint, message.complaint_id)
            if complaint is not None:
                add_event(session, complaint, "delivery", "delivery_failed", at=now,
                          data={"message_id": message.id, "channel": message.channel, "code": code,
                                "reason": reason})

    # -- sending ----------------------------------------------------------------------------
    async def _send(self, claim: Claim, on_sent: "SentRecorder | None" = None) -> None:
        """Send one claimed row and record the outcome (successes through ``on_sent`` when given,
        which writes them in batches)."""
        adapter = self.adapters.get(claim.message.channel)
        db = self.core.db
        record_sent = on_sent.add if on_sent is not None else (
            lambda c, r: db.run(self.record_sent_sync, c, r))
        if adapter is None:
            await db.run(self.record_permanent_sync, claim,
                         PermanentDeliveryError(f"channel {claim.message.channel!r} is not configured",
                                                code="no_channel"))
            return
        try:
            # A send must end while its lease holds: past it another worker may take the row and,
            # not finding the message at the provider yet, send it a second time. Given up, the
            # outcome is uncertain: the retry waits a lease and asks the provider first.
            result = await asyncio.wait_for(self._attempt(adapter, claim),
                                            self.lease.total_seconds() * SEND_SHARE_OF_LEASE)
        except asyncio.TimeoutError:
            log.info("outbox %s: no answer from %s within %.0f%% of the lease, will reconcile and retry",
                     claim.outbox_id, claim.message.channel, SEND_SHARE_OF_LEASE * 100)
            await db.run(self.record_transient_sync, claim,
                         TransientDeliveryError("the send outlived its lease", code="timeout"))
        except TransientDeliveryError as exc:
            log.info("outbox %s: transient failure on %s (%s), will retry", claim.outbox_id,
                     claim.message.channel, redact(exc.reason))
            await db.run(self.record_transient_sync, claim, exc)
        except PermanentDeliveryError as exc:
            log.info("outbox %s: permanent failure on %s to %s: %s", claim.outbox_id, claim.message.channel,
                     mask_urn(claim.message.to), redact(exc.reason))
            again = await db.run(self.record_permanent_sync, claim, exc)
            self.core.outbox_committed(again)
        except (DeliveryError, Exception) as exc:  # an adapter bug is retried, never lost
            log.exception("outbox %s: unexpected error from %s adapter", claim.outbox_id, claim.message.channel)
            await db.run(self.record_transient_sync, claim,
                         TransientDeliveryError(f"{type(exc).__name__}: {exc}", code="adapter_error"))
        else:
            await record_sent(claim, result)

    async def _attempt(self, adapter: Any, claim: Claim) -> SendResult:
        """What the provider already has when an earlier attempt may have reached it, else a new send."""
        if claim.was_in_flight:
            reconcile = getattr(adapter, "reconcile", None)
            found = await reconcile(claim.message, claim.since - self.lease * 2) if reconcile else None
            if found is not None:
                return found  # type: ignore[no-any-return]
        return await adapter.send(claim.message)  # type: ignore[no-any-return]

    async def deliver_ids(self, ids: list[int]) -> int:
        """Claim ``ids`` in one transaction, send them concurrently, record them in batches."""
        claims = await self.core.db.run(self.claim_sync, ids)
        recorder = SentRecorder(self)
        await asyncio.gather(*(self._send(c, recorder) for c in claims))
        return len(claims)

    async def run_once(self, limit: int = 50) -> int:
        """Claim and send up to ``limit`` due rows concurrently; returns how many were claimed."""
        claims = await self.core.db.run(self.claim_sync, None, limit)
        recorder = SentRecorder(self)
        await asyncio.gather(*(self._send(c, recorder) for c in claims))
        return len(claims)

    def stale_for_queue_sync(self, limit: int = 500) -> list[int]:
        """Rows a queue backend must (re-)enqueue: due and never enqueued, or enqueued long ago,
        or held by a worker whose lease expired."""
        now = self.core.clock.now()
        with self.core.db.session() as session:
            rows = session.execute(select(Outbox.id).where(or_(
                and_(Outbox.status == "pending", Outbox.next_attempt_at <= now, or_(
                    and_(Outbox.enqueued_at.is_(None), Outbox.updated_at < now - timedelta(seconds=2)),  # type: ignore[union-attr]
                    Outbox.enqueued_at < now - timedelta(seconds=60))),
                and_(Outbox.status == "sending", Outbox.locked_until < now),
            )).order_by(Outbox.next_attempt_at).limit(limit)).scalars().all()
            if rows:
                session.execute(update(Outbox).where(Outbox.id.in_(rows)).values(enqueued_at=now))  # type: ignore[union-attr]
        return list(rows)


    def forget_enqueued_sync(self, ids: list[int] | None = None) -> None:
        """The queue lost (or never got) these jobs: let the next sweep enqueue them again."""
        with self.core.db.session() as session:
            query = update(Outbox).where(Outbox.status == "pending", Outbox.enqueued_at.is_not(None))  # type: ignore[union-attr]
            if ids is not None:
                query = query.where(Outbox.id.in_(ids))  # type: ignore[union-attr]
            session.execute(query.values(enqueued_at=None))


class SentRecorder:
    """Writes successful sends in batches: while one batch is being written, the next gathers.

    ``add`` returns once its send is recorded (or raises if the write failed; the row then stays
    ``sending`` until its lease expires and is reconciled, as if the worker had died)."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._batch: list[tuple[Claim, SendResult, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def add(self, claim: Claim, result: SendResult) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append((claim, result, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                await self.delivery.core.db.run(self.delivery.record_sent_many_sync,
                                                [(claim, result) for claim, result, _ in batch])
            except BaseException as exc:  # noqa: BLE001  (handed to every waiter)
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)


class InProcessWorker:
    """The embedded default: an asyncio task in the server process sends the outbox."""

    def __init__(self, delivery: Delivery, concurrency: int = 16, idle_poll: float = 1.0) -> None:
        self.delivery = delivery
        self.concurrency = concurrency
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self, _ids: tuple[int, ...] = ()) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.delivery.core.add_outbox_listener(lambda ids: self._loop.call_soon_threadsafe(self._wake.set))
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def _run(self) -> None:
        """A continuous pipeline: once half the slots are free they are refilled with one claim;
        successes are recorded in batches. Up to ``concurrency`` sends are in flight."""
        recorder = SentRecorder(self.delivery)
        in_flight: set[asyncio.Task[None]] = set()
        slot_freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slot_freed.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox send failed", exc_info=task.exception())

        while not self._stopping:
            try:
                free = self.concurrency - len(in_flight)
                # Refill by halves: under load a claim (a transaction) then serves many sends, not one.
                if free < max(1, self.concurrency // 2):
                    slot_freed.clear()
                    await slot_freed.wait()
                    continue
                self._wake.clear()
                claims = await self.delivery.core.db.run(self.delivery.claim_sync, None, free)
                for claim in claims:
                    task = asyncio.create_task(self.delivery._send(claim, recorder))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                if len(claims) == free:
                    continue  # there may be more due
                if not claims:
                    await self.delivery.core.db.run(self.delivery.due_count_sync)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll)
                except asyncio.TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database being away must not kill the worker
                log.exception("outbox worker loop failed; retrying")
                await asyncio.sleep(1.0)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def stop(self) -> None:
        """Finish what is in flight, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
