"""The tables of the shared conversation model.

Contacts own identities (URNs); conversations group messages per identity; complaints carry
the legal clocks and their audit trail (events); outbound messages are delivered through the
outbox, written in the same transaction as the change that caused them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime, utcnow

# Postgres BIGINT identity, SQLite INTEGER PRIMARY KEY (rowid alias).
BigID = BigInteger().with_variant(Integer(), "sqlite")


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    language: str | None = Field(default=None, max_length=16)
    display_name: str | None = Field(default=None, max_length=200)
    opted_out: bool = False
    opted_out_at: datetime | None = _ts()
    anonymised_at: datetime | None = _ts()


class Identity(SQLModel, table=True):
    """One address of a contact: ``tel:+212…``, ``mailto:…``, ``telegram:…``."""

    __tablename__ = "identities"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    contact_id: int = Field(foreign_key="contacts.id", index=True, sa_type=BigID)
    urn: str = Field(max_length=320, unique=True)
    scheme: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    unreachable: bool = False
    unreachable_reason: str | None = Field(default=None, max_length=500)
    extra: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    contact_id: int = Field(foreign_key="contacts.id", index=True, sa_type=BigID)
    identity_id: int = Field(foreign_key="identities.id", index=True, sa_type=BigID)
    channel: str = Field(max_length=16)
    service_address: str | None = Field(default=None, max_length=320)
    language: str | None = Field(default=None, max_length=16)
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    complaint_id: int | None = Field(default=None, sa_type=BigID)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_message_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Complaint(SQLModel, table=True):
    __tablename__ = "complaints"
    __table_args__ = (
        Index("ix_complaints_admin_status_received", "administration", "status", "received_at"),
        Index("ix_complaints_contact_received", "contact_id", "received_at"),
        Index("ix_complaints_status_received", "status", "received_at"),
        Index("ix_complaints_category_place_received", "category", "place", "received_at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    reference: str = Field(max_length=16, unique=True)
    kind: str = Field(default="complaint", max_length=16)
    text: str = Field(default="", sa_type=Text)
    category: str | None = Field(default=None, max_length=64)
    administration: str | None = Field(default=None, max_length=128)
    place: str | None = Field(default=None, max_length=64)
    status: str = Field(default="new", max_length=16)
    language: str | None = Field(default=None, max_length=16)
    channel: str = Field(max_length=16)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", sa_type=BigID)
    identity_id: int | None = Field(default=None, foreign_key="identities.id", sa_type=BigID)
    conversation_id: int | None = Field(default=None, sa_type=BigID)
    created_by: str | None = Field(default=None, max_length=128)
    anonymous: bool = False
    consent_sms: bool = True
    latitude: float | None = None
    longitude: float | None = None
    routing_confidence: float | None = None
    routing_reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ack_due_at: datetime | None = _ts()
    answer_due_at: datetime | None = _ts()
    assigned_at: datetime | None = _ts()
    acknowledged_at: datetime | None = _ts()
    answered_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    overdue: bool = Field(default=False)
    escalated_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()
    rejected_reason: str | None = Field(default=None, sa_type=Text)
    reopened_count: int = 0
    transfer_count: int = 0
    satisfaction: int | None = None
    satisfaction_asked_at: datetime | None = _ts()
    duplicate_of_id: int | None = Field(default=None, sa_type=BigID)
    probable_duplicate_of_id: int | None = Field(default=None, sa_type=BigID)
    extra: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # The text's duplicate-detection features (conversations.text_features), kept with it; hashes
    # of the text, so left out of model_dump (exports, JSON): the text itself is there.
    text_features: bytes | None = Field(default=None, sa_type=LargeBinary, exclude=True)


class ComplaintEvent(SQLModel, table=True):
    """The audit trail: every change with who, when and why."""

    __tablename__ = "complaint_events"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    complaint_id: int = Field(foreign_key="complaints.id", index=True, sa_type=BigID)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=128)
    type: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    note: str | None = Field(default=None, sa_type=Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Message(SQLModel, table=True):
    """An inbound or outbound message on any channel."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id", name="uq_messages_channel_provider_id"),
        Index("ix_messages_complaint_created", "complaint_id", "created_at"),
        Index("ix_messages_thread_ref", "thread_ref"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    direction: str = Field(max_length=3)  # "in" / "out"
    channel: str = Field(max_length=16)
    provider_message_id: str | None = Field(default=None, max_length=255)
    conversation_id: int | None = Field(default=None, sa_type=BigID)
    contact_id: int | None = Field(default=None, sa_type=BigID)
    identity_id: int | None = Field(default=None, sa_type=BigID)
    complaint_id: int | None = Field(default=None, sa_type=BigID)
    urn: str = Field(max_length=320)  # sender (in) or recipient (out)
    service_address: str | None = Field(default=None, max_length=320)
    kind: str = Field(default="text", max_length=16)
    text: str = Field(default="", sa_type=Text)
    subject: str | None = Field(default=None, max_length=998)
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    thread_ref: str | None = Field(default=None, max_length=998)
    language: str | None = Field(default=None, max_length=16)
    status: str = Field(default="received", max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_type=Text)
    template: str | None = Field(default=None, max_length=64)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    received_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts()
    edited_at: datetime | None = _ts()


class Outbox(SQLModel, table=True):
    """One delivery intent for an outbound message; ``intent_key`` makes an intent unique."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    message_id: int = Field(foreign_key="messages.id", sa_type=BigID, unique=True)
    channel: str = Field(max_length=16)
    intent_key: str = Field(max_length=255, unique=True)
    status: str = Field(default="pending", max_length=16)  # pending/sending/sent/failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    locked_until: datetime | None = _ts()
    locked_by: str | None = Field(default=None, max_length=128)
    enqueued_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """A console/API user (roles: agent, officer, supervisor, admin)."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    username: str = Field(max_length=150, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    administration: str | None = Field(default=None, max_length=128)
    language: str = Field(default="fr", max_length=16)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    user_id: int = Field(foreign_key="users.id", index=True, sa_type=BigID)
    token_hash: str = Field(max_length=128, unique=True)
    name: str = Field(default="", max_length=200)
    kind: str = Field(default="api", max_length=16)  # api / session
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()


class KeyValue(SQLModel, table=True):
    """Small durable state: IMAP checkpoints, scheduler leases, IVR language per caller."""

    __tablename__ = "kv"
    key: str = Field(primary_key=True, max_length=255)
    value: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StoredFile(SQLModel, table=True):
    """An attachment's bytes on disk (under the data directory), never behind a public URL."""

    __tablename__ = "files"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    message_id: int | None = Field(default=None, index=True, sa_type=BigID)
    complaint_id: int | None = Field(default=None, index=True, sa_type=BigID)
    sha256: str = Field(max_length=64, index=True)
    size: int = 0
    content_type: str = Field(default="application/octet-stream", max_length=255)
    filename: str | None = Field(default=None, max_length=255)
    storage_path: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
