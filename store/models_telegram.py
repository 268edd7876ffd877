"""Tables of the Telegram channel: updates already handled, and files still to fetch.

``telegram_updates`` makes a redelivered Update (same ``update_id``) a no-op even when it
carries no message of its own (edits, group messages). ``telegram_files`` is the durable queue
of media to download through the Bot API; the webhook answers before the bytes are fetched.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from store.models import BigID
from store.types import UTCDateTime, utcnow


class TelegramUpdate(SQLModel, table=True):
    __tablename__ = "telegram_updates"
    update_id: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(max_length=32)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TelegramFile(SQLModel, table=True):
    """A photo, document or voice note to download (status pending/fetching/stored/too_big/failed)."""

    __tablename__ = "telegram_files"
    __table_args__ = (Index("ix_telegram_files_status_next", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    message_id: int = Field(index=True, sa_type=BigID)
    conversation_id: int | None = Field(default=None, sa_type=BigID)
    complaint_id: int | None = Field(default=None, index=True, sa_type=BigID)
    file_id: str = Field(max_length=255)
    file_unique_id: str | None = Field(default=None, max_length=128)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    filename: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, sa_type=BigInteger)
    language: str | None = Field(default=None, max_length=16)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stored_file_id: int | None = Field(default=None, sa_type=BigID)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
