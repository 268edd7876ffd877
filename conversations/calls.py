"""Calls to the hotline, their status events, and callback tasks for agents.

What the IVR, the status callback and the agents' API (and console) read and write. Status
callbacks may repeat and arrive out of order: each (call, status, sequence) is stored once, a
call never leaves a final state, and the times are recomputed from what is known.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from conversations.messages import CallStatusUpdate, mask_urn, urn_path
from store.models import Complaint
from store.models_ivr import Call, CallbackTask, CallEvent

if TYPE_CHECKING:
    from conversations.core import Core

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "completed": 4, "busy": 4,
               "no-answer": 4, "failed": 4, "canceled": 4}
FINAL = frozenset(s for s, rank in STATUS_RANK.items() if rank == 4)
CALLBACK_REASONS = ("missed", "abandoned", "out_of_hours", "voicemail")
# A later cause replaces an earlier one only if it tells the agent more (a voicemail beats all).
_REASON_WEIGHT = {"missed": 1, "abandoned": 2, "out_of_hours": 3, "voicemail": 4}
CALLBACK_STATUSES = ("open", "done")
MAX_PAGE = 200


def transaction(core: "Core", work: Callable[[Session], T], attempts: int = 3) -> T:
    """Run ``work`` in a transaction, again from the start when a concurrent insert collided."""
    for attempt in range(attempts):
        try:
            with core.db.session() as session:
                return work(session)
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def find_call(session: Session, call_sid: str) -> Call | None:
    return session.exec(select(Call).where(Call.call_sid == call_sid)).first()


def get_or_create_call(session: Session, call_sid: str, now: datetime, *, caller: str | None = None,
                       service_address: str | None = None, status: str = "in-progress") -> Call:
    """The call row for ``call_sid`` (created on first sight, from whichever request comes first:
    an IVR request means the line answered; a status callback brings its own status)."""
    call = find_call(session, call_sid)
    if call is None:
        call = Call(call_sid=call_sid, caller=caller, service_address=service_address, status=status,
                    started_at=now, answered_at=now if status == "in-progress" else None,
                    created_at=now, updated_at=now)
        session.add(call)
        session.flush()
    else:
        call.caller = call.caller or caller
        call.service_address = call.service_address or service_address
    return call


def _seconds(later: datetime | None, earlier: datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(int(round((later - earlier).total_seconds())), 0)


def update_times(session: Session, call: Call) -> None:
    """Recompute wait (ringing before the line answered, plus time in the agents' queue) and talk
    time from what is known; Twilio's CallDuration, when it came, is the talk time."""
    final = None
    if call.status in FINAL:
        final = session.exec(select(CallEvent).where(CallEvent.call_sid == call.call_sid,
                                                     CallEvent.status == call.status)
                             .order_by(CallEvent.sequence)).first()  # type: ignore[arg-type]
    if final is not None and final.duration is not None and call.answered_at is None and call.ended_at:
        call.answered_at = call.ended_at - timedelta(seconds=final.duration)
    ring = _seconds(call.answered_at, call.started_at)
    if ring is not None or call.queue_seconds is not None:
        call.wait_seconds = (ring or 0) + (call.queue_seconds or 0)
    if call.status in FINAL - {"completed"}:
        call.talk_seconds = 0
    elif final is not None and final.duration is not None:
        call.talk_seconds = final.duration
    elif call.ended_at is not None:
        call.talk_seconds = _seconds(call.ended_at, call.answered_at)


def open_callback(session: Session, *, caller: str | None, reason: str, now: datetime, call_sid: str | None,
                  language: str | None = None) -> CallbackTask | None:
    """Open (or sharpen the reason of) the callback task of a call; None for a withheld number."""
    if reason not in CALLBACK_REASONS:
        raise ValueError(f"unknown callback reason {reason!r}")
    if caller is None:
        log.info("no callback task for call %s: the number is withheld", call_sid)
        return None
    task = session.exec(select(CallbackTask).where(CallbackTask.call_sid == call_sid)).first() if call_sid else None
    if task is None:
        task = CallbackTask(caller=caller, reason=reason, call_sid=call_sid, language=language, created_at=now)
        session.add(task)
        session.flush()
        log.info("callback task %s opened (%s) for %s", task.id, reason, mask_urn(caller))
    elif _REASON_WEIGHT[reason] > _REASON_WEIGHT.get(task.reason, 0):
        task.reason = reason
        session.add(task)
    return task


def record_call_status(core: "Core", update: CallStatusUpdate) -> str:
    """Store one status callback; returns "duplicate" or the call's status after it."""
    def work(session: Session) -> str:
        sequence = update.sequence if update.sequence is not None else -1
        seen = session.exec(select(CallEvent.id).where(CallEvent.call_sid == update.call_sid,
                                                       CallEvent.status == update.status,
                                                       CallEvent.sequence == sequence)).first()
        if seen is not None:
            return "duplicate"
        at = update.timestamp or update.received_at
        session.add(CallEvent(call_sid=update.call_sid, status=update.status, sequence=sequence,
                              timestamp=update.timestamp, duration=update.duration, received_at=update.received_at))
        call = get_or_create_call(session, update.call_sid, at, caller=update.caller,
                                  service_address=update.service_address, status=update.status)
        if call.started_at is None or at < call.started_at:
            call.started_at = at
        if update.status == "in-progress" and (call.answered_at is None or at < call.answered_at):
            call.answered_at = at
        became_final = update.status in FINAL and call.ended_at is None and call.status == update.status
        if call.status not in FINAL and STATUS_RANK[update.status] >= STATUS_RANK.get(call.status, 0):
            became_final = update.status in FINAL
            call.status = update.status
        if became_final:
            call.ended_at = at
        session.flush()
        update_times(session, call)
        if became_final:
            _callback_for_final(session, call, update.status, at)
        call.updated_at = update.received_at
        session.add(call)
        session.flush()
        return call.status
    return transaction(core, work)


def _callback_for_final(session: Session, call: Call, status: str, now: datetime) -> None:
    reason = None
    if status in ("busy", "no-answer"):
        reason = "missed"
    elif status == "canceled":
        reason = "abandoned"
    elif status == "completed" and call.step == "queue" and call.agent_outcome is None:
        reason = "abandoned"  # hung up in the queue and the queue's own callback never came
    if reason is None:
        return
    if call.agent_outcome is None:
        call.agent_outcome = reason
    open_callback(session, caller=call.caller, reason=reason, now=now, call_sid=call.call_sid,
                  language=call.language)


# -- reads and writes for agents (API and console) ---------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def call_json(call: Call, reference: str | None = None) -> dict[str, Any]:
    return {
        "call_sid": call.call_sid, "caller": urn_path(call.caller) if call.caller else None,
        "language": call.language, "status": call.status, "step": call.step,
        "started_at": _iso(call.started_at), "answered_at": _iso(call.answered_at), "ended_at": _iso(call.ended_at),
        "queue_seconds": call.queue_seconds, "wait_seconds": call.wait_seconds, "talk_seconds": call.talk_seconds,
        "agent_outcome": call.agent_outcome, "complaint_reference": reference,
    }


def callback_json(task: CallbackTask) -> dict[str, Any]:
    return {
        "id": task.id, "caller": urn_path(task.caller), "reason": task.reason, "call_sid": task.call_sid,
        "language": task.language, "status": task.status, "recording_file_id": task.recording_file_id,
        "note": task.note, "created_at": _iso(task.created_at), "done_at": _iso(task.done_at),
        "done_by": task.done_by,
    }


def _page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 1 or limit > MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must not be negative")
    return limit, offset


def list_calls(session: Session, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Recent calls, newest first."""
    limit, offset = _page(limit, offset)
    total = session.exec(select(func.count()).select_from(Call)).one()
    rows = session.exec(select(Call, Complaint.reference).join(Complaint, Complaint.id == Call.complaint_id,
                                                               isouter=True)
                        .order_by(Call.created_at.desc(), Call.id.desc())  # type: ignore[attr-defined, union-attr]
                        .limit(limit).offset(offset)).all()
    return {"calls": [call_json(call, ref) for call, ref in rows], "total": total, "limit": limit, "offset": offset}


def list_callbacks(session: Session, *, status: str | None = "open", limit: int = 50,
                   offset: int = 0) -> dict[str, Any]:
    """Callback tasks, oldest open first (the queue agents work through); all when ``status`` is None."""
    limit, offset = _page(limit, offset)
    if status is not None and status not in CALLBACK_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CALLBACK_STATUSES)} or all")
    query = select(CallbackTask)
    count = select(func.count()).select_from(CallbackTask)
    if status is not None:
        query = query.where(CallbackTask.status == status)
        count = count.where(CallbackTask.status == status)
    order = (CallbackTask.created_at, CallbackTask.id) if status == "open" else \
        (CallbackTask.created_at.desc(), CallbackTask.id.desc())  # type: ignore[attr-defined, union-attr]
    rows = session.exec(query.order_by(*order).limit(limit).offset(offset)).all()
    return {"callbacks": [callback_json(t) for t in rows], "total": session.exec(count).one(),
            "limit": limit, "offset": offset}


def mark_callback_done(session: Session, task_id: int, *, username: str, now: datetime,
                       note: str | None = None) -> CallbackTask | None:
    """Close a callback task, recording who; a task already done keeps its first closer."""
    task = session.get(CallbackTask, task_id)
    if task is None:
        return None
    if task.status != "done":
        task.status, task.done_at, task.done_by = "done", now, username
        if note:
            task.note = note[:2000]
        session.add(task)
        session.flush()
    return task
