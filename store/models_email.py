"""Email-channel tables: messages the IMAP fetcher could not parse (the dead-letter table)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.models import BigID
from store.types import UTCDateTime, utcnow


class EmailDeadLetter(SQLModel, table=True):
    """A fetched message that could not be parsed: kept with its raw bytes, never dropped.

    One row per mailbox and content (``sha256`` of the raw bytes), so fetching the same message
    again (a crash before the checkpoint moved, a UIDVALIDITY change) adds nothing.
    """

    __tablename__ = "email_dead_letters"
    __table_args__ = (UniqueConstraint("mailbox", "sha256", name="uq_email_dead_letters_mailbox_sha256"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    mailbox: str = Field(max_length=320)
    uidvalidity: int = Field(sa_type=BigInteger)
    uid: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    size: int = 0
    raw: bytes = Field(sa_type=LargeBinary)
    error: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
