"""Tables of the phone line: calls, their status events, and callback tasks for agents."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.models import BigID
from store.types import UTCDateTime, utcnow


def _ts(index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


class Call(SQLModel, table=True):
    """One call to the hotline: who, when, how long they waited and talked, and the IVR state."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_created", "created_at"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    call_sid: str = Field(max_length=64, unique=True)
    caller: str | None = Field(default=None, max_length=320, index=True)  # tel: URN
    service_address: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=16)
    status: str = Field(default="in-progress", max_length=16)  # the latest call status known
    step: str | None = Field(default=None, max_length=32)  # where the caller is in the IVR
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # tries, chosen category …
    started_at: datetime | None = _ts()
    answered_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    queue_seconds: int | None = None  # time spent in the agents' queue
    wait_seconds: int | None = None  # ringing before the line answered, plus queue time
    talk_seconds: int | None = None  # from answer to hang-up
    agent_outcome: str | None = Field(default=None, max_length=32)  # answered/missed/abandoned/voicemail/out_of_hours
    complaint_id: int | None = Field(default=None, sa_type=BigID)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CallEvent(SQLModel, table=True):
    """One status callback; a provider retry of the same (call, status, sequence) is one row."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_sid", "status", "sequence", name="uq_call_events_sid_status_seq"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    call_sid: str = Field(max_length=64, index=True)
    status: str = Field(max_length=16)
    sequence: int = -1  # Twilio's SequenceNumber; -1 when absent
    timestamp: datetime | None = _ts()  # when Twilio says it happened
    duration: int | None = None  # CallDuration on the final event
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CallbackTask(SQLModel, table=True):
    """A caller an agent should call back: missed, abandoned, out of hours, or a voicemail."""

    __tablename__ = "callback_tasks"
    __table_args__ = (Index("ix_callback_tasks_status_created", "status", "created_at"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    caller: str = Field(max_length=320)  # tel: URN
    reason: str = Field(max_length=16)  # missed / abandoned / voicemail / out_of_hours
    call_sid: str | None = Field(default=None, max_length=64, unique=True)
    language: str | None = Field(default=None, max_length=16)
    recording_sid: str | None = Field(default=None, max_length=64)
    recording_file_id: int | None = Field(default=None, sa_type=BigID)
    status: str = Field(default="open", max_length=8)  # open / done
    note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    done_at: datetime | None = _ts()
    done_by: str | None = Field(default=None, max_length=150)
